---------------------------- MODULE OwnerRecovery ----------------------------
(***************************************************************************)
(* Owner recovery: futures that survive their owner.                       *)
(*                                                                         *)
(* Under Ownership (Wang et al., NSDI 2021, section 4.3) a future shares   *)
(* its owner's fate: when the owner dies, every holder fails with          *)
(* OwnerDiedError, and only a re-execution of the owner's own task can     *)
(* make the objects again.  The paper leaves the alternative, keeping the  *)
(* owner's state where it survives, as future work; Ray does not offer     *)
(* it.  This spec is that alternative, opt in per object (Recoverable):    *)
(*                                                                         *)
(*  - the owner writes what a new owner needs to the head (the cluster's   *)
(*    control process: its failure detector and fencing authority, which  *)
(*    does not fail) BEFORE it acts on it: an object's lineage when it is  *)
(*    made, a task's location before the task is dispatched there, a put's *)
(*    value (no lineage can make it again), and the deletion of the entry  *)
(*    before the copies are freed;                                         *)
(*  - every such write carries the object's epoch, and the head takes it   *)
(*    only from the object's registered owner at the current epoch;        *)
(*  - when the head declares the owner dead (it crashed, or it is falsely  *)
(*    suspected: then it is fenced), it bumps the epoch of each            *)
(*    recoverable object the owner had logged and makes the driver (the    *)
(*    job's root owner) its owner: phase 1, every live process is told the *)
(*    new owner and epoch; phase 2, each answers with what it has of those *)
(*    objects (a borrowed reference, a copy in its store, which it re-pins *)
(*    under the new epoch, a task it runs, whose result it now sends to    *)
(*    the new owner).  The new owner frees nothing and rebuilds nothing    *)
(*    until every process told has answered or is known dead; then an      *)
(*    object is ready where a copy lives, attached where its task runs,    *)
(*    restored from the head (a put) or rebuilt from its lineage otherwise;*)
(*  - stores and workers check epochs: a stale owner cannot free,          *)
(*    reconstruct or dispatch; a re-executed parent task that makes an     *)
(*    object again finds it logged and adopts it instead.                  *)
(*                                                                         *)
(* Objects that did not opt in behave as under Ownership: fate-sharing.    *)
(*                                                                         *)
(* The model.  A process is one worker with its own object store (a node   *)
(* of one worker: its crash loses both).  The driver (Driver) never fails. *)
(* It has submitted one task, the parent, whose executor owns every        *)
(* object; the parent's body makes the objects (a task's result or a put), *)
(* hands each to its holders (a task or actor call that carries the        *)
(* reference: the owner counts the holder as a borrower as it sends), and  *)
(* may get them.  Its first attempt runs at ParentPlacement[1]; when that  *)
(* process dies the driver re-executes the parent at the next place.  A    *)
(* task runs at the first live member of its Placement.  A value is the    *)
(* set of tasks whose results flowed into it (its lineage), so a result    *)
(* computed from a wrong argument is a wrong value.  A task's value is    *)
(* stored where it was made, unless it is small (Inline): then it travels  *)
(* in the task's reply and lives in its owner's store, lost with the       *)
(* owner, while the worker that made it lives on.  Messages are a set;     *)
(* a report and a later release of one process reach the new owner in     *)
(* order (one connection).                                                 *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    \* Every process; the driver is one of them.
    \* @type: Set(PROC);
    Procs,
    \* @type: PROC;
    Driver,
    \* @type: PROC;
    NoProc,
    \* @type: Set(OBJ);
    Objects,
    \* @type: OBJ;
    NoObj,
    \* The per-object option recoverable=True.
    \* @type: OBJ -> Bool;
    Recoverable,
    \* "task" (made by a task) or "put" (made by ownership.put).
    \* @type: OBJ -> Str;
    Kind,
    \* Whether a task's value is small enough to travel in its reply (a
    \* put's value is in its owner's store either way).
    \* @type: OBJ -> Bool;
    Inline,
    \* Lineage: the by-value arguments of an object's task.
    \* @type: OBJ -> Set(OBJ);
    Args,
    \* @type: OBJ -> Int;
    Retries,
    \* Where an object's task runs: the first live member of the sequence.
    \* @type: OBJ -> Seq(PROC);
    Placement,
    \* The processes the parent hands each object to.
    \* @type: OBJ -> Set(PROC);
    Holders,
    \* Where each attempt of the parent runs.
    \* @type: Seq(PROC);
    ParentPlacement,
    \* The parent's body: make an object, hand it to its holders, get it.
    \* @type: Seq({op: Str, obj: OBJ});
    Body,
    \* The processes that may crash or be falsely suspected.
    \* @type: Set(PROC);
    Crashable,
    \* Crashes and false suspicions, in all.
    \* @type: Int;
    MaxCrashes,
    \* Whether the head may declare dead a process that is still up.
    \* @type: Bool;
    FalseSuspicion,
    \* The processes that register after the job started (a worker started
    \* later, or one on a node added later).
    \* @type: Set(PROC);
    Joiners,
    \* Onward borrowing: <<x, h, j>>, the holder h hands x on to j (a task
    \* or actor call of its own that carries the reference).
    \* @type: Set(<<OBJ, PROC, PROC>>);
    Relays

SeqSet(s) == {s[i] : i \in 1..Len(s)}
FirstOwner == ParentPlacement[1]

ASSUME
    /\ Driver \in Procs /\ NoProc \notin Procs /\ NoObj \notin Objects
    /\ Recoverable \in [Objects -> BOOLEAN]
    /\ Kind \in [Objects -> {"task", "put"}]
    /\ Inline \in [Objects -> BOOLEAN]
    /\ Args \in [Objects -> SUBSET Objects]
    /\ Retries \in [Objects -> Nat]
    /\ Holders \in [Objects -> SUBSET (Procs \ {Driver})]
    /\ MaxCrashes \in Nat /\ FalseSuspicion \in BOOLEAN
    \* A joiner registers after the parent handed out its references: it
    \* holds what a holder lends it.
    /\ Joiners \subseteq Procs \ ({Driver} \cup SeqSet(ParentPlacement))
    /\ \A x \in Objects : Holders[x] \cap Joiners = {}
    /\ Relays \subseteq Objects \X Procs \X Procs
    /\ \A r \in Relays : r[2] \in Holders[r[1]] /\ r[3] \notin Holders[r[1]] \cup {Driver, r[2]}
    /\ Crashable \subseteq Procs \ {Driver}
    /\ \A x \in Objects : Kind[x] = "put" => Args[x] = {} /\ Retries[x] = 0
    \* A recoverable object's lineage names recoverable objects only: a
    \* new owner must be able to rebuild every argument too.
    /\ \A x \in Objects : Recoverable[x] => \A y \in Args[x] : Recoverable[y]
    \* Tasks fall back to the driver's node, which lives as long as the job.
    /\ \A x \in Objects : Len(Placement[x]) > 0 /\ Placement[x][Len(Placement[x])] = Driver
    /\ Driver \notin SeqSet(ParentPlacement)
    /\ \A x \in Objects : Holders[x] \cap SeqSet(ParentPlacement) = {}
    /\ \A i \in 1..Len(Body) :
          /\ Body[i].op \in {"make", "share", "get"}
          /\ Body[i].obj \in Objects
    \* Each object is made once in the body, before it is shared or got;
    \* an argument is made before the objects computed from it.
    /\ \A x \in Objects : Cardinality({i \in 1..Len(Body) : Body[i] = [op |-> "make", obj |-> x]}) = 1
    /\ \A i, j \in 1..Len(Body) :
          Body[j].op = "make" /\ (Body[i].obj = Body[j].obj \/ Body[i].obj \in Args[Body[j].obj]) /\ i # j
              => (Body[i].op = "make" => i < j) /\ (Body[i].op # "make" => j < i)

-----------------------------------------------------------------------------
\* @typeAlias: entry = {st: Str, ep: Int, loc: PROC, locs: Set(PROC), budget: Int,
\*     borrowers: Set(PROC), local: Bool, waiting: Set(PROC), running: Set(PROC), att: Int};
\* @typeAlias: logent = {st: Str, owner: PROC, ep: Int, loc: PROC, att: Int,
\*     val: Set(OBJ), adopt: Set(PROC)};
\* @typeAlias: borrow = {o: PROC, ep: Int, held: Bool};
\* @typeAlias: run = {x: OBJ, o: PROC, ep: Int, src: <<PROC, Int>>, att: Int, val: Set(OBJ)};
\* @typeAlias: copy = {x: OBJ, n: PROC, o: PROC, ep: Int, val: Set(OBJ)};
\* @typeAlias: msg = {type: Str, x: OBJ, o: PROC, ep: Int, w: PROC, dst: PROC,
\*     held: Bool, copy: Bool, running: Bool, err: Str, moved: Set(<<OBJ, Int>>), to: Set(PROC),
\*     att: Int, val: Set(OBJ)};
\* @typeAlias: got = {h: PROC, x: OBJ, res: Str, val: Set(OBJ), by: Str};
\* @typeAlias: action = {name: Str, params: {p: PROC, x: OBJ, m: $msg}};
OwnerRecoveryAliases == TRUE

VARIABLES
    \* Environment: the processes registered so far, those up, crashes and
    \* suspicions so far.
    \* @type: Set(PROC);
    joined,
    \* @type: Set(PROC);
    up,
    \* @type: Int;
    crashes,
    \* Head: the processes it declared dead (fenced if still up), and its
    \* log of recoverable objects (the owner at the current epoch, the
    \* lineage's latest location and attempts, a put's value, the re-executed
    \* parents that adopted the object).  The epoch of an object taken over
    \* outlives its entry: a parent that makes it again starts after it.
    \* @type: Set(PROC);
    declared,
    \* @type: OBJ -> $logent;
    log,
    \* Ownership tables: ent[p][x], the entry of x at its owner p.
    \* @type: PROC -> (OBJ -> $entry);
    ent,
    \* Borrowed references: brw[p][x], the owner and epoch p knows for x.
    \* @type: PROC -> (OBJ -> $borrow);
    brw,
    \* What each process was told: the deaths, and where objects moved.
    \* @type: PROC -> Set(PROC);
    dk,
    \* @type: PROC -> (OBJ -> {o: PROC, ep: Int});
    mv,
    \* A holder's get of x: "none", "wait", "value", "error", "released".
    \* @type: PROC -> (OBJ -> Str);
    gst,
    \* Tasks running at each process.
    \* @type: PROC -> Set($run);
    run,
    \* The pushes each worker has run to the end, <<x, owner, epoch,
    \* attempt>>: a push it receives again (resent over a new connection) is
    \* dropped.  An object made again by a re-executed parent has the same
    \* id, and may have the same epoch and attempt: only its owner differs.
    \* @type: PROC -> Set(<<OBJ, PROC, Int, Int>>);
    fin,
    \* Object stores: the primary copies, pinned for an owner at an epoch.
    \* @type: Set($copy);
    copies,
    \* Network: messages in flight.
    \* @type: Set($msg);
    msgs,
    \* The parent task: the driver's view (attempt, state), and each
    \* process's execution of it (state, program counter, attempt).
    \* @type: {att: Int, st: Str};
    par,
    \* @type: PROC -> {st: Str, pc: Int, att: Int};
    pb,
    \* History, for the properties and the refinement of Futures: what gets
    \* returned, the objects made, those with a value, and why one failed.
    \* @type: Set($got);
    got,
    \* @type: Set(OBJ);
    created,
    \* @type: Set(OBJ);
    made,
    \* @type: OBJ -> Str;
    why,
    \* The holders' references that failed with OwnerDied.
    \* @type: Set(<<PROC, OBJ>>);
    odied,
    \* Auxiliary: the last action and its parameters, for trace replay.
    \* Excluded from the model's VIEW and from every invariant.
    \* @type: $action;
    lastAction

vars == <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, msgs,
          par, pb, got, created, made, why, odied, lastAction>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Helpers.                                                                *)
(***************************************************************************)
RECURSIVE LineageValue(_)
\* @type: OBJ => Set(OBJ);
LineageValue(x) == {x} \cup UNION {LineageValue(y) : y \in Args[x]}

EntryStates == {"none", "waiting", "pending", "ready", "lost", "failed", "recovering"}
NoEntry == [st |-> "none", ep |-> 0, loc |-> NoProc, locs |-> {}, budget |-> 0,
            borrowers |-> {}, local |-> FALSE, waiting |-> {}, running |-> {}, att |-> 0]
NoLog == [st |-> "none", owner |-> NoProc, ep |-> 0, loc |-> NoProc, att |-> 0, val |-> {}, adopt |-> {}]
\* The epoch of a recoverable object made where the head kept none.
FirstEpoch == NoLog.ep + 1
NoBorrow == [o |-> NoProc, ep |-> 0, held |-> FALSE]
NoMove == [o |-> NoProc, ep |-> 0]

Msg(type, x, o, ep, w, dst) ==
    [type |-> type, x |-> x, o |-> o, ep |-> ep, w |-> w, dst |-> dst, held |-> FALSE,
     copy |-> FALSE, running |-> FALSE, err |-> "", moved |-> {}, to |-> {}, att |-> 0, val |-> {}]
PushTaskMsg(x, o, ep, w, att) == [Msg("PushTask", x, o, ep, w, w) EXCEPT !.att = att]
TaskReplyMsg(x, o, ep, w, err, val) == [Msg("TaskReply", x, o, ep, w, o) EXCEPT !.err = err, !.val = val]
ShareMsg(x, o, ep, h) == Msg("Share", x, o, ep, h, h)
\* A holder's task carrying x to j, and j's registration with the owner it
\* names; both keep the lender (in `to`), which holds x until the owner has
\* counted j.
PassMsg(x, o, ep, lender, j) == [Msg("Pass", x, o, ep, j, j) EXCEPT !.to = {lender}]
AddBorrowerMsg(x, o, ep, j, lender) == [Msg("AddBorrower", x, o, ep, j, o) EXCEPT !.to = {lender}]
RefRemovedMsg(x, o, ep, h) == Msg("RefRemoved", x, o, ep, h, o)
FreeObjectMsg(x, o, ep, n) == Msg("FreeObject", x, o, ep, n, n)
ParentDoneMsg(p, att) == Msg("ParentDone", NoObj, p, att, p, Driver)
FenceMsg(p) == Msg("Fence", NoObj, NoProc, 0, p, p)
OwnerMovedMsg(p, moved, to, q) == [Msg("OwnerMoved", NoObj, p, 0, p, q) EXCEPT !.moved = moved, !.to = to]
RecoveryReportMsg(x, ep, q, held, copy, running) ==
    [Msg("RecoveryReport", x, Driver, ep, q, Driver) EXCEPT !.held = held, !.copy = copy, !.running = running]
NoMsg == Msg("None", NoObj, NoProc, 0, NoProc, NoProc)

\* A message to a dead process is lost with its connection.
Send(ms) == {m \in ms : m.dst \in up}

Step(name, p, x, m) == [name |-> name, params |-> [p |-> p, x |-> x, m |-> m]]

\* A process the cluster counts as alive.
Member(p) == p \in up /\ p \notin declared

\* Whoever holds x: the parent's holders, and those a holder hands it to.
HoldersOf(x) == Holders[x] \cup {r[3] : r \in {rr \in Relays : rr[1] = x}}

\* An object taken over: only a take-over makes the driver the owner of a
\* logged object (its own objects are never logged).
Moved(x) == log[x].st = "logged" /\ log[x].owner = Driver

\* h lent x to a process the owner has not counted yet.
Lending(h, x) == \E m \in msgs : m.type \in {"Pass", "AddBorrower"} /\ m.x = x /\ h \in m.to

\* j waits for the owner to count it: the task that carried x to j runs
\* (and so may get or drop x) only once the owner has.
Registering(j, x) == \E m \in msgs : m.type = "AddBorrower" /\ m.w = j /\ m.x = x

\* The first live member of a sequence of places.
FirstLive(s) ==
    s[CHOOSE i \in 1..Len(s) : Member(s[i]) /\ \A j \in 1..(i - 1) : ~Member(s[j])]
PlaceOf(x) == FirstLive(Placement[x])

\* The parent's body at p.
AtOp(p, op, x) ==
    /\ p \in up
    /\ pb[p].st = "running"
    /\ pb[p].pc <= Len(Body)
    /\ Body[pb[p].pc] = [op |-> op, obj |-> x]
Next1(p) == [pb EXCEPT ![p].pc = @ + 1]

\* The head takes a write about x from p at epoch ep: p is a member and the
\* registered owner of x at that epoch.
HeadAccepts(p, x, ep) ==
    /\ p \notin declared
    /\ log[x].st = "logged"
    /\ log[x].owner = p
    /\ log[x].ep = ep

\* Attempts a new owner may still spend on x: the head counts dispatches.
LogBudget(x) == IF log[x].att = 0 THEN Retries[x] ELSE Retries[x] + 1 - log[x].att

\* Some live copy of x in one of the stores ns.
LiveCopies(x, ns) == {c \in copies : c.x = x /\ c.n \in ns /\ c.n \in up}

\* Something at owner p still needs x: its own reference (the parent's
\* body), a borrower, an adopter (through the head), or a task of p that
\* waits for x as an argument.
Referenced(p, x) ==
    \/ ent[p][x].local
    \/ ent[p][x].borrowers # {}
    \/ Recoverable[x] /\ log[x].st = "logged" /\ log[x].owner = p /\ log[x].adopt # {}
    \/ \E z \in Objects : x \in Args[z] /\ ent[p][z].st \in {"waiting", "pending", "recovering"}

\* Something waits for x at its owner p: a get of it (a holder's, or the
\* parent's), or a task it is an argument of, at p or at a process that
\* borrowed x from p (which asks p for it).  Only then is a lost x made
\* again: an object only held stays lost until something waits for it.
AsksOwner(q, x, p) == q = p \/ brw[q][x].o = p
Needed(p, x) ==
    \/ \E q \in up : gst[q][x] = "wait" /\ brw[q][x].o = p
    \/ \E q \in Procs : AtOp(q, "get", x) /\ AsksOwner(q, x, p)
    \/ \E q \in up, z \in Objects :
          x \in Args[z] /\ ent[q][z].st \in {"waiting", "pending", "recovering"} /\ AsksOwner(q, x, p)

\* A PushTask the worker must not run: its owner is known dead, or the
\* object moved to a later epoch (the worker's epoch check).
Stale(w, m) == m.o \in dk[w] \/ mv[w][m.x].ep > m.ep

\* Where a run reports: its owner, or the new owner the worker was told of.
Target(w, x, o, ep) == IF mv[w][x].ep > ep THEN [o |-> mv[w][x].o, ep |-> mv[w][x].ep] ELSE [o |-> o, ep |-> ep]

\* The state of an argument y of a task of p: p's own entry, or (an object
\* the re-executed parent adopted) its owner's, as a GetObject would tell.
ArgSt(p, y) ==
    IF ent[p][y].st # "none" THEN ent[p][y].st
    ELSE IF brw[p][y].held /\ brw[p][y].o \in up /\ ent[brw[p][y].o][y].ep = brw[p][y].ep
    THEN ent[brw[p][y].o][y].st
    ELSE "none"

\* A message about x at an epoch its receiver has not heard of yet (the new
\* owner, before the head's take-over notice reached it) waits for it.
HeardOf(p, m) == ent[p][m.x].ep >= m.ep \/ mv[p][m.x].ep >= m.ep

-----------------------------------------------------------------------------
Init ==
    /\ joined = Procs \ Joiners
    /\ up = Procs \ Joiners
    /\ crashes = 0
    /\ declared = {}
    /\ log = [x \in Objects |-> NoLog]
    /\ ent = [p \in Procs |-> [x \in Objects |-> NoEntry]]
    /\ brw = [p \in Procs |-> [x \in Objects |-> NoBorrow]]
    /\ dk = [p \in Procs |-> {}]
    /\ mv = [p \in Procs |-> [x \in Objects |-> NoMove]]
    /\ gst = [p \in Procs |-> [x \in Objects |-> "none"]]
    /\ run = [p \in Procs |-> {}]
    /\ fin = [p \in Procs |-> {}]
    /\ copies = {}
    /\ msgs = {}
    /\ par = [att |-> 1, st |-> "running"]
    /\ pb = [p \in Procs |-> IF p = FirstOwner THEN [st |-> "running", pc |-> 1, att |-> 1]
                                            ELSE [st |-> "idle", pc |-> 0, att |-> 0]]
    /\ got = {}
    /\ created = {}
    /\ made = {}
    /\ why = [x \in Objects |-> ""]
    /\ odied = {}
    /\ lastAction = Step("Init", NoProc, NoObj, NoMsg)

-----------------------------------------------------------------------------
(***************************************************************************)
(* The parent makes x (f.remote() or put).  A recoverable object is logged *)
(* at the head first, with a new epoch: its lineage, and a put's value.    *)
(* If the head already has it, the parent is a re-execution and x was      *)
(* recovered: the parent adopts it (the head registers it as a borrower),  *)
(* and makes no second object.                                             *)
(***************************************************************************)
\* impl: impl/ownership/core/head.py::HeadCore.log_object
ParentMake(p, x) ==
    /\ AtOp(p, "make", x)
    /\ pb' = Next1(p)
    /\ IF Recoverable[x] /\ log[x].st = "logged"
       THEN /\ p \notin declared
            /\ log' = [log EXCEPT ![x].adopt = @ \cup {p}]
            /\ brw' = [brw EXCEPT ![p][x] = [o |-> log[x].owner, ep |-> log[x].ep, held |-> TRUE]]
            /\ UNCHANGED <<ent, copies, created, made>>
       ELSE LET ep == IF Recoverable[x] THEN log[x].ep + 1 ELSE 0
            IN /\ Recoverable[x] => p \notin declared
               /\ log' = IF Recoverable[x]
                         THEN [log EXCEPT ![x] = [NoLog EXCEPT !.st = "logged", !.owner = p, !.ep = ep,
                                                  !.val = IF Kind[x] = "put" THEN LineageValue(x) ELSE {}]]
                         ELSE log
               /\ ent' = [ent EXCEPT ![p][x] =
                            [NoEntry EXCEPT !.st = IF Kind[x] = "put" THEN "ready" ELSE "waiting",
                                            !.ep = ep, !.local = TRUE, !.budget = Retries[x],
                                            !.locs = IF Kind[x] = "put" THEN {p} ELSE {}]]
               /\ copies' = IF Kind[x] = "put"
                            THEN copies \cup {[x |-> x, n |-> p, o |-> p, ep |-> ep, val |-> LineageValue(x)]}
                            ELSE copies
               /\ created' = created \cup {x}
               /\ made' = IF Kind[x] = "put" /\ why[x] = "" THEN made \cup {x} ELSE made
               /\ UNCHANGED brw
    /\ lastAction' = Step("ParentMake", p, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, dk, mv, gst, run, fin, msgs, par, got, why, odied>>

(***************************************************************************)
(* The parent hands x to its holders (a task or an actor call carrying the *)
(* reference).  The owner counts them as borrowers as it sends, but not   *)
(* one it knows is dead (the call fails).  A re-execution hands out only  *)
(* a recoverable object it made anew (the one taken over was freed before *)
(* it ran): holders of an adopted object keep theirs, and those of a lost *)
(* default one have failed (the model gives them no second one).          *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.submit_with_ref
ParentShare(p, x) ==
    /\ AtOp(p, "share", x)
    /\ pb' = Next1(p)
    /\ IF ent[p][x].st # "none" /\ (pb[p].att = 1 \/ Recoverable[x])
       THEN /\ ent' = [ent EXCEPT ![p][x].borrowers = @ \cup (Holders[x] \ dk[p])]
            /\ msgs' = msgs \cup Send({ShareMsg(x, p, ent[p][x].ep, h) : h \in Holders[x] \ dk[p]})
       ELSE UNCHANGED <<ent, msgs>>
    /\ lastAction' = Step("ParentShare", p, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, got,
                   created, made, why, odied>>

(***************************************************************************)
(* The parent's get of x, from its own table or (adopted) its owner's:     *)
(* the value of a live copy, or the error of a failed object.              *)
(***************************************************************************)
\* The answer of owner o about x at epoch ep: "" while it has none yet.
Answer(o, x, ep) ==
    IF o \notin up \/ ent[o][x].ep # ep THEN ""
    ELSE IF ent[o][x].st = "ready" /\ LiveCopies(x, ent[o][x].locs) # {} THEN "value"
    ELSE IF ent[o][x].st = "failed" THEN "error"
    ELSE ""
AnswerVal(o, x) == (CHOOSE c \in LiveCopies(x, ent[o][x].locs) : TRUE).val

\* impl: impl/ownership/core/refcount.py::ReferenceCounter.get
ParentGet(p, x) ==
    /\ AtOp(p, "get", x)
    /\ LET o == IF ent[p][x].st # "none" THEN p ELSE brw[p][x].o
           ep == IF ent[p][x].st # "none" THEN ent[p][x].ep ELSE brw[p][x].ep
           a == Answer(o, x, ep)
       IN /\ a # ""
          /\ got' = got \cup {[h |-> p, x |-> x, res |-> a, by |-> "parent",
                               val |-> IF a = "value" THEN AnswerVal(o, x) ELSE {}]}
    /\ pb' = Next1(p)
    /\ lastAction' = Step("ParentGet", p, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, msgs, par,
                   created, made, why, odied>>

(***************************************************************************)
(* The parent's body ends: it drops its own references (an adopted one at  *)
(* the head, which registered it) and replies to the driver.               *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.finish_task
ParentFinish(p) ==
    /\ p \in up
    /\ pb[p].st = "running"
    /\ pb[p].pc > Len(Body)
    /\ pb' = [pb EXCEPT ![p].st = "done"]
    /\ ent' = [ent EXCEPT ![p] = [x \in Objects |-> [@[x] EXCEPT !.local = FALSE]]]
    /\ msgs' = msgs \cup Send({ParentDoneMsg(p, pb[p].att)})
    /\ lastAction' = Step("ParentFinish", p, NoObj, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, got, created, made, why, odied>>

\* A re-executed parent lets go of an object it adopted, once its body has
\* ended and no lineage of its own names it.
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.release_adopted
AdopterRelease(p, x) ==
    /\ p \in up
    /\ pb[p].st = "done"
    /\ brw[p][x].held
    /\ p \notin Holders[x]
    /\ ~\E z \in Objects : x \in Args[z] /\ ent[p][z].st # "none"
    /\ log' = [log EXCEPT ![x].adopt = @ \ {p}]
    /\ brw' = [brw EXCEPT ![p][x] = NoBorrow]
    /\ lastAction' = Step("AdopterRelease", p, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, ent, dk, mv, gst, run, fin, copies, msgs, par, pb, got, created, made, why, odied>>

\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_reply
DriverHandleParentDone(m) ==
    /\ m \in msgs
    /\ m.type = "ParentDone"
    /\ msgs' = msgs \ {m}
    /\ par' = IF par.st = "running" /\ par.att = m.ep THEN [par EXCEPT !.st = "done"] ELSE par
    /\ lastAction' = Step("DriverHandleParentDone", Driver, NoObj, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, pb, got,
                   created, made, why, odied>>

(***************************************************************************)
(* The owner dispatches a task whose arguments exist.  For a recoverable   *)
(* object it first writes the location to the head, at its epoch (a        *)
(* dispatch is a logged attempt: a stale owner's is refused); then it      *)
(* pushes the task.  An argument that failed fails the task.               *)
(***************************************************************************)
\* impl: impl/ownership/core/ownerlog.py::OwnerLog.handle_dispatch_logged
OwnerDispatch(p, x) ==
    /\ p \in up
    /\ ent[p][x].st = "waiting"
    /\ \A y \in Args[x] : ArgSt(p, y) \in {"ready", "failed"}
    /\ LET e == ent[p][x]
           bad == {y \in Args[x] : ArgSt(p, y) = "failed"}
           w == PlaceOf(x)
       IN IF bad # {}
          THEN /\ ent' = [ent EXCEPT ![p][x].st = "failed"]
               /\ why' = [why EXCEPT ![x] = IF @ = "" THEN "arg" ELSE @]
               /\ UNCHANGED <<log, msgs>>
          ELSE /\ Recoverable[x] => HeadAccepts(p, x, e.ep)
               \* Attempts are numbered on from the head's count (the dead
               \* owner's, after a take-over); it keeps the highest.
               /\ log' = IF Recoverable[x]
                         THEN [log EXCEPT ![x].loc = w, ![x].att = IF @ > e.att + 1 THEN @ ELSE e.att + 1]
                         ELSE log
               /\ ent' = [ent EXCEPT ![p][x].st = "pending", ![p][x].loc = w, ![p][x].att = e.att + 1]
               /\ msgs' = msgs \cup Send({PushTaskMsg(x, p, e.ep, w, e.att + 1)})
               /\ UNCHANGED why
    /\ lastAction' = Step("OwnerDispatch", p, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                   created, made, odied>>

(***************************************************************************)
(* A worker receives a task.  It drops a stale one (its owner is known     *)
(* dead, or the object moved past the task's epoch) and one it ran to the  *)
(* end already (the same owner, epoch and attempt: a resend, not a new     *)
(* run); otherwise it runs it                                              *)
(* once every argument can be read from a live copy, reporting to the      *)
(* owner it knows now.  An argument its owner failed fails the task.       *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.stale_push
WorkerStart(w, m) ==
    /\ m \in msgs
    /\ m.type = "PushTask"
    /\ m.dst = w
    /\ w \in up
    /\ LET x == m.x
           t == Target(w, x, m.o, m.ep)
           failedArgs == {y \in Args[x] : LiveCopies(y, Procs) = {} /\ m.o \in up /\ ArgSt(m.o, y) = "failed"}
           drop == Stale(w, m) \/ <<x, m.o, m.ep, m.att>> \in fin[w]
       IN \/ /\ drop
             /\ msgs' = msgs \ {m}
             /\ UNCHANGED run
          \/ /\ ~drop
             /\ failedArgs # {}
             /\ msgs' = (msgs \ {m}) \cup Send({TaskReplyMsg(x, t.o, t.ep, w, "arg", {})})
             /\ UNCHANGED run
          \/ /\ ~drop
             /\ \A y \in Args[x] : LiveCopies(y, Procs) # {}
             /\ run' = [run EXCEPT ![w] = @ \cup
                         {[x |-> x, o |-> t.o, ep |-> t.ep, src |-> <<m.o, m.ep>>, att |-> m.att,
                           val |-> {x} \cup UNION {(CHOOSE c \in LiveCopies(y, Procs) : TRUE).val : y \in Args[x]}]}]
             /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("WorkerStart", w, m.x, m)
    /\ UNCHANGED <<fin, joined, up, crashes, declared, log, ent, brw, dk, mv, gst, copies, par, pb, got,
                   created, made, why, odied>>

(***************************************************************************)
(* The task returns: its value goes into the worker's store, pinned for    *)
(* the owner and epoch of the run, and the owner is told where it is; a    *)
(* small value goes to the owner in the reply instead.  The worker         *)
(* remembers the push it ran.                                              *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.finish_task
WorkerFinish(w, x) ==
    /\ w \in up
    /\ \E r \in run[w] :
          /\ r.x = x
          /\ run' = [run EXCEPT ![w] = @ \ {r}]
          /\ copies' = IF Inline[x] THEN copies
                       ELSE copies \cup {[x |-> x, n |-> w, o |-> r.o, ep |-> r.ep, val |-> r.val]}
          /\ msgs' = msgs \cup Send({TaskReplyMsg(x, r.o, r.ep, w, "", IF Inline[x] THEN r.val ELSE {})})
          /\ fin' = [fin EXCEPT ![w] = @ \cup {<<x, r.src[1], r.src[2], r.att>>}]
    /\ made' = IF why[x] = "" THEN made \cup {x} ELSE made
    /\ lastAction' = Step("WorkerFinish", w, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, par, pb, got, created, why, odied>>

(***************************************************************************)
(* The owner records the result of the attempt it waits for (during a      *)
(* take-over, a copy of the new epoch), keeping a small value in its own   *)
(* store; a result nobody waits for is freed (a duplicate from a falsely   *)
(* suspected worker).                                                      *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_reply
OwnerHandleReply(p, m) ==
    /\ m \in msgs
    /\ m.type = "TaskReply"
    /\ m.dst = p
    /\ p \in up
    /\ HeardOf(p, m)
    /\ msgs' = msgs \ {m}
    /\ LET e == ent[p][m.x]
           at == IF Inline[m.x] THEN p ELSE m.w
           kept == IF Inline[m.x] /\ m.err = ""
                   THEN copies \cup {[x |-> m.x, n |-> p, o |-> p, ep |-> m.ep, val |-> m.val]}
                   ELSE copies
       IN
       IF e.ep = m.ep /\ e.st = "pending" /\ e.loc = m.w
       THEN /\ ent' = [ent EXCEPT ![p][m.x] = IF m.err = "" THEN [@ EXCEPT !.st = "ready", !.locs = {at}]
                                                              ELSE [@ EXCEPT !.st = "failed"]]
            /\ why' = IF m.err = "" THEN why ELSE [why EXCEPT ![m.x] = IF @ = "" THEN m.err ELSE @]
            /\ copies' = kept
       ELSE IF e.ep = m.ep /\ e.st = "recovering" /\ m.err = ""
       THEN /\ ent' = [ent EXCEPT ![p][m.x].locs = @ \cup {at}]
            /\ copies' = kept
            /\ UNCHANGED <<why, odied>>
       ELSE /\ copies' = IF m.err = "" /\ ~Inline[m.x] /\ ~(e.ep = m.ep /\ m.w \in e.locs)
                         THEN {c \in copies : ~(c.x = m.x /\ c.n = m.w /\ c.o = p /\ c.ep = m.ep)}
                         ELSE copies
            /\ UNCHANGED <<ent, why, odied>>
    /\ lastAction' = Step("OwnerHandleReply", p, m.x, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, par, pb, got, created, made, odied>>

(***************************************************************************)
(* A holder receives a reference.  A reference from an owner it knows is   *)
(* dead comes with a task of that owner, which is dropped (fate-sharing);  *)
(* otherwise it borrows x from the owner the reference names (the owner    *)
(* counted it already), even where it heard that x moved: a re-executed   *)
(* parent made x anew after the moved one was freed.  A holder that had   *)
(* let go of the moved x may get the new one.                             *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.receive_ref
HolderReceive(h, m) ==
    /\ m \in msgs
    /\ m.type = "Share"
    /\ m.dst = h
    /\ h \in up
    /\ msgs' = msgs \ {m}
    /\ brw' = IF m.o \in dk[h] THEN brw ELSE [brw EXCEPT ![h][m.x] = [o |-> m.o, ep |-> m.ep, held |-> TRUE]]
    /\ gst' = IF m.o \notin dk[h] /\ gst[h][m.x] = "released" THEN [gst EXCEPT ![h][m.x] = "none"] ELSE gst
    /\ lastAction' = Step("HolderReceive", h, m.x, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, dk, mv, run, fin, copies, par, pb, got,
                   created, made, why, odied>>

\* A holder's get: it asks the owner it knows, which answers once it can.
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.get
HolderGet(h, x) ==
    /\ h \in up
    /\ h \in HoldersOf(x)
    /\ brw[h][x].held
    /\ ~Registering(h, x)
    /\ gst[h][x] = "none"
    /\ gst' = [gst EXCEPT ![h][x] = "wait"]
    /\ lastAction' = Step("HolderGet", h, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, run, fin, copies, msgs, par, pb,
                   got, created, made, why, odied>>

\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_object_value
HolderGetReturns(h, x) ==
    /\ h \in up
    /\ gst[h][x] = "wait"
    /\ IF <<h, x>> \in odied
       THEN /\ gst' = [gst EXCEPT ![h][x] = "error"]
            /\ got' = got \cup {[h |-> h, x |-> x, res |-> "OwnerDied", by |-> "holder", val |-> {}]}
       ELSE LET b == brw[h][x]
                a == Answer(b.o, x, b.ep)
            IN /\ a # ""
               /\ gst' = [gst EXCEPT ![h][x] = a]
               /\ got' = got \cup {[h |-> h, x |-> x, res |-> a, by |-> "holder",
                                    val |-> IF a = "value" THEN AnswerVal(b.o, x) ELSE {}]}
    /\ lastAction' = Step("HolderGetReturns", h, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, run, fin, copies, msgs, par, pb,
                   created, made, why, odied>>

\* The holder lets go of x: it tells the owner it knows.  A holder that
\* lent x keeps it until the owner has counted the process it lent it to.
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.release_ref
HolderRelease(h, x) ==
    /\ h \in up
    /\ h \in HoldersOf(x)
    /\ brw[h][x].held
    /\ gst[h][x] \in {"value", "error"}
    /\ ~Lending(h, x)
    /\ brw' = [brw EXCEPT ![h][x] = NoBorrow]
    /\ gst' = [gst EXCEPT ![h][x] = "released"]
    /\ msgs' = msgs \cup Send({RefRemovedMsg(x, brw[h][x].o, brw[h][x].ep, h)})
    /\ lastAction' = Step("HolderRelease", h, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, dk, mv, run, fin, copies, par, pb, got,
                   created, made, why, odied>>

(***************************************************************************)
(* Onward borrowing.  A holder hands x on to j with a task or actor call   *)
(* of its own, naming the owner and epoch it knows.  j registers with the  *)
(* owner (AddBorrower), and the lender keeps x until the owner has counted *)
(* j, so the owner frees nothing j holds.  j names the owner where x moved *)
(* if it knows of the move; a reference whose owner j knows dead and that  *)
(* did not move fails with OwnerDied (its task is dropped).               *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.submit_with_ref
HolderPass(h, x, j) ==
    /\ <<x, h, j>> \in Relays
    /\ h \in up
    /\ brw[h][x].held
    /\ j \in up
    /\ ~brw[j][x].held
    /\ gst[j][x] = "none"
    /\ <<j, x>> \notin odied
    /\ ~\E m \in msgs : m.type = "Pass" /\ m.x = x /\ m.dst = j
    /\ msgs' = msgs \cup Send({PassMsg(x, brw[h][x].o, brw[h][x].ep, h, j)})
    /\ lastAction' = Step("HolderPass", h, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                   created, made, why, odied>>

\* impl: impl/ownership/core/refcount.py::ReferenceCounter.receive_ref
HolderReceivePass(j, m) ==
    /\ m \in msgs
    /\ m.type = "Pass"
    /\ m.dst = j
    /\ j \in up
    /\ LET t == Target(j, m.x, m.o, m.ep) IN
       IF t.o \in dk[j]
       THEN /\ odied' = odied \cup {<<j, m.x>>}
            /\ gst' = [gst EXCEPT ![j][m.x] = "released"]
            /\ msgs' = msgs \ {m}
            /\ UNCHANGED brw
       ELSE /\ brw' = [brw EXCEPT ![j][m.x] = [o |-> t.o, ep |-> t.ep, held |-> TRUE]]
            /\ msgs' = (msgs \ {m}) \cup Send({AddBorrowerMsg(m.x, t.o, t.ep, j, CHOOSE l \in m.to : TRUE)})
            /\ UNCHANGED <<gst, odied>>
    /\ lastAction' = Step("HolderReceivePass", j, m.x, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, dk, mv, run, fin, copies, par, pb, got,
                   created, made, why>>

\* The owner counts j (at the object's epoch; a message of an epoch it has
\* not heard of waits for the take-over notice).
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_add_borrower
OwnerHandleAddBorrower(p, m) ==
    /\ m \in msgs
    /\ m.type = "AddBorrower"
    /\ m.dst = p
    /\ p \in up
    /\ HeardOf(p, m)
    /\ msgs' = msgs \ {m}
    /\ ent' = IF ent[p][m.x].ep = m.ep /\ ent[p][m.x].st # "none"
              THEN [ent EXCEPT ![p][m.x].borrowers = @ \cup {m.w}]
              ELSE ent
    /\ lastAction' = Step("OwnerHandleAddBorrower", p, m.x, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                   created, made, why, odied>>

\* The owner drops a borrower of the same epoch.  During a take-over, the
\* holder's report came first (same connection).
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_ref_removed
OwnerHandleRefRemoved(p, m) ==
    /\ m \in msgs
    /\ m.type = "RefRemoved"
    /\ m.dst = p
    /\ p \in up
    /\ HeardOf(p, m)
    /\ ~(ent[p][m.x].st = "recovering" /\ ent[p][m.x].ep = m.ep /\ m.w \in ent[p][m.x].waiting)
    /\ msgs' = msgs \ {m}
    /\ ent' = IF ent[p][m.x].ep = m.ep /\ ent[p][m.x].st # "none"
              THEN [ent EXCEPT ![p][m.x].borrowers = @ \ {m.w}]
              ELSE ent
    /\ lastAction' = Step("OwnerHandleRefRemoved", p, m.x, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                   created, made, why, odied>>

(***************************************************************************)
(* An object nothing refers to is freed.  A recoverable one is deleted     *)
(* from the head first, at its epoch (refused to a stale owner, and while  *)
(* a re-executed parent holds it); then every store with a copy is told,   *)
(* with the owner and epoch its copy is pinned for.  An object a live      *)
(* entry's lineage names stays (its dependent may have to be rebuilt).     *)
(* The head keeps the epoch of an object that was taken over (a process    *)
(* may have heard of it, and drops a task of an older one); of any other   *)
(* it keeps nothing, so what it keeps grows only with take-overs.          *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.delete_logged
OwnerFree(p, x) ==
    /\ p \in up
    /\ LET e == ent[p][x] IN
       /\ e.st \in {"ready", "lost", "failed"}
       /\ ~Referenced(p, x)
       /\ ~\E z \in Objects : x \in Args[z] /\ ent[p][z].st # "none"
       /\ Recoverable[x] => HeadAccepts(p, x, e.ep)
       /\ log' = IF Recoverable[x]
                 THEN [log EXCEPT ![x] = [NoLog EXCEPT !.ep = IF log[x].ep > FirstEpoch THEN log[x].ep ELSE 0]]
                 ELSE log
       \* The freed entry keeps its epoch: an owner recognizes the ids it made
       \* (an id carries its owner's task), so a late message about one is
       \* dropped, not taken for news of a take-over it has not heard of.
       /\ ent' = [ent EXCEPT ![p][x] = [NoEntry EXCEPT !.ep = e.ep]]
       \* A small value in the owner's own store goes at once.
       /\ LET own == IF Kind[x] = "task" /\ Inline[x] THEN {p} ELSE {} IN
          /\ copies' = {c \in copies : ~(c.x = x /\ c.n \in own /\ c.o = p /\ c.ep = e.ep)}
          /\ msgs' = msgs \cup Send({FreeObjectMsg(x, p, e.ep, n) : n \in e.locs \ own})
    /\ lastAction' = Step("OwnerFree", p, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, brw, dk, mv, gst, run, fin, par, pb, got,
                   created, made, why, odied>>

\* A store frees the copy pinned for that owner at that epoch, and no other.
\* impl: impl/ownership/core/store.py::ObjectStore.free
StoreFree(n, m) ==
    /\ m \in msgs
    /\ m.type = "FreeObject"
    /\ m.dst = n
    /\ n \in up
    /\ msgs' = msgs \ {m}
    /\ copies' = {c \in copies : ~(c.x = m.x /\ c.n = n /\ c.o = m.o /\ c.ep = m.ep)}
    /\ lastAction' = Step("StoreFree", n, m.x, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, par, pb, got,
                   created, made, why, odied>>

(***************************************************************************)
(* Lineage reconstruction: a lost object that something waits for is made *)
(* again within its retries (a task), restored from the head (a            *)
(* recoverable put, at its new owner), or fails.  A taken-over task its    *)
(* dead owner never dispatched runs for the first time: that spends no     *)
(* retry.                                                                  *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.reconstruct
OwnerRebuild(p, x) ==
    /\ p \in up
    /\ ent[p][x].st = "lost"
    /\ Needed(p, x)
    /\ LET e == ent[p][x] IN
       IF Kind[x] = "put" /\ Recoverable[x] /\ HeadAccepts(p, x, e.ep)
       THEN /\ ent' = [ent EXCEPT ![p][x].st = "ready", ![p][x].locs = {p}]
            /\ copies' = copies \cup {[x |-> x, n |-> p, o |-> p, ep |-> e.ep, val |-> log[x].val]}
            /\ UNCHANGED why
       ELSE IF Kind[x] = "task" /\ Recoverable[x] /\ log[x].att = 0
       THEN /\ ent' = [ent EXCEPT ![p][x].st = "waiting"]
            /\ UNCHANGED <<copies, why, odied>>
       ELSE IF Kind[x] = "task" /\ e.budget > 0
       THEN /\ ent' = [ent EXCEPT ![p][x].st = "waiting", ![p][x].budget = @ - 1]
            /\ UNCHANGED <<copies, why, odied>>
       ELSE /\ ent' = [ent EXCEPT ![p][x].st = "failed"]
            /\ why' = [why EXCEPT ![x] = IF @ = "" THEN "budget" ELSE @]
            /\ UNCHANGED copies
    /\ lastAction' = Step("OwnerRebuild", p, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, msgs, par, pb, got,
                   created, made, odied>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Failures (environment): a process crashes with its store; messages to  *)
(* it are lost.  Crashes and false suspicions share one budget.           *)
(***************************************************************************)
\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
Crash(p) ==
    /\ p \in up
    /\ p \in Crashable
    /\ crashes < MaxCrashes
    /\ up' = up \ {p}
    /\ crashes' = crashes + 1
    /\ msgs' = {m \in msgs : m.dst # p}
    /\ copies' = {c \in copies : c.n # p}
    /\ run' = [run EXCEPT ![p] = {}]
    /\ lastAction' = Step("Crash", p, NoObj, NoMsg)
    /\ UNCHANGED <<fin, joined, declared, log, ent, brw, dk, mv, gst, par, pb, got, created, made, why, odied>>

(***************************************************************************)
(* The head declares p dead and, in the same step, takes over p's          *)
(* recoverable objects (phase 1): each logged object of p gets the next    *)
(* epoch and the driver as its owner, and every live member is told (the   *)
(* death, and where each object moved); p, if it is still up, is fenced.   *)
(* Writes of p at the head are refused from now on.                        *)
(***************************************************************************)
\* The epoch a take-over gives an object.
NewEp(x) == log[x].ep + 1

Declare(p) ==
    LET M == {x \in Objects : log[x].st = "logged" /\ log[x].owner = p}
        moved == {<<x, NewEp(x)>> : x \in M}
        to == up \ (declared \cup {p})
    IN
    /\ declared' = declared \cup {p}
    /\ log' = [x \in Objects |->
                 IF x \in M THEN [log[x] EXCEPT !.owner = Driver, !.ep = NewEp(x), !.adopt = @ \ {p}]
                 ELSE [log[x] EXCEPT !.adopt = @ \ {p}]]
    /\ msgs' = msgs \cup {OwnerMovedMsg(p, moved, to, q) : q \in to}
                    \cup (IF p \in up THEN {FenceMsg(p)} ELSE {})

\* The head detects a crash (a dropped connection and failed probes).
\* impl: impl/ownership/core/head.py::HeadCore.take_over
HeadDetectDeath(p) ==
    /\ p \in joined
    /\ p \notin up
    /\ p \notin declared
    /\ Declare(p)
    /\ lastAction' = Step("HeadDetectDeath", p, NoObj, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, ent, brw, dk, mv, gst, run, fin, copies, par, pb, got, created, made, why, odied>>

\* A false suspicion: the head declares dead a process that is up (its
\* connection dropped and the probes timed out).
\* impl: impl/ownership/core/head.py::HeadCore.take_over
HeadSuspect(p) ==
    /\ FalseSuspicion
    /\ p \in up
    /\ p \in Crashable
    /\ p \notin declared
    /\ crashes < MaxCrashes
    /\ crashes' = crashes + 1
    /\ Declare(p)
    /\ lastAction' = Step("HeadSuspect", p, NoObj, NoMsg)
    /\ UNCHANGED <<joined, up, ent, brw, dk, mv, gst, run, fin, copies, par, pb, got, created, made, why, odied>>

(***************************************************************************)
(* A process registers after the start (a worker started later, or on a    *)
(* node added later).  It was told of no death, so the head tells it, as   *)
(* it registers, every death published so far and where the objects of    *)
(* the dead moved: a reference handed to it later may still name a dead   *)
(* owner, its lender not having heard of the take-over yet.               *)
(***************************************************************************)
\* impl: impl/ownership/core/head.py::HeadCore.welcome
Join(j) ==
    /\ j \in Joiners
    /\ j \notin joined
    /\ joined' = joined \cup {j}
    /\ up' = up \cup {j}
    /\ dk' = [dk EXCEPT ![j] = declared]
    /\ mv' = [mv EXCEPT ![j] = [x \in Objects |-> IF Moved(x) THEN [o |-> log[x].owner, ep |-> log[x].ep] ELSE NoMove]]
    /\ lastAction' = Step("Join", j, NoObj, NoMsg)
    /\ UNCHANGED <<crashes, declared, log, ent, brw, gst, run, fin, copies, msgs, par, pb, got,
                   created, made, why, odied>>

\* A fenced process hears it was declared dead, and stops with its store.
\* impl: impl/ownership/core/node.py::NodeCore.fenced
ProcessFenced(p) ==
    /\ FenceMsg(p) \in msgs
    /\ p \in up
    /\ up' = up \ {p}
    /\ msgs' = {m \in msgs : m.dst # p}
    /\ copies' = {c \in copies : c.n # p}
    /\ run' = [run EXCEPT ![p] = {}]
    /\ lastAction' = Step("ProcessFenced", p, NoObj, FenceMsg(p))
    /\ UNCHANGED <<fin, joined, crashes, declared, log, ent, brw, dk, mv, gst, par, pb, got, created, made, why, odied>>

(***************************************************************************)
(* A process hears that p died (phase 1 at the process, phase 2 its        *)
(* answer).  For each object that moved, it points its borrowed reference, *)
(* its store's copy (re-pinned under the new epoch) and its running task   *)
(* at the new owner, learns the epoch (a later task of an older one is     *)
(* stale), and reports what it has.  Objects of p that did not move        *)
(* fate-share: references fail with OwnerDied, copies are freed, tasks are *)
(* dropped.  As an owner, it writes off the tasks and copies it had at p;  *)
(* the driver re-executes the parent if p ran it.  The driver, the new     *)
(* owner, opens an entry for each moved object, waiting for the answers of *)
(* every process the head told that it does not know dead.                 *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.handle_owner_moved
ProcessHandleOwnerMoved(q, m) ==
    /\ m \in msgs
    /\ m.type = "OwnerMoved"
    /\ m.dst = q
    /\ q \in up
    /\ LET p == m.w
           M == {mm[1] : mm \in m.moved}
           EpOf(x) == (CHOOSE mm \in m.moved : mm[1] = x)[2]
           Held(x) == brw[q][x].held /\ brw[q][x].o = p
           Fail == {x \in Objects : Held(x) /\ x \notin M}
           Has(x) == \E c \in copies : c.x = x /\ c.n = q /\ c.o = p
           Runs(x) == \E r \in run[q] : r.x = x /\ r.o = p
           retry == q = Driver /\ par.st = "running" /\ ParentPlacement[par.att] = p
           nextAt == IF par.att < Len(ParentPlacement) THEN ParentPlacement[par.att + 1] ELSE NoProc
           restart == retry /\ nextAt # NoProc /\ Member(nextAt) /\ nextAt # p
           Own(e) ==
               CASE e.st = "pending" /\ e.loc = p -> [e EXCEPT !.st = "lost", !.loc = NoProc]
                 [] e.st = "ready" /\ p \in e.locs -> [e EXCEPT !.st = IF e.locs = {p} THEN "lost" ELSE "ready",
                                                               !.locs = @ \ {p}]
                 [] e.st = "recovering" -> [e EXCEPT !.waiting = @ \ {p}, !.borrowers = @ \ {p},
                                                     !.locs = @ \ {p}, !.running = @ \ {p}]
                 [] OTHER -> [e EXCEPT !.borrowers = @ \ {p}]
           NewEntry(x) ==
               [NoEntry EXCEPT !.st = "recovering", !.ep = EpOf(x), !.budget = LogBudget(x), !.att = log[x].att,
                               !.waiting = m.to \ (dk[q] \cup {p, q}),
                               !.locs = IF Has(x) THEN {q} ELSE {},
                               !.running = IF Runs(x) THEN {q} ELSE {}]
       IN
       /\ dk' = [dk EXCEPT ![q] = @ \cup {p}]
       /\ mv' = [mv EXCEPT ![q] = [x \in Objects |-> IF x \in M THEN [o |-> Driver, ep |-> EpOf(x)] ELSE @[x]]]
       /\ brw' = [brw EXCEPT ![q] = [x \in Objects |->
                    IF Held(x) /\ x \in M THEN [o |-> Driver, ep |-> EpOf(x), held |-> TRUE]
                    ELSE IF Held(x) THEN NoBorrow ELSE @[x]]]
       /\ gst' = [gst EXCEPT ![q] = [x \in Objects |-> IF x \in Fail /\ @[x] # "wait" THEN "released" ELSE @[x]]]
       /\ odied' = odied \cup {<<q, x>> : x \in Fail}
       /\ copies' = {IF c.n = q /\ c.o = p /\ c.x \in M THEN [c EXCEPT !.o = Driver, !.ep = EpOf(c.x)] ELSE c :
                        c \in {cc \in copies : ~(cc.n = q /\ cc.o = p /\ cc.x \notin M)}}
       /\ run' = [run EXCEPT ![q] = {IF r.o = p THEN [r EXCEPT !.o = Driver, !.ep = EpOf(r.x)] ELSE r :
                                        r \in {rr \in @ : ~(rr.o = p /\ rr.x \notin M)}}]
       /\ ent' = [ent EXCEPT ![q] = [x \in Objects |->
                    IF q = Driver /\ x \in M THEN NewEntry(x) ELSE Own(@[x])]]
       /\ par' = IF restart THEN [att |-> par.att + 1, st |-> "running"]
                 ELSE IF retry THEN [par EXCEPT !.st = "failed"]
                 ELSE par
       /\ pb' = IF restart THEN [pb EXCEPT ![nextAt] = [st |-> "running", pc |-> 1, att |-> par.att + 1]] ELSE pb
       /\ msgs' = (msgs \ {m}) \cup
                  (IF q = Driver THEN {}
                   ELSE Send({RecoveryReportMsg(x, EpOf(x), q, Held(x), Has(x), Runs(x)) : x \in M}))
    /\ lastAction' = Step("ProcessHandleOwnerMoved", q, NoObj, m)
    /\ UNCHANGED <<fin, joined, up, crashes, declared, log, got, created, made, why>>

(***************************************************************************)
(* Phase 2 at the new owner: an answer.  A borrower is counted, a copy     *)
(* (re-pinned for the new owner) is a location, a running task is where    *)
(* the object will be.                                                     *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::TakeOver.handle_report
NewOwnerHandleReport(m) ==
    /\ m \in msgs
    /\ m.type = "RecoveryReport"
    /\ Driver \in up
    /\ \/ ent[Driver][m.x].st = "recovering" /\ ent[Driver][m.x].ep = m.ep
       \/ mv[Driver][m.x].ep >= m.ep
    /\ msgs' = msgs \ {m}
    /\ ent' = IF ent[Driver][m.x].st = "recovering" /\ ent[Driver][m.x].ep = m.ep /\ m.w \notin dk[Driver]
              THEN [ent EXCEPT ![Driver][m.x] =
                      [@ EXCEPT !.waiting = @ \ {m.w},
                                !.borrowers = IF m.held THEN @ \cup {m.w} ELSE @,
                                !.locs = IF m.copy THEN @ \cup {m.w} ELSE @,
                                !.running = IF m.running THEN @ \cup {m.w} ELSE @]]
              ELSE ent
    /\ lastAction' = Step("NewOwnerHandleReport", Driver, m.x, m)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                   created, made, why, odied>>

(***************************************************************************)
(* The take-over of x completes once every process told has answered or   *)
(* is known dead: x is ready where a copy lives, pending where its task    *)
(* runs, lost otherwise (rebuilt once something waits for it, freed if     *)
(* nothing refers to it), a task never dispatched included.                *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::TakeOver.complete
NewOwnerComplete(x) ==
    /\ Driver \in up
    /\ ent[Driver][x].st = "recovering"
    /\ ent[Driver][x].waiting = {}
    /\ LET e == ent[Driver][x]
           L == {n \in e.locs : n \notin dk[Driver]}
           R == {r \in e.running : r \notin dk[Driver]}
       IN ent' = [ent EXCEPT ![Driver][x] =
                    CASE L # {} -> [e EXCEPT !.st = "ready", !.locs = L, !.running = {}]
                      [] R # {} -> [e EXCEPT !.st = "pending", !.loc = CHOOSE r \in R : TRUE, !.locs = {}, !.running = {}]
                          [] OTHER -> [e EXCEPT !.st = "lost", !.locs = {}, !.running = {}]]
    /\ lastAction' = Step("NewOwnerComplete", Driver, x, NoMsg)
    /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, msgs, par, pb, got,
                   created, made, why, odied>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* The job has run: nothing in flight, every crash declared, no body or    *)
(* task running, every holder done, no live owner with work left.          *)
(***************************************************************************)
Terminated ==
    /\ msgs = {}
    /\ \A p \in joined : p \notin up => p \in declared
    /\ par.st # "running"
    /\ \A p \in up : pb[p].st # "running" /\ run[p] = {}
    /\ \A p \in up, x \in Objects :
          /\ ent[p][x].st \notin {"waiting", "pending", "recovering"}
          /\ ent[p][x].st = "lost" => ~Referenced(p, x)
          /\ gst[p][x] # "wait"
          /\ ~brw[p][x].held

\* Stuttering once terminated, so that a real deadlock stays detectable.
Done == Terminated /\ UNCHANGED vars

PX == Procs \X Objects

ProtocolNext ==
    \/ \E p \in PX : ParentMake(p[1], p[2])
    \/ \E p \in PX : ParentShare(p[1], p[2])
    \/ \E p \in PX : ParentGet(p[1], p[2])
    \/ \E p \in Procs : ParentFinish(p)
    \/ \E p \in PX : AdopterRelease(p[1], p[2])
    \/ \E m \in msgs : DriverHandleParentDone(m)
    \/ \E p \in PX : OwnerDispatch(p[1], p[2])
    \/ \E w \in Procs : \E m \in msgs : WorkerStart(w, m)
    \/ \E p \in PX : WorkerFinish(p[1], p[2])
    \/ \E p \in Procs : \E m \in msgs : OwnerHandleReply(p, m)
    \/ \E h \in Procs : \E m \in msgs : HolderReceive(h, m)
    \/ \E p \in PX : HolderGet(p[1], p[2])
    \/ \E p \in PX : HolderGetReturns(p[1], p[2])
    \/ \E p \in PX : HolderRelease(p[1], p[2])
    \/ \E r \in Relays : HolderPass(r[2], r[1], r[3])
    \/ \E j \in Procs : \E m \in msgs : HolderReceivePass(j, m)
    \/ \E p \in Procs : \E m \in msgs : OwnerHandleAddBorrower(p, m)
    \/ \E p \in Procs : \E m \in msgs : OwnerHandleRefRemoved(p, m)
    \/ \E p \in PX : OwnerFree(p[1], p[2])
    \/ \E n \in Procs : \E m \in msgs : StoreFree(n, m)
    \/ \E p \in PX : OwnerRebuild(p[1], p[2])
    \/ \E p \in Procs : HeadDetectDeath(p)
    \/ \E p \in Procs : ProcessFenced(p)
    \/ \E q \in Procs : \E m \in msgs : ProcessHandleOwnerMoved(q, m)
    \/ \E m \in msgs : NewOwnerHandleReport(m)
    \/ \E x \in Objects : NewOwnerComplete(x)

EnvNext ==
    \/ \E j \in Joiners : Join(j)
    \/ \E p \in Procs : Crash(p)
    \/ \E p \in Procs : HeadSuspect(p)

Next == ProtocolNext \/ EnvNext \/ Done

(***************************************************************************)
(* Weak fairness of the protocol's steps (detection of crashes included): *)
(* no behaviour stops where a protocol step is still possible.  Crashes   *)
(* and suspicions are never forced.                                        *)
(***************************************************************************)
Fairness == WF_vars(ProtocolNext)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* Invariants.                                                             *)
(***************************************************************************)
Entries == [st : EntryStates, ep : Nat, loc : Procs \cup {NoProc}, locs : SUBSET Procs,
            budget : Nat, borrowers : SUBSET Procs, local : BOOLEAN,
            waiting : SUBSET Procs, running : SUBSET Procs, att : Nat]

TypeOK ==
    /\ up \subseteq joined /\ joined \subseteq Procs /\ Driver \in up
    /\ crashes \in 0..MaxCrashes
    /\ declared \subseteq Procs \ {Driver}
    /\ \A x \in Objects :
          /\ log[x].st \in {"none", "logged"}
          /\ log[x].owner \in Procs \cup {NoProc}
          /\ log[x].adopt \subseteq Procs
          /\ log[x].att \in 0..(Retries[x] + 1)
    /\ \A p \in Procs, x \in Objects :
          /\ ent[p][x] \in Entries
          /\ ent[p][x].budget \in 0..Retries[x]
          /\ brw[p][x] \in [o : Procs \cup {NoProc}, ep : Nat, held : BOOLEAN]
          /\ gst[p][x] \in {"none", "wait", "value", "error", "released"}
    /\ dk \in [Procs -> SUBSET Procs]
    /\ fin \in [Procs -> SUBSET (Objects \X Procs \X Nat \X Nat)]
    /\ par.st \in {"running", "done", "failed"}
    /\ why \in [Objects -> {"", "budget", "arg"}]

\* The owner of a recoverable object is unique at each epoch: a stale owner
\* (declared dead while up, not yet stopped) has an older one.
OneOwnerPerEpoch ==
    \A x \in Objects : Recoverable[x] =>
        \A p, q \in up :
            p # q /\ ent[p][x].st # "none" /\ ent[q][x].st # "none" => ent[p][x].ep # ent[q][x].ep

\* Exactly one object per id: among the processes the cluster counts alive,
\* at most one owns a recoverable object (a re-executed parent adopts it)...
OneLiveObject ==
    \A x \in Objects : Recoverable[x] =>
        Cardinality({p \in Procs : Member(p) /\ ent[p][x].st # "none"}) <= 1

\* ... and at most one execution of it runs (no re-creation beside a run
\* the new owner should have attached to).
RunsOf(x) == UNION {{<<p, r.src>> : r \in {rr \in run[p] : rr.x = x}} : p \in {pp \in Procs : Member(pp)}}
OneLiveExecution ==
    \A x \in Objects : Recoverable[x] => Cardinality(RunsOf(x)) <= 1

\* A stale epoch changes nothing: every copy a live owner counts on is
\* still pinned for it, at its epoch, unless that store is gone.
StaleEpochChangesNothing ==
    \A p \in Procs, x \in Objects :
        Member(p) /\ ent[p][x].st = "ready" =>
            \A n \in ent[p][x].locs :
                ~Member(n) \/ \E c \in copies : c.x = x /\ c.n = n /\ c.o = p /\ c.ep = ent[p][x].ep

\* Every live borrower of a live owner is counted by it (or, during a
\* take-over, its answer is awaited; an adopting parent is counted by the
\* head), so the owner frees nothing a borrower holds: the new owner frees
\* nothing until every borrower has re-registered or is known dead.
Counted(h, x, o, ep) ==
    \/ /\ ent[o][x].st # "none" /\ ent[o][x].ep = ep
       /\ \/ h \in ent[o][x].borrowers
          \/ ent[o][x].st = "recovering" /\ h \in ent[o][x].waiting
          \/ Recoverable[x] /\ h \in log[x].adopt
    \* the new owner has not heard of the take-over yet
    \/ \E m \in msgs : m.type = "OwnerMoved" /\ m.dst = o /\ \E mm \in m.moved : mm[1] = x /\ mm[2] = ep
    \* a process a holder lent x to, on its way to be counted (the lender
    \* keeps x until then)
    \/ \E m \in msgs : m.type = "AddBorrower" /\ m.w = h /\ m.x = x /\ m.dst = o /\ m.ep = ep
BorrowersCounted ==
    \A h \in Procs, x \in Objects :
        Member(h) /\ brw[h][x].held /\ Member(brw[h][x].o) => Counted(h, x, brw[h][x].o, brw[h][x].ep)

\* The head knows where every task of a logged recoverable object is,
\* running or on its way, at the current epoch: the location is written
\* before the dispatch.
PendingLocationKnown ==
    \A x \in Objects : Recoverable[x] /\ log[x].st = "logged" =>
        /\ \A p \in Procs : Member(p) =>
              \A r \in run[p] : r.x = x /\ r.ep = log[x].ep => log[x].loc = p
        /\ \A m \in msgs :
              m.type = "PushTask" /\ m.x = x /\ m.ep = log[x].ep /\ Member(m.dst) => log[x].loc = m.dst

\* An owner numbers its attempts on from the head's count of those made
\* (the dead owner's, after a take-over): that count is what a later
\* take-over's budget starts from, so an attempt numbered below it would be
\* a retry nobody counts.
HeadCountsEveryAttempt ==
    \A x \in Objects :
        LET o == log[x].owner IN
        Recoverable[x] /\ log[x].st = "logged" /\ ent[o][x].ep = log[x].ep => ent[o][x].att >= log[x].att

\* Every copy, and every value a get returns, is the object's lineage value.
RecoveredValueIsLineageValue ==
    /\ \A c \in copies : c.val = LineageValue(c.x)
    /\ \A g \in got : g.res = "value" => g.val = LineageValue(g.x)

\* A recoverable object never fails with OwnerDied, whether a get sees it
\* or a reference fails on its own (a task that carried it is dropped).
RecoverableOutlivesOwner ==
    /\ \A g \in got : Recoverable[g.x] => g.res # "OwnerDied"
    /\ \A hx \in odied : ~Recoverable[hx[2]]

\* A process declared dead is on its way out: its fence is in flight.
FencedProcessStops ==
    \A p \in declared \cap up : FenceMsg(p) \in msgs

-----------------------------------------------------------------------------
(***************************************************************************)
(* Liveness.                                                               *)
(***************************************************************************)
\* The death of a process leads to its take-over: it is declared, the
\* driver has heard, owns each recoverable object it had, and has finished
\* collecting the answers.
TakenOver(p) ==
    /\ p \in declared
    /\ p \in dk[Driver]
    /\ \A x \in Objects :
          /\ ~(log[x].st = "logged" /\ log[x].owner = p)
          /\ ent[Driver][x].st # "recovering"
NewOwnerTakesOver == \A p \in Crashable : (p \notin up) ~> TakenOver(p)

\* Every get ends: a holder's, and the parent's.
GetWaits ==
    \/ \E h \in up, x \in Objects : gst[h][x] = "wait"
    \/ \E p \in up, x \in Objects : AtOp(p, "get", x)
TransparentRecovery == <>[](~GetWaits)

\* In the end no live process keeps an entry, a reference, a copy or a run,
\* the head keeps no log, and every process declared dead has stopped.
Clean ==
    /\ \A p \in up, x \in Objects : ent[p][x].st = "none" /\ ~brw[p][x].held
    /\ \A c \in copies : c.n \notin up
    /\ \A x \in Objects : log[x].st = "none"
    /\ declared \cap up = {}
    /\ \A p \in up : run[p] = {}
NoLeak == <>[]Clean

-----------------------------------------------------------------------------
(***************************************************************************)
(* The protocol keeps the contract of futures: OwnerRecovery refines       *)
(* Futures.  A future is a holder's reference (two holders of one object   *)
(* hold two futures: a falsely suspected owner may still answer one while  *)
(* the other has failed).  It is pending from the object's making, has its *)
(* value from its first copy, and an error when its get failed with        *)
(* OwnerDied or the object failed.  It is doomed (its error allowed) when  *)
(* the object is not recoverable and its owner was declared dead, or its   *)
(* retries, or an argument's, are spent.                                   *)
(***************************************************************************)
HX == {hx \in Procs \X Objects : hx[1] \in HoldersOf(hx[2])}
OwnerDiedFor == odied
FateOf == [f \in HX |->
    IF why[f[2]] # "" \/ f \in OwnerDiedFor THEN "error"
    ELSE IF f[2] \in made THEN "value"
    ELSE IF f[2] \in created THEN "pending"
    ELSE "unmade"]
DoomedObj(x) ==
    \/ why[x] # ""
    \/ ~Recoverable[x] /\ FirstOwner \in declared
    \/ \E y \in Args[x] : why[y] # ""
    \/ \E p \in Procs : ent[p][x].st = "lost" /\ ent[p][x].budget = 0
Doomed == {f \in HX : DoomedObj(f[2])}
Waiting == {f \in HX : f[1] \in up /\ gst[f[1]][f[2]] = "wait"}
ToldOf == {[f |-> <<g.h, g.x>>, res |-> IF g.res = "value" THEN "value" ELSE "error"] :
              g \in {gg \in got : gg.by = "holder"}}

F == INSTANCE Futures WITH Futures <- HX, fate <- FateOf, doomed <- Doomed,
                             waits <- Waiting, told <- ToldOf
FuturesRefined == F!Spec

=============================================================================
