----------------------------- MODULE MCOwnership -----------------------------
(***************************************************************************)
(* Models of Ownership: model values, the programs that run, the view.    *)
(***************************************************************************)
EXTENDS Ownership, TLC

CONSTANTS X, Y, Z, U, n0, n1, n2, n3, w1, w2, w3, w4, d

S(o) == [op |-> "submit", obj |-> o]
P(o) == [op |-> "put", obj |-> o]
G(o) == [op |-> "get", obj |-> o]
R(o) == [op |-> "release", obj |-> o]
C(o) == [op |-> "cancel", obj |-> o]

(***************************************************************************)
(* Small (conformance): y = g(x), with x a task                            *)
(*                                                                         *)
(*   driver:  x = f.remote(); y = g.remote(x); del x; get(y); del y        *)
(*                                                                         *)
(* The driver's node n0 runs no task (no CPU); n1 and n2 have one CPU    *)
(* each, and workers w1 and w2; each may start one more (w3, w4) when it *)
(* needs one (its workers wait for arguments, lending their CPU).  One crash, of n1 or n2.  A loss of the node holding x's only     *)
(* copy can come while y is leased on the other and fetching it.          *)
(***************************************************************************)
SmallObjects == {X, Y}
SmallParent == [o \in SmallObjects |-> Root]
SmallKind == [o \in SmallObjects |-> "task"]
SmallArgs == [o \in SmallObjects |-> IF o = Y THEN {X} ELSE {}]
SmallRetries == [o \in SmallObjects |-> 1]
NoShared == [o \in SmallObjects |-> {}]
SmallBody == [t \in SmallObjects \cup {Root} |->
    IF t = Root THEN <<S(X), S(Y), R(X), G(Y), R(Y)>> ELSE <<>>]

(***************************************************************************)
(* Put: y = g(x), with x a put: its value must stay while y's lineage may *)
(* need it, since nothing can make it again.                              *)
(*                                                                         *)
(*   driver:  x = put(v); y = g.remote(x); del x; get(y); del y           *)
(***************************************************************************)
PutKind == [o \in SmallObjects |-> IF o = X THEN "put" ELSE "task"]
PutRetries == [o \in SmallObjects |-> IF o = X THEN 0 ELSE 1]
PutBody == [t \in SmallObjects \cup {Root} |->
    IF t = Root THEN <<P(X), S(Y), R(X), G(Y), R(Y)>> ELSE <<>>]

(***************************************************************************)
(* Borrow: a task borrows x and keeps it beyond its end (actor state),     *)
(* letting go some time later.                                             *)
(*                                                                         *)
(*   driver:  x = f.remote(); y = g.remote(shared(x)); del x; get(y); del y *)
(*   g:       get(x); keep x                                              *)
(*                                                                         *)
(* SubBorrow: the borrower passes x on to a task of its own, which keeps  *)
(* it: a borrower of a borrower, whose lender may die.                     *)
(*                                                                         *)
(*   driver:  x = f.remote(); y = g.remote(shared(x)); del x; get(y); del y *)
(*   g:       z = h.remote(shared(x)); get(z)                             *)
(*   h:       keep x                                                      *)
(*                                                                         *)
(* Nested: the owner of an object dies (a task that submitted a task).    *)
(*                                                                         *)
(*   driver:  y = g.remote(); get(y); del y                               *)
(*   g:       z = h.remote(); get(z)                                      *)
(***************************************************************************)
BorrowObjects == {X, Y}
BorrowParent == [o \in BorrowObjects |-> Root]
BorrowKind == [o \in BorrowObjects |-> "task"]
BorrowArgs == [o \in BorrowObjects |-> {}]
BorrowShared == [o \in BorrowObjects |-> IF o = Y THEN {X} ELSE {}]
BorrowRetries == [o \in BorrowObjects |-> 1]
BorrowBody == [t \in BorrowObjects \cup {Root} |->
    CASE t = Root -> <<S(X), S(Y), R(X), G(Y), R(Y)>>
      [] t = Y -> <<G(X)>>
      [] OTHER -> <<>>]

SubObjects == {X, Y, Z}
SubParent == [o \in SubObjects |-> IF o = Z THEN Y ELSE Root]
SubKind == [o \in SubObjects |-> "task"]
SubArgs == [o \in SubObjects |-> {}]
SubShared == [o \in SubObjects |-> IF o \in {Y, Z} THEN {X} ELSE {}]
SubKeeps == [o \in SubObjects |-> IF o = Z THEN {X} ELSE {}]
SubRetries == [o \in SubObjects |-> 1]
SubBody == [t \in SubObjects \cup {Root} |->
    CASE t = Root -> <<S(X), S(Y), R(X), G(Y), R(Y)>>
      [] t = Y -> <<S(Z), G(Z)>>
      [] OTHER -> <<>>]
NoKeeps3 == [o \in SubObjects |-> {}]

NestedObjects == {Y, Z}
NestedParent == [o \in NestedObjects |-> IF o = Z THEN Y ELSE Root]
NestedKind == [o \in NestedObjects |-> "task"]
NestedNone == [o \in NestedObjects |-> {}]
NestedRetries == [o \in NestedObjects |-> 1]
NestedBody == [t \in NestedObjects \cup {Root} |->
    CASE t = Root -> <<S(Y), G(Y), R(Y)>>
      [] t = Y -> <<S(Z), G(Z)>>
      [] OTHER -> <<>>]

\* The borrowing and nesting models crash a worker (or a node) while the
\* driver waits at its get, and at most once.

SmallWorkers == {w1, w2, w3, w4}
SmallInitialWorkers == {w1, w2}
SmallWorkerNode == (w1 :> n1) @@ (w2 :> n2) @@ (w3 :> n1) @@ (w4 :> n2)
SmallNodes == {n0, n1, n2}
SmallNodeOrder == <<n0, n1, n2>>
SmallWorkerOrder == <<w1, w2, w3, w4>>
SmallCapacity == (n0 :> 0) @@ (n1 :> 1) @@ (n2 :> 1)

(***************************************************************************)
(* Where Small crashes (its ACTION_CONSTRAINT): a node, while the driver  *)
(* waits at its get.  y's task may then be requested or pushed there, or  *)
(* fetching x from there, or y done with its copy there; with crashes     *)
(* anywhere the graph is ten times as large, most of it orders of          *)
(* notifications after a crash that hits nothing.  Large crashes a        *)
(* worker or a node at any point of the driver's get.                     *)
(***************************************************************************)
SmallCrashPoints ==
    lastAction'.name \in {"WorkerCrash", "NodeCrash"} =>
        /\ lastAction'.name = "NodeCrash"
        /\ ent[Y].task = "pushed"
        /\ ent[X].locs = {lastAction'.params.n}
        /\ NodeOf(ent[Y].loc.w) # lastAction'.params.n

\* Borrow and Sub crash a node that matters to a borrower of x: the one
\* with x's only copy, or one a borrower runs on (a lender, in Sub).
BorrowCrashPoints ==
    lastAction'.name \in {"WorkerCrash", "NodeCrash"} =>
        /\ lastAction'.name = "NodeCrash"
        /\ \E a \in Workers : brw[a][X].owner # NoProc
        /\ \/ ent[X].locs = {lastAction'.params.n}
           \/ \E a \in Workers : brw[a][X].owner # NoProc /\ AddrNode(a) = lastAction'.params.n

\* Put and Large crash a node, or a worker, while the driver waits at its
\* get: whatever of y (or of x) is then in flight or stored is hit.
CrashAtGet ==
    lastAction'.name \in {"WorkerCrash", "NodeCrash"} => GetTarget(ex[Driver]) # NoObj

\* TwoCrashes: Large's crashes, two of them, so that the second may hit the
\* recovery from the first; they leave a node with a CPU up.  With none, no
\* task can run again until a node is added (the implementation keeps such
\* a task waiting, as infeasible), which is a deadlock here.
TwoCrashPoints ==
    /\ CrashAtGet
    /\ lastAction'.name = "NodeCrash" => \E n \in nodeUp' : Capacity[n] > 0

(***************************************************************************)
(* Actor: an actor x and two calls on it, the handle dropped while the    *)
(* calls are pending (they hold it), one crash of the actor's worker or  *)
(* node at any point.                                                      *)
(*                                                                         *)
(*   driver:  x = A.remote(); y = x.f.remote(); z = x.g.remote(); del x;  *)
(*            get(y); get(z); del y; del z                                 *)
(*                                                                         *)
(* The driver's node n0 runs no task; n1 has one CPU, the worker w1 and   *)
(* room for one more (w3).  An actor needs no CPU.                        *)
(***************************************************************************)
ActorObjects == {X, Y, Z}
ActorParent == [o \in ActorObjects |-> Root]
ActorKind == [o \in ActorObjects |-> IF o = X THEN "actor" ELSE "call"]
ActorNone == [o \in ActorObjects |-> {}]
ActorRetries == [o \in ActorObjects |-> 0]
ActorTarget == [o \in ActorObjects |-> IF o = X THEN NoObj ELSE X]
ActorBody == [t \in ActorObjects \cup {Root} |->
    IF t = Root THEN <<S(X), S(Y), S(Z), R(X), G(Y), G(Z), R(Y), R(Z)>> ELSE <<>>]
\* Calls: three, so that two can queue behind a running one.
CallsObjects == {X, Y, Z, U}
CallsParent == [o \in CallsObjects |-> Root]
CallsKind == [o \in CallsObjects |-> IF o = X THEN "actor" ELSE "call"]
CallsNone == [o \in CallsObjects |-> {}]
CallsRetries == [o \in CallsObjects |-> 0]
CallsTarget == [o \in CallsObjects |-> IF o = X THEN NoObj ELSE X]
CallsBody == [t \in CallsObjects \cup {Root} |->
    IF t = Root THEN <<S(X), S(Y), S(Z), S(U), R(X), G(Y), G(Z), G(U), R(Y), R(Z), R(U)>> ELSE <<>>]
ActorWorkers == {w1, w3}
ActorInitialWorkers == {w1}
ActorWorkerNode == (w1 :> n1) @@ (w3 :> n1)
ActorNodes == {n0, n1}
ActorNodeOrder == <<n0, n1>>
ActorWorkerOrder == <<w1, w3>>
ActorCapacity == (n0 :> 0) @@ (n1 :> 1)

\* Where Actor crashes: anywhere once the actor's creation is pushed to its
\* worker (before, a loss of n1 leaves the cluster no worker to create it
\* on, and its creation waits, as the implementation's does, for a node).
ActorCrashPoints ==
    lastAction'.name \in {"WorkerCrash", "NodeCrash"} => ent[X].task \in {"pushed", "done"}

\* Cancel: Actor's program with the second call cancelled right after it is
\* submitted, no crash.
\*
\*   driver:  x = A.remote(); y = x.f.remote(); z = x.g.remote(); cancel(z);
\*            del x; get(y); get(z); del y; del z
CancelBody == [t \in ActorObjects \cup {Root} |->
    IF t = Root THEN <<S(X), S(Y), S(Z), C(Z), R(X), G(Y), G(Z), R(Y), R(Z)>> ELSE <<>>]

\* The other models have no actors.
NoTarget == [o \in Objects |-> NoObj]

\* Every variable but the auxiliary lastAction.
MCView == <<nodeUp, wst, inc, crashes, members, announced, pool, starting, leases,
            nknown, copies, ent, ex, known, brw, got, msgs, why, made, chan, actorLog>>
=============================================================================
