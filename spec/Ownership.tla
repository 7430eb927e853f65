------------------------------- MODULE Ownership -------------------------------
(***************************************************************************)
(* The Ownership protocol end to end: Wang et al., "Ownership: A           *)
(* Distributed Futures System for Fine-Grained Tasks", NSDI 2021, sections *)
(* 4.1 to 4.3 together.                                                    *)
(*                                                                         *)
(* The focused specs (Scheduling, RefCounting, FateSharing) check one      *)
(* mechanism each.  This one joins them where they meet, which is where a  *)
(* program's promises are kept or broken:                                  *)
(*                                                                         *)
(*  - objects with lineage: y = g(x) is computed from x, and the owner's   *)
(*    table keeps, per object, the task's state and pending location, the  *)
(*    object's state and copies, and its counts (local refs, submitted-    *)
(*    task refs, lineage pins);                                            *)
(*  - task arguments with leases: a task leased to a worker fetches its    *)
(*    arguments from their owner and a store while it holds a CPU of its   *)
(*    node; a lost argument is rebuilt from its lineage by its owner,      *)
(*    whose rebuild task needs a CPU too;                                  *)
(*  - freeing with lineage pins: a value is freed when nothing refers to   *)
(*    it, but an object that a live object's lineage needs keeps its      *)
(*    lineage (a task's spec; a put's value, which no task can recreate);  *)
(*  - crashes of workers, nodes and owners: detection by the node (its     *)
(*    workers) and the head (nodes), relayed by every node to its own      *)
(*    processes; resubmission, reconstruction and fate-sharing;            *)
(*  - process identity: a process is <<address, incarnation>>, and a node  *)
(*    restarts a dead worker at the same address with a new incarnation    *)
(*    (a recycled port), which must not be taken for the dead one.         *)
(*  - actors: the creation is a task whose lease (no CPU) the owner keeps  *)
(*    for the actor's life; the owner's calls reach the actor's worker in  *)
(*    submission order and run one at a time; the actor's death fails its *)
(*    pending and later calls with ActorDied; a pending call holds the     *)
(*    handle, and once no handle is left the lease is given back with a   *)
(*    kill.                                                                *)
(*                                                                         *)
(* Abstractions.  Every value is large (stored at the node that made it;   *)
(* the owner keeps locations, never a value), so every loss of a node is   *)
(* a loss of copies.  A task takes one CPU and its own lease, returned by  *)
(* its owner when the task replies (lease reuse and pipelining are         *)
(* Scheduling's topic).  The owner's own get reads a live copy in one      *)
(* step (the pull is below this level); a leased worker's fetch of an      *)
(* argument is modelled message by message, since that is where a task    *)
(* can wait forever.  The head is folded into the nodes' notification     *)
(* relay: it never crashes, and neither does the driver's node.           *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets, TLC

CONSTANTS
    \* @type: Set(NODE);
    Nodes,
    \* The driver's node: its loss ends the job, so it does not crash.
    \* @type: NODE;
    HeadNode,
    \* Worker addresses (ports) a node may run processes at.
    \* @type: Set(ADDR);
    Workers,
    \* @type: ADDR -> NODE;
    WorkerNode,
    \* Workers running when the cluster starts (the node's pool); the
    \* others are started when a node needs one more.
    \* @type: Set(ADDR);
    InitialWorkers,
    \* CPUs per node; every lease takes one.
    \* @type: NODE -> Int;
    Capacity,
    \* The scheduling policy's orders (the implementation's: by name): a
    \* node leases its first idle worker, and redirects a request it cannot
    \* grant to the first other member with a free CPU.
    \* @type: Seq(NODE);
    NodeOrder,
    \* @type: Seq(ADDR);
    WorkerOrder,
    \* The driver's address.
    \* @type: ADDR;
    Driver,
    \* How many times an address may be taken by a new process.
    \* @type: Int;
    MaxIncarnation,
    \* The program: its objects, the driver's program Root, and for every
    \* object the body that makes it (Parent: the process running that body
    \* owns it), its kind ("task" or "put"), its arguments (objects of the
    \* same owner, read by value by the executing worker) and its retries.
    \* @type: Set(OBJ);
    Objects,
    \* @type: OBJ;
    Root,
    \* @type: OBJ -> OBJ;
    Parent,
    \* @type: OBJ -> Str;
    Kind,
    \* @type: OBJ -> Set(OBJ);
    Args,
    \* @type: OBJ -> Int;
    Retries,
    \* References passed to a task as themselves (shared(y)), not as their
    \* values: the executing worker borrows them.  A task may pass on what
    \* it borrowed, and may keep (Keeps) a borrowed reference beyond its end
    \* (actor state, a global), released some time later.
    \* @type: OBJ -> Set(OBJ);
    SharedArgs,
    \* @type: OBJ -> Set(OBJ);
    Keeps,
    \* Actors.  An object of kind "actor" is an actor's handle: submitting it
    \* creates the actor (a task with its own arguments and lineage, whose
    \* body is the constructor).  An object of kind "call" is the return
    \* object of a method call on the actor Target[x] (NoObj for the other
    \* kinds), submitted by the actor's owner; calls take no arguments here,
    \* so the order in which their arguments become ready (the order the
    \* implementation runs them in) is their submission order.
    \* @type: OBJ -> OBJ;
    Target,
    \* Each body, in program order: submit or put a child, get a reference
    \* it holds (its own child, or one it borrowed), release its child.
    \* @type: OBJ -> Seq({op: Str, obj: OBJ});
    Body,
    \* @type: Int;
    MaxCrashes,
    \* Null values, so that records keep one shape.
    \* @type: NODE;
    NoNode,
    \* @type: ADDR;
    NoAddr,
    \* @type: OBJ;
    NoObj

Addrs == {Driver} \cup Workers
Tasks == Objects \cup {Root}
Children(t) == {x \in Objects : Parent[x] = t}
Actors == {x \in Objects : Kind[x] = "actor"}
Calls == {x \in Objects : Kind[x] = "call"}
\* The actor a call holds (a submitted-task ref on its handle).
Tgt(x) == IF Kind[x] = "call" THEN {Target[x]} ELSE {}

ASSUME
    /\ HeadNode \in Nodes /\ NoNode \notin Nodes
    /\ WorkerNode \in [Workers -> Nodes]
    /\ InitialWorkers \subseteq Workers
    /\ Capacity \in [Nodes -> Nat]
    /\ NodeOrder \in Seq(Nodes) /\ {NodeOrder[i] : i \in 1..Len(NodeOrder)} = Nodes
    /\ WorkerOrder \in Seq(Workers) /\ {WorkerOrder[i] : i \in 1..Len(WorkerOrder)} = Workers
    /\ Driver \notin Workers /\ NoAddr \notin Addrs
    /\ MaxIncarnation \in Nat
    /\ Root \notin Objects /\ NoObj \notin Tasks
    /\ Parent \in [Objects -> Tasks]
    /\ Kind \in [Objects -> {"task", "put", "actor", "call"}]
    /\ Args \in [Objects -> SUBSET Objects]
    /\ Retries \in [Objects -> Nat]
    /\ MaxCrashes \in Nat
    \* An argument is an object of the same owner, made earlier in its body;
    \* a put has neither arguments nor retries (nothing can make it again).
    /\ \A x \in Objects : \A y \in Args[x] : Parent[y] = Parent[x]
    /\ \A x \in Objects : Kind[x] = "put" => Args[x] = {} /\ Retries[x] = 0
    \* A shared reference is one the submitting body holds: its own child,
    \* or one it borrowed itself.
    /\ SharedArgs \in [Objects -> SUBSET Objects]
    /\ \A x \in Objects : SharedArgs[x] \subseteq Children(Parent[x]) \cup
                                           (IF Parent[x] = Root THEN {} ELSE SharedArgs[Parent[x]])
    /\ \A x \in Objects : SharedArgs[x] \cap Args[x] = {} /\ x \notin SharedArgs[x]
    /\ Keeps \in [Objects -> SUBSET Objects] /\ \A x \in Objects : Keeps[x] \subseteq SharedArgs[x]
    \* A call names an actor of its own caller; it takes no arguments, runs
    \* no body of its own and is never retried (nor is an actor restarted:
    \* the implementation has no max_restarts, and an actor's creation is
    \* not retried here either).  An actor is no argument and no one gets it.
    /\ Target \in [Objects -> Objects \cup {NoObj}]
    /\ \A x \in Objects :
        IF Kind[x] = "call"
        THEN /\ Target[x] \in Objects /\ Kind[Target[x]] = "actor" /\ Parent[Target[x]] = Parent[x]
             /\ Args[x] = {} /\ SharedArgs[x] = {} /\ Retries[x] = 0 /\ Body[x] = <<>>
        ELSE Target[x] = NoObj
    /\ \A x \in Objects : Kind[x] = "actor" => Retries[x] = 0
    /\ \A x, y \in Objects : Kind[y] = "actor" => y \notin Args[x]
    /\ \A t \in Tasks :
        /\ \A i \in 1..Len(Body[t]) :
              /\ Body[t][i].op \in {"submit", "put", "get", "release", "cancel"}
              /\ Body[t][i].obj \in Children(t) \cup (IF t = Root THEN {} ELSE SharedArgs[t])
              /\ Body[t][i].op \in {"submit", "put", "release", "cancel"} => Body[t][i].obj \in Children(t)
              \* (cancel is modelled for actor calls)
              /\ Body[t][i].op = "cancel" => Kind[Body[t][i].obj] = "call"
              /\ Body[t][i].op = "submit" => Kind[Body[t][i].obj] \in {"task", "actor", "call"}
              /\ Body[t][i].op = "get" => Kind[Body[t][i].obj] # "actor"
              /\ Body[t][i].op = "put" => Kind[Body[t][i].obj] = "put"

-----------------------------------------------------------------------------
(***************************************************************************)
(* Processes.  A process is <<address, incarnation>>; the latest          *)
(* incarnation of an address is the only one that may be up.              *)
(***************************************************************************)
\* @typeAlias: proc = <<ADDR, Int>>;
\* @typeAlias: loc = {n: NODE, w: <<ADDR, Int>>};
\* @typeAlias: entry = {owner: <<ADDR, Int>>, task: Str, req: Int, loc: $loc,
\*     att: Int, budget: Int, obj: Str, locs: Set(NODE), err: Str, local: Int,
\*     submitted: Int, lineage: Int, waiters: Set(<<ADDR, Int>>),
\*     borrowers: Set(<<ADDR, Int>>), host: <<ADDR, Int>>};
\* @typeAlias: borrow = {owner: <<ADDR, Int>>, local: Int, run: Int, sub: Int,
\*     reg: Str, waits: Int, failed: Bool};
\* @typeAlias: ref = {y: OBJ, o: <<ADDR, Int>>, held: Bool};
\* @typeAlias: call = {x: OBJ, o: <<ADDR, Int>>, att: Int};
\* @typeAlias: push = {x: OBJ, o: <<ADDR, Int>>, att: Int, w: <<ADDR, Int>>, cancel: Bool};
\* @typeAlias: exec = {x: OBJ, o: <<ADDR, Int>>, att: Int, phase: Str,
\*     arg: OBJ -> Str, at: OBJ -> NODE, val: Set(OBJ), lent: Bool, pc: Int,
\*     refs: Set(OBJ), regs: Set(OBJ), q: Seq($call), cur: $call};
\* @typeAlias: lease = {w: <<ADDR, Int>>, o: <<ADDR, Int>>, x: OBJ, lent: Bool};
\* @typeAlias: copy = {x: OBJ, o: <<ADDR, Int>>, n: NODE, val: Set(OBJ)};
\* @typeAlias: deaths = {n: Set(NODE), p: Set(<<ADDR, Int>>)};
\* @typeAlias: msg = {type: Str, x: OBJ, o: <<ADDR, Int>>, w: <<ADDR, Int>>,
\*     n: NODE, r: NODE, att: Int, locs: Set(NODE), val: Set(OBJ), err: Str,
\*     have: Bool, dst: <<ADDR, Int>>, dstNode: NODE, refs: Set($ref)};
\* @typeAlias: action = {name: Str, params: {a: ADDR, x: OBJ, n: NODE, m: $msg}};
OwnershipAliases == TRUE

NoProc == <<NoAddr, 0>>
DriverProc == <<Driver, 0>>
Procs == Addrs \X (0..MaxIncarnation)
AddrNode(a) == IF a = Driver THEN HeadNode ELSE WorkerNode[a]
NodeOf(p) == AddrNode(p[1])

VARIABLES
    \* Environment: live nodes, the state and incarnation of the latest
    \* process at each address, and the crashes so far.
    \* @type: Set(NODE);
    nodeUp,
    \* @type: ADDR -> Str;
    wst,
    \* @type: ADDR -> Int;
    inc,
    \* @type: Int;
    crashes,
    \* Head: the nodes it counts as members; the deaths it has published.
    \* @type: Set(NODE);
    members,
    \* @type: Set($proc);
    announced,
    \* Node n's scheduler: its registered workers (believed alive), the
    \* addresses it is starting a worker at, and the leases it granted.
    \* @type: NODE -> Set($proc);
    pool,
    \* @type: NODE -> Set(ADDR);
    starting,
    \* @type: NODE -> Set($lease);
    leases,
    \* The deaths each node has heard of.
    \* @type: NODE -> $deaths;
    nknown,
    \* Object stores: the copies they pin, for their owner.
    \* @type: Set($copy);
    copies,
    \* Ownership tables: the entry of each object at its (one) owner.
    \* @type: OBJ -> $entry;
    ent,
    \* What the latest process at each address executes (the driver: Root).
    \* @type: ADDR -> $exec;
    ex,
    \* The deaths the latest process at each address has heard of.
    \* @type: ADDR -> $deaths;
    known,
    \* The references the latest process at each address borrows: from
    \* whom, its own counts (kept refs, running tasks that hold it, tasks it
    \* submitted with it), whether its owner knows it borrows (registered
    \* by the reply of its caller, or directly: reg), and the owner's
    \* WaitForRefRemoved requests it has to answer.
    \* @type: ADDR -> (OBJ -> $borrow);
    brw,
    \* What the bodies' gets returned: a value, or an error; o: the owner
    \* the getter asked.
    \* @type: Set({x: OBJ, res: Str, val: Set(OBJ), o: <<ADDR, Int>>});
    got,
    \* Network: messages in flight.
    \* @type: Set($msg);
    msgs,
    \* History, for TransparentRecovery and the refinement of Futures only:
    \* why each failed object failed, and the objects that had a value.
    \* @type: OBJ -> Str;
    why,
    \* @type: Set(OBJ);
    made,
    \* Actor calls in flight from their caller to the actor's worker, and
    \* the caller's cancels of them (cancel: TRUE): one connection per
    \* caller and actor, in order (TCP; the in-memory network delivers each
    \* sender/receiver pair in order too).
    \* @type: OBJ -> Seq($push);
    chan,
    \* History, for CallsInOrder and ActorErrorOnlyIfDead only: the process
    \* that hosted each actor, and the calls it started, in order.
    \* @type: OBJ -> {host: <<ADDR, Int>>, ran: Seq(OBJ)};
    actorLog,
    \* Auxiliary: the last action and its parameters, for trace replay.
    \* Excluded from the model's VIEW and from every invariant.
    \* @type: $action;
    lastAction

envVars == <<nodeUp, wst, inc, crashes>>
headVars == <<members, announced>>
nodeVars == <<pool, starting, leases, nknown, copies>>
actorVars == <<chan, actorLog>>
vars == <<nodeUp, wst, inc, crashes, members, announced, pool, starting, leases,
          nknown, copies, ent, ex, known, brw, got, msgs, why, made, chan, actorLog, lastAction>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Records.                                                                *)
(***************************************************************************)
TaskStates == {"none", "waiting", "requested", "pushed", "done", "failed"}
ObjStates == {"none", "pending", "ready", "lost", "freed", "failed"}
\* host: the worker hosts an actor (its constructor has returned).
Phases == {"idle", "fetch", "run", "host"}
ArgStates == {"none", "ask", "pull", "have"}
Errors == {"", "WorkerCrashed", "ObjectLost", "OwnerDied", "ActorDied", "Cancelled"}

NoLoc == [n |-> NoNode, w |-> NoProc]
NoEntry == [owner |-> NoProc, task |-> "none", req |-> 0, loc |-> NoLoc, att |-> 0,
            budget |-> 0, obj |-> "none", locs |-> {}, err |-> "", local |-> 0,
            submitted |-> 0, lineage |-> 0, waiters |-> {}, borrowers |-> {}, host |-> NoProc]
\* An actor's worker runs one call at a time (cur) and queues the calls
\* that arrive meanwhile (q), in arrival order.
NoCall == [x |-> NoObj, o |-> NoProc, att |-> 0]
IdleExec == [x |-> NoObj, o |-> NoProc, att |-> 0, phase |-> "idle",
             arg |-> [y \in Objects |-> "none"], at |-> [y \in Objects |-> NoNode],
             val |-> {}, lent |-> FALSE, pc |-> 1, refs |-> {}, regs |-> {},
             q |-> <<>>, cur |-> NoCall]
NoBorrow == [owner |-> NoProc, local |-> 0, run |-> 0, sub |-> 0, reg |-> "none", waits |-> 0, failed |-> FALSE]
NoDeaths == [n |-> {}, p |-> {}]

MsgR(type, x, o, w, n, r, att, locs, val, err, have, dst, dstNode, refs) ==
    [type |-> type, x |-> x, o |-> o, w |-> w, n |-> n, r |-> r, att |-> att,
     locs |-> locs, val |-> val, err |-> err, have |-> have, dst |-> dst,
     dstNode |-> dstNode, refs |-> refs]
Msg(type, x, o, w, n, r, att, locs, val, err, have, dst, dstNode) ==
    MsgR(type, x, o, w, n, r, att, locs, val, err, have, dst, dstNode, {})
\* Owner -> scheduler of n; att is the request's number; have: it was
\* redirected to n (spillback).
RequestLeaseMsg(o, x, q, n) == Msg("RequestLease", x, o, NoProc, n, NoNode, q, {}, {}, "", FALSE, NoProc, n)
SpilledRequestMsg(o, x, q, n) == Msg("RequestLease", x, o, NoProc, n, NoNode, q, {}, {}, "", TRUE, NoProc, n)
LeaseGrantedMsg(o, x, q, n, w) == Msg("LeaseGranted", x, o, w, n, NoNode, q, {}, {}, "", FALSE, o, NoNode)
SpillbackMsg(o, x, q, n, r) == Msg("Spillback", x, o, NoProc, n, r, q, {}, {}, "", FALSE, o, NoNode)
\* refs: the shared references, with their owners.
PushTaskMsg(o, x, k, w, refs) == MsgR("PushTask", x, o, w, NodeOf(w), NoNode, k, {}, {}, "", FALSE, w, NoNode, refs)
\* Worker w -> owner o: where is x?  locs: nodes w found without a copy.
GetObjectMsg(x, o, w, bad) == Msg("GetObject", x, o, w, NoNode, NoNode, 0, bad, {}, "", FALSE, o, NoNode)
ObjectValueMsg(x, o, w, locs, err) == Msg("ObjectValue", x, o, w, NoNode, NoNode, 0, locs, {}, err, FALSE, w, NoNode)
\* Owner -> worker: x is being made (its task runs, or it is being rebuilt).
ObjectPendingMsg(x, o, w) == Msg("ObjectPending", x, o, w, NoNode, NoNode, 0, {}, {}, "", FALSE, w, NoNode)
\* The reply to the owner: x is stored at n (or failed with err).
\* refs: the shared references the caller owns, and whether the worker still
\* borrows each (held).
TaskReplyMsg(x, o, w, n, k, err, refs) == MsgR("TaskReply", x, o, w, n, NoNode, k, {}, {}, err, FALSE, o, NoNode, refs)
\* Borrowing: the owner o waits for borrower b to let go of y; b answers;
\* a borrower that got y from a process other than its owner registers
\* with the owner before it uses y, and the owner acknowledges (have: y
\* still exists), which also asks the borrower to say when it lets go.
WaitForRefRemovedMsg(y, o, b) == Msg("WaitForRefRemoved", y, o, b, NoNode, NoNode, 0, {}, {}, "", FALSE, b, NoNode)
RefRemovedMsg(y, o, b) == Msg("RefRemoved", y, o, b, NoNode, NoNode, 0, {}, {}, "", FALSE, o, NoNode)
AddBorrowerMsg(y, o, b) == Msg("AddBorrower", y, o, b, NoNode, NoNode, 0, {}, {}, "", FALSE, o, NoNode)
BorrowerAddedMsg(y, o, b, ok) == Msg("BorrowerAdded", y, o, b, NoNode, NoNode, 0, {}, {}, "", ok, b, NoNode)
ReturnLeaseMsg(w) == Msg("ReturnLease", NoObj, NoProc, w, NodeOf(w), NoNode, 0, {}, {}, "", FALSE, NoProc, NodeOf(w))
\* An actor's lease given back (have: kill): its node stops the worker.
KillActorMsg(w) == Msg("ReturnLease", NoObj, NoProc, w, NodeOf(w), NoNode, 0, {}, {}, "", TRUE, NoProc, NodeOf(w))
FreeObjectMsg(x, n) == Msg("FreeObject", x, NoProc, NoProc, n, NoNode, 0, {}, {}, "", FALSE, NoProc, n)
WorkerBlockedMsg(w) == Msg("WorkerBlocked", NoObj, NoProc, w, NodeOf(w), NoNode, 0, {}, {}, "", FALSE, NoProc, NodeOf(w))
WorkerUnblockedMsg(w) == Msg("WorkerUnblocked", NoObj, NoProc, w, NodeOf(w), NoNode, 0, {}, {}, "", FALSE, NoProc, NodeOf(w))
\* Failure notifications: to a node (from the head), or relayed by a node
\* to one of its processes.
WorkerDiedMsg(p, dst, dstNode) == Msg("WorkerDied", NoObj, NoProc, p, NodeOf(p), NoNode, 0, {}, {}, "", FALSE, dst, dstNode)
NodeDiedMsg(n, dst, dstNode) == Msg("NodeDied", NoObj, NoProc, NoProc, n, NoNode, 0, {}, {}, "", FALSE, dst, dstNode)
NoMsg == Msg("None", NoObj, NoProc, NoProc, NoNode, NoNode, 0, {}, {}, "", FALSE, NoProc, NoNode)

Step(name, a, x, n, m) == [name |-> name, params |-> [a |-> a, x |-> x, n |-> n, m |-> m]]

-----------------------------------------------------------------------------
(***************************************************************************)
(* Helpers.                                                                *)
(***************************************************************************)
Cur(a) == <<a, inc[a]>>
Range(s) == {s[i] : i \in DOMAIN s}
\* The process p is the latest at its address and serves.
IsUp(p) == p[1] \in Addrs /\ inc[p[1]] = p[2] /\ wst[p[1]] = "up"

\* The deaths that a notification reports.
DeadProcs(m) ==
    IF m.type = "WorkerDied" THEN {m.w}
    ELSE {p \in Procs : NodeOf(p) = m.n /\ p[2] <= inc[p[1]] /\ (p[2] < inc[p[1]] \/ wst[p[1]] # "off")}
DeadNodes(m) == IF m.type = "NodeDied" THEN {m.n} ELSE {}
Learn(k, m) == [n |-> k.n \cup DeadNodes(m), p |-> k.p \cup DeadProcs(m)]

\* A message whose addressee is gone is lost with its connection.
DstAlive(m) ==
    /\ m.dst = NoProc \/ IsUp(m.dst)
    /\ m.dstNode = NoNode \/ m.dstNode \in nodeUp

\* Bodies.
Running(a) == IsUp(Cur(a)) /\ ex[a].phase = "run"
AtStep(a, op) ==
    /\ Running(a)
    /\ ex[a].pc <= Len(Body[ex[a].x])
    /\ Body[ex[a].x][ex[a].pc].op = op
StepObj(a) == Body[ex[a].x][ex[a].pc].obj

\* Counts.  An object is in scope while its owner's process refers to it:
\* a local ref of its body, or a pending task of the owner that takes it.
InScope(e) == e.local > 0 \/ e.submitted > 0 \/ e.borrowers # {}
\* The references of task z that its owner owns (its arguments, and the
\* owner's own objects it gets as references): while z is pending it holds
\* each (a submitted-task ref), and while z may run again its lineage pins
\* each.
OwnRefs(z) == Args[z] \cup ((SharedArgs[z] \cup Tgt(z)) \cap Children(Parent[z]))
\* Every reference task z holds while it is pending (owned or borrowed).
Holds(z) == Args[z] \cup SharedArgs[z] \cup Tgt(z)
\* What the lineage of z pins.
PinnedRefs(z) == OwnRefs(z)
\* A borrower uses a borrowed reference: kept, held by a running task, or
\* passed on to a task it submitted.
InUse(b) == b.local > 0 \/ b.run > 0 \/ b.sub > 0
\* The owner of y as the process at address a knows it: itself, or the
\* owner it borrows y from.
RefOwner(a, y) == IF ent[y].owner = Cur(a) THEN Cur(a) ELSE brw[a][y].owner
\* Borrowed entries of table B (of the process at a) that nothing uses any
\* more are answered (RefRemoved, when the owner asked) and forgotten; an
\* entry whose owner died is dropped without a word.
Unused(B) == {y \in Objects : B[y].owner # NoProc /\ ~InUse(B[y])}
Released(B) == [y \in Objects |-> IF y \in Unused(B) THEN NoBorrow ELSE B[y]]
Answered(a, B) == {RefRemovedMsg(y, B[y].owner, Cur(a)) : y \in {z \in Unused(B) : B[z].waits > 0 /\ ~B[z].failed}}
Pending(e) == e.task \in {"waiting", "requested", "pushed"}
Owns(a, x) == ent[x].owner = Cur(a) /\ IsUp(Cur(a))

\* A copy of x in a live store, for its current owner.
LiveCopy(x) == {c \in copies : c.x = x /\ c.o = ent[x].owner /\ c.n \in nodeUp /\ c.n \in ent[x].locs}

\* A worker's scheduler view: CPU taken by leases that are not lent.  An
\* actor needs no CPU: its lease holds a worker only, for the actor's life.
Used(n) == Cardinality({l \in leases[n] : ~l.lent /\ Kind[l.x] # "actor"})
IdleWorkers(n) == {w \in pool[n] : ~\E l \in leases[n] : l.w = w}
HasFreeCPU(n) == Used(n) < Capacity[n]
\* The resources a lease for x needs are free at n.
Fits(n, x) == HasFreeCPU(n) \/ Kind[x] = "actor"
CanGrant(n, x) == Fits(n, x) /\ IdleWorkers(n) # {}
\* The first element of S in the order seq.
First(seq, S) == seq[CHOOSE i \in 1..Len(seq) : seq[i] \in S /\ \A j \in 1..(i - 1) : seq[j] \notin S]
\* The worker a node leases: its first idle one.
GrantTo(n) == LET a == First(WorkerOrder, {w[1] : w \in IdleWorkers(n)}) IN <<a, inc[a]>>
\* Where a node redirects what it cannot grant: the first other member that
\* has a free CPU as far as it knows (a member may have died since).  A node
\* without a CPU at all, which can never grant a task, redirects it to the
\* first other member that has one, free or not: the request waits there.
SpillTargets(n, x) ==
    LET fit == {r \in members \ {n} : Fits(r, x)}
    IN IF fit # {} \/ Capacity[n] > 0 \/ Kind[x] = "actor" THEN fit
       ELSE {r \in members \ {n} : Capacity[r] > 0}

\* The processes a node relays notifications to: its registered workers,
\* and the driver on the head node.
Subscribers(n) == pool[n] \cup (IF n = HeadNode THEN {DriverProc} ELSE {})

\* The nodes a lost argument's fetch must not be sent to again.
Bad(a, extra) == known[a].n \cup extra

\* A worker stops waiting (for its arguments, or in a get): it takes back
\* the CPU it lent.
Unblock(a, e) == IF e.lent THEN {WorkerUnblockedMsg(Cur(a))} ELSE {}

-----------------------------------------------------------------------------
(***************************************************************************)
(* The owner's table settles (section 4.2 and figure 10).  Inside the     *)
(* handling of one stimulus, the implementation also takes every step     *)
(* that the stimulus enables at the owner, until none is left:            *)
(*  - an object that is lost (or freed) while someone needs it is rebuilt *)
(*    by resubmitting its task, which holds its arguments again; with no  *)
(*    retries left, or for a put (nothing can make it again), it fails;   *)
(*  - a task that waits for its arguments asks its owner's local          *)
(*    scheduler for a lease once they all exist, recording that node as   *)
(*    its location before the request leaves, or fails with the error of *)
(*    a failed argument;                                                   *)
(*  - an object the owner no longer refers to has its value freed (every  *)
(*    store with a copy is told), unless its lineage is pinned and        *)
(*    nothing could make it again (a put);                                 *)
(*  - an entry that no task will produce and no lineage names is          *)
(*    forgotten, and its own lineage pins on its arguments go.            *)
(* Someone "needs" an object when a worker waits for it (its GetObject),  *)
(* a task of the owner waits for it, or the owner's body is at a get of  *)
(* it: reconstruction is lazy, as in Ray.                                 *)
(***************************************************************************)
\* What a body waits for at a get, in execution state e.
GetTarget(e) ==
    IF e.phase = "run" /\ e.pc <= Len(Body[e.x]) /\ Body[e.x][e.pc].op = "get"
    THEN Body[e.x][e.pc].obj ELSE NoObj
\* What the gets of bodies wait for at the process at address a: its own
\* body's (in its next state e), and those of its borrowers (their
\* GetObject registered them at the owner).
BorrowerGets(a) ==
    {GetTarget(ex[b]) : b \in {b \in Addrs : IsUp(Cur(b)) /\ GetTarget(ex[b]) # NoObj
                                             /\ brw[b][GetTarget(ex[b])].owner = Cur(a)}}
GetTargets(a, e) == {GetTarget(e)} \cup BorrowerGets(a)

\* The failure of an entry.
Failed(e, err) == [e EXCEPT !.task = "failed", !.obj = "failed", !.err = err, !.loc = NoLoc, !.waiters = {}]
\* The answers to the workers waiting for x at its owner.
Answers(x, e, err) == {ObjectValueMsg(x, e.owner, w, {}, err) : w \in e.waiters}

NeededIn(E, o, g, x) ==
    \/ E[x].waiters # {}
    \/ \E z \in Objects : E[z].owner = o /\ E[z].task = "waiting" /\ x \in Args[z]
    \/ x \in g

\* Why an object with no way back failed (for TransparentRecovery).
NoWayBack(e, x) ==
    IF e.obj = "freed" /\ Kind[x] = "put" THEN "unpinned"
    ELSE IF e.budget = 0 THEN "budget" ELSE "early"

\* The four steps, each over the table S.e of owner o (mine: its objects),
\* with messages S.m and failure reasons S.w; g is what the owner's body
\* waits for at a get.  (Sets are passed as arguments, so that TLC
\* evaluates each once.)
RebuildSet(S, ok, no) ==
    [e |-> TLCEval([x \in Objects |->
              LET b == IF x \in ok THEN [S.e[x] EXCEPT !.task = "waiting", !.obj = "pending", !.budget = @ - 1]
                       ELSE IF x \in no THEN Failed(S.e[x], "ObjectLost")
                       ELSE S.e[x]
              IN [b EXCEPT !.submitted = @ + Cardinality({z \in ok : x \in OwnRefs(z)})]]),
     m |-> S.m \cup UNION {Answers(x, S.e[x], "ObjectLost") : x \in no},
     w |-> TLCEval([x \in Objects |-> IF x \in no THEN NoWayBack(S.e[x], x) ELSE S.w[x]])]

RebuildSplit(S, rb, ok) == RebuildSet(S, ok, rb \ ok)
RebuildFrom(S, rb) == RebuildSplit(S, rb, {x \in rb : Kind[x] = "task" /\ S.e[x].budget > 0})
Rebuild(S, mine, g) ==
    RebuildFrom(S, {x \in mine : S.e[x].obj \in {"lost", "freed"} /\ NeededIn(S.e, S.e[x].owner, g, x)})


ErrOf(E, x) == E[CHOOSE y \in Args[x] : E[y].obj = "failed"].err
ResolveSets(S, rq, fl) ==
    [e |-> TLCEval([x \in Objects |->
              LET b == IF x \in rq THEN [S.e[x] EXCEPT !.task = "requested", !.req = @ + 1,
                                                       !.loc = [n |-> NodeOf(S.e[x].owner), w |-> NoProc]]
                       ELSE IF x \in fl THEN Failed(S.e[x], ErrOf(S.e, x))
                       ELSE S.e[x]
              IN [b EXCEPT !.submitted = @ - Cardinality({z \in fl : x \in OwnRefs(z)})]]),
     m |-> S.m \cup {RequestLeaseMsg(S.e[x].owner, x, S.e[x].req + 1, NodeOf(S.e[x].owner)) : x \in rq}
               \cup UNION {Answers(x, S.e[x], ErrOf(S.e, x)) : x \in fl},
     w |-> TLCEval([x \in Objects |-> IF x \in fl THEN "arg" ELSE S.w[x]])]

\* (A call waits for its actor, not for a lease: OwnerPushCall.)
Resolve(S, mine) ==
    ResolveSets(S, {x \in mine : S.e[x].task = "waiting" /\ Kind[x] # "call" /\ \A y \in Args[x] : S.e[y].obj = "ready"},
                   {x \in mine : S.e[x].task = "waiting" /\ Kind[x] # "call" /\ \E y \in Args[x] : S.e[y].obj = "failed"})

FreeSet(S, fr) ==
    [e |-> TLCEval([x \in Objects |-> IF x \in fr THEN [S.e[x] EXCEPT !.obj = "freed", !.locs = {}] ELSE S.e[x]]),
     m |-> S.m \cup UNION {{FreeObjectMsg(x, n) : n \in S.e[x].locs} : x \in fr}
               \cup {KillActorMsg(S.e[x].host) : x \in {z \in fr : Kind[z] = "actor" /\ S.e[z].host # NoProc}},
     w |-> S.w]

Free(S, mine) ==
    FreeSet(S, {x \in mine : ~InScope(S.e[x]) /\ S.e[x].obj \in {"ready", "lost"}
                             /\ ~(Kind[x] = "put" /\ S.e[x].lineage > 0)})

ForgetSet(S, fg) ==
    [e |-> TLCEval([x \in Objects |->
              LET b == IF x \in fg THEN NoEntry ELSE S.e[x]
              IN [b EXCEPT !.lineage = @ - Cardinality({z \in fg : x \in PinnedRefs(z) /\ Retries[z] > 0})]]),
     m |-> S.m,
     w |-> S.w]

Forget(S, mine) ==
    ForgetSet(S, {x \in mine : ~InScope(S.e[x]) /\ S.e[x].obj \in {"freed", "failed"} /\ S.e[x].lineage = 0
                               /\ S.e[x].waiters = {} /\ ~Pending(S.e[x])})

\* The table settles in passes of the four steps, each step computed once
\* from the bound value of the previous one (TLC would evaluate an operator
\* argument again at each of its uses where it checks liveness, and keeps
\* a function constructor as a closure unless told to evaluate it: hence
\* the \E over one-element sets and TLCEval).  A pass that changes nothing
\* ends it; the lineage is shorter than MaxPasses, so it always ends.
MaxPasses == Cardinality(Objects) + 2
RECURSIVE SettleFrom(_, _, _, _)
SettleFrom(S, mine, g, k) ==
    IF k = 0 THEN Assert(FALSE, "the owner's table did not settle")
    ELSE \E S1 \in {Rebuild(S, mine, g)} :
         \E S2 \in {Resolve(S1, mine)} :
         \E S3 \in {Free(S2, mine)} :
         \E S4 \in {Forget(S3, mine)} :
            IF S4 = S THEN ent' = S.e /\ msgs' = S.m /\ why' = S.w
            ELSE SettleFrom(S4, mine, g, k - 1)

\* The step of the process at address a that left table E, messages M and
\* reasons W, and its execution in state e, ends with its table settled:
\* this sets ent', msgs' and why'.
Settle(a, E, M, W, e) ==
    \E S0 \in {[e |-> TLCEval(E), m |-> M, w |-> TLCEval(W)]} :
        SettleFrom(S0, {x \in Objects : S0.e[x].owner = Cur(a)}, GetTargets(a, e), MaxPasses)

-----------------------------------------------------------------------------
Init ==
    /\ nodeUp = Nodes
    /\ wst = [a \in Addrs |-> IF a = Driver \/ a \in InitialWorkers THEN "up" ELSE "off"]
    /\ inc = [a \in Addrs |-> 0]
    /\ crashes = 0
    /\ members = Nodes
    /\ announced = {}
    /\ pool = [n \in Nodes |-> {<<w, 0>> : w \in {v \in InitialWorkers : WorkerNode[v] = n}}]
    /\ starting = [n \in Nodes |-> {}]
    /\ leases = [n \in Nodes |-> {}]
    /\ nknown = [n \in Nodes |-> NoDeaths]
    /\ copies = {}
    /\ ent = [x \in Objects |-> NoEntry]
    /\ ex = [a \in Addrs |-> IF a = Driver
                              THEN [IdleExec EXCEPT !.x = Root, !.phase = "run"]
                              ELSE IdleExec]
    /\ known = [a \in Addrs |-> NoDeaths]
    /\ brw = [a \in Addrs |-> [y \in Objects |-> NoBorrow]]
    /\ got = {}
    /\ msgs = {}
    /\ why = [x \in Objects |-> ""]
    /\ made = {}
    /\ chan = [x \in Actors |-> <<>>]
    /\ actorLog = [x \in Actors |-> [host |-> NoProc, ran |-> <<>>]]
    /\ lastAction = Step("Init", NoAddr, NoObj, NoNode, NoMsg)

-----------------------------------------------------------------------------
(***************************************************************************)
(* The owner's body (section 4.1, figure 8a; section 4.2, table 2).       *)
(***************************************************************************)

(***************************************************************************)
(* f.remote(args) in a body: the caller becomes the owner of the return   *)
(* object and writes its lineage.  Each argument counts a submitted-task  *)
(* ref until the task replies, and, when the task may run again, a        *)
(* lineage pin for as long as the entry lives.                            *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.submit
OwnerSubmit(a, x) ==
    LET e == [ex[a] EXCEPT !.pc = @ + 1]
        \* A shared reference whose owner is known dead dooms the task at once.
        doomed == \E y \in SharedArgs[x] : ent[y].owner # Cur(a)
                                           /\ (brw[a][y].failed \/ brw[a][y].owner \in known[a].p)
        new == [NoEntry EXCEPT !.owner = Cur(a), !.task = "waiting", !.obj = "pending",
                               !.budget = Retries[x], !.local = 1]
        E == [y \in Objects |->
                IF y = x
                THEN IF doomed THEN Failed(new, "OwnerDied") ELSE new
                ELSE IF y \in Holds(x) /\ ent[y].owner = Cur(a) /\ ~doomed
                THEN [ent[y] EXCEPT !.submitted = @ + 1,
                                    !.lineage = @ + (IF y \in PinnedRefs(x) /\ Retries[x] > 0 THEN 1 ELSE 0)]
                ELSE ent[y]]
        settle == Settle(a, E, msgs, IF doomed THEN [why EXCEPT ![x] = "owner"] ELSE why, e)
    IN
    /\ AtStep(a, "submit")
    /\ StepObj(a) = x
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ brw' = IF doomed THEN brw
              ELSE [brw EXCEPT ![a] = [y \in Objects |->
                      IF y \in SharedArgs[x] /\ ent[y].owner # Cur(a) THEN [@[y] EXCEPT !.sub = @ + 1] ELSE @[y]]]
    /\ settle
    /\ lastAction' = Step("OwnerSubmit", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, known, got, made>>

(***************************************************************************)
(* ownership.put(value): an owned object with no lineage, pinned at the   *)
(* owner's node.                                                           *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.put
OwnerPut(a, x) ==
    LET e == [ex[a] EXCEPT !.pc = @ + 1]
        E == [ent EXCEPT ![x] = [NoEntry EXCEPT !.owner = Cur(a), !.task = "done", !.obj = "ready",
                                                !.locs = {AddrNode(a)}, !.local = 1]]
        settle == Settle(a, E, msgs, why, e)
    IN
    /\ AtStep(a, "put")
    /\ StepObj(a) = x
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ settle
    /\ copies' = copies \cup {[x |-> x, o |-> Cur(a), n |-> AddrNode(a), val |-> {x}]}
    /\ made' = made \cup {x}
    /\ lastAction' = Step("OwnerPut", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, leases, nknown, known, brw, got>>

(***************************************************************************)
(* get(x) in the owner's body reads a live copy (the pull from a store is *)
(* below this level), or the object's error.  It waits while the object  *)
(* is pending or lost; a lost one is Needed, so it is being rebuilt.     *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.get
HolderGet(a, x) ==
    LET e == [ex[a] EXCEPT !.pc = @ + 1, !.lent = FALSE]
        settle == Settle(a, ent, msgs \cup Unblock(a, ex[a]), why, e)
    IN
    /\ AtStep(a, "get")
    /\ StepObj(a) = x
    /\ ent[x].owner = Cur(a)
    /\ \/ /\ ent[x].obj = "ready"
          /\ LiveCopy(x) # {}
          /\ got' = got \cup {[x |-> x, res |-> "value", val |-> (CHOOSE c \in LiveCopy(x) : TRUE).val, o |-> Cur(a)]}
       \/ /\ ent[x].obj = "failed"
          /\ got' = got \cup {[x |-> x, res |-> ent[x].err, val |-> {}, o |-> Cur(a)]}
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ settle
    /\ lastAction' = Step("HolderGet", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, known, brw, made>>

(***************************************************************************)
(* A task whose body waits at a get for a value that is not there lends   *)
(* its CPU to its node (it takes it back when the get returns): the value  *)
(* may need a task of its own, which on a full node would wait for it.     *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.blocked
WorkerBlockInGet(a) ==
    LET y == StepObj(a)
        o == IF ent[y].owner = Cur(a) THEN Cur(a) ELSE brw[a][y].owner
    IN
    /\ a # Driver
    /\ AtStep(a, "get")
    /\ ~ex[a].lent
    /\ ~(ent[y].owner = o /\ ent[y].obj \in {"ready", "failed"})
    /\ ex' = [ex EXCEPT ![a].lent = TRUE]
    /\ msgs' = msgs \cup {WorkerBlockedMsg(Cur(a))}
    /\ lastAction' = Step("WorkerBlockInGet", a, y, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

\* del ref: one local ref fewer.
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.release_ref
HolderRelease(a, x) ==
    LET e == [ex[a] EXCEPT !.pc = @ + 1]
        settle == Settle(a, [ent EXCEPT ![x].local = @ - 1], msgs, why, e)
    IN
    /\ AtStep(a, "release")
    /\ StepObj(a) = x
    /\ ent[x].owner = Cur(a)
    /\ ent[x].local > 0
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ settle
    /\ lastAction' = Step("HolderRelease", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, known, brw, got, made>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Leases (section 4.1, figure 8c).                                        *)
(***************************************************************************)

(***************************************************************************)
(* The scheduler leases an idle worker when a CPU is free: a lease takes  *)
(* one CPU unless its worker lent it back while it waits for an argument. *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.grant_lease
SchedulerGrantLease(n, m) ==
    /\ m \in msgs
    /\ m.type = "RequestLease"
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ CanGrant(n, m.x)
    /\ LET w == GrantTo(n) IN
        /\ leases' = [leases EXCEPT ![n] = @ \cup {[w |-> w, o |-> m.o, x |-> m.x, lent |-> FALSE]}]
        /\ msgs' = (msgs \ {m}) \cup {LeaseGrantedMsg(m.o, m.x, m.att, n, w)}
    /\ lastAction' = Step("SchedulerGrantLease", NoAddr, m.x, n, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, nknown, copies, ent, ex, known, brw, got, made, why>>

(***************************************************************************)
(* A node that cannot grant redirects the owner to a member with a free   *)
(* CPU (spillback); with none, the request waits here.  Its view of the   *)
(* other nodes may be stale: a member may have died, and its CPUs are     *)
(* what they were.  A request redirected once already is redirected      *)
(* again only when this node has no free CPU at all: else it waits here   *)
(* for a worker to start, which keeps two nodes from bouncing it.         *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.spillback
SchedulerSpillback(n, m) ==
    /\ m \in msgs
    /\ m.type = "RequestLease"
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ ~CanGrant(n, m.x)
    /\ m.have => ~Fits(n, m.x)
    /\ SpillTargets(n, m.x) # {}
    /\ msgs' = (msgs \ {m}) \cup {SpillbackMsg(m.o, m.x, m.att, n, First(NodeOrder, SpillTargets(n, m.x)))}
    /\ lastAction' = Step("SchedulerSpillback", NoAddr, m.x, n, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, ex, known, brw, got, made, why>>

(***************************************************************************)
(* A request waits, a CPU is free, but every worker is busy: the node     *)
(* starts one more worker process, at an address that is free or whose   *)
(* process died (a new incarnation there).                                *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.start_worker
SchedulerStartWorker(n, w) ==
    /\ n \in nodeUp
    /\ w \in Workers /\ WorkerNode[w] = n
    /\ \E m \in msgs : m.type = "RequestLease" /\ m.dstNode = n /\ Fits(n, m.x)
    /\ IdleWorkers(n) = {}
    /\ starting[n] = {}
    /\ \/ wst[w] = "off" /\ inc' = inc
       \/ wst[w] = "dead" /\ inc[w] < MaxIncarnation /\ inc' = [inc EXCEPT ![w] = @ + 1]
    /\ wst' = [wst EXCEPT ![w] = "starting"]
    /\ starting' = [starting EXCEPT ![n] = @ \cup {w}]
    /\ ex' = [ex EXCEPT ![w] = IdleExec]
    /\ known' = [known EXCEPT ![w] = NoDeaths]
    /\ brw' = [brw EXCEPT ![w] = [y \in Objects |-> NoBorrow]]
    /\ lastAction' = Step("SchedulerStartWorker", w, NoObj, n, NoMsg)
    /\ UNCHANGED <<actorVars, nodeUp, crashes, headVars, pool, leases, nknown, copies, ent, got, made, msgs, why>>

(***************************************************************************)
(* A started worker registers with its node, which hands it the deaths it *)
(* has heard of (a process that starts after a death was published must  *)
(* know of it too), and then leases it out.                                *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.worker_registered
WorkerRegister(w) ==
    /\ w \in Workers
    /\ wst[w] = "starting"
    /\ WorkerNode[w] \in nodeUp
    /\ wst' = [wst EXCEPT ![w] = "up"]
    /\ pool' = [pool EXCEPT ![WorkerNode[w]] = @ \cup {Cur(w)}]
    /\ starting' = [starting EXCEPT ![WorkerNode[w]] = @ \ {w}]
    /\ known' = [known EXCEPT ![w] = nknown[WorkerNode[w]]]
    /\ lastAction' = Step("WorkerRegister", w, NoObj, WorkerNode[w], NoMsg)
    /\ UNCHANGED <<actorVars, nodeUp, inc, crashes, headVars, leases, nknown, copies, ent, ex, brw, got, made, msgs, why>>

(***************************************************************************)
(* The owner follows a redirect: it records the new node as the task's    *)
(* location, then asks there.  A redirect to a node it knows is dead      *)
(* sends it back to its own node; one for a request it gave up is         *)
(* dropped.                                                                *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_spillback
OwnerHandleSpillback(a, m) ==
    LET x == m.x
        e == ent[x]
        current == e.owner = m.o /\ e.task = "requested" /\ e.req = m.att
    IN
    /\ m \in msgs
    /\ m.type = "Spillback"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ \/ /\ current
          /\ m.r \notin known[a].n
          /\ ent' = [ent EXCEPT ![x].loc = [n |-> m.r, w |-> NoProc]]
          /\ msgs' = (msgs \ {m}) \cup {SpilledRequestMsg(m.o, x, m.att, m.r)}
       \/ /\ current
          /\ m.r \in known[a].n
          /\ ent' = [ent EXCEPT ![x].req = @ + 1, ![x].loc = [n |-> AddrNode(a), w |-> NoProc]]
          /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(m.o, x, e.req + 1, AddrNode(a))}
       \/ /\ ~current
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED ent
    /\ lastAction' = Step("OwnerHandleSpillback", a, x, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made, why>>

(***************************************************************************)
(* The owner records the leased worker as the task's location, then       *)
(* pushes the task to it.  A grant of a worker it knows is dead sends the *)
(* task back to its own node; a grant it no longer needs goes back.       *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_grant
OwnerHandleGrant(a, m) ==
    LET x == m.x
        e == ent[x]
        current == e.owner = m.o /\ e.task = "requested" /\ e.req = m.att
        knownDead == m.w \in known[a].p \/ m.n \in known[a].n
    IN
    /\ m \in msgs
    /\ m.type = "LeaseGranted"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ \/ /\ current
          /\ ~knownDead
          /\ ent' = [ent EXCEPT ![x].task = "pushed", ![x].att = @ + 1, ![x].loc = [n |-> m.n, w |-> m.w]]
          /\ msgs' = (msgs \ {m}) \cup {PushTaskMsg(m.o, x, e.att + 1, m.w,
                                                     {[y |-> y, o |-> RefOwner(a, y), held |-> FALSE] : y \in SharedArgs[x]})}
       \/ /\ current
          /\ knownDead
          /\ ent' = [ent EXCEPT ![x].req = @ + 1, ![x].loc = [n |-> AddrNode(a), w |-> NoProc]]
          /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(m.o, x, e.req + 1, AddrNode(a))}
       \/ /\ ~current
          /\ ent' = ent
          /\ msgs' = (msgs \ {m}) \cup (IF knownDead THEN {} ELSE {ReturnLeaseMsg(m.w)})
    /\ lastAction' = Step("OwnerHandleGrant", a, x, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made, why>>

\* impl: impl/ownership/core/scheduler.py::LocalScheduler.release_lease
SchedulerReleaseLease(n, m) ==
    /\ m \in msgs
    /\ m.type = "ReturnLease"
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ leases' = [leases EXCEPT ![n] = {l \in @ : l.w # m.w}]
    \* an actor's lease (kill): the node stops its worker, and sees it exit
    \* like any other (SchedulerDetectWorkerDeath)
    /\ wst' = IF m.have /\ (\E l \in leases[n] : l.w = m.w) /\ IsUp(m.w)
              THEN [wst EXCEPT ![m.w[1]] = "dead"] ELSE wst
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("SchedulerReleaseLease", NoAddr, NoObj, n, m)
    /\ UNCHANGED <<actorVars, nodeUp, inc, crashes, headVars, pool, starting, nknown, copies, ent, ex, known, brw, got, made, why>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Execution: a leased worker fetches its task's arguments, runs it, and  *)
(* stores the value at its node.                                          *)
(***************************************************************************)

(***************************************************************************)
(* The worker receives the task and asks each argument's owner where the  *)
(* argument is.  A task of an owner it knows is dead is dropped.           *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.execute
WorkerReceiveTask(a, m) ==
    LET doomed == \E r \in m.refs : r.o \in known[a].p
        ys == {r.y : r \in m.refs}
        \* references it got from a process other than their owner: it
        \* registers with their owner before it uses them
        sub == {r \in m.refs : r.o # m.o}
        ask == {r \in sub : brw[a][r.y].reg = "none"}
        regs == {r.y : r \in {r \in sub : brw[a][r.y].reg # "yes"}}
    IN
    /\ m \in msgs
    /\ m.type = "PushTask"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ ex[a].phase = "idle"
    /\ \/ /\ m.o \in known[a].p
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED <<ex, brw>>
       \/ /\ m.o \notin known[a].p
          /\ doomed
          /\ msgs' = (msgs \ {m}) \cup {TaskReplyMsg(m.x, m.o, Cur(a), NoNode, m.att, "OwnerDied", {})}
          /\ UNCHANGED <<ex, brw>>
       \/ /\ m.o \notin known[a].p
          /\ ~doomed
          /\ ex' = [ex EXCEPT ![a] = [IdleExec EXCEPT
                        !.x = m.x, !.o = m.o, !.att = m.att,
                        !.phase = IF Args[m.x] = {} /\ regs = {} THEN "run" ELSE "fetch",
                        !.arg = [y \in Objects |-> IF y \in Args[m.x] THEN "ask" ELSE "none"],
                        !.val = {m.x}, !.refs = ys, !.regs = regs]]
          /\ brw' = [brw EXCEPT ![a] = [y \in Objects |->
                       IF y \in ys
                       THEN LET r == CHOOSE r \in m.refs : r.y = y IN
                            [@[y] EXCEPT !.owner = r.o, !.run = @ + 1,
                                         !.reg = IF r \in ask THEN "asking" ELSE @]
                       ELSE @[y]]]
          /\ msgs' = (msgs \ {m}) \cup {GetObjectMsg(y, m.o, Cur(a), Bad(a, {})) : y \in Args[m.x]}
                                  \cup {AddBorrowerMsg(r.y, r.o, Cur(a)) : r \in ask}
    /\ lastAction' = Step("WorkerReceiveTask", a, m.x, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, got, made, why>>

(***************************************************************************)
(* The owner answers where x is.  Nodes the requester found without a     *)
(* copy (dead, or without it) are written off first: when no location is  *)
(* left the object is lost, and the requester waits while it is rebuilt   *)
(* (ObjectPending says so).  A pending object's requester waits for the   *)
(* task's reply the same way.                                              *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_get_object
OwnerHandleGetObject(a, m) ==
    LET x == m.x
        e == ent[x]
        left == e.locs \ m.locs
        E == IF e.obj = "ready" /\ left = {}
             THEN [ent EXCEPT ![x].locs = {}, ![x].obj = "lost", ![x].waiters = @ \cup {m.w}]
             ELSE IF e.obj \in {"pending", "lost", "freed"}
             THEN [ent EXCEPT ![x].waiters = @ \cup {m.w}]
             ELSE [ent EXCEPT ![x].locs = left]
        answer == IF e.obj = "ready" /\ left # {} THEN ObjectValueMsg(x, m.o, m.w, left, "")
                  ELSE IF e.obj = "failed" THEN ObjectValueMsg(x, m.o, m.w, {}, e.err)
                  ELSE ObjectPendingMsg(x, m.o, m.w)
        settle == Settle(a, E, (msgs \ {m}) \cup {answer}, why, ex[a])
    IN
    /\ m \in msgs
    /\ m.type = "GetObject"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ IF e.owner # Cur(a)
       THEN /\ msgs' = (msgs \ {m}) \cup {ObjectValueMsg(x, m.o, m.w, {}, "ObjectLost")}
            /\ UNCHANGED <<ent, why>>
       ELSE /\ settle
    /\ lastAction' = Step("OwnerHandleGetObject", a, x, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>


\* The borrow table of the process at a once its current task (execution
\* state e) ends: the task's references are no longer held by it, those
\* it keeps are kept.
AfterTask(a, e) ==
    [y \in Objects |->
        IF y \in e.refs
        THEN [brw[a][y] EXCEPT !.run = @ - 1, !.local = @ + (IF y \in Keeps[e.x] THEN 1 ELSE 0)]
        ELSE brw[a][y]]
\* What the reply tells the task's caller about the references the caller
\* owns (the others' owners were told directly): whether the worker still
\* borrows each.
Report(e, B) == {[y |-> y, o |-> B[y].owner, held |-> InUse(B[y])] : y \in {z \in e.refs : B[z].owner = e.o}}

\* The current task fails at the worker with err: the reply says so, and
\* the task's references are let go.
FailTask(a, err, M) ==
    LET e == ex[a]
        B == AfterTask(a, e)
    IN /\ ex' = [ex EXCEPT ![a] = IdleExec]
       /\ brw' = [brw EXCEPT ![a] = Released(B)]
       /\ msgs' = M \cup {TaskReplyMsg(e.x, e.o, Cur(a), NoNode, e.att, err, Report(e, B))}
                    \cup Unblock(a, e) \cup Answered(a, B)

\* The executor's current task fetches argument y, which is in state st.
Fetching(a, y, st) == ex[a].phase = "fetch" /\ ex[a].arg[y] = st

(***************************************************************************)
(* The owner answered: pull from a live node it names (the worker's own   *)
(* node first), or ask again when every node it names is known dead; an  *)
(* error fails the task with that error.                                  *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_object_value
WorkerHandleObjectValue(a, m) ==
    LET y == m.x
        live == m.locs \ known[a].n
    IN
    /\ m \in msgs
    /\ m.type = "ObjectValue"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ \/ /\ ~Fetching(a, y, "ask")
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED <<ex, brw>>
       \/ /\ Fetching(a, y, "ask")
          /\ m.err # ""
          /\ FailTask(a, m.err, msgs \ {m})
       \/ /\ Fetching(a, y, "ask")
          /\ m.err = ""
          /\ live # {}
          /\ \E n \in live :
               /\ AddrNode(a) \in live => n = AddrNode(a)
               /\ ex' = [ex EXCEPT ![a].arg[y] = "pull", ![a].at[y] = n]
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED brw
       \/ /\ Fetching(a, y, "ask")
          /\ m.err = ""
          /\ live = {}
          /\ msgs' = (msgs \ {m}) \cup {GetObjectMsg(y, m.o, Cur(a), Bad(a, {}))}
          /\ UNCHANGED <<ex, brw>>
    /\ lastAction' = Step("WorkerHandleObjectValue", a, y, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, got, made, why>>

(***************************************************************************)
(* The worker is told to wait: the argument is being made, maybe by a     *)
(* task that needs a CPU of this very node.  It lends its CPU back to its *)
(* node, as a task blocked in a get does, until its arguments are here.  *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_object_pending
WorkerHandleObjectPending(a, m) ==
    /\ m \in msgs
    /\ m.type = "ObjectPending"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ IF Fetching(a, m.x, "ask") /\ ~ex[a].lent
       THEN /\ ex' = [ex EXCEPT ![a].lent = TRUE]
            /\ msgs' = (msgs \ {m}) \cup {WorkerBlockedMsg(Cur(a))}
       ELSE /\ msgs' = msgs \ {m}
            /\ UNCHANGED ex
    /\ lastAction' = Step("WorkerHandleObjectPending", a, m.x, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

(***************************************************************************)
(* The worker pulls the argument from the store it picked (the pull and   *)
(* the store's answer in one step): once every argument is here the task  *)
(* runs, and takes back its CPU if it lent it.  A store without the copy  *)
(* is reported to the owner, which writes it off.  A pull from a dead     *)
(* node is never answered: the worker asks again when it hears of the     *)
(* death (ProcessHandleFailure).                                           *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_object_copy
WorkerPullArg(a, y) ==
    LET e == ex[a]
        n == e.at[y]
        here == {c \in copies : c.x = y /\ c.n = n}
        done == (\A z \in Args[e.x] \ {y} : e.arg[z] = "have") /\ e.regs = {}
    IN
    /\ IsUp(Cur(a))
    /\ Fetching(a, y, "pull")
    /\ n \in nodeUp
    /\ IF here # {}
       THEN /\ ex' = [ex EXCEPT ![a].arg[y] = "have", ![a].at[y] = NoNode,
                                ![a].val = @ \cup (CHOOSE c \in here : TRUE).val,
                                ![a].phase = IF done THEN "run" ELSE "fetch",
                                ![a].lent = IF done THEN FALSE ELSE @]
            /\ msgs' = msgs \cup (IF done THEN Unblock(a, e) ELSE {})
       ELSE /\ ex' = [ex EXCEPT ![a].arg[y] = "ask", ![a].at[y] = NoNode]
            /\ msgs' = msgs \cup {GetObjectMsg(y, e.o, Cur(a), Bad(a, {n}))}
    /\ lastAction' = Step("WorkerPullArg", a, y, n, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

\* impl: impl/ownership/core/scheduler.py::LocalScheduler.blocked
SchedulerLend(n, m) ==
    /\ m \in msgs
    /\ m.type \in {"WorkerBlocked", "WorkerUnblocked"}
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ leases' = [leases EXCEPT ![n] = {IF l.w = m.w THEN [l EXCEPT !.lent = (m.type = "WorkerBlocked")] ELSE l : l \in @}]
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("SchedulerLend", NoAddr, NoObj, n, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, nknown, copies, ent, ex, known, brw, got, made, why>>

(***************************************************************************)
(* The body returned: its value (the lineage: the task and what flowed in *)
(* from its arguments) is pinned at the worker's node, whose store sends  *)
(* the reply (the PutObject to the store is below this level), so the     *)
(* owner never learns of a location before the copy exists.  The refs the *)
(* body still held die with its frame.  An actor's constructor returned:  *)
(* the worker hosts the actor from now on, keeping its lease, and the     *)
(* reply names the worker, which is where the actor's calls go.           *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.finish_task
WorkerFinishTask(a) ==
    LET e == ex[a]
        n == AddrNode(a)
        orphan == e.o \in known[a].p \/ e.o \in nknown[n].p
        actor == Kind[e.x] = "actor"
        B == AfterTask(a, e)
        E == [z \in Objects |-> IF ent[z].owner = Cur(a) THEN [ent[z] EXCEPT !.local = 0] ELSE ent[z]]
        next == IF actor THEN [IdleExec EXCEPT !.x = e.x, !.o = e.o, !.att = e.att, !.phase = "host"]
                ELSE IdleExec
        settle == Settle(a, E, msgs \cup Answered(a, B)
                               \cup (IF orphan THEN {}
                                     ELSE {TaskReplyMsg(e.x, e.o, Cur(a), IF actor THEN NoNode ELSE n, e.att, "", Report(e, B))}),
                     why, next)
    IN
    /\ a # Driver
    /\ Running(a)
    /\ e.pc > Len(Body[e.x])
    /\ ex' = [ex EXCEPT ![a] = next]
    /\ brw' = [brw EXCEPT ![a] = Released(B)]
    /\ copies' = copies \cup (IF orphan \/ actor THEN {} ELSE {[x |-> e.x, o |-> e.o, n |-> n, val |-> e.val]})
    /\ actorLog' = IF actor THEN [actorLog EXCEPT ![e.x].host = Cur(a)] ELSE actorLog
    /\ settle
    /\ lastAction' = Step("WorkerFinishTask", a, e.x, NoNode, NoMsg)
    /\ UNCHANGED <<chan, envVars, headVars, pool, starting, leases, nknown, known, got, made>>

(***************************************************************************)
(* The owner takes the reply of the task's current attempt: the object is *)
(* ready where it is stored (or failed), the task's submitted-task refs   *)
(* on its arguments go, the waiting workers are answered and the lease is *)
(* returned.  A reply of an attempt it gave up on keeps its copy as a     *)
(* location of a live object and frees it otherwise.                      *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_reply
OwnerHandleReply(a, m) ==
    LET x == m.x
        e == ent[x]
        current == e.owner = m.o /\ e.task = "pushed" /\ e.att = m.att /\ e.loc.w = m.w
        \* a call cancelled while it ran: its reply only lets go of its refs
        \* (the value, if any, is freed); an actor is ready where it runs:
        \* its worker (it has no copy)
        cancelled == e.task = "pushed" /\ e.obj = "failed"
        done == IF cancelled
                THEN [e EXCEPT !.task = "done", !.loc = NoLoc]
                ELSE IF m.err = "" /\ Kind[x] = "actor"
                THEN [e EXCEPT !.task = "done", !.obj = "ready", !.host = m.w, !.loc = NoLoc, !.waiters = {}]
                ELSE IF m.err = ""
                THEN [e EXCEPT !.task = "done", !.obj = "ready", !.locs = @ \cup {m.n}, !.loc = NoLoc, !.waiters = {}]
                ELSE Failed(e, m.err)
        keep == e.owner = m.o /\ m.err = "" /\ m.n # NoNode /\ e.obj \in {"pending", "ready", "lost"}
        \* the executor still borrows these references of ours (unless the
        \* owner has heard it died: the reply outlived its sender)
        held == IF m.w \in known[a].p THEN {}
                ELSE {r.y : r \in {r \in m.refs : r.held /\ ent[r.y].owner = Cur(a)}}
        mine == Holds(x)
        E0 == [z \in Objects |-> IF z \in held THEN [ent[z] EXCEPT !.borrowers = @ \cup {m.w}] ELSE ent[z]]
        E == IF current
             THEN [z \in Objects |->
                     IF z = x THEN done
                     ELSE IF z \in mine /\ E0[z].owner = Cur(a) THEN [E0[z] EXCEPT !.submitted = @ - 1]
                     ELSE E0[z]]
             ELSE IF keep
             THEN [E0 EXCEPT ![x].locs = @ \cup {m.n},
                             ![x].obj = IF e.obj = "lost" /\ ~Pending(e) THEN "ready" ELSE @]
             ELSE E0
        \* the task's submitted-task refs on what it borrowed itself
        B == [y \in Objects |->
                IF current /\ y \in SharedArgs[x] /\ ent[y].owner # Cur(a)
                THEN [brw[a][y] EXCEPT !.sub = @ - 1] ELSE brw[a][y]]
        M == (IF current
              \* (an actor keeps its lease; a call has none of its own)
              THEN (msgs \ {m}) \cup (IF Kind[x] = "task" THEN {ReturnLeaseMsg(m.w)} ELSE {})
                   \cup (IF cancelled /\ m.n # NoNode THEN {FreeObjectMsg(x, m.n)} ELSE {})
                   \cup {ObjectValueMsg(x, m.o, w, done.locs, done.err) : w \in e.waiters}
              ELSE IF keep \/ m.n = NoNode THEN msgs \ {m}
              ELSE (msgs \ {m}) \cup {FreeObjectMsg(x, m.n)})
             \cup {WaitForRefRemovedMsg(y, Cur(a), m.w) : y \in held}
             \cup Answered(a, B)
        W == IF current /\ m.err # "" /\ ~cancelled
             THEN [why EXCEPT ![x] = CASE m.err = "OwnerDied" -> "owner" [] m.err = "ActorDied" -> "actor" [] OTHER -> "arg"]
             ELSE why
        settle == Settle(a, E, M, W, ex[a])
    IN
    /\ m \in msgs
    /\ m.type = "TaskReply"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ brw' = [brw EXCEPT ![a] = Released(B)]
    /\ settle
    /\ made' = IF current /\ m.err = "" /\ ~cancelled THEN made \cup {x} ELSE made
    /\ lastAction' = Step("OwnerHandleReply", a, x, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, got>>

\* impl: impl/ownership/core/store.py::ObjectStore.free
StoreFree(n, m) ==
    /\ m \in msgs
    /\ m.type = "FreeObject"
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ copies' = {c \in copies : ~(c.x = m.x /\ c.n = n)}
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("StoreFree", NoAddr, m.x, n, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, leases, nknown, ent, ex, known, brw, got, made, why>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Actors.  An actor is created by a task (OwnerSubmit of its handle,      *)
(* leased and pushed as any task, with no CPU: its lease holds a worker   *)
(* only), and lives in that worker, which keeps the lease for the actor's *)
(* life (WorkerFinishTask, OwnerHandleReply).  Its owner calls it:        *)
(*  - a call waits at the caller until the actor's worker is known, then   *)
(*    is pushed straight to that worker, after every call submitted       *)
(*    before it (the caller's queue for the actor); the connection keeps  *)
(*    the order, so the worker receives one caller's calls in order;      *)
(*  - the worker runs one call at a time, in the order they arrive (their *)
(*    arguments ready), and replies to each as a task does;               *)
(*  - a call holds its actor's handle (a submitted-task ref) until it     *)
(*    replies or fails, so the actor outlives its last handle until then; *)
(*    when nothing refers to the handle any more, the owner gives the     *)
(*    lease back with a kill (the table's Free step) and the node stops   *)
(*    the worker;                                                          *)
(*  - when the actor's worker (or node) dies, the owner fails the actor    *)
(*    and every call pushed to it with ActorDied (ProcessHandleFailure),  *)
(*    and the calls still queued at it, or submitted later, the same way  *)
(*    (OwnerFailCall): an actor is not restarted.                          *)
(***************************************************************************)
\* Every call of the same caller to x's actor submitted before x.
EarlierCalls(x) ==
    LET b == Body[Parent[x]]
        pos(z) == CHOOSE i \in 1..Len(b) : b[i].op = "submit" /\ b[i].obj = z
    IN {z \in Calls : Target[z] = Target[x] /\ Parent[z] = Parent[x] /\ pos(z) < pos(x)}

\* The calls of actor r in submission order (its owner's body).
CallSeq(r) ==
    LET s == SelectSeq(Body[Parent[r]], LAMBDA st : st.op = "submit" /\ Kind[st.obj] = "call" /\ Target[st.obj] = r)
    IN [i \in 1..Len(s) |-> s[i].obj]

(***************************************************************************)
(* The caller pushes its next queued call to the actor's worker, recording *)
(* the worker as the call's location before the call leaves.               *)
(***************************************************************************)
\* impl: impl/ownership/core/actors.py::ActorCalls.flush_queue
OwnerPushCall(a, x) ==
    LET r == Target[x]
        w == ent[r].host
    IN
    /\ IsUp(Cur(a))
    /\ x \in Calls
    /\ ent[x].owner = Cur(a)
    /\ ent[x].task = "waiting"
    /\ ent[r].owner = Cur(a) /\ ent[r].obj = "ready" /\ w # NoProc
    /\ \A z \in EarlierCalls(x) : ent[z].task # "waiting"
    /\ ent' = [ent EXCEPT ![x].task = "pushed", ![x].att = @ + 1, ![x].loc = [n |-> NodeOf(w), w |-> w]]
    /\ chan' = [chan EXCEPT ![r] = Append(@, [x |-> x, o |-> Cur(a), att |-> ent[x].att + 1, w |-> w, cancel |-> FALSE])]
    /\ lastAction' = Step("OwnerPushCall", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorLog, envVars, headVars, nodeVars, ex, known, brw, got, made, msgs, why>>

(***************************************************************************)
(* A call queued at the caller (or submitted after) whose actor died, or  *)
(* whose creation failed, fails with ActorDied, and lets go of the handle. *)
(***************************************************************************)
\* impl: impl/ownership/core/actors.py::ActorCalls.dead
OwnerFailCall(a, x) ==
    LET r == Target[x]
        E == [z \in Objects |->
                IF z = x THEN Failed(ent[x], "ActorDied")
                ELSE IF z = r THEN [ent[r] EXCEPT !.submitted = @ - 1]
                ELSE ent[z]]
        settle == Settle(a, E, msgs \cup Answers(x, ent[x], "ActorDied"), [why EXCEPT ![x] = "actor"], ex[a])
    IN
    /\ IsUp(Cur(a))
    /\ x \in Calls
    /\ ent[x].owner = Cur(a)
    /\ ent[x].task = "waiting"
    /\ ent[r].owner = Cur(a) /\ ent[r].obj = "failed"
    /\ settle
    /\ lastAction' = Step("OwnerFailCall", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>

(***************************************************************************)
(* cancel(x) of a call in its owner's body: its get raises Cancelled from *)
(* now on.  A call still queued at the caller is failed and lets go of    *)
(* the handle; a call pushed to the actor's worker is told to stop there  *)
(* (behind the call, on the same connection), and lets go of the handle   *)
(* when its reply comes; a call that ended is left alone.                 *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.cancel
HolderCancel(a, x) ==
    LET e == [ex[a] EXCEPT !.pc = @ + 1]
        t == ent[x]
        r == Target[x]
        queued == t.task = "waiting"
        running == t.task = "pushed" /\ t.obj = "pending"
        E == IF queued
             THEN [z \in Objects |->
                     IF z = x THEN Failed(t, "Cancelled")
                     ELSE IF z = r THEN [ent[r] EXCEPT !.submitted = @ - 1]
                     ELSE ent[z]]
             ELSE IF running
             THEN [ent EXCEPT ![x].obj = "failed", ![x].err = "Cancelled", ![x].waiters = {}]
             ELSE ent
        settle == Settle(a, E, msgs \cup (IF queued \/ running THEN Answers(x, t, "Cancelled") ELSE {}),
                         IF queued \/ running THEN [why EXCEPT ![x] = "cancelled"] ELSE why, e)
    IN
    /\ AtStep(a, "cancel")
    /\ StepObj(a) = x
    /\ ent[x].owner = Cur(a)
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ chan' = IF running /\ t.loc.w \notin known[a].p
               THEN [chan EXCEPT ![r] = Append(@, [x |-> x, o |-> Cur(a), att |-> t.att, w |-> t.loc.w, cancel |-> TRUE])]
               ELSE chan
    /\ settle
    /\ lastAction' = Step("HolderCancel", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorLog, envVars, headVars, nodeVars, known, brw, got, made>>

(***************************************************************************)
(* The actor's worker receives the next call on a caller's connection: it *)
(* runs it at once when the actor is idle, else queues it behind the      *)
(* running one.  A worker that no longer hosts the actor (its owner died) *)
(* answers ActorDied.                                                      *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.execute
ActorReceiveCall(r) ==
    LET h == Head(chan[r])
        a == h.w[1]
        e == ex[a]
        c == [x |-> h.x, o |-> h.o, att |-> h.att]
        hosts == e.phase = "host" /\ e.x = r
        idle == e.cur = NoCall /\ e.q = <<>>
    IN
    /\ r \in Actors
    /\ chan[r] # <<>>
    /\ IsUp(h.w)
    /\ ~h.cancel
    /\ chan' = [chan EXCEPT ![r] = Tail(@)]
    /\ IF hosts
       THEN /\ ex' = [ex EXCEPT ![a] = IF idle THEN [e EXCEPT !.cur = c] ELSE [e EXCEPT !.q = Append(@, c)]]
            /\ actorLog' = IF idle THEN [actorLog EXCEPT ![r].ran = Append(@, h.x)] ELSE actorLog
            /\ UNCHANGED msgs
       ELSE /\ msgs' = msgs \cup {TaskReplyMsg(h.x, h.o, h.w, NoNode, h.att, "ActorDied", {})}
            /\ UNCHANGED <<ex, actorLog>>
    /\ lastAction' = Step("ActorReceiveCall", a, h.x, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

(***************************************************************************)
(* The actor's worker hears that a call was cancelled (on the caller's    *)
(* connection, behind the call): a call still queued here is dropped and  *)
(* answered as cancelled; a running call runs on (its owner ignores its   *)
(* value), and a finished one is gone.  (So a call queued here may start  *)
(* before its cancel arrives: the owner's get raised at once all the same.) *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.cancel
ActorReceiveCancel(r) ==
    LET h == Head(chan[r])
        a == h.w[1]
        e == ex[a]
        c == [x |-> h.x, o |-> h.o, att |-> h.att]
        queued == e.phase = "host" /\ e.x = r /\ c \in Range(e.q)
    IN
    /\ r \in Actors
    /\ chan[r] # <<>>
    /\ IsUp(h.w)
    /\ h.cancel
    /\ chan' = [chan EXCEPT ![r] = Tail(@)]
    /\ IF queued
       THEN /\ ex' = [ex EXCEPT ![a].q = SelectSeq(@, LAMBDA qc : qc # c)]
            /\ msgs' = msgs \cup {TaskReplyMsg(h.x, h.o, h.w, NoNode, h.att, "Cancelled", {})}
       ELSE UNCHANGED <<ex, msgs>>
    /\ lastAction' = Step("ActorReceiveCancel", a, h.x, NoNode, NoMsg)
    /\ UNCHANGED <<actorLog, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

(***************************************************************************)
(* The running call returns: its value is stored at the worker's node and *)
(* the reply goes to its caller (as for a task); the next queued call     *)
(* starts.                                                                 *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.finish_task
ActorFinishCall(a) ==
    LET e == ex[a]
        c == e.cur
        n == AddrNode(a)
        nxt == IF e.q = <<>> THEN NoCall ELSE Head(e.q)
    IN
    /\ IsUp(Cur(a))
    /\ e.phase = "host"
    /\ c # NoCall
    /\ ex' = [ex EXCEPT ![a].cur = nxt, ![a].q = IF @ = <<>> THEN @ ELSE Tail(@)]
    /\ actorLog' = IF nxt = NoCall THEN actorLog ELSE [actorLog EXCEPT ![e.x].ran = Append(@, nxt.x)]
    \* (a call's value is its lineage: the call alone, it takes no arguments)
    /\ copies' = copies \cup {[x |-> c.x, o |-> c.o, n |-> n, val |-> {c.x}]}
    /\ msgs' = msgs \cup {TaskReplyMsg(c.x, c.o, Cur(a), n, c.att, "", {})}
    /\ lastAction' = Step("ActorFinishCall", a, c.x, NoNode, NoMsg)
    /\ UNCHANGED <<chan, envVars, headVars, pool, starting, leases, nknown, ent, known, brw, got, made, why>>

(***************************************************************************)
(* A call on its way to a worker that died is lost with the connection.    *)
(***************************************************************************)
\* env: impl/ownership/runtime/memory.py::MemoryNetwork.drop
LoseCall(r) ==
    /\ r \in Actors
    /\ chan[r] # <<>>
    /\ ~IsUp(Head(chan[r]).w)
    /\ chan' = [chan EXCEPT ![r] = Tail(@)]
    /\ lastAction' = Step("LoseCall", NoAddr, Head(chan[r]).x, NoNode, NoMsg)
    /\ UNCHANGED <<actorLog, envVars, headVars, nodeVars, ent, ex, known, brw, got, made, msgs, why>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Borrowing (section 4.2).  The owner counts a borrower from the reply of *)
(* the task that lent it the reference (a worker that got the reference    *)
(* from its owner), or from the borrower itself: a worker that got it from *)
(* another borrower registers with the owner before it uses it, while the *)
(* lender's own borrow still holds the object.  (Reported only through     *)
(* the lender, as Ray does, a borrower of a borrower is lost to its owner  *)
(* when the lender dies before passing it on: the owner frees the object   *)
(* while it is still used.)  The owner waits for each borrower to let go   *)
(* (WaitForRefRemoved) and frees the object when nothing refers to it.     *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_add_borrower
OwnerHandleAddBorrower(a, m) ==
    LET y == m.x
        ok == ent[y].owner = Cur(a) /\ ent[y].obj \in {"pending", "ready", "lost", "failed"}
    IN
    /\ m \in msgs
    /\ m.type = "AddBorrower"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ ent' = IF ok THEN [ent EXCEPT ![y].borrowers = @ \cup {m.w}] ELSE ent
    /\ msgs' = (msgs \ {m}) \cup {BorrowerAddedMsg(y, m.o, m.w, ok)}
    /\ lastAction' = Step("OwnerHandleAddBorrower", a, y, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made, why>>

(***************************************************************************)
(* The owner counts the worker, and its answer asks the worker to say     *)
(* when it lets go: its task may run (once its arguments are here too).    *)
(* An owner that no longer has the object (freed, forgotten) refuses, and  *)
(* the task fails.  (The implementation asks once per task and owner, for *)
(* all of that owner's objects the task got from others.)                  *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_borrower_added
WorkerHandleBorrowerAdded(a, m) ==
    LET y == m.x
        e == ex[a]
        done == (\A z \in Args[e.x] : e.arg[z] = "have") /\ e.regs = {y}
    IN
    /\ m \in msgs
    /\ m.type = "BorrowerAdded"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ \/ /\ m.have
          \* BorrowerAdded is also the owner's WaitForRefRemoved: answered
          \* at once by a worker that no longer uses y
          /\ LET mine == brw[a][y].owner = m.o /\ InUse(brw[a][y])
                 answer == IF mine THEN {} ELSE {RefRemovedMsg(y, m.o, Cur(a))}
             IN
             /\ brw' = IF mine THEN [brw EXCEPT ![a][y].reg = "yes", ![a][y].waits = @ + 1] ELSE brw
             /\ IF e.phase = "fetch" /\ y \in e.regs
                THEN /\ ex' = [ex EXCEPT ![a].regs = @ \ {y},
                                         ![a].phase = IF done THEN "run" ELSE "fetch",
                                         ![a].lent = IF done THEN FALSE ELSE @]
                     /\ msgs' = (msgs \ {m}) \cup answer \cup (IF done THEN Unblock(a, e) ELSE {})
                ELSE /\ msgs' = (msgs \ {m}) \cup answer
                     /\ UNCHANGED ex
       \/ /\ ~m.have
          /\ e.phase = "fetch" /\ y \in e.regs
          /\ FailTask(a, "ObjectLost", msgs \ {m})
       \/ /\ ~m.have
          /\ ~(e.phase = "fetch" /\ y \in e.regs)
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED <<ex, brw>>
    /\ lastAction' = Step("WorkerHandleBorrowerAdded", a, y, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, got, made, why>>

(***************************************************************************)
(* The owner waits for a borrower: it answers at once when it no longer   *)
(* uses the reference, else when it lets go (Answered).                    *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_wait_for_ref_removed
BorrowerHandleWaitForRefRemoved(a, m) ==
    LET y == m.x
        b == brw[a][y]
    IN
    /\ m \in msgs
    /\ m.type = "WaitForRefRemoved"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ IF b.owner = m.o /\ InUse(b)
       THEN /\ brw' = [brw EXCEPT ![a][y].waits = @ + 1]
            /\ msgs' = msgs \ {m}
       ELSE /\ brw' = IF b.owner = m.o THEN [brw EXCEPT ![a][y] = NoBorrow] ELSE brw
            /\ msgs' = (msgs \ {m}) \cup {RefRemovedMsg(y, m.o, Cur(a))}
    /\ lastAction' = Step("BorrowerHandleWaitForRefRemoved", a, y, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, ex, known, got, made, why>>

(***************************************************************************)
(* A kept reference is let go (the actor state or global that held it is  *)
(* gone), some time after the task that kept it.                          *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.release_ref
BorrowerRelease(a, y) ==
    LET B == [brw[a] EXCEPT ![y].local = @ - 1] IN
    /\ IsUp(Cur(a))
    /\ ex[a].phase = "idle"
    /\ brw[a][y].local > 0
    /\ brw' = [brw EXCEPT ![a] = Released(B)]
    /\ msgs' = msgs \cup Answered(a, B)
    /\ lastAction' = Step("BorrowerRelease", a, y, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, ex, known, got, made, why>>

\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_ref_removed
OwnerHandleRefRemoved(a, m) ==
    LET y == m.x
        settle == Settle(a, IF ent[y].owner = Cur(a) THEN [ent EXCEPT ![y].borrowers = @ \ {m.w}] ELSE ent,
                         msgs \ {m}, why, ex[a])
    IN
    /\ m \in msgs
    /\ m.type = "RefRemoved"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ settle
    /\ lastAction' = Step("OwnerHandleRefRemoved", a, y, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>

(***************************************************************************)
(* A borrower's get reached the owner of a lost object (its GetObject):   *)
(* the owner's table settles, which rebuilds the object.                   *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_get_object
OwnerServeBorrowerGet(a, x) ==
    LET settle == Settle(a, ent, msgs, why, ex[a]) IN
    /\ IsUp(Cur(a))
    /\ ent[x].owner = Cur(a)
    /\ ent[x].obj \in {"lost", "freed"}
    /\ x \in BorrowerGets(a)
    /\ settle
    /\ lastAction' = Step("OwnerServeBorrowerGet", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>

(***************************************************************************)
(* get(y) in a body that borrows y reads it at its owner and a live copy  *)
(* (the GetObject round trip and the pull are below this level), or fails *)
(* with OwnerDiedError once the borrower knows the owner died: the        *)
(* reference fate-shares with its owner (figure 11).                      *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.get
BorrowerGet(a, y) ==
    LET b == brw[a][y]
        e == [ex[a] EXCEPT !.pc = @ + 1, !.lent = FALSE]
    IN
    /\ AtStep(a, "get")
    /\ StepObj(a) = y
    /\ ent[y].owner # Cur(a)
    /\ \/ /\ b.failed \/ b.owner \in known[a].p
          /\ got' = got \cup {[x |-> y, res |-> "OwnerDied", val |-> {}, o |-> b.owner]}
       \/ /\ ~b.failed /\ b.owner \notin known[a].p
          /\ IsUp(b.owner) /\ ent[y].owner = b.owner
          /\ \/ /\ ent[y].obj = "ready"
                /\ LiveCopy(y) # {}
                /\ got' = got \cup {[x |-> y, res |-> "value", val |-> (CHOOSE c \in LiveCopy(y) : TRUE).val, o |-> b.owner]}
             \/ /\ ent[y].obj = "failed"
                /\ got' = got \cup {[x |-> y, res |-> ent[y].err, val |-> {}, o |-> b.owner]}
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ msgs' = msgs \cup Unblock(a, ex[a])
    /\ lastAction' = Step("BorrowerGet", a, y, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, why, made>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Failures (section 4.3).  Crashes are environment steps, at most        *)
(* MaxCrashes.  A node's crash kills its processes.                       *)
(***************************************************************************)
\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
WorkerCrash(w) ==
    /\ w \in Workers
    /\ crashes < MaxCrashes
    /\ wst[w] \in {"starting", "up"}
    /\ wst' = [wst EXCEPT ![w] = "dead"]
    /\ crashes' = crashes + 1
    /\ lastAction' = Step("WorkerCrash", w, NoObj, NoNode, NoMsg)
    /\ UNCHANGED <<actorVars, nodeUp, inc, headVars, nodeVars, ent, ex, known, brw, got, made, msgs, why>>

\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
NodeCrash(n) ==
    /\ n # HeadNode
    /\ n \in nodeUp
    /\ crashes < MaxCrashes
    /\ nodeUp' = nodeUp \ {n}
    /\ wst' = [a \in Addrs |-> IF a \in Workers /\ WorkerNode[a] = n /\ wst[a] \in {"starting", "up"}
                               THEN "dead" ELSE wst[a]]
    /\ crashes' = crashes + 1
    /\ lastAction' = Step("NodeCrash", NoAddr, NoObj, n, NoMsg)
    /\ UNCHANGED <<actorVars, inc, headVars, nodeVars, ent, ex, known, brw, got, made, msgs, why>>

\* env: impl/ownership/runtime/memory.py::MemoryNetwork.drop
LoseMessage(m) ==
    /\ m \in msgs
    /\ ~DstAlive(m)
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("LoseMessage", NoAddr, NoObj, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, ex, known, brw, got, made, why>>

(***************************************************************************)
(* A node sees one of its processes exit (a registered worker, or one it  *)
(* was starting): it drops its leases, freeing their CPUs, replaces a     *)
(* pool member at the same address (a recycled port: a new incarnation), *)
(* and publishes the death, through the head, to every member node.  The  *)
(* address may already have a new process (the node started one there    *)
(* before it saw the old one go): the old one is still told apart.        *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.detect_worker_death
SchedulerDetectWorkerDeath(n, w) ==
    LET \* a registered process at w that is gone: the latest one, or an
        \* older one whose address a new process already took
        gone == {p \in pool[n] : p[1] = w /\ ~IsUp(p) /\ (p = Cur(w) => wst[w] = "dead")}
        registered == gone # {}
        p == IF registered THEN CHOOSE q \in gone : TRUE ELSE Cur(w)
        replace == /\ p = Cur(w)
                   /\ registered
                   /\ Cardinality(pool[n]) - 1 + Cardinality(starting[n])
                         < Cardinality({v \in InitialWorkers : WorkerNode[v] = n})
                   /\ inc[w] < MaxIncarnation
    IN
    /\ n \in nodeUp
    /\ w \in Workers /\ WorkerNode[w] = n
    /\ registered \/ (w \in starting[n] /\ wst[w] = "dead")
    /\ pool' = [pool EXCEPT ![n] = @ \ {p}]
    /\ leases' = [leases EXCEPT ![n] = {l \in @ : l.w # p}]
    /\ IF replace
       THEN /\ wst' = [wst EXCEPT ![w] = "starting"]
            /\ inc' = [inc EXCEPT ![w] = @ + 1]
            /\ starting' = [starting EXCEPT ![n] = @ \cup {w}]
            /\ ex' = [ex EXCEPT ![w] = IdleExec]
            /\ known' = [known EXCEPT ![w] = NoDeaths]
            /\ brw' = [brw EXCEPT ![w] = [y \in Objects |-> NoBorrow]]
       ELSE /\ starting' = IF registered THEN starting ELSE [starting EXCEPT ![n] = @ \ {w}]
            /\ UNCHANGED <<wst, inc, ex, known, brw>>
    /\ announced' = announced \cup {p}
    /\ msgs' = msgs \cup {WorkerDiedMsg(p, NoProc, r) : r \in members}
    /\ lastAction' = Step("SchedulerDetectWorkerDeath", w, NoObj, n, NoMsg)
    /\ UNCHANGED <<actorVars, nodeUp, crashes, members, nknown, copies, ent, got, made, why>>

\* The head misses a node's heartbeats and publishes its death.
\* impl: impl/ownership/core/head.py::HeadCore.detect_node_death
HeadDetectNodeDeath(n) ==
    /\ n \in members
    /\ n \notin nodeUp
    /\ members' = members \ {n}
    /\ announced' = announced \cup {p \in Procs : NodeOf(p) = n /\ p[2] <= inc[p[1]] /\ wst[p[1]] # "off"}
    /\ msgs' = msgs \cup {NodeDiedMsg(n, NoProc, r) : r \in members \ {n}}
    /\ lastAction' = Step("HeadDetectNodeDeath", NoAddr, NoObj, n, NoMsg)
    /\ UNCHANGED <<actorVars, envVars, nodeVars, ent, ex, known, brw, got, made, why>>

(***************************************************************************)
(* A node hears of a death: it drops the requests and reclaims the leases *)
(* of dead owners (their workers are stopped: they fate-share), frees the *)
(* copies dead owners pinned here, and relays the notification to its own *)
(* processes.                                                              *)
(***************************************************************************)
\* impl: impl/ownership/core/node.py::NodeCore.handle_failure
NodeHandleFailure(n, m) ==
    LET D == DeadProcs(m)
        doomed == {l.w : l \in {l \in leases[n] : l.o \in D}}
    IN
    /\ m \in msgs
    /\ m.type \in {"WorkerDied", "NodeDied"}
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ nknown' = [nknown EXCEPT ![n] = Learn(@, m)]
    /\ copies' = {c \in copies : ~(c.n = n /\ c.o \in D)}
    /\ wst' = [a \in Addrs |-> IF Cur(a) \in doomed /\ wst[a] = "up" THEN "dead" ELSE wst[a]]
    /\ msgs' = ({mm \in msgs \ {m} : ~(mm.type = "RequestLease" /\ mm.dstNode = n /\ mm.o \in D)})
               \cup {[m EXCEPT !.dst = p, !.dstNode = NoNode] : p \in Subscribers(n) \ D}
    /\ lastAction' = Step("NodeHandleFailure", NoAddr, NoObj, n, m)
    /\ UNCHANGED <<actorVars, nodeUp, inc, crashes, headVars, pool, starting, leases, ent, ex, known, brw, got, made, why>>

(***************************************************************************)
(* A process hears of a death and scans its table (figures 10a, 11a):     *)
(*  - as an owner: a task pending at the dead worker or node is submitted *)
(*    again within its retries (WorkerCrashed when none is left); copies  *)
(*    on a dead node are written off, and an object with none left is    *)
(*    lost (rebuilt if needed, as the table settles); dead waiters and    *)
(*    borrowers go;                                                        *)
(*  - as a borrower: a reference whose owner died fate-shares (its gets   *)
(*    fail with OwnerDied), and so does a running task that holds one;    *)
(*  - as an executor: a task whose owner died is dropped (its worker is   *)
(*    stopped by its node too); a pull from a dead node is asked again of *)
(*    the owner.                                                           *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.handle_failure
ProcessHandleFailure(a, m) ==
    LET D == DeadProcs(m)
        N == DeadNodes(m)
        me == Cur(a)
        Hit(e) == \/ e.task = "pushed" /\ (e.loc.w \in D \/ e.loc.n \in N)
                  \/ e.task = "requested" /\ e.loc.n \in N
        mine == {x \in Objects : ent[x].owner = me}
        retried == {x \in mine : Kind[x] # "call" /\ Hit(ent[x]) /\ ent[x].budget > 0}
        failing == {x \in mine : Kind[x] # "call" /\ Hit(ent[x]) /\ ent[x].budget = 0}
        \* an actor whose worker died (its constructor had returned), and
        \* the calls pushed to that worker: ActorDied (never restarted,
        \* never retried)
        actorDied == {x \in mine : Kind[x] = "actor" /\ ent[x].obj = "ready" /\ ent[x].host \in D}
        callDied == {x \in mine : Kind[x] = "call" /\ ent[x].task = "pushed" /\ ent[x].loc.w \in D}
        ended == failing \cup callDied
        Err(x) == IF Kind[x] = "task" THEN "WorkerCrashed" ELSE "ActorDied"
        Scan(x) ==
            LET e == ent[x]
                e1 == IF x \in retried THEN [e EXCEPT !.task = "waiting", !.budget = @ - 1, !.loc = NoLoc]
                      \* (a call cancelled while it ran keeps its error)
                      ELSE IF x \in ended \cup actorDied THEN Failed(e, IF e.obj = "failed" THEN e.err ELSE Err(x))
                      ELSE e
                left == e1.locs \ N
                e2 == IF e1.obj = "ready" /\ left = {} /\ e1.locs # {}
                      THEN [e1 EXCEPT !.locs = {}, !.obj = "lost"]
                      ELSE [e1 EXCEPT !.locs = left]
            IN [e2 EXCEPT !.waiters = @ \ D, !.borrowers = @ \ D,
                          !.submitted = @ - Cardinality({z \in ended : x \in OwnRefs(z)})]
        x0 == ex[a]
        \* borrowed references whose owner died: they fate-share
        gone == {y \in Objects : brw[a][y].owner \in D}
        B0 == [y \in Objects |-> IF y \in gone THEN [brw[a][y] EXCEPT !.failed = TRUE, !.waits = 0] ELSE brw[a][y]]
        orphan == x0.phase # "idle" /\ x0.o \in D
        doomed == x0.phase # "idle" /\ ~orphan /\ x0.refs \cap gone # {}
        ends == orphan \/ doomed
        B == IF ends THEN [y \in Objects |-> IF y \in x0.refs THEN [B0[y] EXCEPT !.run = @ - 1] ELSE B0[y]] ELSE B0
        refetch == IF ends THEN {}
                   ELSE {y \in Objects : x0.phase = "fetch" /\ x0.arg[y] = "pull" /\ x0.at[y] \in N}
        e == IF ends THEN IdleExec
             ELSE [x0 EXCEPT !.arg = [y \in Objects |-> IF y \in refetch THEN "ask" ELSE @[y]],
                             !.at = [y \in Objects |-> IF y \in refetch THEN NoNode ELSE @[y]]]
        M == (msgs \ {m})
             \cup UNION {Answers(x, ent[x], Err(x)) : x \in ended}
             \cup {GetObjectMsg(y, x0.o, me, Bad(a, N)) : y \in refetch}
             \cup (IF doomed THEN {TaskReplyMsg(x0.x, x0.o, me, NoNode, x0.att, "OwnerDied", Report(x0, B))}
                                  \cup Unblock(a, x0)
                   ELSE {})
             \cup Answered(a, B)
        settle == Settle(a, [x \in Objects |-> IF x \in mine THEN Scan(x) ELSE ent[x]], M,
                     [x \in Objects |-> IF x \in failing THEN "budget" ELSE IF x \in callDied /\ why[x] = "" THEN "actor" ELSE why[x]], e)
    IN
    /\ m \in msgs
    /\ m.type \in {"WorkerDied", "NodeDied"}
    /\ m.dst = me
    /\ IsUp(me)
    /\ known' = [known EXCEPT ![a] = Learn(@, m)]
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ brw' = [brw EXCEPT ![a] = Released(B)]
    /\ settle
    /\ lastAction' = Step("ProcessHandleFailure", a, NoObj, NoNode, m)
    /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, got, made>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* The program has run: the driver's body is over, no process executes,   *)
(* every death is published and heard, and nothing is in flight.  A       *)
(* stuttering step, so that a real deadlock stays detectable.             *)
(***************************************************************************)
Terminated ==
    /\ ex[Driver].pc > Len(Body[Root])
    \* (an actor's worker may still be up, its calls done: a leak, which
    \* NoLeak reports, rather than a deadlock)
    /\ \A a \in Workers : IsUp(Cur(a)) => /\ ex[a].phase \in {"idle", "host"} /\ ex[a].cur = NoCall
                                         /\ \A y \in Objects : brw[a][y].local = 0
    /\ \A w \in Workers : wst[w] # "starting"
    /\ msgs = {}
    /\ \A r \in Actors : chan[r] = <<>>
    /\ \A n \in Nodes : n \notin nodeUp => n \notin members
    /\ \A n \in nodeUp : \A p \in pool[n] : IsUp(p)

\* none: stuttering after termination, no stimulus to map
Done == Terminated /\ UNCHANGED vars

\* Parameters that can enable an action: an address and one of the objects.
AX == Addrs \X Objects

ProtocolNext ==
    \/ \E p \in AX : OwnerSubmit(p[1], p[2])
    \/ \E p \in AX : OwnerPut(p[1], p[2])
    \/ \E p \in AX : HolderGet(p[1], p[2])
    \/ \E p \in AX : HolderRelease(p[1], p[2])
    \/ \E a \in Addrs : WorkerBlockInGet(a)
    \/ \E n \in Nodes : \E m \in msgs : SchedulerGrantLease(n, m)
    \/ \E n \in Nodes : \E m \in msgs : SchedulerSpillback(n, m)
    \/ \E n \in Nodes, w \in Workers : SchedulerStartWorker(n, w)
    \/ \E w \in Workers : WorkerRegister(w)
    \/ \E a \in Addrs : \E m \in msgs : OwnerHandleSpillback(a, m)
    \/ \E a \in Addrs : \E m \in msgs : OwnerHandleGrant(a, m)
    \/ \E n \in Nodes : \E m \in msgs : SchedulerReleaseLease(n, m)
    \/ \E a \in Addrs : \E m \in msgs : WorkerReceiveTask(a, m)
    \/ \E a \in Addrs : \E m \in msgs : OwnerHandleGetObject(a, m)
    \/ \E a \in Addrs : \E m \in msgs : WorkerHandleObjectValue(a, m)
    \/ \E a \in Addrs : \E m \in msgs : WorkerHandleObjectPending(a, m)
    \/ \E p \in AX : WorkerPullArg(p[1], p[2])
    \/ \E n \in Nodes : \E m \in msgs : SchedulerLend(n, m)
    \/ \E a \in Addrs : WorkerFinishTask(a)
    \/ \E a \in Addrs : \E m \in msgs : OwnerHandleReply(a, m)
    \/ \E n \in Nodes : \E m \in msgs : StoreFree(n, m)
    \/ \E m \in msgs : LoseMessage(m)
    \/ \E n \in Nodes, w \in Workers : SchedulerDetectWorkerDeath(n, w)
    \/ \E n \in Nodes : HeadDetectNodeDeath(n)
    \/ \E n \in Nodes : \E m \in msgs : NodeHandleFailure(n, m)
    \/ \E a \in Addrs : \E m \in msgs : ProcessHandleFailure(a, m)
    \/ \E a \in Addrs : \E m \in msgs : OwnerHandleAddBorrower(a, m)
    \/ \E a \in Addrs : \E m \in msgs : WorkerHandleBorrowerAdded(a, m)
    \/ \E a \in Addrs : \E m \in msgs : BorrowerHandleWaitForRefRemoved(a, m)
    \/ \E p \in AX : BorrowerRelease(p[1], p[2])
    \/ \E a \in Addrs : \E m \in msgs : OwnerHandleRefRemoved(a, m)
    \/ \E p \in AX : OwnerServeBorrowerGet(p[1], p[2])
    \/ \E p \in AX : BorrowerGet(p[1], p[2])
    \/ \E p \in AX : OwnerPushCall(p[1], p[2])
    \/ \E p \in AX : OwnerFailCall(p[1], p[2])
    \/ \E r \in Actors : ActorReceiveCall(r)
    \/ \E r \in Actors : ActorReceiveCancel(r)
    \/ \E p \in AX : HolderCancel(p[1], p[2])
    \/ \E a \in Addrs : ActorFinishCall(a)
    \/ \E r \in Actors : LoseCall(r)

EnvNext ==
    \/ \E w \in Workers : WorkerCrash(w)
    \/ \E n \in Nodes : NodeCrash(n)

Next == ProtocolNext \/ EnvNext \/ Done

(***************************************************************************)
(* Weak fairness of the protocol's steps together: no behaviour stops     *)
(* where a protocol step is still possible (failure detection, delivery   *)
(* to the living and loss to the dead included).  Crashes are never       *)
(* forced.                                                                 *)
(***************************************************************************)
Fairness == WF_vars(ProtocolNext)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* Invariants.                                                             *)
(***************************************************************************)
TypeOK ==
    /\ nodeUp \subseteq Nodes /\ HeadNode \in nodeUp
    /\ wst \in [Addrs -> {"off", "starting", "up", "dead"}] /\ wst[Driver] = "up"
    /\ inc \in [Addrs -> 0..MaxIncarnation]
    /\ crashes \in 0..MaxCrashes
    /\ members \subseteq Nodes /\ announced \subseteq Procs
    /\ pool \in [Nodes -> SUBSET Procs]
    /\ starting \in [Nodes -> SUBSET Workers]
    /\ \A n \in Nodes : \A l \in leases[n] : l.w \in Procs /\ l.o \in Procs /\ l.x \in Objects
    /\ \A x \in Objects :
        /\ ent[x].task \in TaskStates /\ ent[x].obj \in ObjStates
        /\ ent[x].local \in Nat /\ ent[x].submitted \in Nat /\ ent[x].lineage \in Nat
        /\ ent[x].budget \in 0..Retries[x]
        /\ ent[x].err \in Errors
    /\ \A a \in Addrs : ex[a].phase \in Phases /\ \A y \in Objects : ex[a].arg[y] \in ArgStates
    /\ \A a \in Addrs : \A y \in Objects :
        /\ brw[a][y].local \in Nat /\ brw[a][y].run \in Nat /\ brw[a][y].sub \in Nat
        /\ brw[a][y].waits \in Nat /\ brw[a][y].reg \in {"none", "asking", "yes"}
    /\ why \in [Objects -> {"", "budget", "arg", "owner", "early", "unpinned", "actor", "cancelled"}]
    /\ \A r \in Actors : \A i \in 1..Len(chan[r]) : chan[r][i].x \in Calls

\* The value of an object is its lineage: the tasks whose results flowed in.
RECURSIVE LineageValue(_)
LineageValue(x) == {x} \cup UNION {LineageValue(y) : y \in Args[x]}

(***************************************************************************)
(* Every copy, and every value a get returns, is the object's lineage      *)
(* value: recovery never makes a different object under the same id.      *)
(***************************************************************************)
RecoveredValueIsLineageValue ==
    /\ \A c \in copies : c.val = LineageValue(c.x)
    /\ \A g \in got : g.res = "value" => g.val = LineageValue(g.x)

(***************************************************************************)
(* Memory safety under crashes: while its owner lives, no one finds an     *)
(* object freed: not its owner's body, not a task of the owner on its way *)
(* to a worker, not a live worker fetching it for a current task, not a   *)
(* live borrower (a borrower of a borrower included, whatever died in     *)
(* between), not a borrower registering.  (A freed argument of a task     *)
(* that waits is rebuilt before the task goes.)                            *)
(***************************************************************************)
Fetches(a, x) ==
    /\ IsUp(Cur(a))
    /\ ex[a].phase = "fetch"
    /\ ex[a].arg[x] \in {"ask", "pull"}
    /\ ex[a].o = ent[x].owner
    /\ ent[ex[a].x].owner = ex[a].o /\ ent[ex[a].x].task = "pushed" /\ ent[ex[a].x].att = ex[a].att
\* A live process uses x, borrowed from its live owner: kept, passed on, or
\* held by a task whose own owner lives (a task of a dead owner is dropped).
Borrows(a, x) ==
    LET b == brw[a][x] IN
    /\ IsUp(Cur(a))
    /\ IsUp(b.owner) /\ ~b.failed
    /\ b.local > 0 \/ b.sub > 0 \/ (b.run > 0 /\ IsUp(ex[a].o))
MemorySafety ==
    /\ \A x \in Objects :
           ent[x].obj = "freed" /\ IsUp(ent[x].owner) =>
            /\ ent[x].local = 0
            /\ ~\E z \in Objects : ent[z].owner = ent[x].owner /\ ent[z].task \in {"requested", "pushed"} /\ x \in Args[z]
            /\ ~\E a \in Workers : Fetches(a, x)
    /\ \A a \in Addrs, x \in Objects :
           Borrows(a, x) => ent[x].owner = brw[a][x].owner /\ ent[x].obj \notin {"freed", "none"}
    /\ ~\E m \in msgs : /\ m.type = "BorrowerAdded" /\ ~m.have
                        /\ IsUp(m.dst) /\ ex[m.dst[1]].phase # "idle" /\ IsUp(ex[m.dst[1]].o)
    \* no actor is destroyed while a call of its live owner is pending
    /\ \A x \in Calls : Pending(ent[x]) /\ IsUp(ent[x].owner) => ent[Target[x]].obj \notin {"freed", "none"}

(***************************************************************************)
(* Lineage is pinned: while a live object may have to be rebuilt (its task *)
(* has retries left and its owner refers to it), each reference of its    *)
(* task that the owner owns (an argument, or an object passed as itself)   *)
(* keeps its entry, and a put keeps its value: nothing could make it       *)
(* again.  (Pinning the arguments only, a rerun got a reference to an      *)
(* object its owner had forgotten.)                                        *)
(***************************************************************************)
MayRebuild(z) ==
    /\ Kind[z] = "task"
    /\ IsUp(ent[z].owner)
    /\ ent[z].obj \in {"ready", "lost"}
    /\ InScope(ent[z])
    /\ ent[z].budget > 0
LineagePinned ==
    \A z \in Objects : MayRebuild(z) =>
        \A x \in OwnRefs(z) :
            /\ ent[x].obj # "none"
            /\ Kind[x] = "put" => ent[x].obj # "freed"

(***************************************************************************)
(* Transparent recovery, its safety half: a get returns an error only when *)
(* recovery was impossible: the object's retries (or those of an argument  *)
(* it failed with) were all spent, or its owner died (and then only when   *)
(* that owner, as the getter knew it, is dead indeed).                     *)
(***************************************************************************)
RECURSIVE Exhausted(_)
Exhausted(x) ==
    \/ why[x] \in {"budget", "owner", "actor", "cancelled"}
    \/ why[x] = "arg" /\ \E y \in Args[x] : Exhausted(y)
RecoveryOnlyWhenImpossible ==
    \A g \in got : g.res # "value" => Exhausted(g.x) \/ (g.res = "OwnerDied" /\ ~IsUp(g.o))

(***************************************************************************)
(* Actors.  CallsInOrder: an actor starts its caller's calls in the order *)
(* they were submitted, and skips none: the calls it ran are a prefix of  *)
(* that order (a call it never ran is one whose actor died first).        *)
(* ActorErrorOnlyIfDead: a call fails with ActorDied only when its actor  *)
(* is gone: the worker that hosted it died (a node crash included), or    *)
(* its creation failed.                                                    *)
(***************************************************************************)
CallsInOrder ==
    \A r \in Actors : \E k \in 0..Len(CallSeq(r)) : actorLog[r].ran = SubSeq(CallSeq(r), 1, k)

ActorGone(r) ==
    \/ why[r] # ""
    \/ actorLog[r].host # NoProc /\ ~IsUp(actorLog[r].host)
ActorErrorOnlyIfDead ==
    \A g \in got : g.res = "ActorDied" => g.x \in Calls /\ ActorGone(Target[g.x])

(***************************************************************************)
(* Liveness.  TransparentRecovery: every get returns (the value, or an     *)
(* error that RecoveryOnlyWhenImpossible allows).  NoLeak: in the end no   *)
(* live owner keeps an entry, no live store a copy, no live node a lease,  *)
(* and every worker is idle.                                               *)
(***************************************************************************)
GetWaits == \E a \in Addrs : IsUp(Cur(a)) /\ AtStep(a, "get")
TransparentRecovery == <>[](~GetWaits)

Clean ==
    /\ \A x \in Objects : IsUp(ent[x].owner) => ent[x].obj = "none"
    /\ \A c \in copies : c.n \in nodeUp => ~IsUp(c.o) /\ c.o \in nknown[c.n].p
    /\ \A n \in nodeUp : leases[n] = {}
    /\ \A a \in Workers : IsUp(Cur(a)) => ex[a].phase = "idle"
    /\ \A a \in Addrs : IsUp(Cur(a)) => \A y \in Objects : brw[a][y].owner # NoProc => ~IsUp(brw[a][y].owner)
NoLeak == <>[]Clean

-----------------------------------------------------------------------------
(***************************************************************************)
(* The protocol keeps the contract of its futures: Ownership refines       *)
(* Futures.  An object's future is pending from its submission, takes its  *)
(* value with its first copy (losing copies later does not unmake it: the  *)
(* value is recovered), and an error when it fails.  It is doomed (its     *)
(* error allowed) once its retries are spent or an argument it needs has   *)
(* failed; the gets are the bodies' gets.                                  *)
(***************************************************************************)
FateOf == [x \in Objects |->
    IF why[x] # "" THEN "error"
    ELSE IF x \in made THEN "value"
    ELSE IF ent[x].obj # "none" THEN "pending"
    ELSE "unmade"]
Doomed ==
    {x \in Objects :
        \/ ent[x].obj # "none" /\ ent[x].budget = 0
        \/ \E y \in Args[x] : why[y] # ""
        \/ why[x] # ""}
Waiting == {x \in Objects : \E a \in Addrs : IsUp(Cur(a)) /\ AtStep(a, "get") /\ StepObj(a) = x}
ToldOf == {[f |-> g.x, res |-> IF g.res = "value" THEN "value" ELSE "error"] : g \in got}

F == INSTANCE Futures WITH Futures <- Objects, fate <- FateOf, doomed <- Doomed,
                             waits <- Waiting, told <- ToldOf
FuturesRefined == F!Spec

=============================================================================
