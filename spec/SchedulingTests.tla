--------------------------- MODULE SchedulingTests ---------------------------
(***************************************************************************)
(* Scenarios of Scheduling, as state predicates.  TLC checking the        *)
(* "invariant" ~TestX with the config named in spec/Scheduling.json       *)
(* reports a violation whose trace is a behavior that ends in scenario X: *)
(* conformance replays it against the implementation.  Each predicate    *)
(* is written so that it can only hold after the scenario really          *)
(* happened, using the history variables where the state alone would not *)
(* tell.                                                                   *)
(***************************************************************************)
EXTENDS MCScheduling

(***************************************************************************)
(* Worker reuse (fig. 8d): three tasks of one key ran on one worker, and  *)
(* the lease granted for the first of them is still held.  That lease    *)
(* was granted before the other two ran (the owner's queue is FIFO and   *)
(* asks for one lease per key at a time) and was never returned, so they *)
(* ran under it: one lease, three tasks, two of them bypassing the        *)
(* scheduler.  Config: Reuse.                                              *)
(***************************************************************************)
TestLeaseReusedForThreeTasks ==
    \E w \in Workers : \E l \in granted[WorkerNode[w]] :
        LET onIt == {t \in Tasks : /\ TaskOwner[t] = l.owner
                                   /\ TaskKey[t] = TaskKey[l.task]
                                   /\ status[t] = "done"
                                   /\ ranOn[t] = {w}}
        IN /\ l.worker = w
           /\ l \in held[l.owner]
           /\ l.task \in onIt
           /\ Cardinality(onIt) >= 3
           /\ \A t \in onIt : Rank(l.task) <= Rank(t)

(***************************************************************************)
(* Pipelining: two tasks of one owner are in flight on one worker (the   *)
(* second was pushed before the first one's reply) while a third task of *)
(* the key waits for a lease of its own.  Config: Reuse (PipelineDepth = *)
(* 2).                                                                     *)
(***************************************************************************)
TestTaskPipelinedWhileRequesting ==
    \E o \in Owners, w \in Workers :
        /\ Cardinality(InFlight(o, w)) = 2
        /\ \A t \in InFlight(o, w) : \E m \in msgs : m.type = "PushTask" /\ m.task = t
        /\ \E t \in Tasks : TaskOwner[t] = o /\ status[t] = "requested"

(***************************************************************************)
(* No pipelining past the depth: a worker has PipelineDepth tasks of one  *)
(* owner in flight, another task of their key asks for a lease, and a     *)
(* third waits in the owner's queue: it may go to neither.  Config:       *)
(* Depth1 (PipelineDepth = 1).                                             *)
(***************************************************************************)
TestTaskQueuedBehindAFullLease ==
    \E o \in Owners, w \in Workers :
        LET k == TaskKey[CHOOSE t \in InFlight(o, w) : TRUE] IN
        /\ Cardinality(InFlight(o, w)) = PipelineDepth
        /\ Requesting(o, k)
        /\ queue[o][k] # <<>>

(***************************************************************************)
(* Spillback (fig. 8c): a task is pushed to a worker on another node than *)
(* its owner's, under a lease granted for that very task: its request was *)
(* redirected there and granted.  Config: Small.                          *)
(***************************************************************************)
TestSpillbackThenGrant ==
    \E t \in Tasks, w \in Workers :
        /\ status[t] = "pushed"
        /\ location[t] = AtWorker(w)
        /\ WorkerNode[w] # OwnerNode[TaskOwner[t]]
        /\ [worker |-> w, owner |-> TaskOwner[t], task |-> t] \in held[TaskOwner[t]]

(***************************************************************************)
(* A task ran on a worker, the worker (not its node) died, the owner     *)
(* resubmitted the task and it completed elsewhere: the one kind of       *)
(* duplicate execution the protocol allows.  Config: Small.               *)
(***************************************************************************)
TestWorkerDiesAndTaskResubmitted ==
    \E t \in Tasks, w \in Workers :
        /\ status[t] = "done"
        /\ retries[t] < TaskRetries[t]
        /\ execs[t] = 2
        /\ w \in ranOn[t]
        /\ ~workerAlive[w]
        /\ nodeAlive[WorkerNode[w]]

(***************************************************************************)
(* A node died while one of its tasks was there (requested or pushed), the *)
(* head published it, and the owner resubmitted the task, which then ran  *)
(* once and completed: the failure cost a retry but no duplicate run.     *)
(* Config: Small.                                                          *)
(***************************************************************************)
TestNodeDiesAndTaskResubmitted ==
    \E t \in Tasks, n \in Nodes :
        /\ status[t] = "done"
        /\ retries[t] < TaskRetries[t]
        /\ execs[t] = 1
        /\ ~nodeAlive[n]
        /\ n \in deadNodes[TaskOwner[t]]
        /\ \A w \in Workers : WorkerNode[w] # n => workerAlive[w]

(***************************************************************************)
(* A task whose location died has no retry left: it fails (the owner will *)
(* raise WorkerCrashedError from get) while the other task still          *)
(* completes.  Config: Small.                                              *)
(***************************************************************************)
TestTaskFailsWithoutRetries ==
    \E t, u \in Tasks :
        /\ status[t] = "failed"
        /\ TaskRetries[t] = 0
        /\ status[u] = "done"

NotTestLeaseReusedForThreeTasks == ~TestLeaseReusedForThreeTasks
NotTestSpillbackThenGrant == ~TestSpillbackThenGrant
NotTestWorkerDiesAndTaskResubmitted == ~TestWorkerDiesAndTaskResubmitted
NotTestNodeDiesAndTaskResubmitted == ~TestNodeDiesAndTaskResubmitted
NotTestTaskFailsWithoutRetries == ~TestTaskFailsWithoutRetries
=============================================================================
