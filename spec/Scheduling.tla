------------------------------ MODULE Scheduling ------------------------------
(***************************************************************************)
(* Task scheduling under ownership: Wang et al., "Ownership: A Distributed *)
(* Futures System for Fine-Grained Tasks", NSDI 2021, section 4.1 and      *)
(* figure 8.                                                               *)
(*                                                                         *)
(* The caller of a task owns its future, so the owner is the process that  *)
(* must always know where the task is (the "pending location" of its       *)
(* ownership table).  The owner asks its local scheduler for a worker      *)
(* lease; the scheduler either grants a local idle worker or redirects the *)
(* owner (spillback) to a node its policy picks.  Either way the owner     *)
(* records the new location BEFORE it dispatches there, and it sends the   *)
(* task itself straight to the leased worker.  A lease is reused for later *)
(* tasks of the same scheduling key, up to PipelineDepth tasks in flight   *)
(* on one lease while the owner waits for another lease, and returned      *)
(* when the owner's queue for that key is empty.  Schedulers publish       *)
(* worker deaths, the head publishes node deaths, and the owner            *)
(* resubmits every task whose recorded location died, within a retry       *)
(* budget.                                                                 *)
(*                                                                         *)
(* A driver owner does not crash here, and neither does its local node     *)
(* nor the head.  An owner that is a worker (a task that submits tasks,    *)
(* OwnerWorker) dies with its worker: the futures it owned are             *)
(* FateSharing's topic; here, the nodes reclaim what it leased.  Workers   *)
(* and the other nodes crash, at most MaxCrashes times in all.             *)
(* Messages between live processes are delivered, in any order; a message  *)
(* to a dead process is lost (LoseMessage).                                *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    \* @type: Set(OWNER);
    Owners,
    \* @type: Set(NODE);
    Nodes,
    \* @type: Set(WORKER);
    Workers,
    \* @type: Set(TASK);
    Tasks,
    \* Scheduling keys: the resource shape of a task.  A lease is for one key.
    \* @type: Set(KEY);
    Keys,
    \* @type: OWNER -> NODE;
    OwnerNode,
    \* @type: WORKER -> NODE;
    WorkerNode,
    \* Slots per node: every lease takes one slot, whatever its key.
    \* @type: NODE -> Int;
    Capacity,
    \* @type: TASK -> OWNER;
    TaskOwner,
    \* @type: TASK -> KEY;
    TaskKey,
    \* The program order in which each owner submits its tasks.
    \* @type: Seq(TASK);
    SubmitOrder,
    \* @type: Int;
    MaxCrashes,
    \* How many times each task may be resubmitted after a failure (Ray's
    \* per-task max_retries).
    \* @type: TASK -> Int;
    TaskRetries,
    \* Tasks in flight on one lease: pushed to its worker and not yet
    \* answered.  Above 1, the owner pushes the next task before the reply
    \* to the previous one (the worker runs them one at a time), which hides
    \* the round trip between a reply and the next push.
    \* @type: Int;
    PipelineDepth,
    \* Null values, so that every message record has the same fields.
    \* @type: OWNER;
    NoOwner,
    \* @type: NODE;
    NoNode,
    \* @type: WORKER;
    NoWorker,
    \* @type: TASK;
    NoTask,
    \* @type: KEY;
    NoKey

ASSUME
    /\ OwnerNode \in [Owners -> Nodes]
    /\ WorkerNode \in [Workers -> Nodes]
    /\ Capacity \in [Nodes -> Nat]
    /\ TaskOwner \in [Tasks -> Owners]
    /\ TaskKey \in [Tasks -> Keys]
    /\ SubmitOrder \in Seq(Tasks)
    /\ Len(SubmitOrder) = Cardinality(Tasks)
    /\ {SubmitOrder[i] : i \in 1..Len(SubmitOrder)} = Tasks
    /\ MaxCrashes \in Nat
    /\ TaskRetries \in [Tasks -> Nat]
    /\ PipelineDepth \in Nat \ {0}
    /\ NoOwner \notin Owners /\ NoNode \notin Nodes /\ NoWorker \notin Workers
    /\ NoTask \notin Tasks /\ NoKey \notin Keys

(***************************************************************************)
(* Messages.  Every message is a record with the same fields so that msgs  *)
(* has one type (Apalache); a field that a message type does not use       *)
(* holds the null value of its type.  `type` is the core message class     *)
(* name; the other fields are the class's fields:                          *)
(*   RequestLease  owner task key node         node = scheduler asked      *)
(*   LeaseGranted  owner task key node worker  node = granting scheduler   *)
(*   Spillback     owner task key node retry_at                            *)
(*   PushTask      owner task key node worker  node = the worker's node    *)
(*   TaskReply     owner task key node worker                              *)
(*   ReturnLease   owner key node worker                                   *)
(*   WorkerDied    owner node worker           owner = subscriber          *)
(*   NodeDied      owner node                  owner = subscriber          *)
(***************************************************************************)

(***************************************************************************)
(* @typeAlias: msg = {type: Str, owner: OWNER, task: TASK, key: KEY,       *)
(*     node: NODE, worker: WORKER, retry_at: NODE};                        *)
(* @typeAlias: loc = {node: NODE, worker: WORKER};                         *)
(* @typeAlias: lease = {worker: WORKER, owner: OWNER, task: TASK};         *)
(* @typeAlias: action = {name: Str, params: {o: OWNER, t: TASK, n: NODE,   *)
(*     w: WORKER, r: NODE, m: $msg}};                                      *)
(***************************************************************************)
Scheduling_typedefs == TRUE

VARIABLES
    \* Environment: which processes are up, and how many crashes happened.
    \* @type: NODE -> Bool;
    nodeAlive,
    \* @type: WORKER -> Bool;
    workerAlive,
    \* @type: Int;
    crashes,
    \* Head: the nodes it believes alive (membership from heartbeats).
    \* @type: Set(NODE);
    members,
    \* Scheduler of each node: the workers it believes alive, and the
    \* leases it has granted (one record per grant, named by the task whose
    \* request it answered).
    \* @type: NODE -> Set(WORKER);
    pool,
    \* @type: NODE -> Set($lease);
    granted,
    \* The leased workers whose task waits in a get: the node lends their
    \* slot to other leases meanwhile (CPU lending, as Ray's raylet does).
    \* @type: NODE -> Set(WORKER);
    lent,
    \* Owner's table, per task (held by TaskOwner[t]): its state, its
    \* pending location, and the retries it has left.
    \* @type: TASK -> Str;
    status,
    \* @type: TASK -> $loc;
    location,
    \* @type: TASK -> Int;
    retries,
    \* Owner: the FIFO queue of tasks waiting for a worker, per key.
    \* @type: OWNER -> (KEY -> Seq(TASK));
    queue,
    \* Owner: the leases it holds (the scheduler's lease records; a lease's
    \* key is its task's key).
    \* @type: OWNER -> Set($lease);
    held,
    \* Owner: the failures it has been notified of.
    \* @type: OWNER -> Set(WORKER);
    deadWorkers,
    \* @type: OWNER -> Set(NODE);
    deadNodes,
    \* Network: messages in flight, and requests queued at a scheduler.
    \* @type: Set($msg);
    msgs,
    \* History, for NoDuplicateExecutionWithoutFailure only: how many times
    \* each task ran, and on which workers.
    \* @type: TASK -> Int;
    execs,
    \* @type: TASK -> Set(WORKER);
    ranOn,
    \* Auxiliary: the last action and its parameters, for trace replay.
    \* Excluded from the model's VIEW and from every invariant.
    \* @type: $action;
    lastAction

envVars == <<nodeAlive, workerAlive, crashes>>
schedVars == <<members, pool, granted, lent>>
ownerVars == <<status, location, retries, queue, held, deadWorkers, deadNodes>>
histVars == <<execs, ranOn>>
vars == <<nodeAlive, workerAlive, crashes, members, pool, granted, lent, status,
          location, retries, queue, held, deadWorkers, deadNodes, msgs,
          execs, ranOn, lastAction>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Helpers.                                                                *)
(***************************************************************************)
Statuses == {"new", "queued", "requested", "pushed", "done", "failed"}
Finished(t) == status[t] \in {"done", "failed"}

\* A pending location is a node (a lease request is there) or a leased
\* worker (the task was pushed to it); the worker's node comes with it so
\* that a NodeDied notification can be matched against it.
\* @type: $loc;
NoLocation == [node |-> NoNode, worker |-> NoWorker]
\* @type: NODE => $loc;
AtNode(n) == [node |-> n, worker |-> NoWorker]
\* @type: WORKER => $loc;
AtWorker(w) == [node |-> WorkerNode[w], worker |-> w]
Locations == {NoLocation} \cup {AtNode(n) : n \in Nodes} \cup {AtWorker(w) : w \in Workers}

\* @type: (Str, OWNER, TASK, KEY, NODE, WORKER, NODE) => $msg;
Msg(type, o, t, k, n, w, r) ==
    [type |-> type, owner |-> o, task |-> t, key |-> k, node |-> n,
     worker |-> w, retry_at |-> r]
RequestLeaseMsg(o, t, n) == Msg("RequestLease", o, t, TaskKey[t], n, NoWorker, NoNode)
LeaseGrantedMsg(o, t, n, w) == Msg("LeaseGranted", o, t, TaskKey[t], n, w, NoNode)
SpillbackMsg(o, t, n, r) == Msg("Spillback", o, t, TaskKey[t], n, NoWorker, r)
PushTaskMsg(o, t, w) == Msg("PushTask", o, t, TaskKey[t], WorkerNode[w], w, NoNode)
TaskReplyMsg(o, t, w) == Msg("TaskReply", o, t, TaskKey[t], WorkerNode[w], w, NoNode)
ReturnLeaseMsg(o, k, w) == Msg("ReturnLease", o, NoTask, k, WorkerNode[w], w, NoNode)
WorkerDiedMsg(o, w) == Msg("WorkerDied", o, NoTask, NoKey, WorkerNode[w], w, NoNode)
NodeDiedMsg(o, n) == Msg("NodeDied", o, NoTask, NoKey, n, NoWorker, NoNode)
NoMsg == Msg("None", NoOwner, NoTask, NoKey, NoNode, NoWorker, NoNode)

\* Every message that can exist, by type.  Next draws the message an action
\* receives from these constant sets, not from msgs, so that TLC can name
\* the action in traces; the action itself requires m \in msgs.
RequestLeaseMsgs == {RequestLeaseMsg(TaskOwner[t], t, n) : t \in Tasks, n \in Nodes}
LeaseGrantedMsgs == {LeaseGrantedMsg(TaskOwner[t], t, WorkerNode[w], w) : t \in Tasks, w \in Workers}
SpillbackMsgs == {SpillbackMsg(TaskOwner[t], t, n, r) : t \in Tasks, n \in Nodes, r \in Nodes}
PushTaskMsgs == {PushTaskMsg(TaskOwner[t], t, w) : t \in Tasks, w \in Workers}
TaskReplyMsgs == {TaskReplyMsg(TaskOwner[t], t, w) : t \in Tasks, w \in Workers}
ReturnLeaseMsgs == {ReturnLeaseMsg(o, k, w) : o \in Owners, k \in Keys, w \in Workers}
FailureMsgs == {WorkerDiedMsg(o, w) : o \in Owners, w \in Workers}
               \cup {NodeDiedMsg(o, n) : o \in Owners, n \in Nodes}
Messages ==
    RequestLeaseMsgs \cup LeaseGrantedMsgs \cup SpillbackMsgs \cup PushTaskMsgs
    \cup TaskReplyMsgs \cup ReturnLeaseMsgs \cup FailureMsgs

\* lastAction: the action's name and its parameters by name.  o, t, n, w
\* and m are the parameters of the action's signature; w is also the
\* worker a scheduler chose to lease and r the node it redirected to.  A
\* parameter the action does not have holds its null value (the record
\* keeps one shape for Apalache).
\* @type: (Str, OWNER, TASK, NODE, WORKER, NODE, $msg) => $action;
Step(name, o, t, n, w, r, m) ==
    [name |-> name, params |-> [o |-> o, t |-> t, n |-> n, w |-> w, r |-> r, m |-> m]]

\* Which worker process each owner is: NoWorker for a driver.  The models'
\* owners are drivers; a model sized from a run's event log names the
\* workers whose tasks submitted tasks, which die with their worker.
\* @type: OWNER -> WORKER;
OwnerWorker == [o \in Owners |-> NoWorker]
\* (IF, not \/: TLC splits a disjunction of an action into branches, and the
\* second would read workerAlive at NoWorker)
OwnerAlive(o) == IF OwnerWorker[o] = NoWorker THEN TRUE ELSE workerAlive[OwnerWorker[o]]
\* Workers that join their node's pool later (SchedulerRegisterWorker): none
\* in the models, whose pools are there from the start; a model sized from a
\* run, whose nodes start every worker after they start, names them all.
Unregistered == {}
\* A node may crash unless a driver owner runs on it.
DriverOn(n) == \E o \in Owners : OwnerNode[o] = n /\ OwnerWorker[o] = NoWorker

\* Schedulers answer for their node, workers for themselves, owners for
\* themselves (an owner that is a worker dies with it).
DestAlive(m) ==
    CASE m.type \in {"RequestLease", "ReturnLease"} -> nodeAlive[m.node]
      [] m.type = "PushTask" -> workerAlive[m.worker]
      [] OTHER -> OwnerAlive(m.owner)

\* Each task's place in SubmitOrder, computed once (TLC evaluates a constant
\* definition when it starts): a model sized from a run has thousands of
\* tasks, and OwnerSubmit compares the ranks of all of them.
RankOf == [t \in Tasks |-> CHOOSE i \in 1..Len(SubmitOrder) : SubmitOrder[i] = t]
Rank(t) == RankOf[t]

\* Scheduler view.  The pool may still list a dead worker whose death the
\* scheduler has not noticed yet: it may lease it out.
IdleWorkers(n) == {w \in pool[n] : ~\E l \in granted[n] : l.worker = w}
\* Keys whose leases take no slot (a task or an actor asking for no CPU: an
\* actor holds its worker for its life, not a CPU).  None in the models but
\* FreeSlot's; a model sized from a run names the run's.  Such a request
\* fits every node, so it may be redirected between nodes whose workers
\* are all busy for as long as they are (the implementation's policy does
\* the same): FreeSlot checks the invariants only.
FreeKeys == {}
\* The leases that take a slot.  A lent slot is free: the lease's task waits
\* in a get.
Slotted(n) == {l \in granted[n] : l.worker \notin lent[n] /\ TaskKey[l.task] \notin FreeKeys}
HasFreeSlot(n) == Cardinality(Slotted(n)) < Capacity[n]
\* Node n has room for a lease of task t.
Fits(n, t) == TaskKey[t] \in FreeKeys \/ HasFreeSlot(n)
CanGrant(n, t) == Fits(n, t) /\ IdleWorkers(n) # {}

\* Owner view: the tasks of the owner pushed to a worker and not answered;
\* a held lease is busy while there is one.
InFlight(o, w) == {u \in Tasks : TaskOwner[u] = o /\ status[u] = "pushed" /\ location[u].worker = w}
Busy(o, w) == InFlight(o, w) # {}
\* The owner waits for a lease for key k: a task of k is at a scheduler.
RequestsOut(o, k) == {u \in Tasks : TaskOwner[u] = o /\ TaskKey[u] = k /\ status[u] = "requested"}
Requesting(o, k) == RequestsOut(o, k) # {}
IdleLeases(o, k) == {h \in held[o] : TaskKey[h.task] = k /\ ~Busy(o, h.worker)}
LocationDied(o, t) ==
    location[t].node \in deadNodes[o] \/ location[t].worker \in deadWorkers[o]

-----------------------------------------------------------------------------
Init ==
    /\ nodeAlive = [n \in Nodes |-> TRUE]
    /\ workerAlive = [w \in Workers |-> TRUE]
    /\ crashes = 0
    /\ members = Nodes
    /\ pool = [n \in Nodes |-> {w \in Workers : WorkerNode[w] = n} \ Unregistered]
    /\ granted = [n \in Nodes |-> {}]
    /\ lent = [n \in Nodes |-> {}]
    /\ status = [t \in Tasks |-> "new"]
    /\ location = [t \in Tasks |-> NoLocation]
    /\ retries = TaskRetries
    /\ queue = [o \in Owners |-> [k \in Keys |-> <<>>]]
    /\ held = [o \in Owners |-> {}]
    /\ deadWorkers = [o \in Owners |-> {}]
    /\ deadNodes = [o \in Owners |-> {}]
    /\ msgs = {}
    /\ execs = [t \in Tasks |-> 0]
    /\ ranOn = [t \in Tasks |-> {}]
    /\ lastAction = Step("Init", NoOwner, NoTask, NoNode, NoWorker, NoNode, NoMsg)

-----------------------------------------------------------------------------
(***************************************************************************)
(* f.remote(): the owner writes the table entry and queues the task under  *)
(* its scheduling key, in program order.                                   *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.submit
OwnerSubmit(o, t) ==
    /\ TaskOwner[t] = o
    /\ OwnerAlive(o)
    /\ status[t] = "new"
    /\ \A u \in Tasks : TaskOwner[u] = o /\ Rank(u) < Rank(t) => status[u] # "new"
    /\ status' = [status EXCEPT ![t] = "queued"]
    /\ queue' = [queue EXCEPT ![o][TaskKey[t]] = Append(@, t)]
    /\ lastAction' = Step("OwnerSubmit", o, t, NoNode, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, schedVars, location, retries, held, deadWorkers,
                   deadNodes, msgs, histVars>>

(***************************************************************************)
(* Fig. 8c, step 1: the owner asks its LOCAL scheduler for a lease for the *)
(* head of a key's queue.  It records that node as the task's location in  *)
(* the same step as it sends, so the location is known before dispatch.    *)
(* Up to MaxPendingLeaseRequests requests per key are outstanding at a     *)
(* time, and none is sent while an idle lease of that key is held (that    *)
(* lease is reused instead).                                               *)
(***************************************************************************)
\* How many lease requests of one key an owner keeps out at once: one in
\* the models (the default of max_pending_lease_requests); a model sized
\* from a run whose owners asked for more overrides it with theirs.
MaxPendingLeaseRequests == 1

\* impl: impl/ownership/core/submitter.py::TaskSubmitter.request_lease
OwnerRequestLease(o, t) ==
    LET k == TaskKey[t] IN
    /\ TaskOwner[t] = o
    /\ OwnerAlive(o)
    /\ queue[o][k] # <<>>
    /\ t = Head(queue[o][k])
    /\ Cardinality(RequestsOut(o, k)) < MaxPendingLeaseRequests
    /\ IdleLeases(o, k) = {}
    /\ queue' = [queue EXCEPT ![o][k] = Tail(@)]
    /\ status' = [status EXCEPT ![t] = "requested"]
    /\ location' = [location EXCEPT ![t] = AtNode(OwnerNode[o])]
    /\ msgs' = msgs \cup {RequestLeaseMsg(o, t, OwnerNode[o])}
    /\ lastAction' = Step("OwnerRequestLease", o, t, NoNode, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, schedVars, retries, held, deadWorkers, deadNodes,
                   histVars>>

(***************************************************************************)
(* Fig. 8c, step 2a: the policy picks this node, and the scheduler leases  *)
(* one of its idle workers, within the node's slots.  A request that can   *)
(* neither be granted nor spilled waits in the scheduler's queue, which    *)
(* is the RequestLease message staying in msgs.                            *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.grant_lease
SchedulerGrantLease(n, m) ==
    /\ m.type = "RequestLease"
    /\ m \in msgs
    /\ m.node = n
    /\ nodeAlive[n]
    /\ Fits(n, m.task)  \* one slot per lease, unless its key takes none
    /\ \E w \in IdleWorkers(n) :
        /\ granted' = [granted EXCEPT ![n] = @ \cup {[worker |-> w, owner |-> m.owner, task |-> m.task]}]
        /\ msgs' = (msgs \ {m}) \cup {LeaseGrantedMsg(m.owner, m.task, n, w)}
        /\ lastAction' = Step("SchedulerGrantLease", NoOwner, NoTask, n, w, NoNode, m)
    /\ UNCHANGED <<envVars, members, pool, lent, ownerVars, histVars>>

(***************************************************************************)
(* Fig. 8c, step 2b: the node cannot grant (no free slot, or no idle       *)
(* worker), so the scheduler redirects the owner to another node with a    *)
(* free slot.  The policy (local first, else any node with room) reads     *)
(* the cluster resource view: slots, not workers, and every node the head  *)
(* has not yet declared dead.  The chosen node may be dead already, full   *)
(* by the time the owner gets there, or without an idle worker; it then    *)
(* redirects the request in turn (a redirected request is one like any     *)
(* other), or keeps it until it can grant or redirect.                     *)
(***************************************************************************)
\* Whether a scheduler's view of the other nodes may be stale.  The models
\* read the true slots and membership (FALSE), which keeps a redirected
\* request from bouncing between full nodes forever: the implementation's
\* view is refreshed by every heartbeat, and a redirect counts against its
\* target until then.  A model sized from a run's event log, where each
\* redirect went where the node's last view said there was room, sets it:
\* a redirect may then go to any other node, which only adds behaviours
\* (safety is checked with it in MCScheduling_StaleViews.cfg; liveness is
\* not, since views that never refresh can bounce a request forever).
StaleViews == FALSE

\* impl: impl/ownership/core/scheduler.py::LocalScheduler.spillback
SchedulerSpillback(n, m) ==
    /\ m.type = "RequestLease"
    /\ m \in msgs
    /\ m.node = n
    /\ nodeAlive[n]
    /\ ~CanGrant(n, m.task)
    /\ \E r \in (IF StaleViews THEN Nodes ELSE members) \ {n} :
        /\ StaleViews \/ Fits(r, m.task)
        /\ msgs' = (msgs \ {m}) \cup {SpillbackMsg(m.owner, m.task, n, r)}
        /\ lastAction' = Step("SchedulerSpillback", NoOwner, NoTask, n, NoWorker, r, m)
    /\ UNCHANGED <<envVars, schedVars, ownerVars, histVars>>

(***************************************************************************)
(* Fig. 8c, step 3b: the owner records the node it is redirected to as     *)
(* the task's location, then repeats the request there.  An answer from a  *)
(* location the task has left (it was resubmitted) is dropped.  A          *)
(* redirect to a node the owner knows is dead puts the task back at the    *)
(* head of its queue instead.                                              *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_spillback
OwnerHandleSpillback(o, m) ==
    LET t == m.task
        k == TaskKey[t]
        current == status[t] = "requested" /\ location[t].node = m.node
    IN
    /\ m \in msgs
    /\ m.type = "Spillback"
    /\ m.owner = o
    /\ OwnerAlive(o)
    /\ \/ /\ current
          /\ m.retry_at \notin deadNodes[o]
          /\ location' = [location EXCEPT ![t] = AtNode(m.retry_at)]
          /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(o, t, m.retry_at)}
          /\ UNCHANGED <<status, queue>>
       \/ /\ current
          /\ m.retry_at \in deadNodes[o]
          /\ status' = [status EXCEPT ![t] = "queued"]
          /\ location' = [location EXCEPT ![t] = NoLocation]
          /\ queue' = [queue EXCEPT ![o][k] = <<t>> \o @]
          /\ msgs' = msgs \ {m}
       \/ /\ ~current
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED <<status, location, queue>>
    /\ lastAction' = Step("OwnerHandleSpillback", o, NoTask, NoNode, NoWorker, NoNode, m)
    /\ UNCHANGED <<envVars, schedVars, retries, held, deadWorkers, deadNodes,
                   histVars>>

(***************************************************************************)
(* Fig. 8c, step 3a: the owner records the leased worker as the task's     *)
(* location, then pushes the task to it directly (no scheduler on the      *)
(* path).  A grant of a worker the owner already knows is dead is not      *)
(* used: the task goes back to the head of its queue (the scheduler        *)
(* dropped that lease when it published the death).  A stale grant can     *)
(* only come from a node that died, whose leases died with it.             *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_grant
OwnerHandleGrant(o, m) ==
    LET t == m.task
        w == m.worker
        k == TaskKey[t]
        current == status[t] = "requested" /\ location[t].node = m.node
        knownDead == w \in deadWorkers[o] \/ WorkerNode[w] \in deadNodes[o]
    IN
    /\ m \in msgs
    /\ m.type = "LeaseGranted"
    /\ m.owner = o
    /\ OwnerAlive(o)
    /\ \/ /\ current
          /\ ~knownDead
          /\ location' = [location EXCEPT ![t] = AtWorker(w)]
          /\ status' = [status EXCEPT ![t] = "pushed"]
          /\ held' = [held EXCEPT ![o] = @ \cup {[worker |-> w, owner |-> o, task |-> t]}]
          /\ msgs' = (msgs \ {m}) \cup {PushTaskMsg(o, t, w)}
          /\ UNCHANGED queue
       \/ /\ current
          /\ knownDead
          /\ status' = [status EXCEPT ![t] = "queued"]
          /\ location' = [location EXCEPT ![t] = NoLocation]
          /\ queue' = [queue EXCEPT ![o][k] = <<t>> \o @]
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED held
       \/ /\ ~current
          /\ msgs' = msgs \ {m}
          /\ UNCHANGED <<status, location, queue, held>>
    /\ lastAction' = Step("OwnerHandleGrant", o, NoTask, NoNode, NoWorker, NoNode, m)
    /\ UNCHANGED <<envVars, schedVars, retries, deadWorkers, deadNodes,
                   histVars>>

(***************************************************************************)
(* Fig. 8d: worker reuse.  The owner bypasses the scheduler and pushes     *)
(* the next queued task of a key to a lease it holds for that key,         *)
(* recording the worker as its location first.  The lease is idle, or it   *)
(* has fewer than PipelineDepth tasks in flight while the owner waits for  *)
(* another lease of the key (pipelining): the owner asks for parallelism   *)
(* first and queues behind a busy worker only while that request is out,   *)
(* so two tasks never wait on one worker while a lease could run them      *)
(* side by side.                                                           *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.reuse_lease
OwnerReuseLease(o, w, t) ==
    LET k == TaskKey[t] IN
    /\ TaskOwner[t] = o
    /\ OwnerAlive(o)
    /\ \E h \in held[o] : h.worker = w /\ TaskKey[h.task] = k
    /\ \/ ~Busy(o, w)
       \/ Cardinality(InFlight(o, w)) < PipelineDepth /\ Requesting(o, k)
    /\ queue[o][k] # <<>>
    /\ t = Head(queue[o][k])
    /\ queue' = [queue EXCEPT ![o][k] = Tail(@)]
    /\ status' = [status EXCEPT ![t] = "pushed"]
    /\ location' = [location EXCEPT ![t] = AtWorker(w)]
    /\ msgs' = msgs \cup {PushTaskMsg(o, t, w)}
    /\ lastAction' = Step("OwnerReuseLease", o, t, NoNode, w, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, schedVars, retries, held, deadWorkers, deadNodes,
                   histVars>>

(***************************************************************************)
(* The owner returns an idle lease once its queue for the lease's key is   *)
(* empty (the paper also returns on a timeout; an empty queue is the case  *)
(* that matters for progress).                                             *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.return_lease
OwnerReturnLease(o, w) ==
    /\ OwnerAlive(o)
    /\ \E h \in held[o] :
        /\ h.worker = w
        /\ queue[o][TaskKey[h.task]] = <<>>
        /\ ~Busy(o, w)
        /\ held' = [held EXCEPT ![o] = @ \ {h}]
        /\ msgs' = msgs \cup {ReturnLeaseMsg(o, TaskKey[h.task], w)}
    /\ lastAction' = Step("OwnerReturnLease", o, NoTask, NoNode, w, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, schedVars, status, location, retries, queue,
                   deadWorkers, deadNodes, histVars>>

\* The scheduler frees the slot and the worker.  A lease it already dropped
\* (the worker died) is simply not there any more.
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.release_lease
SchedulerReleaseLease(n, m) ==
    /\ m.type = "ReturnLease"
    /\ m \in msgs
    /\ m.node = n
    /\ nodeAlive[n]
    /\ granted' = [granted EXCEPT ![n] = {l \in @ : ~(l.worker = m.worker /\ l.owner = m.owner)}]
    /\ lent' = IF \E l \in granted[n] : l.worker = m.worker /\ l.owner = m.owner
               THEN [lent EXCEPT ![n] = @ \ {m.worker}] ELSE lent
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("SchedulerReleaseLease", NoOwner, NoTask, n, NoWorker, NoNode, m)
    /\ UNCHANGED <<envVars, members, pool, ownerVars, histVars>>

(***************************************************************************)
(* The leased worker runs the pushed task and replies to the owner.  The   *)
(* run and the reply are one step: a crash "during" the run is a crash     *)
(* before it (the PushTask is lost) or after it (the reply is in flight).  *)
(***************************************************************************)
\* impl: impl/ownership/core/executor.py::TaskExecutor.execute
WorkerExecute(w, m) ==
    /\ m.type = "PushTask"
    /\ m \in msgs
    /\ m.worker = w
    /\ workerAlive[w]
    /\ msgs' = (msgs \ {m}) \cup {TaskReplyMsg(m.owner, m.task, w)}
    /\ execs' = [execs EXCEPT ![m.task] = @ + 1]
    /\ ranOn' = [ranOn EXCEPT ![m.task] = @ \cup {w}]
    /\ lastAction' = Step("WorkerExecute", NoOwner, NoTask, NoNode, w, NoNode, m)
    /\ UNCHANGED <<envVars, schedVars, ownerVars>>

\* The task is done when the reply comes from the location the owner has
\* recorded; a reply from a worker the task was resubmitted away from is
\* dropped (the new run will answer).
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_reply
OwnerHandleReply(o, m) ==
    LET t == m.task IN
    /\ m \in msgs
    /\ m.type = "TaskReply"
    /\ m.owner = o
    /\ OwnerAlive(o)
    /\ IF status[t] = "pushed" /\ location[t].worker = m.worker
       THEN /\ status' = [status EXCEPT ![t] = "done"]
            /\ location' = [location EXCEPT ![t] = NoLocation]
       ELSE UNCHANGED <<status, location>>
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("OwnerHandleReply", o, NoTask, NoNode, NoWorker, NoNode, m)
    /\ UNCHANGED <<envVars, schedVars, retries, queue, held, deadWorkers,
                   deadNodes, histVars>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Failures (section 4.3, failure detection).  Crashes are environment     *)
(* steps, bounded by MaxCrashes.  A node crash kills its workers; its      *)
(* scheduler's state stays as it was, which is the last resource report    *)
(* the rest of the cluster has from it.                                    *)
(***************************************************************************)
\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
WorkerCrash(w) ==
    /\ crashes < MaxCrashes
    /\ workerAlive[w]
    /\ nodeAlive[WorkerNode[w]]
    /\ workerAlive' = [workerAlive EXCEPT ![w] = FALSE]
    /\ crashes' = crashes + 1
    /\ lastAction' = Step("WorkerCrash", NoOwner, NoTask, NoNode, w, NoNode, NoMsg)
    /\ UNCHANGED <<nodeAlive, schedVars, ownerVars, msgs, histVars>>

\* A driver owner's node does not crash: that would kill the driver.
\* env: impl/ownership/runtime/memory.py::MemoryNetwork.crash
NodeCrash(n) ==
    /\ crashes < MaxCrashes
    /\ nodeAlive[n]
    /\ ~DriverOn(n)
    /\ nodeAlive' = [nodeAlive EXCEPT ![n] = FALSE]
    /\ workerAlive' = [w \in Workers |-> IF WorkerNode[w] = n THEN FALSE ELSE workerAlive[w]]
    /\ crashes' = crashes + 1
    /\ lastAction' = Step("NodeCrash", NoOwner, NoTask, n, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<schedVars, ownerVars, msgs, histVars>>

\* A message to a dead process is lost.
\* env: impl/ownership/runtime/memory.py::MemoryNetwork.drop
LoseMessage(m) ==
    /\ m \in msgs
    /\ ~DestAlive(m)
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("LoseMessage", NoOwner, NoTask, NoNode, NoWorker, NoNode, m)
    /\ UNCHANGED <<envVars, schedVars, ownerVars, histVars>>

(***************************************************************************)
(* A local scheduler notices that one of its workers died, drops the       *)
(* worker and its lease (freeing the slot), and publishes WorkerDied to    *)
(* every owner.                                                            *)
(***************************************************************************)
\* A worker that died before it registered has no lease to drop; its death is
\* published all the same (the node had counted it as starting), once: the
\* spec, which keeps no record of it, allows it while a live owner has not
\* heard of it.
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.detect_worker_death
SchedulerDetectWorkerDeath(n, w) ==
    /\ nodeAlive[n]
    /\ \/ w \in pool[n]
       \/ /\ w \in Unregistered /\ WorkerNode[w] = n
          /\ \E o \in Owners : OwnerAlive(o) /\ WorkerDiedMsg(o, w) \notin msgs /\ w \notin deadWorkers[o]
    /\ ~workerAlive[w]
    /\ pool' = [pool EXCEPT ![n] = @ \ {w}]
    /\ granted' = [granted EXCEPT ![n] = {l \in @ : l.worker # w}]
    /\ lent' = [lent EXCEPT ![n] = @ \ {w}]
    /\ msgs' = msgs \cup {WorkerDiedMsg(o, w) : o \in Owners}
    /\ lastAction' = Step("SchedulerDetectWorkerDeath", NoOwner, NoTask, n, w, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, members, ownerVars, histVars>>

(***************************************************************************)
(* May the head declare a node dead while it runs?  Its detection is a     *)
(* probe after a lost connection or a heartbeat timeout, and a node cut    *)
(* off or hung for long enough looks dead.  FALSE here; a model overrides  *)
(* it (MCScheduling_Suspicion.cfg), spending one crash of the budget.      *)
(***************************************************************************)
FalseSuspicion == FALSE

\* The head misses a node's heartbeats (or its probes go unanswered),
\* removes it from the membership and publishes NodeDied to every owner.
\* impl: impl/ownership/core/head.py::HeadCore.detect_node_death
HeadDetectNodeDeath(n) ==
    /\ n \in members
    /\ \/ ~nodeAlive[n]
       \/ /\ FalseSuspicion
          /\ crashes < MaxCrashes
          /\ ~DriverOn(n)
    /\ members' = members \ {n}
    /\ crashes' = IF nodeAlive[n] THEN crashes + 1 ELSE crashes
    /\ msgs' = msgs \cup {NodeDiedMsg(o, n) : o \in Owners}
    /\ lastAction' = Step("HeadDetectNodeDeath", NoOwner, NoTask, n, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<nodeAlive, workerAlive, pool, granted, lent, ownerVars, histVars>>

(***************************************************************************)
(* A node declared dead that still runs is fenced: the head answers        *)
(* whatever it sends with its own death notice, and it kills its workers   *)
(* and exits.  Until then its workers may still run what they were given:  *)
(* at-least-once execution, as in Ray, which the history counts as a       *)
(* failure (NoDuplicateExecutionWithoutFailure).                           *)
(***************************************************************************)
\* impl: impl/ownership/core/node.py::NodeCore.fenced
NodeFenced(n) ==
    /\ nodeAlive[n]
    /\ n \notin members
    /\ nodeAlive' = [nodeAlive EXCEPT ![n] = FALSE]
    /\ workerAlive' = [w \in Workers |-> IF WorkerNode[w] = n THEN FALSE ELSE workerAlive[w]]
    /\ lastAction' = Step("NodeFenced", NoOwner, NoTask, n, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<crashes, schedVars, ownerVars, msgs, histVars>>

(***************************************************************************)
(* The owner remembers the failure and drops the leases that died with     *)
(* it.  Which tasks it must resubmit follows from comparing each pending   *)
(* location with what it knows is dead (the ownership-table scan), see     *)
(* OwnerResubmit.                                                          *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.handle_failure
OwnerHandleFailure(o, m) ==
    /\ m \in msgs
    /\ m.owner = o
    /\ OwnerAlive(o)
    /\ m.type \in {"WorkerDied", "NodeDied"}
    /\ IF m.type = "WorkerDied"
       THEN /\ deadWorkers' = [deadWorkers EXCEPT ![o] = @ \cup {m.worker}]
            /\ held' = [held EXCEPT ![o] = {h \in @ : h.worker # m.worker}]
            /\ UNCHANGED deadNodes
       ELSE /\ deadNodes' = [deadNodes EXCEPT ![o] = @ \cup {m.node}]
            /\ held' = [held EXCEPT ![o] = {h \in @ : WorkerNode[h.worker] # m.node}]
            /\ UNCHANGED deadWorkers
    /\ msgs' = msgs \ {m}
    /\ lastAction' = Step("OwnerHandleFailure", o, NoTask, NoNode, NoWorker, NoNode, m)
    /\ UNCHANGED <<envVars, schedVars, status, location, retries, queue,
                   histVars>>

(***************************************************************************)
(* A pending task whose recorded location is known dead is resubmitted:    *)
(* back to the end of its key's queue, using one retry; with no retry      *)
(* left it fails (WorkerCrashedError to whoever gets its future).          *)
(***************************************************************************)
\* impl: impl/ownership/core/submitter.py::TaskSubmitter.resubmit
OwnerResubmit(o, t) ==
    LET k == TaskKey[t] IN
    /\ TaskOwner[t] = o
    /\ OwnerAlive(o)
    /\ status[t] \in {"requested", "pushed"}
    /\ LocationDied(o, t)
    /\ IF retries[t] > 0
       THEN /\ status' = [status EXCEPT ![t] = "queued"]
            /\ queue' = [queue EXCEPT ![o][k] = Append(@, t)]
            /\ retries' = [retries EXCEPT ![t] = @ - 1]
       ELSE /\ status' = [status EXCEPT ![t] = "failed"]
            /\ UNCHANGED <<queue, retries>>
    /\ location' = [location EXCEPT ![t] = NoLocation]
    /\ lastAction' = Step("OwnerResubmit", o, t, NoNode, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, schedVars, held, deadWorkers, deadNodes, msgs,
                   histVars>>

(***************************************************************************)
(* Lineage reconstruction, as scheduling sees it: a finished task's value  *)
(* was stored where the task ran; once its owner knows that worker or its  *)
(* node died (every copy of the value may be gone), it may queue the task  *)
(* again, using one retry, to make the value again.  Which values are      *)
(* still needed, and where their copies are, is FateSharing's and          *)
(* OwnerRecovery's business; here any finished task that ran on a process  *)
(* known dead may be rerun.  Off in the models (their state counts are     *)
(* those of the spec without it); on in the Reconstruction model and in a  *)
(* model sized from a run, whose blob jobs rerun lost values.              *)
(***************************************************************************)
Reconstruction == FALSE

\* impl: impl/ownership/core/recovery.py::FailureHandler.reconstruct
OwnerReconstruct(o, t) ==
    LET k == TaskKey[t] IN
    /\ Reconstruction
    /\ TaskOwner[t] = o
    /\ OwnerAlive(o)
    /\ status[t] = "done"
    /\ retries[t] > 0
    /\ \E w \in ranOn[t] : w \in deadWorkers[o] \/ WorkerNode[w] \in deadNodes[o]
    /\ status' = [status EXCEPT ![t] = "queued"]
    /\ queue' = [queue EXCEPT ![o][k] = Append(@, t)]
    /\ retries' = [retries EXCEPT ![t] = @ - 1]
    /\ location' = [location EXCEPT ![t] = NoLocation]
    /\ lastAction' = Step("OwnerReconstruct", o, t, NoNode, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, schedVars, held, deadWorkers, deadNodes, msgs,
                   histVars>>

(***************************************************************************)
(* A worker the node started registers (the head has acknowledged it):     *)
(* the node may lease it from now on.  The head's answer may come after    *)
(* the worker died (killed as it started): the node cannot know, and       *)
(* registers it until it has detected the death itself, which it then      *)
(* does as for any worker of its pool.  Its detection tells every live     *)
(* owner, so "some live owner not told" is "not detected yet".             *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.worker_registered
SchedulerRegisterWorker(n, w) ==
    /\ nodeAlive[n]
    /\ w \in Unregistered
    /\ WorkerNode[w] = n
    /\ \/ workerAlive[w]
       \/ \E o \in Owners : OwnerAlive(o) /\ WorkerDiedMsg(o, w) \notin msgs /\ w \notin deadWorkers[o]
    /\ w \notin pool[n]  \* a worker leaves the pool only once it is dead
    /\ pool' = [pool EXCEPT ![n] = @ \cup {w}]
    /\ lastAction' = Step("SchedulerRegisterWorker", NoOwner, NoTask, n, w, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, members, granted, lent, ownerVars, msgs, histVars>>

(***************************************************************************)
(* CPU lending: a leased worker whose task waits in a get tells its node,  *)
(* which counts the lease's slot as free until the task goes on (without   *)
(* it a task waiting for tasks it submitted could hold the very slot they  *)
(* need).  When the task goes on, the node takes the slot back at once,    *)
(* even if it granted it meanwhile: the node runs more leases than it has  *)
(* slots until one ends, as Ray's raylet does.  Whether a task waits is    *)
(* the task's business: lending is not a protocol obligation (no           *)
(* fairness), and the models have none (Lending, FALSE), except the        *)
(* Lending model and a model sized from a run.                             *)
(***************************************************************************)
Lending == FALSE

\* impl: impl/ownership/core/scheduler.py::LocalScheduler.blocked
SchedulerLend(n, w) ==
    /\ Lending
    /\ nodeAlive[n]
    /\ \E l \in granted[n] : l.worker = w
    /\ w \notin lent[n]
    /\ lent' = [lent EXCEPT ![n] = @ \cup {w}]
    /\ lastAction' = Step("SchedulerLend", NoOwner, NoTask, n, w, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, members, pool, granted, ownerVars, msgs, histVars>>

\* impl: impl/ownership/core/scheduler.py::LocalScheduler.blocked
SchedulerUnlend(n, w) ==
    /\ nodeAlive[n]
    /\ w \in lent[n]
    /\ lent' = [lent EXCEPT ![n] = @ \ {w}]
    /\ lastAction' = Step("SchedulerUnlend", NoOwner, NoTask, n, w, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, members, pool, granted, ownerVars, msgs, histVars>>

(***************************************************************************)
(* A node hears that an owner died (its worker, or the worker's node) and  *)
(* reclaims what the owner had there: its waiting lease requests are       *)
(* dropped and the workers leased to it are told to stop, since no one     *)
(* will return those leases (their slots come back when the node notices   *)
(* the workers' deaths).  Which news tells the node is abstracted: the     *)
(* owner is dead.                                                          *)
(***************************************************************************)
\* impl: impl/ownership/core/scheduler.py::LocalScheduler.reclaim_leases
SchedulerReclaimLeases(n, o) ==
    /\ nodeAlive[n]
    /\ ~OwnerAlive(o)
    /\ msgs' = {m \in msgs : ~(m.type = "RequestLease" /\ m.node = n /\ m.owner = o)}
    /\ lastAction' = Step("SchedulerReclaimLeases", o, NoTask, n, NoWorker, NoNode, NoMsg)
    /\ UNCHANGED <<envVars, schedVars, ownerVars, histVars>>

(***************************************************************************)
(* The stop lands: a worker leased to a dead owner is killed.  It is a     *)
(* signal, which takes its time: until it lands the worker may still run   *)
(* a task its owner pushed before it died (the reply is lost with the      *)
(* owner).  Like the reclaim, it needs only that the owner is dead.        *)
(***************************************************************************)
\* env: impl/ownership/runtime/process.py::SubprocessLauncher.kill
SchedulerStopWorker(n, w) ==
    /\ nodeAlive[n]
    /\ workerAlive[w]
    /\ \E l \in granted[n] : l.worker = w /\ ~OwnerAlive(l.owner)
    /\ workerAlive' = [workerAlive EXCEPT ![w] = FALSE]
    /\ lastAction' = Step("SchedulerStopWorker", NoOwner, NoTask, n, w, NoNode, NoMsg)
    /\ UNCHANGED <<nodeAlive, crashes, schedVars, ownerVars, msgs, histVars>>

\* Every task has finished, or its owner is dead: the system may stay as it
\* is.  A stuttering step, so that termination is not reported as a deadlock.
\* none: stuttering after termination, no stimulus to map
Terminated ==
    /\ \A t \in Tasks : Finished(t) \/ ~OwnerAlive(TaskOwner[t])
    /\ UNCHANGED vars

-----------------------------------------------------------------------------
Next ==
    \/ \E o \in Owners, t \in Tasks : OwnerSubmit(o, t)
    \/ \E o \in Owners, t \in Tasks : OwnerRequestLease(o, t)
    \/ \E n \in Nodes, m \in RequestLeaseMsgs : SchedulerGrantLease(n, m)
    \/ \E n \in Nodes, m \in RequestLeaseMsgs : SchedulerSpillback(n, m)
    \/ \E o \in Owners, m \in SpillbackMsgs : OwnerHandleSpillback(o, m)
    \/ \E o \in Owners, m \in LeaseGrantedMsgs : OwnerHandleGrant(o, m)
    \/ \E o \in Owners, w \in Workers, t \in Tasks : OwnerReuseLease(o, w, t)
    \/ \E o \in Owners, w \in Workers : OwnerReturnLease(o, w)
    \/ \E n \in Nodes, m \in ReturnLeaseMsgs : SchedulerReleaseLease(n, m)
    \/ \E w \in Workers, m \in PushTaskMsgs : WorkerExecute(w, m)
    \/ \E o \in Owners, m \in TaskReplyMsgs : OwnerHandleReply(o, m)
    \/ \E w \in Workers : WorkerCrash(w)
    \/ \E n \in Nodes : NodeCrash(n)
    \/ \E m \in Messages : LoseMessage(m)
    \/ \E n \in Nodes, w \in Workers : SchedulerDetectWorkerDeath(n, w)
    \/ \E n \in Nodes : HeadDetectNodeDeath(n)
    \/ \E n \in Nodes : NodeFenced(n)
    \/ \E o \in Owners, m \in FailureMsgs : OwnerHandleFailure(o, m)
    \/ \E o \in Owners, t \in Tasks : OwnerResubmit(o, t)
    \/ \E o \in Owners, t \in Tasks : OwnerReconstruct(o, t)
    \/ \E n \in Nodes, o \in Owners : SchedulerReclaimLeases(n, o)
    \/ \E n \in Nodes, w \in Workers : SchedulerStopWorker(n, w)
    \/ \E n \in Nodes, w \in Workers : SchedulerRegisterWorker(n, w)
    \/ \E n \in Nodes, w \in Workers : SchedulerLend(n, w)
    \/ \E n \in Nodes, w \in Workers : SchedulerUnlend(n, w)
    \/ Terminated

(***************************************************************************)
(* The steps of each process, for fairness.                                *)
(***************************************************************************)
OwnerStep(o) ==
    \/ \E t \in Tasks : OwnerSubmit(o, t)
    \/ \E t \in Tasks : OwnerRequestLease(o, t)
    \/ \E m \in SpillbackMsgs : OwnerHandleSpillback(o, m)
    \/ \E m \in LeaseGrantedMsgs : OwnerHandleGrant(o, m)
    \/ \E w \in Workers, t \in Tasks : OwnerReuseLease(o, w, t)
    \/ \E w \in Workers : OwnerReturnLease(o, w)
    \/ \E m \in TaskReplyMsgs : OwnerHandleReply(o, m)
    \/ \E m \in FailureMsgs : OwnerHandleFailure(o, m)
    \/ \E t \in Tasks : OwnerResubmit(o, t)
SchedulerStep(n) ==
    \/ \E m \in RequestLeaseMsgs : SchedulerGrantLease(n, m)
    \/ \E m \in RequestLeaseMsgs : SchedulerSpillback(n, m)
    \/ \E m \in ReturnLeaseMsgs : SchedulerReleaseLease(n, m)
    \/ \E w \in Workers : SchedulerDetectWorkerDeath(n, w)
    \/ NodeFenced(n)
    \/ \E w \in Workers : SchedulerRegisterWorker(n, w)
    \* a reclaim that finds nothing of the owner's changes nothing
    \/ \E o \in Owners : SchedulerReclaimLeases(n, o) /\ msgs' # msgs
    \/ \E w \in Workers : SchedulerStopWorker(n, w)
WorkerStep(w) == \E m \in PushTaskMsgs : WorkerExecute(w, m)
HeadStep == \E n \in Nodes : HeadDetectNodeDeath(n)

\* Every process that is up keeps taking steps (weak fairness per process,
\* on protocol steps only): crashes and message loss are the environment's
\* choice and have no fairness.
Fairness ==
    /\ \A o \in Owners : WF_vars(OwnerStep(o))
    /\ \A n \in Nodes : WF_vars(SchedulerStep(n))
    /\ \A w \in Workers : WF_vars(WorkerStep(w))
    /\ WF_vars(HeadStep)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(***************************************************************************)
(* Invariants.                                                             *)
(***************************************************************************)
TypeOK ==
    /\ nodeAlive \in [Nodes -> BOOLEAN]
    /\ workerAlive \in [Workers -> BOOLEAN]
    /\ crashes \in 0..MaxCrashes
    /\ members \subseteq Nodes
    /\ pool \in [Nodes -> SUBSET Workers]
    /\ granted \in [Nodes -> SUBSET [worker : Workers, owner : Owners, task : Tasks]]
    /\ lent \in [Nodes -> SUBSET Workers]
    /\ \A n \in Nodes : \A w \in lent[n] : \E l \in granted[n] : l.worker = w
    /\ status \in [Tasks -> Statuses]
    /\ location \in [Tasks -> Locations]
    /\ retries \in [Tasks -> Nat]
    /\ \A t \in Tasks : retries[t] <= TaskRetries[t]
    /\ queue \in [Owners -> [Keys -> Seq(Tasks)]]
    /\ held \in [Owners -> SUBSET [worker : Workers, owner : Owners, task : Tasks]]
    /\ deadWorkers \in [Owners -> SUBSET Workers]
    /\ deadNodes \in [Owners -> SUBSET Nodes]
    /\ msgs \subseteq Messages
    /\ execs \in [Tasks -> Nat]
    /\ ranOn \in [Tasks -> SUBSET Workers]

\* Where message m puts its task: at the node a lease request (or that
\* node's answer) is at, or at the worker a PushTask (or that worker's
\* reply) is at.  Failure notifications and ReturnLease carry no task.
Place(m) ==
    CASE m.type \in {"RequestLease", "LeaseGranted", "Spillback"} -> AtNode(m.node)
      [] m.type \in {"PushTask", "TaskReply"} -> AtWorker(m.worker)
      [] OTHER -> NoLocation
\* Alive, and not declared dead: a fenced node's processes may still hold
\* what they were given until the fence reaches them.
LocAlive(l) ==
    IF l.worker # NoWorker THEN workerAlive[l.worker] /\ WorkerNode[l.worker] \in members
                           ELSE nodeAlive[l.node] /\ l.node \in members
Pending(t) == status[t] \in {"requested", "pushed"}

(***************************************************************************)
(* The owner always knows where each pending task is: a requested task's   *)
(* location is a node and a pushed task's a worker; while that process is  *)
(* alive it does hold the task; and no other live process holds a task     *)
(* that is not finished.  (A dead location may have lost the task: that    *)
(* is for OwnerResubmit.)                                                  *)
(***************************************************************************)
PendingLocationKnown ==
    /\ \A t \in Tasks :
        /\ status[t] = "requested" => location[t].node \in Nodes /\ location[t].worker = NoWorker
        /\ status[t] = "pushed" => location[t].worker \in Workers
        /\ ~Pending(t) => location[t] = NoLocation
        /\ Pending(t) /\ LocAlive(location[t]) /\ OwnerAlive(TaskOwner[t])
               => \E m \in msgs : m.task = t /\ Place(m) = location[t]
    /\ \A m \in msgs :
        (/\ m.task # NoTask
         /\ status[m.task] \in {"queued", "requested", "pushed"}
         /\ LocAlive(Place(m)))
            => Place(m) = location[m.task]

\* A worker is leased to at most one owner, once, at a time: at its
\* scheduler and in the owners' tables.
NoDoubleLease ==
    /\ \A n \in Nodes : \A l1, l2 \in granted[n] : l1.worker = l2.worker => l1 = l2
    /\ \A o1, o2 \in Owners : \A h1 \in held[o1], h2 \in held[o2] :
           h1.worker = h2.worker => h1 = h2

\* Without lending a node never runs more leases than it has slots.  With
\* it, a lease taken back may run beyond them (see SchedulerLend), and the
\* grant's guard (HasFreeSlot) is the whole promise.
CapacityRespected ==
    ~Lending => \A n \in Nodes : Cardinality({l \in granted[n] : TaskKey[l.task] \notin FreeKeys}) <= Capacity[n]

\* No worker has more than PipelineDepth tasks of one owner in flight.
PipelineBounded == \A o \in Owners, w \in Workers : Cardinality(InFlight(o, w)) <= PipelineDepth

\* A task runs again only after a worker it ran on died or was declared dead
\* (its node fenced): every run beyond
\* the first is paid for by a dead worker in its history.
NoDuplicateExecutionWithoutFailure ==
    \A t \in Tasks : execs[t] <= 1 + Cardinality({w \in ranOn[t] : ~workerAlive[w] \/ WorkerNode[w] \notin members})

(***************************************************************************)
(* A node declared dead stops (it is fenced), whatever the reason it was   *)
(* declared dead for.                                                      *)
(***************************************************************************)
FencedNodeStops == \A n \in Nodes : n \notin members ~> ~nodeAlive[n]

(***************************************************************************)
(* Liveness: with finitely many crashes and weakly fair protocol steps,    *)
(* every submitted task finishes: done, or failed once its retries are     *)
(* spent, unless its owner died (no one waits for it then).  Lending is    *)
(* the tasks' choice and finite: a node that lent and took back a slot     *)
(* forever could bounce a redirected request between itself and another    *)
(* node forever, so the promise is for behaviours where lending stops.     *)
(***************************************************************************)
LendingStops == <>[][~\E n \in Nodes, w \in Workers : SchedulerLend(n, w) \/ SchedulerUnlend(n, w)]_vars
EveryTaskCompletes ==
    LendingStops =>
        \A t \in Tasks : (status[t] # "new") ~> (Finished(t) \/ ~OwnerAlive(TaskOwner[t]))

=============================================================================
