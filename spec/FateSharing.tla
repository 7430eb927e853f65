----------------------------- MODULE FateSharing -----------------------------
(***************************************************************************)
(* Failure recovery under ownership: Wang et al., "Ownership: A            *)
(* Distributed Futures System for Fine-Grained Tasks", NSDI 2021, section  *)
(* 4.3 and figures 10 and 11.                                              *)
(*                                                                         *)
(* The caller of a task owns the object the task returns, and the owner is *)
(* the one process that decides how that object is recovered.  A program   *)
(* is a static tree of tasks: the driver's program (Root) submits tasks,   *)
(* and the worker that executes a task becomes the owner of the tasks its  *)
(* body submits.  Bodies also pass references on (first-class, "shared"),  *)
(* which makes the receiving worker a borrower, and dereference them       *)
(* ("get").  Each object has one lineage: its task and that task's         *)
(* by-value arguments, which are objects of the same owner.                *)
(*                                                                         *)
(* Workers and nodes fail (at most MaxCrashes times in all).  A node's     *)
(* scheduler publishes the deaths of its workers, the head publishes node  *)
(* deaths (with FalseSuspicion, also of a node that is still up: its       *)
(* connection dropped and the head's probes went unanswered; the node is   *)
(* fenced, told so, and stops), to every process that subscribed: owners   *)
(* to the workers running their tasks and to the nodes holding their       *)
(* copies, holders to the owners of their references, object stores to     *)
(* the owners of the copies they pin.  On a notification a process first   *)
(* fails every holder of a reference whose owner died (fate-sharing,       *)
(* OwnerDiedError), then scans                                             *)
(* its ownership table: a task whose worker died is re-executed, an object *)
(* whose copies are all gone is reconstructed from lineage when it is      *)
(* needed, recursively for lost arguments, each within the task's retry    *)
(* budget; an object out of budget becomes the error value.  When the dead *)
(* process was itself an owner, its owner re-executes its task, and the    *)
(* new execution submits the children again: that recreates the objects    *)
(* the holders shared their fate with.                                     *)
(*                                                                         *)
(* Abstractions.  A worker here is one execution of one task (one lease):  *)
(* Ray reuses worker processes, but a worker's fate is that of the tasks   *)
(* it runs, so one process per execution loses no failure case and keeps   *)
(* the model finite.  The lease protocol of section 4.1 is folded into     *)
(* OwnerDispatch (Scheduling models it), and reference counting and        *)
(* freeing of section 4.2 are left out (RefCounting models them): owned    *)
(* entries stay in the table.  A get is one step that reads the owner's    *)
(* table and a copy: the GetObject / ObjectValue round trip with a live    *)
(* owner; a get whose owner is dead is never answered.  A value is the set *)
(* of tasks whose results flowed into it (its lineage), so a task that     *)
(* runs with a wrong argument produces a wrong value.                      *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    \* Every task of the program; Root is the driver's own program.
    \* @type: Set(TASK);
    Tasks,
    \* @type: TASK;
    Root,
    \* Parent[x]: the task whose body submits x (and so owns x's object).
    \* @type: TASK -> TASK;
    Parent,
    \* By-value arguments: the executor reads their values.
    \* @type: TASK -> Set(TASK);
    Args,
    \* First-class references passed to the task: the executor borrows them.
    \* @type: TASK -> Set(TASK);
    SharedArgs,
    \* Each task's body, in program order: submit a child or get a reference.
    \* @type: TASK -> Seq({ op: Str, obj: TASK });
    Body,
    \* The task option max_retries: re-executions and reconstructions.
    \* @type: TASK -> Int;
    Retries,
    \* The scheduling policy (section 4.1, abstracted): the node each task
    \* runs on while that node lives; the head node takes it otherwise.
    \* @type: TASK -> NODE;
    Placement,
    \* @type: Set(NODE);
    Nodes,
    \* The head node hosts the driver; its loss ends the job, so it never fails.
    \* @type: NODE;
    HeadNode,
    \* Null node, so that every message record has the same fields.
    \* @type: NODE;
    NoNode,
    \* @type: Int;
    MaxCrashes,
    \* Whether the head may declare dead a node that is still up (a false
    \* suspicion, which uses one crash of the budget: the node is fenced).
    \* @type: Bool;
    FalseSuspicion

Objects == Tasks \ {Root}
Children(t) == {x \in Objects : Parent[x] = t}

\* Each crash recreates each task at most once more, so MaxCrashes + 1
\* executions of a task suffice; OwnerDispatch blocking on this bound would
\* show up as a deadlock.
MaxExec == MaxCrashes + 1
Driver == <<Root, 1>>
NoWorker == <<Root, 0>>
Workers == {Driver} \cup (Objects \X (1..MaxExec))

ASSUME
    /\ Root \in Tasks
    /\ Parent \in [Objects -> Tasks]
    /\ Args \in [Objects -> SUBSET Objects]
    /\ SharedArgs \in [Objects -> SUBSET Objects]
    /\ Retries \in [Objects -> Nat]
    /\ Placement \in [Objects -> Nodes]
    /\ HeadNode \in Nodes /\ NoNode \notin Nodes
    /\ MaxCrashes \in Nat
    /\ FalseSuspicion \in BOOLEAN
    \* A by-value argument is an earlier object of the same owner.
    /\ \A x \in Objects : \A y \in Args[x] : Parent[y] = Parent[x]
    \* A body submits each of its children once, and gets and shares only
    \* references it holds: its own children or what it borrowed.
    /\ \A t \in Tasks :
        /\ \A i \in 1..Len(Body[t]) : Body[t][i].op \in {"submit", "get"}
        /\ {Body[t][i].obj : i \in {j \in 1..Len(Body[t]) : Body[t][j].op = "submit"}} = Children(t)
        /\ \A i \in 1..Len(Body[t]) : Body[t][i].obj \in Children(t) \cup (IF t = Root THEN {} ELSE SharedArgs[t])
        /\ \A x \in Children(t) : SharedArgs[x] \subseteq Children(t) \cup (IF t = Root THEN {} ELSE SharedArgs[t])

-----------------------------------------------------------------------------
(***************************************************************************)
(* A reference is <<object, owner>>: an object id carries its owner's      *)
(* address.  A re-executed parent recreates an object with the same id and *)
(* a new owner, so old and new references differ in the owner.             *)
(***************************************************************************)
Refs == Objects \X Workers
Errors == {"ObjectLost", "WorkerCrashed", "OwnerDied"}

\* @typeAlias: ref = <<TASK, <<TASK, Int>>>>;
\* @typeAlias: entry = { st: Str, worker: <<TASK, Int>>, locs: Set(NODE), budget: Int, err: Str };
\* @typeAlias: ctx = { owner: <<TASK, Int>>, borrowed: Set($ref), pc: Int, body: Str, val: Set(TASK) };
\* @typeAlias: copy = { obj: TASK, owner: <<TASK, Int>>, node: NODE, val: Set(TASK) };
\* @typeAlias: result = { obj: TASK, res: Str, val: Set(TASK) };
\* @typeAlias: msg = { type: Str, task: TASK, owner: <<TASK, Int>>, worker: <<TASK, Int>>, node: NODE, shared: Set($ref), err: Str, dst: <<TASK, Int>>, dstNode: NODE };
\* @typeAlias: action = { name: Str, params: { w: <<TASK, Int>>, x: TASK, n: NODE, m: $msg } };
FateSharingAliases == TRUE

VARIABLES
    \* Environment: live nodes and the crash budget spent.
    \* @type: Set(NODE);
    up,
    \* @type: Int;
    crashes,
    \* Worker processes: "unborn" until an owner leases it for a task.
    \* @type: <<TASK, Int>> -> Str;
    status,
    \* @type: <<TASK, Int>> -> NODE;
    nodeOf,
    \* The task execution: who owns its result, what it borrowed, where its
    \* body is, and the value it computes from its arguments.
    \* @type: <<TASK, Int>> -> $ctx;
    ctx,
    \* Results of the body's gets: a value, or an error.
    \* @type: <<TASK, Int>> -> Set($result);
    got,
    \* Ownership tables: table[w][x] for the children x of w's task.
    \* @type: <<TASK, Int>> -> (TASK -> $entry);
    table,
    \* Object stores: the pinned primary copies.
    \* @type: Set($copy);
    copies,
    \* Failure detection: the deaths published so far (the head's tables).
    \* @type: Set(<<TASK, Int>>);
    announced,
    \* @type: Set(NODE);
    announcedNodes,
    \* Network: messages in flight.
    \* @type: Set($msg);
    msgs,
    \* Auxiliary: the last action and its parameters, for trace replay.
    \* Excluded from the model's VIEW and from every invariant.
    \* @type: $action;
    lastAction

vars == <<up, crashes, status, nodeOf, ctx, got, table, copies, announced,
          announcedNodes, msgs, lastAction>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Helpers.                                                                *)
(***************************************************************************)
\* The lineage value of an object: the tasks whose results flowed into it.
\* (Apalache unrolls the recursion: lineages are shorter than the program.)
RECURSIVE LineageValue(_)
\* @type: TASK => Set(TASK);
LineageValue(x) == {x} \cup UNION {LineageValue(y) : y \in Args[x]}

UNROLL_DEFAULT_LineageValue == {}
UNROLL_LIMIT_LineageValue == 8

EntryStates == {"none", "waiting", "pending", "ready", "lost", "retry", "error"}
BodyStates == {"idle", "running", "finished", "failed"}
Results == {"value"} \cup Errors

NoEntry == [st |-> "none", worker |-> NoWorker, locs |-> {}, budget |-> 0, err |-> ""]
IdleCtx == [owner |-> NoWorker, borrowed |-> {}, pc |-> 1, body |-> "idle", val |-> {}]

Msg(type, x, o, w, n, shared, err, dst, dstNode) ==
    [type |-> type, task |-> x, owner |-> o, worker |-> w, node |-> n,
     shared |-> shared, err |-> err, dst |-> dst, dstNode |-> dstNode]
PushTaskMsg(x, o, w, n, shared) == Msg("PushTask", x, o, w, n, shared, "", w, NoNode)
TaskReplyMsg(x, o, w, n, err) == Msg("TaskReply", x, o, w, n, {}, err, o, NoNode)
WorkerDiedMsg(w, n, p) == Msg("WorkerDied", Root, NoWorker, w, n, {}, "", p, NoNode)
NodeDiedMsg(n, p) == Msg("NodeDied", Root, NoWorker, NoWorker, n, {}, "", p, NoNode)
WorkerDiedStoreMsg(w, n, s) == Msg("WorkerDied", Root, NoWorker, w, n, {}, "", NoWorker, s)
NodeDiedStoreMsg(n, s) == Msg("NodeDied", Root, NoWorker, NoWorker, n, {}, "", NoWorker, s)
NoMsg == Msg("None", Root, NoWorker, NoWorker, NoNode, {}, "", NoWorker, NoNode)
IsNotification(m) == m.type \in {"WorkerDied", "NodeDied"}

\* A message to a dead process is lost with its connection.
Deliverable(m) == (m.dst = NoWorker \/ status[m.dst] = "alive") /\ (m.dstNode = NoNode \/ m.dstNode \in up)
Send(ms) == {m \in ms : Deliverable(m)}

Step(name, w, x, n, m) == [name |-> name, params |-> [w |-> w, x |-> x, n |-> n, m |-> m]]

Born(w) == status[w] # "unborn"
Alive(w) == w # NoWorker /\ status[w] = "alive"
Owns(w) == \E x \in DOMAIN table[w] : table[w][x].st # "none"

\* The workers a notification reports dead.
DeadIn(m) ==
    IF m.type = "WorkerDied" THEN {m.worker}
    ELSE {w \in Workers : Born(w) /\ nodeOf[w] = m.node}

\* The head's tables: what a process that subscribes now is told at once.
DeathAnnounced(o) == o \in announced \/ (Born(o) /\ nodeOf[o] \in announcedNodes)

\* The scheduling policy's pick for x: its node while the cluster counts it
\* alive (a fenced node may still be up, but no scheduler sends it work).
PlaceOf(x) == IF Placement[x] \in up \ announcedNodes THEN Placement[x] ELSE HeadNode

\* The next execution slot of task x.
FreeExecs(x) == {k \in 1..MaxExec : status[<<x, k>>] = "unborn"}
NextExec(x) == CHOOSE k \in FreeExecs(x) : \A j \in FreeExecs(x) : k <= j

\* Body of an execution.
Running(w) == Alive(w) /\ ctx[w].body = "running"
AtStep(w, op) ==
    /\ Running(w)
    /\ ctx[w].pc <= Len(Body[w[1]])
    /\ Body[w[1]][ctx[w].pc].op = op
StepObj(w) == Body[w[1]][ctx[w].pc].obj
WaitingFor(w, x) == AtStep(w, "get") /\ StepObj(w) = x

Gets(t) == {Body[t][i].obj : i \in {j \in 1..Len(Body[t]) : Body[t][j].op = "get"}}

\* The reference to x that w holds: its own child, or what it borrowed.
RefOf(w, x) ==
    IF Parent[x] = w[1] THEN <<x, w>>
    ELSE CHOOSE r \in ctx[w].borrowed : r[1] = x
SharedRefs(o, x) == {RefOf(o, y) : y \in SharedArgs[x]}

\* References a running body holds whose owner is another process: what it
\* borrowed, and its own return object (owned by its caller).  The body's
\* own children are owned by itself and cannot dangle while it lives.
HeldRefs(h) ==
    IF Running(h) /\ h # Driver
    THEN ctx[h].borrowed \cup {<<h[1], ctx[h].owner>>}
    ELSE {}

\* Live copies of x owned by o.
LiveCopies(x, o) == {c \in copies : c.obj = x /\ c.owner = o /\ c.node \in up}
\* An argument the owner reports failed (the worker's pull asks the owner).
ArgFailed(o, y) == Alive(o) /\ table[o][y].st = "error"
ArgValue(o, y) ==
    IF LiveCopies(y, o) = {} THEN {} ELSE (CHOOSE c \in LiveCopies(y, o) : TRUE).val

\* Someone waits for x at its owner o: a waiting task of o takes it as an
\* argument, a pushed task's worker is pulling it, or a holder's get is
\* pending.  Lineage reconstruction is lazy, as in Ray: it runs only then.
Needed(o, x) ==
    \/ \E y \in DOMAIN table[o] : table[o][y].st = "waiting" /\ x \in Args[y]
    \/ \E m \in msgs : m.type = "PushTask" /\ m.owner = o /\ Alive(m.dst) /\ x \in Args[m.task]
    \/ \E h \in Workers : WaitingFor(h, x) /\ RefOf(h, x) = <<x, o>>

\* Subscriptions: who must hear that the workers D (and nodes N) died.
Interested(p, D, N) ==
    /\ Alive(p)
    /\ \/ \E x \in DOMAIN table[p] :
            \/ table[p][x].st = "pending" /\ table[p][x].worker \in D
            \/ table[p][x].st = "ready" /\ table[p][x].locs \cap N # {}
       \/ \E r \in HeldRefs(p) : r[2] \in D
StoreInterested(s, D) == s \in up /\ \E c \in copies : c.node = s /\ c.owner \in D

-----------------------------------------------------------------------------
Init ==
    /\ up = Nodes
    /\ crashes = 0
    /\ status = [w \in Workers |-> IF w = Driver THEN "alive" ELSE "unborn"]
    /\ nodeOf = [w \in Workers |-> HeadNode]
    /\ ctx = [w \in Workers |-> IF w = Driver THEN [IdleCtx EXCEPT !.body = "running"] ELSE IdleCtx]
    /\ got = [w \in Workers |-> {}]
    /\ table = [w \in Workers |-> [x \in Children(w[1]) |-> NoEntry]]
    /\ copies = {}
    /\ announced = {}
    /\ announcedNodes = {}
    /\ msgs = {}
    /\ lastAction = Step("Init", NoWorker, Root, NoNode, NoMsg)

-----------------------------------------------------------------------------
(***************************************************************************)
(* f.remote() in a body: the caller becomes the owner and writes the       *)
(* lineage into its table (task, arguments, retry budget).  Arguments are  *)
(* resolved before dispatch, so the entry waits.                           *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.submit
OwnerSubmit(o, x) ==
    /\ AtStep(o, "submit")
    /\ StepObj(o) = x
    /\ table' = [table EXCEPT ![o][x] =
                    [st |-> "waiting", worker |-> NoWorker, locs |-> {},
                     budget |-> Retries[x], err |-> ""]]
    /\ ctx' = [ctx EXCEPT ![o].pc = @ + 1]
    /\ lastAction' = Step("OwnerSubmit", o, x, NoNode, NoMsg)
    /\ UNCHANGED <<up, crashes, status, nodeOf, got, copies, announced,
                   announcedNodes, msgs>>

(***************************************************************************)
(* Once every by-value argument exists (or has failed: the error travels   *)
(* as the argument), the owner leases a worker on the node the scheduling  *)
(* policy picks (the task's node while it lives), records it               *)
(* as the pending location BEFORE sending the task there (section 4.1: the *)
(* owner always knows where its task is), and pushes the task with the     *)
(* references it shares.                                                   *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_grant
OwnerDispatch(o, x, n) ==
    /\ Alive(o)
    /\ x \in DOMAIN table[o]
    /\ table[o][x].st = "waiting"
    /\ \A y \in Args[x] : table[o][y].st \in {"ready", "error"}
    /\ n = PlaceOf(x)
    /\ FreeExecs(x) # {}
    /\ LET w == <<x, NextExec(x)>>
       IN /\ table' = [table EXCEPT ![o][x].st = "pending", ![o][x].worker = w]
          /\ status' = [status EXCEPT ![w] = "alive"]
          /\ nodeOf' = [nodeOf EXCEPT ![w] = n]
          /\ msgs' = msgs \cup {PushTaskMsg(x, o, w, n, SharedRefs(o, x))}
    /\ lastAction' = Step("OwnerDispatch", o, x, n, NoMsg)
    /\ UNCHANGED <<up, crashes, ctx, got, copies, announced, announcedNodes>>

(***************************************************************************)
(* The worker receives the task.  It subscribes to the owners of the       *)
(* references it now holds (its caller, and the owners of what it borrows) *)
(* and the head answers at once for an owner already announced dead: then  *)
(* the task fails with OwnerDied before it runs.  Otherwise it waits until *)
(* every by-value argument can be read from a live copy, or its owner      *)
(* reports it failed (the error propagates as the task's result), and runs *)
(* the body with the argument values.                                      *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.execute
WorkerExecute(w) ==
    \E m \in msgs :
       /\ m.type = "PushTask"
       /\ m.dst = w
       /\ Alive(w)
       /\ ctx[w].body = "idle"
       /\ LET x == m.task
              o == m.owner
              doomed == \E r \in m.shared \cup {<<x, o>>} : DeathAnnounced(r[2])
              failedArgs == {y \in Args[x] : LiveCopies(y, o) = {} /\ ArgFailed(o, y)}
          IN \/ /\ doomed
                /\ ctx' = [ctx EXCEPT ![w] = [IdleCtx EXCEPT !.owner = o, !.body = "failed"]]
                /\ msgs' = (msgs \ {m}) \cup
                           (IF DeathAnnounced(o) THEN {} ELSE Send({TaskReplyMsg(x, o, w, nodeOf[w], "OwnerDied")}))
             \/ /\ ~doomed
                /\ \A y \in Args[x] : LiveCopies(y, o) # {} \/ ArgFailed(o, y)
                /\ IF failedArgs # {}
                   THEN /\ ctx' = [ctx EXCEPT ![w] = [IdleCtx EXCEPT !.owner = o, !.body = "failed"]]
                        /\ msgs' = (msgs \ {m}) \cup
                                   Send({TaskReplyMsg(x, o, w, nodeOf[w], table[o][CHOOSE y \in failedArgs : TRUE].err)})
                   ELSE /\ ctx' = [ctx EXCEPT ![w] =
                                     [owner |-> o, borrowed |-> m.shared, pc |-> 1, body |-> "running",
                                      val |-> {x} \cup UNION {ArgValue(o, y) : y \in Args[x]}]]
                        /\ msgs' = msgs \ {m}
       /\ lastAction' = Step("WorkerExecute", w, m.task, NoNode, m)
       /\ UNCHANGED <<up, crashes, status, nodeOf, got, table, copies, announced,
                      announcedNodes>>

(***************************************************************************)
(* The body has returned: the worker puts the value into its node's store, *)
(* which pins the primary copy on the owner's behalf and subscribes to the *)
(* owner's death (an owner already announced dead gets no copy pinned),    *)
(* and replies to the owner with the copy's location.                      *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.finish_task
WorkerFinishTask(w) ==
    /\ Running(w)
    /\ ctx[w].pc > Len(Body[w[1]])
    /\ ctx' = [ctx EXCEPT ![w].body = "finished"]
    /\ IF w = Driver \/ DeathAnnounced(ctx[w].owner)
       THEN UNCHANGED <<copies, msgs>>
       ELSE /\ copies' = copies \cup {[obj |-> w[1], owner |-> ctx[w].owner,
                                       node |-> nodeOf[w], val |-> ctx[w].val]}
            /\ msgs' = msgs \cup Send({TaskReplyMsg(w[1], ctx[w].owner, w, nodeOf[w], "")})
    /\ lastAction' = Step("WorkerFinishTask", w, w[1], NoNode, NoMsg)
    /\ UNCHANGED <<up, crashes, status, nodeOf, got, table, announced, announcedNodes>>

(***************************************************************************)
(* The owner records the result of the execution it dispatched last; a     *)
(* reply from an execution it already gave up on is stale and dropped.     *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_reply
OwnerHandleReply(o) ==
    \E m \in msgs :
       /\ m.type = "TaskReply"
       /\ m.dst = o
       /\ Alive(o)
       /\ msgs' = msgs \ {m}
       /\ IF table[o][m.task].st = "pending" /\ table[o][m.task].worker = m.worker
          THEN table' = [table EXCEPT ![o][m.task] =
                           IF m.err = ""
                           THEN [@ EXCEPT !.st = "ready", !.locs = {m.node}]
                           ELSE [@ EXCEPT !.st = "error", !.err = m.err]]
          ELSE UNCHANGED table
       /\ lastAction' = Step("OwnerHandleReply", o, m.task, NoNode, m)
       /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                      announcedNodes>>

(***************************************************************************)
(* get(x): the holder asks x's owner, which answers from its table once    *)
(* the object exists (the value, read from a live copy) or has failed (the *)
(* error).  The owner handles a lost object meanwhile; a dead owner never  *)
(* answers, and the holder waits for the notification to fate-share.       *)
(***************************************************************************)
\* impl: impl/ownership/core/refcount.py::ReferenceCounter.get
HolderGet(h, x) ==
    /\ WaitingFor(h, x)
    /\ LET o == RefOf(h, x)[2]
           e == table[o][x]
       IN /\ Alive(o)
          /\ \/ /\ e.st = "ready"
                /\ \E c \in LiveCopies(x, o) :
                      /\ c.node \in e.locs
                      /\ got' = [got EXCEPT ![h] = @ \cup {[obj |-> x, res |-> "value", val |-> c.val]}]
             \/ /\ e.st = "error"
                /\ got' = [got EXCEPT ![h] = @ \cup {[obj |-> x, res |-> e.err, val |-> {}]}]
    /\ ctx' = [ctx EXCEPT ![h].pc = @ + 1]
    /\ lastAction' = Step("HolderGet", h, x, NoNode, NoMsg)
    /\ UNCHANGED <<up, crashes, status, nodeOf, table, copies, announced,
                   announcedNodes, msgs>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Failures (environment).  A worker process dies; an owner is a worker    *)
(* that owns objects, named apart because its death is what fate-sharing   *)
(* is about; a node dies with its workers and its store.  Messages to the  *)
(* dead are lost with the connections, then and later (Send).              *)
(***************************************************************************)
Kill(dead) ==
    msgs' = {m \in msgs : m.dst \notin dead}

\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
WorkerCrash(w) ==
    /\ crashes < MaxCrashes
    /\ w # Driver
    /\ Alive(w)
    /\ ~Owns(w)
    /\ status' = [status EXCEPT ![w] = "dead"]
    /\ crashes' = crashes + 1
    /\ Kill({w})
    /\ lastAction' = Step("WorkerCrash", w, Root, NoNode, NoMsg)
    /\ UNCHANGED <<up, nodeOf, ctx, got, table, copies, announced, announcedNodes>>

\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
OwnerCrash(o) ==
    /\ crashes < MaxCrashes
    /\ o # Driver
    /\ Alive(o)
    /\ Owns(o)
    /\ status' = [status EXCEPT ![o] = "dead"]
    /\ crashes' = crashes + 1
    /\ Kill({o})
    /\ lastAction' = Step("OwnerCrash", o, Root, NoNode, NoMsg)
    /\ UNCHANGED <<up, nodeOf, ctx, got, table, copies, announced, announcedNodes>>

\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
NodeCrash(n) ==
    /\ crashes < MaxCrashes
    /\ n # HeadNode
    /\ n \in up
    /\ LET dead == {w \in Workers : Alive(w) /\ nodeOf[w] = n}
       IN /\ status' = [w \in Workers |-> IF w \in dead THEN "dead" ELSE status[w]]
          /\ msgs' = {m \in msgs : m.dst \notin dead /\ m.dstNode # n}
    /\ up' = up \ {n}
    /\ copies' = {c \in copies : c.node # n}
    /\ crashes' = crashes + 1
    /\ lastAction' = Step("NodeCrash", NoWorker, Root, n, NoMsg)
    /\ UNCHANGED <<nodeOf, ctx, got, table, announced, announcedNodes>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Failure detection (section 4.3): workers do not heartbeat each other.   *)
(* A node's scheduler sees its worker process exit and publishes           *)
(* WorkerDied; the head publishes NodeDied (which covers every worker of   *)
(* that node) when the node's connection drops and fresh dials of it fail, *)
(* or when it misses its heartbeats.  Neither proves the node is gone: a   *)
(* node cut off from the head, or hung for a while, is declared dead while *)
(* it is up (FalseSuspicion).  Such a node is fenced: the head never takes *)
(* it back, and sends it its own death notice (answering whatever it       *)
(* sends), on which it stops with its workers and its store (NodeFenced).  *)
(* The probe is folded into the step: its failure is the choice to         *)
(* detect.  Each notice goes to the processes                              *)
(* subscribed to the dead: owners of tasks pending there or of copies      *)
(* there, holders of references the dead owned, stores pinning its copies. *)
(* Processes that subscribe later ask the head (DeathAnnounced).           *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.detect_worker_death
SchedulerDetectWorkerDeath(n, w) ==
    /\ n \in up
    /\ status[w] = "dead"
    /\ nodeOf[w] = n
    /\ w \notin announced
    /\ announced' = announced \cup {w}
    /\ msgs' = msgs
               \cup {WorkerDiedMsg(w, n, p) : p \in {p \in Workers : Interested(p, {w}, {})}}
               \cup {WorkerDiedStoreMsg(w, n, s) : s \in {s \in Nodes : StoreInterested(s, {w})}}
    /\ lastAction' = Step("SchedulerDetectWorkerDeath", w, Root, n, NoMsg)
    /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, table, copies, announcedNodes>>

\* impl: impl/ownership/core/head.py::HeadCore.detect_node_death
HeadDetectNodeDeath(n) ==
    /\ n \notin announcedNodes
    /\ \/ n \notin up
       \/ /\ FalseSuspicion
          /\ n \in up
          /\ n # HeadNode
          /\ crashes < MaxCrashes
    /\ announcedNodes' = announcedNodes \cup {n}
    /\ crashes' = IF n \in up THEN crashes + 1 ELSE crashes
    /\ LET D == {w \in Workers : Born(w) /\ nodeOf[w] = n}
       IN msgs' = msgs
                  \cup {NodeDiedMsg(n, p) : p \in {p \in Workers : Interested(p, D, {n})}}
                  \cup {NodeDiedStoreMsg(n, s) : s \in {s \in Nodes \ {n} : StoreInterested(s, D)}}
                  \cup (IF n \in up THEN {NodeDiedStoreMsg(n, n)} ELSE {})  \* the fence
    /\ lastAction' = Step("HeadDetectNodeDeath", NoWorker, Root, n, NoMsg)
    /\ UNCHANGED <<up, status, nodeOf, ctx, got, table, copies, announced>>

\* A node hears that the head declared it dead: it stops, with its workers
\* and its store, as a crashed node would.  Its processes' deaths are
\* announced already (the node's), so nobody waits for them.
\* impl: impl/ownership/core/node.py::NodeCore.fenced
NodeFenced(n) ==
    \E m \in msgs :
       /\ m.type = "NodeDied"
       /\ m.node = n
       /\ m.dstNode = n
       /\ n \in up
       /\ LET dead == {w \in Workers : Alive(w) /\ nodeOf[w] = n}
          IN /\ status' = [w \in Workers |-> IF w \in dead THEN "dead" ELSE status[w]]
             /\ msgs' = {mm \in msgs : mm.dst \notin dead /\ mm.dstNode # n}
       /\ up' = up \ {n}
       /\ copies' = {c \in copies : c.node # n}
       /\ lastAction' = Step("NodeFenced", NoWorker, Root, n, m)
       /\ UNCHANGED <<crashes, nodeOf, ctx, got, table, announced, announcedNodes>>

(***************************************************************************)
(* Fate-sharing (figure 11): a holder of a reference whose owner died      *)
(* fails with OwnerDiedError.  A task whose own caller died is the holder  *)
(* of its return reference: its lease is reclaimed, and it replies to      *)
(* nobody; any other failing task reports OwnerDied to its live owner.     *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.fate_share
HolderFateShare(h, x) ==
    /\ Running(h)
    /\ \E r \in HeldRefs(h) :
          /\ r[1] = x
          /\ \E m \in msgs : IsNotification(m) /\ m.dst = h /\ r[2] \in DeadIn(m)
    /\ ctx' = [ctx EXCEPT ![h].body = "failed"]
    /\ msgs' = msgs \cup (IF DeathAnnounced(ctx[h].owner) THEN {}
                          ELSE Send({TaskReplyMsg(h[1], ctx[h].owner, h, nodeOf[h], "OwnerDied")}))
    /\ lastAction' = Step("HolderFateShare", h, x, NoNode, NoMsg)
    /\ UNCHANGED <<up, crashes, status, nodeOf, got, table, copies, announced,
                   announcedNodes>>

(***************************************************************************)
(* The table scan (figures 10a, 11a), once the process's holders have      *)
(* fate-shared: a task pending on a dead worker must be re-executed; a     *)
(* ready object loses the locations on a dead node, and is lost when none  *)
(* is left.                                                                *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.handle_failure
OwnerHandleFailure(o) ==
    \E m \in msgs :
       /\ IsNotification(m)
       /\ m.dst = o
       /\ Alive(o)
       /\ ~\E r \in HeldRefs(o) : r[2] \in DeadIn(m)
       /\ LET D == DeadIn(m)
              N == IF m.type = "NodeDied" THEN {m.node} ELSE {}
          IN table' = [table EXCEPT ![o] = [x \in DOMAIN table[o] |->
                         LET e == table[o][x] IN
                         IF e.st = "pending" /\ e.worker \in D
                         THEN [e EXCEPT !.st = "retry"]
                         ELSE IF e.st = "ready" /\ e.locs \cap N # {}
                         THEN [e EXCEPT !.st = IF e.locs \ N = {} THEN "lost" ELSE "ready",
                                        !.locs = e.locs \ N]
                         ELSE e]]
       /\ msgs' = msgs \ {m}
       /\ lastAction' = Step("OwnerHandleFailure", o, Root, NoNode, m)
       /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                      announcedNodes>>

(***************************************************************************)
(* The object store frees the copies whose owner died (figure 11b).        *)
(***************************************************************************)
\* impl: impl/ownership/core/store.py::ObjectStore.handle_failure
StoreHandleFailure(s) ==
    \E m \in msgs :
       /\ IsNotification(m)
       /\ m.dstNode = s
       /\ m.node # s \/ m.type = "WorkerDied"
       /\ s \in up
       /\ copies' = {c \in copies : ~(c.node = s /\ c.owner \in DeadIn(m))}
       /\ msgs' = msgs \ {m}
       /\ lastAction' = Step("StoreHandleFailure", NoWorker, Root, s, m)
       /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, table, announced,
                      announcedNodes>>

(***************************************************************************)
(* Re-execution: the worker running x died, so its owner submits x again,  *)
(* within x's retry budget.  When that worker was itself an owner, this is *)
(* the dead owner's owner re-executing the dead owner's task, which makes  *)
(* the new execution submit (and so recreate) the children again.          *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.reexecute
OwnerReexecute(o, x) ==
    /\ Alive(o)
    /\ x \in DOMAIN table[o]
    /\ table[o][x].st = "retry"
    /\ table' = [table EXCEPT ![o][x] =
                   IF @.budget > 0 THEN [@ EXCEPT !.st = "waiting", !.budget = @ - 1]
                   ELSE [@ EXCEPT !.st = "error", !.err = "WorkerCrashed"]]
    /\ lastAction' = Step("OwnerReexecute", o, x, NoNode, NoMsg)
    /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                   announcedNodes, msgs>>

(***************************************************************************)
(* Lineage reconstruction (figure 10): a lost object that someone needs is *)
(* recomputed by resubmitting its task.  Its arguments must exist first:   *)
(* the resubmitted task waits, which makes a lost argument needed in turn, *)
(* so reconstruction recurses along the lineage.  Out of budget, the       *)
(* object becomes the ObjectLost error value.                              *)
(***************************************************************************)
\* impl: impl/ownership/core/recovery.py::FailureHandler.reconstruct
OwnerReconstruct(o, x) ==
    /\ Alive(o)
    /\ x \in DOMAIN table[o]
    /\ table[o][x].st = "lost"
    /\ Needed(o, x)
    /\ table' = [table EXCEPT ![o][x] =
                   IF @.budget > 0 THEN [@ EXCEPT !.st = "waiting", !.budget = @ - 1]
                   ELSE [@ EXCEPT !.st = "error", !.err = "ObjectLost"]]
    /\ lastAction' = Step("OwnerReconstruct", o, x, NoNode, NoMsg)
    /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                   announcedNodes, msgs>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* The whole program has run: every live execution's body is over, every   *)
(* death is published and handled, no live owner has work left, and        *)
(* nothing is left in flight.                                              *)
(***************************************************************************)
Terminated ==
    /\ \A w \in Workers : Alive(w) => ctx[w].body \in {"finished", "failed"}
    /\ \A w \in Workers : status[w] = "dead" => DeathAnnounced(w)
    /\ msgs = {}
    /\ \A o \in Workers : Alive(o) =>
          \A x \in DOMAIN table[o] :
              /\ table[o][x].st \notin {"waiting", "pending", "retry"}
              /\ table[o][x].st = "lost" => ~Needed(o, x)

\* Stuttering once terminated, so that a real deadlock stays detectable.
Done == Terminated /\ UNCHANGED vars

\* The parameter combinations that can ever enable an action: an owner and
\* its children, a body and the references it gets or holds.  Quantifying
\* over these rather than all pairs keeps TLC's work per state small.  A
\* message is picked inside its handler, because TLC names an action after
\* the operator only when the quantifiers outside range over constants; the
\* message is in lastAction's params.
OwnedPairs == UNION {{<<o, x>> : x \in Children(o[1])} : o \in Workers}
GetPairs == UNION {{<<h, x>> : x \in Gets(h[1])} : h \in Workers}
HeldPairs == UNION {{<<h, x>> : x \in {h[1]} \cup SharedArgs[h[1]]} : h \in Workers \ {Driver}}

ProcessNext ==
    \/ \E p \in OwnedPairs : OwnerSubmit(p[1], p[2])
    \/ \E p \in OwnedPairs, n \in Nodes : OwnerDispatch(p[1], p[2], n)
    \/ \E w \in Workers : WorkerExecute(w)
    \/ \E w \in Workers : WorkerFinishTask(w)
    \/ \E o \in Workers : OwnerHandleReply(o)
    \/ \E p \in GetPairs : HolderGet(p[1], p[2])
    \/ \E p \in HeldPairs : HolderFateShare(p[1], p[2])
    \/ \E o \in Workers : OwnerHandleFailure(o)
    \/ \E s \in Nodes : StoreHandleFailure(s)
    \/ \E n \in Nodes : NodeFenced(n)
    \/ \E p \in OwnedPairs : OwnerReexecute(p[1], p[2])
    \/ \E p \in OwnedPairs : OwnerReconstruct(p[1], p[2])

DetectNext ==
    \/ \E w \in Workers : SchedulerDetectWorkerDeath(nodeOf[w], w)
    \/ \E n \in Nodes : HeadDetectNodeDeath(n)

EnvNext ==
    \/ \E w \in Workers : WorkerCrash(w)
    \/ \E o \in Workers : OwnerCrash(o)
    \/ \E n \in Nodes : NodeCrash(n)

Next == ProcessNext \/ DetectNext \/ EnvNext \/ Done

(***************************************************************************)
(* Every behaviour is finite up to stuttering (crashes, executions and     *)
(* budgets are bounded and every step makes progress), so weak fairness    *)
(* of each group of protocol steps means that no behaviour stops where a   *)
(* protocol step is still possible.  Failure detection is a fairness       *)
(* assumption of its own: heartbeats time out, process exits are seen.     *)
(* Crashes are never forced.                                               *)
(***************************************************************************)
Fairness == WF_vars(ProcessNext) /\ WF_vars(DetectNext)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* Invariants.                                                             *)
(***************************************************************************)
Entries == [st : EntryStates, worker : Workers \cup {NoWorker}, locs : SUBSET Nodes,
            budget : Nat, err : Errors \cup {""}]
Copies == [obj : Objects, owner : Workers, node : Nodes, val : SUBSET Objects]
Messages == [type : {"PushTask", "TaskReply", "WorkerDied", "NodeDied"},
             task : Tasks, owner : Workers \cup {NoWorker}, worker : Workers \cup {NoWorker},
             node : Nodes \cup {NoNode}, shared : SUBSET Refs, err : Errors \cup {""},
             dst : Workers \cup {NoWorker}, dstNode : Nodes \cup {NoNode}]

TypeOK ==
    /\ up \subseteq Nodes /\ HeadNode \in up
    /\ crashes \in 0..MaxCrashes
    /\ status \in [Workers -> {"unborn", "alive", "dead"}]
    /\ nodeOf \in [Workers -> Nodes]
    /\ \A w \in Workers :
          /\ ctx[w] \in [owner : Workers \cup {NoWorker}, borrowed : SUBSET Refs,
                         pc : 1..(Len(Body[w[1]]) + 1), body : BodyStates, val : SUBSET Objects]
          /\ got[w] \subseteq [obj : Objects, res : Results, val : SUBSET Objects]
          /\ DOMAIN table[w] = Children(w[1])
          /\ \A x \in DOMAIN table[w] :
                /\ table[w][x] \in Entries
                /\ table[w][x].budget \in 0..Retries[x]
    /\ copies \subseteq Copies
    /\ msgs \subseteq Messages
    /\ announced \subseteq Workers
    /\ announcedNodes \subseteq Nodes \ {HeadNode}
    /\ ~FalseSuspicion => announcedNodes \cap up = {}

(***************************************************************************)
(* Every copy of an object, and every value a get returns, is the value    *)
(* the object's lineage computes: recovery never produces a different      *)
(* object under the same id.                                               *)
(***************************************************************************)
RecoveredValueIsLineageValue ==
    /\ \A c \in copies : c.val = LineageValue(c.obj)
    /\ \A w \in Workers : \A g \in got[w] : g.res = "value" => g.val = LineageValue(g.obj)

(***************************************************************************)
(* No dangling reference: once a dead owner's notifications are delivered  *)
(* to a process (published, and none left in flight to it), no live body   *)
(* of that process still holds a reference the dead owned.                 *)
(***************************************************************************)
NotificationPending(h, o) ==
    \/ ~DeathAnnounced(o)
    \/ \E m \in msgs : IsNotification(m) /\ m.dst = h /\ o \in DeadIn(m)

NoDanglingRef ==
    \A h \in Workers : \A r \in HeldRefs(h) :
        Alive(r[2]) \/ NotificationPending(h, r[2])

(***************************************************************************)
(* Fate-sharing frees the dead owner's copies: once the store of a node    *)
(* has heard, it pins no copy of a dead owner.                             *)
(***************************************************************************)
NoOrphanCopy ==
    \A c \in copies :
        \/ Alive(c.owner)
        \/ ~DeathAnnounced(c.owner)
        \/ \E m \in msgs : IsNotification(m) /\ m.dstNode = c.node /\ c.owner \in DeadIn(m)

(***************************************************************************)
(* Fencing: a node the head declared dead while it was up is on its way    *)
(* out.  Its death notice is in flight to it until it stops: no node       *)
(* serves on (runs tasks, pins copies nobody tracks) once it has heard     *)
(* that the cluster wrote it off.                                          *)
(***************************************************************************)
FencedNodeStops ==
    \A n \in announcedNodes \cap up :
        \E m \in msgs : m.type = "NodeDied" /\ m.node = n /\ m.dstNode = n

(***************************************************************************)
(* Liveness ("nothing may hang"): a get by a live holder whose reference's *)
(* owner stays alive returns: the value, or the error value (ObjectLost    *)
(* when the budget ran out).  A get whose owner dies ends by fate-sharing  *)
(* instead, which NoDanglingRef is about.                                  *)
(*                                                                         *)
(* GetReturnsEach says it get by get.  Every behaviour ends in stuttering  *)
(* (see Fairness), a get that returned never waits again and a dead owner  *)
(* stays dead, so it is equivalent to GetReturns: in the end no get waits  *)
(* on a live owner.  TLC checks GetReturns in one pass where               *)
(* GetReturnsEach costs one pass per get.                                  *)
(***************************************************************************)
GetSettled(h, x) == ~WaitingFor(h, x) \/ status[RefOf(h, x)[2]] = "dead"

GetReturnsEach ==
    \A p \in GetPairs : WaitingFor(p[1], p[2]) ~> GetSettled(p[1], p[2])

GetReturns == <>[](\A p \in GetPairs : GetSettled(p[1], p[2]))

=============================================================================
