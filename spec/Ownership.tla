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
    \* Each body, in program order: submit or put a child, get or release
    \* a reference it holds.
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
    /\ Kind \in [Objects -> {"task", "put"}]
    /\ Args \in [Objects -> SUBSET Objects]
    /\ Retries \in [Objects -> Nat]
    /\ MaxCrashes \in Nat
    \* An argument is an object of the same owner, made earlier in its body;
    \* a put has neither arguments nor retries (nothing can make it again).
    /\ \A x \in Objects : \A y \in Args[x] : Parent[y] = Parent[x]
    /\ \A x \in Objects : Kind[x] = "put" => Args[x] = {} /\ Retries[x] = 0
    /\ \A t \in Tasks :
        /\ \A i \in 1..Len(Body[t]) :
              /\ Body[t][i].op \in {"submit", "put", "get", "release"}
              /\ Body[t][i].obj \in Children(t)
              /\ Body[t][i].op = "submit" => Kind[Body[t][i].obj] = "task"
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
\*     submitted: Int, lineage: Int, waiters: Set(<<ADDR, Int>>)};
\* @typeAlias: exec = {x: OBJ, o: <<ADDR, Int>>, att: Int, phase: Str,
\*     arg: OBJ -> Str, at: OBJ -> NODE, val: Set(OBJ), lent: Bool, pc: Int};
\* @typeAlias: lease = {w: <<ADDR, Int>>, o: <<ADDR, Int>>, x: OBJ, lent: Bool};
\* @typeAlias: copy = {x: OBJ, o: <<ADDR, Int>>, n: NODE, val: Set(OBJ)};
\* @typeAlias: deaths = {n: Set(NODE), p: Set(<<ADDR, Int>>)};
\* @typeAlias: msg = {type: Str, x: OBJ, o: <<ADDR, Int>>, w: <<ADDR, Int>>,
\*     n: NODE, r: NODE, att: Int, locs: Set(NODE), val: Set(OBJ), err: Str,
\*     have: Bool, dst: <<ADDR, Int>>, dstNode: NODE};
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
    \* What the bodies' gets returned: a value, or an error.
    \* @type: Set({x: OBJ, res: Str, val: Set(OBJ)});
    got,
    \* Network: messages in flight.
    \* @type: Set($msg);
    msgs,
    \* History, for TransparentRecovery only: why each failed object failed.
    \* @type: OBJ -> Str;
    why,
    \* Auxiliary: the last action and its parameters, for trace replay.
    \* Excluded from the model's VIEW and from every invariant.
    \* @type: $action;
    lastAction

envVars == <<nodeUp, wst, inc, crashes>>
headVars == <<members, announced>>
nodeVars == <<pool, starting, leases, nknown, copies>>
vars == <<nodeUp, wst, inc, crashes, members, announced, pool, starting, leases,
          nknown, copies, ent, ex, known, got, msgs, why, lastAction>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Records.                                                                *)
(***************************************************************************)
TaskStates == {"none", "waiting", "requested", "pushed", "done", "failed"}
ObjStates == {"none", "pending", "ready", "lost", "freed", "failed"}
Phases == {"idle", "fetch", "run"}
ArgStates == {"none", "ask", "pull", "have"}
Errors == {"", "WorkerCrashed", "ObjectLost", "OwnerDied"}

NoLoc == [n |-> NoNode, w |-> NoProc]
NoEntry == [owner |-> NoProc, task |-> "none", req |-> 0, loc |-> NoLoc, att |-> 0,
            budget |-> 0, obj |-> "none", locs |-> {}, err |-> "", local |-> 0,
            submitted |-> 0, lineage |-> 0, waiters |-> {}]
IdleExec == [x |-> NoObj, o |-> NoProc, att |-> 0, phase |-> "idle",
             arg |-> [y \in Objects |-> "none"], at |-> [y \in Objects |-> NoNode],
             val |-> {}, lent |-> FALSE, pc |-> 1]
NoDeaths == [n |-> {}, p |-> {}]

Msg(type, x, o, w, n, r, att, locs, val, err, have, dst, dstNode) ==
    [type |-> type, x |-> x, o |-> o, w |-> w, n |-> n, r |-> r, att |-> att,
     locs |-> locs, val |-> val, err |-> err, have |-> have, dst |-> dst,
     dstNode |-> dstNode]
\* Owner -> scheduler of n; att is the request's number.
RequestLeaseMsg(o, x, q, n) == Msg("RequestLease", x, o, NoProc, n, NoNode, q, {}, {}, "", FALSE, NoProc, n)
LeaseGrantedMsg(o, x, q, n, w) == Msg("LeaseGranted", x, o, w, n, NoNode, q, {}, {}, "", FALSE, o, NoNode)
SpillbackMsg(o, x, q, n, r) == Msg("Spillback", x, o, NoProc, n, r, q, {}, {}, "", FALSE, o, NoNode)
PushTaskMsg(o, x, k, w) == Msg("PushTask", x, o, w, NodeOf(w), NoNode, k, {}, {}, "", FALSE, w, NoNode)
\* Worker w -> owner o: where is x?  locs: nodes w found without a copy.
GetObjectMsg(x, o, w, bad) == Msg("GetObject", x, o, w, NoNode, NoNode, 0, bad, {}, "", FALSE, o, NoNode)
ObjectValueMsg(x, o, w, locs, err) == Msg("ObjectValue", x, o, w, NoNode, NoNode, 0, locs, {}, err, FALSE, w, NoNode)
\* Owner -> worker: x is being made (its task runs, or it is being rebuilt).
ObjectPendingMsg(x, o, w) == Msg("ObjectPending", x, o, w, NoNode, NoNode, 0, {}, {}, "", FALSE, w, NoNode)
\* The reply to the owner: x is stored at n (or failed with err).
TaskReplyMsg(x, o, w, n, k, err) == Msg("TaskReply", x, o, w, n, NoNode, k, {}, {}, err, FALSE, o, NoNode)
ReturnLeaseMsg(w) == Msg("ReturnLease", NoObj, NoProc, w, NodeOf(w), NoNode, 0, {}, {}, "", FALSE, NoProc, NodeOf(w))
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
InScope(e) == e.local > 0 \/ e.submitted > 0
Pending(e) == e.task \in {"waiting", "requested", "pushed"}
Owns(a, x) == ent[x].owner = Cur(a) /\ IsUp(Cur(a))

\* A copy of x in a live store, for its current owner.
LiveCopy(x) == {c \in copies : c.x = x /\ c.o = ent[x].owner /\ c.n \in nodeUp /\ c.n \in ent[x].locs}

\* A worker's scheduler view: CPU taken by leases that are not lent.
Used(n) == Cardinality({l \in leases[n] : ~l.lent})
IdleWorkers(n) == {w \in pool[n] : ~\E l \in leases[n] : l.w = w}
HasFreeCPU(n) == Used(n) < Capacity[n]
CanGrant(n) == HasFreeCPU(n) /\ IdleWorkers(n) # {}
\* The first element of S in the order seq.
First(seq, S) == seq[CHOOSE i \in 1..Len(seq) : seq[i] \in S /\ \A j \in 1..(i - 1) : seq[j] \notin S]
\* The worker a node leases: its first idle one.
GrantTo(n) == LET a == First(WorkerOrder, {w[1] : w \in IdleWorkers(n)}) IN <<a, inc[a]>>
\* Where a node redirects what it cannot grant: the first other member that
\* has a free CPU as far as it knows (a member may have died since).
SpillTargets(n) == {r \in members \ {n} : HasFreeCPU(r)}

\* The processes a node relays notifications to: its registered workers,
\* and the driver on the head node.
Subscribers(n) == pool[n] \cup (IF n = HeadNode THEN {DriverProc} ELSE {})

\* The nodes a lost argument's fetch must not be sent to again.
Bad(a, extra) == known[a].n \cup extra

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
\* What the owner's body waits for at a get, in its next state.
GetTarget(e) ==
    IF e.phase = "run" /\ e.pc <= Len(Body[e.x]) /\ Body[e.x][e.pc].op = "get"
    THEN Body[e.x][e.pc].obj ELSE NoObj

\* The failure of an entry.
Failed(e, err) == [e EXCEPT !.task = "failed", !.obj = "failed", !.err = err, !.loc = NoLoc, !.waiters = {}]
\* The answers to the workers waiting for x at its owner.
Answers(x, e, err) == {ObjectValueMsg(x, e.owner, w, {}, err) : w \in e.waiters}

NeededIn(E, o, g, x) ==
    \/ E[x].waiters # {}
    \/ \E z \in Objects : E[z].owner = o /\ E[z].task = "waiting" /\ x \in Args[z]
    \/ x = g

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
              IN [b EXCEPT !.submitted = @ + Cardinality({z \in ok : x \in Args[z]})]]),
     m |-> S.m \cup UNION {Answers(x, S.e[x], "ObjectLost") : x \in no},
     w |-> TLCEval([x \in Objects |-> IF x \in no THEN NoWayBack(S.e[x], x) ELSE S.w[x]])]

RebuildFrom(S, rb) ==
    RebuildSet(S, {x \in rb : Kind[x] = "task" /\ S.e[x].budget > 0},
                  {x \in rb : ~(Kind[x] = "task" /\ S.e[x].budget > 0)})
Rebuild(S, mine, g) ==
    RebuildFrom(S, {x \in mine : S.e[x].obj \in {"lost", "freed"} /\ NeededIn(S.e, S.e[x].owner, g, x)})


ErrOf(E, x) == E[CHOOSE y \in Args[x] : E[y].obj = "failed"].err
ResolveSets(S, rq, fl) ==
    [e |-> TLCEval([x \in Objects |->
              LET b == IF x \in rq THEN [S.e[x] EXCEPT !.task = "requested", !.req = @ + 1,
                                                       !.loc = [n |-> NodeOf(S.e[x].owner), w |-> NoProc]]
                       ELSE IF x \in fl THEN Failed(S.e[x], ErrOf(S.e, x))
                       ELSE S.e[x]
              IN [b EXCEPT !.submitted = @ - Cardinality({z \in fl : x \in Args[z]})]]),
     m |-> S.m \cup {RequestLeaseMsg(S.e[x].owner, x, S.e[x].req + 1, NodeOf(S.e[x].owner)) : x \in rq}
               \cup UNION {Answers(x, S.e[x], ErrOf(S.e, x)) : x \in fl},
     w |-> TLCEval([x \in Objects |-> IF x \in fl THEN "arg" ELSE S.w[x]])]

Resolve(S, mine) ==
    ResolveSets(S, {x \in mine : S.e[x].task = "waiting" /\ \A y \in Args[x] : S.e[y].obj = "ready"},
                   {x \in mine : S.e[x].task = "waiting" /\ \E y \in Args[x] : S.e[y].obj = "failed"})

FreeSet(S, fr) ==
    [e |-> TLCEval([x \in Objects |-> IF x \in fr THEN [S.e[x] EXCEPT !.obj = "freed", !.locs = {}] ELSE S.e[x]]),
     m |-> S.m \cup UNION {{FreeObjectMsg(x, n) : n \in S.e[x].locs} : x \in fr},
     w |-> S.w]

Free(S, mine) ==
    FreeSet(S, {x \in mine : ~InScope(S.e[x]) /\ S.e[x].obj \in {"ready", "lost"}
                             /\ ~(Kind[x] = "put" /\ S.e[x].lineage > 0)})

ForgetSet(S, fg) ==
    [e |-> TLCEval([x \in Objects |->
              LET b == IF x \in fg THEN NoEntry ELSE S.e[x]
              IN [b EXCEPT !.lineage = @ - Cardinality({z \in fg : x \in Args[z] /\ Retries[z] > 0})]]),
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
        SettleFrom(S0, {x \in Objects : S0.e[x].owner = Cur(a)}, GetTarget(e), MaxPasses)

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
    /\ got = {}
    /\ msgs = {}
    /\ why = [x \in Objects |-> ""]
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
        E == [y \in Objects |->
                IF y = x
                THEN [NoEntry EXCEPT !.owner = Cur(a), !.task = "waiting", !.obj = "pending",
                                     !.budget = Retries[x], !.local = 1]
                ELSE IF y \in Args[x]
                THEN [ent[y] EXCEPT !.submitted = @ + 1,
                                    !.lineage = @ + (IF Retries[x] > 0 THEN 1 ELSE 0)]
                ELSE ent[y]]
        settle == Settle(a, E, msgs, why, e)
    IN
    /\ AtStep(a, "submit")
    /\ StepObj(a) = x
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ settle
    /\ lastAction' = Step("OwnerSubmit", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, headVars, nodeVars, known, got>>

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
    /\ lastAction' = Step("OwnerPut", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, headVars, pool, starting, leases, nknown, known, got>>

(***************************************************************************)
(* get(x) in the owner's body reads a live copy (the pull from a store is *)
(* below this level), or the object's error.  It waits while the object  *)
(* is pending or lost; a lost one is Needed, so it is being rebuilt.     *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.get
HolderGet(a, x) ==
    LET e == [ex[a] EXCEPT !.pc = @ + 1]
        settle == Settle(a, ent, msgs, why, e)
    IN
    /\ AtStep(a, "get")
    /\ StepObj(a) = x
    /\ ent[x].owner = Cur(a)
    /\ \/ /\ ent[x].obj = "ready"
          /\ LiveCopy(x) # {}
          /\ got' = got \cup {[x |-> x, res |-> "value", val |-> (CHOOSE c \in LiveCopy(x) : TRUE).val]}
       \/ /\ ent[x].obj = "failed"
          /\ got' = got \cup {[x |-> x, res |-> ent[x].err, val |-> {}]}
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ settle
    /\ lastAction' = Step("HolderGet", a, x, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, headVars, nodeVars, known>>

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
    /\ UNCHANGED <<envVars, headVars, nodeVars, known, got>>

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
    /\ HasFreeCPU(n)
    /\ IdleWorkers(n) # {}
    /\ LET w == GrantTo(n) IN
        /\ leases' = [leases EXCEPT ![n] = @ \cup {[w |-> w, o |-> m.o, x |-> m.x, lent |-> FALSE]}]
        /\ msgs' = (msgs \ {m}) \cup {LeaseGrantedMsg(m.o, m.x, m.att, n, w)}
    /\ lastAction' = Step("SchedulerGrantLease", NoAddr, m.x, n, m)
    /\ UNCHANGED <<envVars, headVars, pool, starting, nknown, copies, ent, ex, known, got, why>>

(***************************************************************************)
(* A node that cannot grant redirects the owner to a member with a free   *)
(* CPU (spillback); with none, the request waits here.  Its view of the   *)
(* other nodes may be stale: a member may have died, and its CPUs are     *)
(* what they were.                                                         *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.spillback
SchedulerSpillback(n, m) ==
    /\ m \in msgs
    /\ m.type = "RequestLease"
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ ~CanGrant(n)
    /\ SpillTargets(n) # {}
    /\ msgs' = (msgs \ {m}) \cup {SpillbackMsg(m.o, m.x, m.att, n, First(NodeOrder, SpillTargets(n)))}
    /\ lastAction' = Step("SchedulerSpillback", NoAddr, m.x, n, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ent, ex, known, got, why>>

(***************************************************************************)
(* A request waits, a CPU is free, but every worker is busy: the node     *)
(* starts one more worker process, at an address that is free or whose   *)
(* process died (a new incarnation there).                                *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.start_worker
SchedulerStartWorker(n, w) ==
    /\ n \in nodeUp
    /\ w \in Workers /\ WorkerNode[w] = n
    /\ \E m \in msgs : m.type = "RequestLease" /\ m.dstNode = n
    /\ HasFreeCPU(n)
    /\ IdleWorkers(n) = {}
    /\ starting[n] = {}
    /\ \/ wst[w] = "off" /\ inc' = inc
       \/ wst[w] = "dead" /\ inc[w] < MaxIncarnation /\ inc' = [inc EXCEPT ![w] = @ + 1]
    /\ wst' = [wst EXCEPT ![w] = "starting"]
    /\ starting' = [starting EXCEPT ![n] = @ \cup {w}]
    /\ ex' = [ex EXCEPT ![w] = IdleExec]
    /\ known' = [known EXCEPT ![w] = NoDeaths]
    /\ lastAction' = Step("SchedulerStartWorker", w, NoObj, n, NoMsg)
    /\ UNCHANGED <<nodeUp, crashes, headVars, pool, leases, nknown, copies, ent, got, msgs, why>>

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
    /\ UNCHANGED <<nodeUp, inc, crashes, headVars, leases, nknown, copies, ent, ex, got, msgs, why>>

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
          /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(m.o, x, m.att, m.r)}
       \/ /\ current
          /\ m.r \in known[a].n
          /\ ent' = [ent EXCEPT ![x].req = @ + 1, ![x].loc = [n |-> AddrNode(a), w |-> NoProc]]
          /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(m.o, x, e.req + 1, AddrNode(a))}
       \/ /\ ~current
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED ent
    /\ lastAction' = Step("OwnerHandleSpillback", a, x, NoNode, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ex, known, got, why>>

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
          /\ msgs' = (msgs \ {m}) \cup {PushTaskMsg(m.o, x, e.att + 1, m.w)}
       \/ /\ current
          /\ knownDead
          /\ ent' = [ent EXCEPT ![x].req = @ + 1, ![x].loc = [n |-> AddrNode(a), w |-> NoProc]]
          /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(m.o, x, e.req + 1, AddrNode(a))}
       \/ /\ ~current
          /\ ent' = ent
          /\ msgs' = (msgs \ {m}) \cup (IF knownDead THEN {} ELSE {ReturnLeaseMsg(m.w)})
    /\ lastAction' = Step("OwnerHandleGrant", a, x, NoNode, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ex, known, got, why>>

\* impl: impl/ownership/core/scheduler.py::LocalScheduler.release_lease
SchedulerReleaseLease(n, m) ==
    /\ m \in msgs
    /\ m.type = "ReturnLease"
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ leases' = [leases EXCEPT ![n] = {l \in @ : l.w # m.w}]
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("SchedulerReleaseLease", NoAddr, NoObj, n, m)
    /\ UNCHANGED <<envVars, headVars, pool, starting, nknown, copies, ent, ex, known, got, why>>

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
    /\ m \in msgs
    /\ m.type = "PushTask"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ ex[a].phase = "idle"
    /\ IF m.o \in known[a].p
       THEN /\ msgs' = msgs \ {m}
            /\ UNCHANGED ex
       ELSE /\ ex' = [ex EXCEPT ![a] = [IdleExec EXCEPT
                        !.x = m.x, !.o = m.o, !.att = m.att,
                        !.phase = IF Args[m.x] = {} THEN "run" ELSE "fetch",
                        !.arg = [y \in Objects |-> IF y \in Args[m.x] THEN "ask" ELSE "none"],
                        !.val = {m.x}]]
            /\ msgs' = (msgs \ {m}) \cup {GetObjectMsg(y, m.o, Cur(a), Bad(a, {})) : y \in Args[m.x]}
    /\ lastAction' = Step("WorkerReceiveTask", a, m.x, NoNode, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ent, known, got, why>>

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
    /\ UNCHANGED <<envVars, headVars, nodeVars, ex, known, got>>

\* The worker stops waiting for its arguments: it takes back its CPU.
Unblock(a, e) == IF e.lent THEN {WorkerUnblockedMsg(Cur(a))} ELSE {}

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
        e == ex[a]
        live == m.locs \ known[a].n
    IN
    /\ m \in msgs
    /\ m.type = "ObjectValue"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ \/ /\ ~Fetching(a, y, "ask")
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED ex
       \/ /\ Fetching(a, y, "ask")
          /\ m.err # ""
          /\ ex' = [ex EXCEPT ![a] = IdleExec]
          /\ msgs' = (msgs \ {m}) \cup {TaskReplyMsg(e.x, e.o, Cur(a), NoNode, e.att, m.err)}
                                  \cup Unblock(a, e)
       \/ /\ Fetching(a, y, "ask")
          /\ m.err = ""
          /\ live # {}
          /\ \E n \in live :
               /\ AddrNode(a) \in live => n = AddrNode(a)
               /\ ex' = [ex EXCEPT ![a].arg[y] = "pull", ![a].at[y] = n]
          /\ msgs' = msgs \ {m}
       \/ /\ Fetching(a, y, "ask")
          /\ m.err = ""
          /\ live = {}
          /\ msgs' = (msgs \ {m}) \cup {GetObjectMsg(y, m.o, Cur(a), Bad(a, {}))}
          /\ UNCHANGED ex
    /\ lastAction' = Step("WorkerHandleObjectValue", a, y, NoNode, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ent, known, got, why>>

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
    /\ UNCHANGED <<envVars, headVars, nodeVars, ent, known, got, why>>

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
        done == \A z \in Args[e.x] \ {y} : e.arg[z] = "have"
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
    /\ UNCHANGED <<envVars, headVars, nodeVars, ent, known, got, why>>

\* impl: impl/ownership/core/scheduler.py::LocalScheduler.blocked
SchedulerLend(n, m) ==
    /\ m \in msgs
    /\ m.type \in {"WorkerBlocked", "WorkerUnblocked"}
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ leases' = [leases EXCEPT ![n] = {IF l.w = m.w THEN [l EXCEPT !.lent = (m.type = "WorkerBlocked")] ELSE l : l \in @}]
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("SchedulerLend", NoAddr, NoObj, n, m)
    /\ UNCHANGED <<envVars, headVars, pool, starting, nknown, copies, ent, ex, known, got, why>>

(***************************************************************************)
(* The body returned: its value (the lineage: the task and what flowed in *)
(* from its arguments) is pinned at the worker's node, whose store sends  *)
(* the reply (the PutObject to the store is below this level), so the     *)
(* owner never learns of a location before the copy exists.  The refs the *)
(* body still held die with its frame.                                     *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.finish_task
WorkerFinishTask(a) ==
    LET e == ex[a]
        n == AddrNode(a)
        orphan == e.o \in known[a].p \/ e.o \in nknown[n].p
        E == [z \in Objects |-> IF ent[z].owner = Cur(a) THEN [ent[z] EXCEPT !.local = 0] ELSE ent[z]]
        settle == Settle(a, E, msgs \cup (IF orphan THEN {} ELSE {TaskReplyMsg(e.x, e.o, Cur(a), n, e.att, "")}),
                     why, IdleExec)
    IN
    /\ a # Driver
    /\ Running(a)
    /\ e.pc > Len(Body[e.x])
    /\ ex' = [ex EXCEPT ![a] = IdleExec]
    /\ copies' = copies \cup (IF orphan THEN {} ELSE {[x |-> e.x, o |-> e.o, n |-> n, val |-> e.val]})
    /\ settle
    /\ lastAction' = Step("WorkerFinishTask", a, e.x, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, headVars, pool, starting, leases, nknown, known, got>>

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
        done == IF m.err = ""
                THEN [e EXCEPT !.task = "done", !.obj = "ready", !.locs = @ \cup {m.n}, !.loc = NoLoc, !.waiters = {}]
                ELSE Failed(e, m.err)
        keep == e.owner = m.o /\ m.err = "" /\ e.obj \in {"pending", "ready", "lost"}
        E == IF current
             THEN [z \in Objects |->
                     IF z = x THEN done
                     ELSE IF z \in Args[x] THEN [ent[z] EXCEPT !.submitted = @ - 1]
                     ELSE ent[z]]
             ELSE IF keep
             THEN [ent EXCEPT ![x].locs = @ \cup {m.n},
                              ![x].obj = IF e.obj = "lost" /\ ~Pending(e) THEN "ready" ELSE @]
             ELSE ent
        M == IF current
             THEN (msgs \ {m}) \cup {ReturnLeaseMsg(m.w)}
                  \cup {ObjectValueMsg(x, m.o, w, done.locs, done.err) : w \in e.waiters}
             ELSE IF keep \/ m.n = NoNode THEN msgs \ {m}
             ELSE (msgs \ {m}) \cup {FreeObjectMsg(x, m.n)}
        W == IF current /\ m.err # "" THEN [why EXCEPT ![x] = "arg"] ELSE why
        settle == Settle(a, E, M, W, ex[a])
    IN
    /\ m \in msgs
    /\ m.type = "TaskReply"
    /\ m.dst = Cur(a)
    /\ IsUp(Cur(a))
    /\ settle
    /\ lastAction' = Step("OwnerHandleReply", a, x, NoNode, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ex, known, got>>

\* impl: impl/ownership/core/store.py::ObjectStore.free
StoreFree(n, m) ==
    /\ m \in msgs
    /\ m.type = "FreeObject"
    /\ m.dstNode = n
    /\ n \in nodeUp
    /\ copies' = {c \in copies : ~(c.x = m.x /\ c.n = n)}
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("StoreFree", NoAddr, m.x, n, m)
    /\ UNCHANGED <<envVars, headVars, pool, starting, leases, nknown, ent, ex, known, got, why>>

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
    /\ UNCHANGED <<nodeUp, inc, headVars, nodeVars, ent, ex, known, got, msgs, why>>

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
    /\ UNCHANGED <<inc, headVars, nodeVars, ent, ex, known, got, msgs, why>>

\* env: impl/ownership/runtime/memory.py::MemoryNetwork.drop
LoseMessage(m) ==
    /\ m \in msgs
    /\ ~DstAlive(m)
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("LoseMessage", NoAddr, NoObj, NoNode, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, ent, ex, known, got, why>>

(***************************************************************************)
(* A node sees one of its processes exit (a registered worker, or one it  *)
(* was starting): it drops its leases, freeing their CPUs, replaces a     *)
(* pool member at the same address (a recycled port: a new incarnation), *)
(* and publishes the death, through the head, to every member node.       *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.detect_worker_death
SchedulerDetectWorkerDeath(n, w) ==
    LET p == Cur(w)
        registered == p \in pool[n]
        replace == /\ registered
                   /\ Cardinality(pool[n]) - 1 + Cardinality(starting[n])
                         < Cardinality({v \in InitialWorkers : WorkerNode[v] = n})
                   /\ inc[w] < MaxIncarnation
    IN
    /\ n \in nodeUp
    /\ w \in Workers /\ WorkerNode[w] = n
    /\ wst[w] = "dead"
    /\ registered \/ w \in starting[n]
    /\ pool' = [pool EXCEPT ![n] = @ \ {p}]
    /\ leases' = [leases EXCEPT ![n] = {l \in @ : l.w # p}]
    /\ IF replace
       THEN /\ wst' = [wst EXCEPT ![w] = "starting"]
            /\ inc' = [inc EXCEPT ![w] = @ + 1]
            /\ starting' = [starting EXCEPT ![n] = @ \cup {w}]
            /\ ex' = [ex EXCEPT ![w] = IdleExec]
            /\ known' = [known EXCEPT ![w] = NoDeaths]
       ELSE /\ starting' = [starting EXCEPT ![n] = @ \ {w}]
            /\ UNCHANGED <<wst, inc, ex, known>>
    /\ announced' = announced \cup {p}
    /\ msgs' = msgs \cup {WorkerDiedMsg(p, NoProc, r) : r \in members}
    /\ lastAction' = Step("SchedulerDetectWorkerDeath", w, NoObj, n, NoMsg)
    /\ UNCHANGED <<nodeUp, crashes, members, nknown, copies, ent, got, why>>

\* The head misses a node's heartbeats and publishes its death.
\* impl: impl/ownership/core/head.py::HeadCore.detect_node_death
HeadDetectNodeDeath(n) ==
    /\ n \in members
    /\ n \notin nodeUp
    /\ members' = members \ {n}
    /\ announced' = announced \cup {p \in Procs : NodeOf(p) = n /\ p[2] <= inc[p[1]] /\ wst[p[1]] # "off"}
    /\ msgs' = msgs \cup {NodeDiedMsg(n, NoProc, r) : r \in members \ {n}}
    /\ lastAction' = Step("HeadDetectNodeDeath", NoAddr, NoObj, n, NoMsg)
    /\ UNCHANGED <<envVars, nodeVars, ent, ex, known, got, why>>

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
    /\ UNCHANGED <<nodeUp, inc, crashes, headVars, pool, starting, leases, ent, ex, known, got, why>>

(***************************************************************************)
(* A process hears of a death and scans its table (figures 10a, 11a):     *)
(*  - as an owner: a task pending at the dead worker or node is submitted *)
(*    again within its retries (WorkerCrashed when none is left); copies  *)
(*    on a dead node are written off, and an object with none left is    *)
(*    lost (rebuilt if needed, as the table settles); dead waiters go;    *)
(*  - as an executor: a task whose owner died is dropped (it fate-shares, *)
(*    its worker is stopped by its node); a pull from a dead node is      *)
(*    asked again of the owner.                                           *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.handle_failure
ProcessHandleFailure(a, m) ==
    LET D == DeadProcs(m)
        N == DeadNodes(m)
        me == Cur(a)
        Hit(e) == \/ e.task = "pushed" /\ (e.loc.w \in D \/ e.loc.n \in N)
                  \/ e.task = "requested" /\ e.loc.n \in N
        mine == {x \in Objects : ent[x].owner = me}
        retried == {x \in mine : Hit(ent[x]) /\ ent[x].budget > 0}
        failing == {x \in mine : Hit(ent[x]) /\ ent[x].budget = 0}
        Scan(x) ==
            LET e == ent[x]
                e1 == IF x \in retried THEN [e EXCEPT !.task = "waiting", !.budget = @ - 1, !.loc = NoLoc]
                      ELSE IF x \in failing THEN Failed(e, "WorkerCrashed")
                      ELSE e
                left == e1.locs \ N
                e2 == IF e1.obj = "ready" /\ left = {} /\ e1.locs # {}
                      THEN [e1 EXCEPT !.locs = {}, !.obj = "lost"]
                      ELSE [e1 EXCEPT !.locs = left]
            IN [e2 EXCEPT !.waiters = @ \ D,
                          !.submitted = @ - Cardinality({z \in failing : x \in Args[z]})]
        orphan == ex[a].o \in D
        refetch == {y \in Objects : ex[a].phase = "fetch" /\ ex[a].arg[y] = "pull" /\ ex[a].at[y] \in N}
        e == IF orphan THEN IdleExec
             ELSE [ex[a] EXCEPT !.arg = [y \in Objects |-> IF y \in refetch THEN "ask" ELSE @[y]],
                                !.at = [y \in Objects |-> IF y \in refetch THEN NoNode ELSE @[y]]]
        M == (msgs \ {m})
             \cup UNION {Answers(x, ent[x], "WorkerCrashed") : x \in failing}
             \cup (IF orphan THEN {} ELSE {GetObjectMsg(y, ex[a].o, me, Bad(a, N)) : y \in refetch})
        settle == Settle(a, [x \in Objects |-> IF x \in mine THEN Scan(x) ELSE ent[x]], M,
                     [x \in Objects |-> IF x \in failing THEN "budget" ELSE why[x]], e)
    IN
    /\ m \in msgs
    /\ m.type \in {"WorkerDied", "NodeDied"}
    /\ m.dst = me
    /\ IsUp(me)
    /\ known' = [known EXCEPT ![a] = Learn(@, m)]
    /\ ex' = [ex EXCEPT ![a] = e]
    /\ settle
    /\ lastAction' = Step("ProcessHandleFailure", a, NoObj, NoNode, m)
    /\ UNCHANGED <<envVars, headVars, nodeVars, got>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* The program has run: the driver's body is over, no process executes,   *)
(* every death is published and heard, and nothing is in flight.  A       *)
(* stuttering step, so that a real deadlock stays detectable.             *)
(***************************************************************************)
Terminated ==
    /\ ex[Driver].pc > Len(Body[Root])
    /\ \A a \in Workers : IsUp(Cur(a)) => ex[a].phase = "idle"
    /\ \A w \in Workers : wst[w] # "starting"
    /\ msgs = {}
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
    /\ why \in [Objects -> {"", "budget", "arg", "early", "unpinned"}]

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
(* to a worker, not a live worker fetching it for a current task.  (A    *)
(* freed argument of a task that waits is rebuilt before the task goes.) *)
(***************************************************************************)
Fetches(a, x) ==
    /\ IsUp(Cur(a))
    /\ ex[a].phase = "fetch"
    /\ ex[a].arg[x] \in {"ask", "pull"}
    /\ ex[a].o = ent[x].owner
    /\ ent[ex[a].x].owner = ex[a].o /\ ent[ex[a].x].task = "pushed" /\ ent[ex[a].x].att = ex[a].att
MemorySafety ==
    \A x \in Objects :
        ent[x].obj = "freed" /\ IsUp(ent[x].owner) =>
            /\ ent[x].local = 0
            /\ ~\E z \in Objects : ent[z].owner = ent[x].owner /\ ent[z].task \in {"requested", "pushed"} /\ x \in Args[z]
            /\ ~\E a \in Workers : Fetches(a, x)

(***************************************************************************)
(* Lineage is pinned: while a live object may have to be rebuilt (its task *)
(* has retries left and its owner refers to it), each of its arguments    *)
(* keeps its entry, and a put argument keeps its value: nothing could make *)
(* it again.                                                               *)
(***************************************************************************)
MayRebuild(z) ==
    /\ Kind[z] = "task"
    /\ IsUp(ent[z].owner)
    /\ ent[z].obj \in {"ready", "lost"}
    /\ InScope(ent[z])
    /\ ent[z].budget > 0
LineagePinned ==
    \A z \in Objects : MayRebuild(z) =>
        \A x \in Args[z] :
            /\ ent[x].obj # "none"
            /\ Kind[x] = "put" => ent[x].obj # "freed"

(***************************************************************************)
(* Transparent recovery, its safety half: a get returns an error only when *)
(* recovery was impossible: the object's retries (or those of an argument  *)
(* it failed with) were all spent.                                         *)
(***************************************************************************)
RECURSIVE Exhausted(_)
Exhausted(x) ==
    \/ why[x] = "budget"
    \/ why[x] = "arg" /\ \E y \in Args[x] : Exhausted(y)
RecoveryOnlyWhenImpossible ==
    \A g \in got : g.res # "value" => Exhausted(g.x)

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
NoLeak == <>[]Clean

=============================================================================
