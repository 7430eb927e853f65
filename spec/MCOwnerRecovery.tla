--------------------------- MODULE MCOwnerRecovery ---------------------------
(***************************************************************************)
(* Models of OwnerRecovery: model values, the programs that run, the view. *)
(*                                                                         *)
(* Processes: the driver d (never fails, the new owner), o (runs the       *)
(* parent task, so owns its objects), w (runs the objects' tasks, and the  *)
(* parent's re-execution), h and k (hold references).                      *)
(***************************************************************************)
EXTENDS OwnerRecovery, TLC

CONSTANTS d, o, w, h, k, X, Y

Mk(x) == [op |-> "make", obj |-> x]
Sh(x) == [op |-> "share", obj |-> x]
Gt(x) == [op |-> "get", obj |-> x]

(***************************************************************************)
(* Small: one recoverable task, held by h; o may crash.                    *)
(*                                                                         *)
(*   driver:  parent.remote()                       -- runs at o (then w)  *)
(*   parent:  x = f.options(recoverable=True).remote(); hand x to h       *)
(*   h:       get(x); del x                                                *)
(***************************************************************************)
SmallProcs == {d, o, w, h}
SmallObjects == {X}
SmallRecoverable == [x \in SmallObjects |-> TRUE]
SmallKind == [x \in SmallObjects |-> "task"]
SmallInline == [x \in SmallObjects |-> FALSE]
SmallArgs == [x \in SmallObjects |-> {}]
SmallRetries == [x \in SmallObjects |-> 1]
SmallPlacement == [x \in SmallObjects |-> <<w, d>>]
SmallHolders == [x \in SmallObjects |-> {h}]
SmallBody == <<Mk(X), Sh(X)>>

(***************************************************************************)
(* Mixed: the recoverable x and a default y, both held by h: y fails with  *)
(* OwnerDied when o dies, x survives it.                                   *)
(***************************************************************************)
MixedObjects == {X, Y}
MixedRecoverable == [x \in MixedObjects |-> x = X]
MixedKind == [x \in MixedObjects |-> "task"]
\* y's value is small: it dies with o (the default y fate-shares anyway).
MixedInline == [x \in MixedObjects |-> x = Y]
MixedArgs == [x \in MixedObjects |-> {}]
MixedRetries == [x \in MixedObjects |-> 1]
MixedPlacement == [x \in MixedObjects |-> <<w, d>>]
MixedHolders == [x \in MixedObjects |-> {h}]
MixedBody == <<Mk(X), Mk(Y), Sh(X), Sh(Y)>>

(***************************************************************************)
(* Inline: the Small program, with x's value small: it travels in the      *)
(* task's reply and lives in o's store, so it dies with o while w, the     *)
(* worker that made it, lives on; the new owner runs x's task again there, *)
(* as a new attempt of its own epoch.                                      *)
(***************************************************************************)
InlineValues == [x \in SmallObjects |-> TRUE]

(***************************************************************************)
(* Put: x a recoverable put (its value logged at the head), y = g(x)       *)
(* recoverable, held by h; the parent gets y.                              *)
(***************************************************************************)
PutInline == [x \in MixedObjects |-> FALSE]
PutKind == [x \in MixedObjects |-> IF x = X THEN "put" ELSE "task"]
PutArgs == [x \in MixedObjects |-> IF x = Y THEN {X} ELSE {}]
PutRetries == [x \in MixedObjects |-> IF x = X THEN 0 ELSE 1]
PutRecoverable == [x \in MixedObjects |-> TRUE]
PutHolders == [x \in MixedObjects |-> IF x = Y THEN {h} ELSE {}]
PutBody == <<Mk(X), Mk(Y), Sh(Y), Gt(Y)>>

(***************************************************************************)
(* Large (simulation): the Mixed program with a second holder k of x, the  *)
(* parent's get of x, and crashes of o, w, h or k, twice, with false       *)
(* suspicion: the owner and then a holder, or the worker running the new   *)
(* owner's rebuild.                                                        *)
(***************************************************************************)
LargeProcs == {d, o, w, h, k}
LargeHolders == [x \in MixedObjects |-> IF x = X THEN {h, k} ELSE {h}]
LargeBody == <<Mk(X), Mk(Y), Sh(X), Sh(Y), Gt(X)>>

(***************************************************************************)
(* Join: the Small program, where k registers only after the start and    *)
(* the holder h hands x on to it (a task of h's that carries x).  When o   *)
(* dies before h has heard of the take-over, the reference h hands on      *)
(* still names o: k must learn where x moved when it registers.           *)
(***************************************************************************)
JoinProcs == {d, o, w, h, k}
JoinRelays == {<<X, h, k>>}
\* k joins only once o was declared dead: one that joins before is told of
\* the death like every other process (Small has those interleavings).
JoinAfterTakeOver == lastAction'.name = "Join" => declared # {}

\* Every other model: nobody joins later, and no holder hands on.
NoRelays == {}


(***************************************************************************)
(* The crash points of Small's conformance traces (an action constraint on *)
(* the graph they cover, not on the model TLC checks): o crashes only      *)
(* while no message is in flight, and only at the points where a take-over *)
(* has something different to do: before the parent made x (nothing to    *)
(* take over: the parent runs again), x made but not dispatched (the       *)
(* re-execution adopts it, or makes it anew once it was freed), x running  *)
(* at w (the new owner attaches to the running task), the parent done     *)
(* with h waiting on x not yet dispatched (the new owner rebuilds it), and *)
(* the parent done with h holding x's value (copies pinned again, h        *)
(* counted from its report).  With a crash anywhere the graph has 61,645   *)
(* edges; with these, 1,742.  A crash before the parent made anything      *)
(* leaves nothing to take over, so the notices are handled first there.   *)
(***************************************************************************)
SmallCrashPoints ==
    /\ lastAction'.name = "Crash" =>
         /\ msgs = {}
         /\ \/ created = {}
            \/ pb[o].pc = 2 /\ run[w] = {} /\ ent[o][X].st = "waiting"
            \/ pb[o].pc = 2 /\ run[w] # {}
            \/ pb[o].st = "done" /\ ent[o][X].st = "waiting" /\ gst[h][X] = "wait"
            \/ pb[o].st = "done" /\ ent[o][X].st = "ready" /\ gst[h][X] = "value"
    /\ (\E m \in msgs : m.type = "OwnerMoved" /\ m.moved = {}) => lastAction'.name = "ProcessHandleOwnerMoved"

(***************************************************************************)
(* The crash points of Inline's conformance traces: o crashes while no     *)
(* message is in flight, at the two points where the worker that ran x for *)
(* o, w, gets x's task again: x's value in o's store with h waiting for it *)
(* (the new owner runs x again), and x freed (nothing to take over: the    *)
(* re-executed parent makes x again, under the same id, epoch and attempt  *)
(* as o's).  Small's cover has the rest of the take-over's paths.          *)
(***************************************************************************)
InlineCrashPoints ==
    /\ lastAction'.name = "Crash" =>
         /\ msgs = {}
         /\ \/ ent[o][X].st = "ready" /\ gst[h][X] = "wait"
            \/ ent[o][X].st = "none" /\ X \in created
    /\ (\E m \in msgs : m.type = "OwnerMoved" /\ m.moved = {}) => lastAction'.name = "ProcessHandleOwnerMoved"

ParentPlaces == <<o, w>>

\* Every variable but the auxiliary lastAction.
MCView == <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, msgs,
            par, pb, got, created, made, why>>
=============================================================================
