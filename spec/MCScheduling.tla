---------------------------- MODULE MCScheduling ----------------------------
(***************************************************************************)
(* Models of Scheduling for TLC.  This module owns the model values (the   *)
(* .cfg files bind them) and the bounds.  Small, Medium and Reuse are      *)
(* checked in CI, Large on demand; Small is also sized for conformance     *)
(* (traces covering every edge of its graph are committed and replayed).   *)
(* No SYMMETRY: every config checks the liveness property, and symmetry    *)
(* reduction is unsound for liveness in TLC.                               *)
(***************************************************************************)
EXTENDS Scheduling, TLC

CONSTANTS o1, o2, n1, n2, n3, w1, w2, w3, w4, t1, t2, t3, t4, k1, k2

(***************************************************************************)
(* Small (CI, conformance): one owner on n1 and one worker per node, one   *)
(* slot each, so a second lease must spill to n2.  Two tasks of one key    *)
(* (the second may reuse the first one's lease), one crash of a worker or  *)
(* of n2; t2 may be retried once, t1 not at all, so resubmission and       *)
(* failure are both reachable.  Every action of the spec is reachable.     *)
(***************************************************************************)
SmallOwners == {o1}
SmallNodes == {n1, n2}
SmallWorkers == {w1, w2}
SmallTasks == {t1, t2}
SmallKeys == {k1}
SmallOwnerNode == (o1 :> n1)
SmallWorkerNode == (w1 :> n1) @@ (w2 :> n2)
SmallCapacity == (n1 :> 1) @@ (n2 :> 1)
SmallTaskOwner == [t \in SmallTasks |-> o1]
SmallTaskKey == [t \in SmallTasks |-> k1]
SmallSubmitOrder == <<t1, t2>>
SmallTaskRetries == (t1 :> 0) @@ (t2 :> 1)

(***************************************************************************)
(* Where Small crashes a process (its ACTION_CONSTRAINT): when one task    *)
(* is still pending and the others are done, at where that task is (its    *)
(* node or worker) or where it is being redirected to.  Small is the       *)
(* conformance model, whose every edge the committed traces cover; with    *)
(* crashes anywhere that cover is three times as many traces (about 700,   *)
(* 30 MB), most of them orders of notifications that touch no task.        *)
(* Medium checks crashes anywhere.  Log validation drops the constraint:   *)
(* a log is a behaviour of the spec, the constraint only bounds a model.   *)
(***************************************************************************)
\* The Suspicion model: the head may declare a live node dead (FalseSuspicion).
SuspicionOn == TRUE

(***************************************************************************)
(* Requests: Medium's cluster (n1 with one slot and two workers, n2 with   *)
(* two slots) and three tasks of one key, t2 and t3 retried once, where    *)
(* the owner keeps two lease requests out at once (max_pending_lease_      *)
(* requests 2, as a chaos run's owners do), so two requests can be         *)
(* waiting, spilled or granted at the same time, and a crash (where Small  *)
(* puts it) can hit either.                                                *)
(***************************************************************************)
TwoRequests == 2

(***************************************************************************)
(* OwnerCrash: a driver o1 on n1 and an owner o2 that is a worker (w3 on   *)
(* n2: a task that submits tasks; n2 has no slot for leases), one task     *)
(* each, so both are leased on n1's one slot, in turn.  The one crash of   *)
(* the budget may kill o2 (its worker or its node) while it holds that     *)
(* slot: n1 must reclaim it (stop o2's leased worker) for o1's task to     *)
(* run on n1's other worker, which registers at some point (or dies first: *)
(* its death is published all the same).                                   *)
(***************************************************************************)
OwnerCrashOwners == {o1, o2}
OwnerCrashWorkers == {w1, w3, w4}
OwnerCrashOwnerNode == (o1 :> n1) @@ (o2 :> n2)
OwnerCrashWorkerNode == (w1 :> n1) @@ (w4 :> n1) @@ (w3 :> n2)
OwnerCrashCapacity == (n1 :> 1) @@ (n2 :> 0)
OwnerCrashTaskOwner == (t1 :> o2) @@ (t2 :> o1)
OwnerCrashOwnerWorker == (o1 :> NoWorker) @@ (o2 :> w3)
\* n1's second worker registers later (its node started it on demand).
OwnerCrashUnregistered == {w4}

\* The Lending model: Medium (n1 has one slot and two workers) where a
\* leased worker may wait in a get and lend its slot, so n1 can run both
\* tasks at once, one of them on a slot it took back.
LendingOn == TRUE

\* The FreeSlot model: Small where t2's key takes no slot (an actor asking
\* for no CPU), so n1 can lease both tasks at once with its one slot.
FreeSlotKeys == {k1, k2}
FreeSlotTaskKey == (t1 :> k1) @@ (t2 :> k2)
FreeSlotFreeKeys == {k2}

\* The StaleViews model: Small where a redirect may go to any other node
\* (a scheduler's view of the cluster may be out of date), invariants only.
StaleViewsOn == TRUE

\* The Reconstruction model: Small with crashes anywhere, where an owner
\* may rerun a finished task whose worker or node it knows is dead (its
\* value may be lost).
ReconstructionOn == TRUE

SmallCrashPoints ==
    LET crash == lastAction'.name \in {"WorkerCrash", "NodeCrash"}
        n == lastAction'.params.n
        w == lastAction'.params.w
        Hits(t) ==
            \/ location[t].worker = w
            \/ location[t].node = n
            \/ \E m \in msgs : /\ m.type = "Spillback"
                               /\ m.task = t
                               /\ \/ m.retry_at = n
                                  \/ w \in Workers /\ m.retry_at = WorkerNode[w]
    IN crash => \E t \in Tasks : /\ status[t] \in {"requested", "pushed"}
                                 /\ \A u \in Tasks \ {t} : status[u] = "done"
                                 /\ Hits(t)

(***************************************************************************)
(* Medium (CI): one owner on n1; n1 has two workers but one slot, so a     *)
(* second lease there must spill to n2 (one worker, two slots: its pool    *)
(* has not started a worker for every slot).  Two tasks of one key, one    *)
(* crash of any worker or of n2; t2 may be retried once, t1 not at all,    *)
(* so both resubmission and failure are reachable.                         *)
(***************************************************************************)
MediumOwners == {o1}
MediumNodes == {n1, n2}
MediumWorkers == {w1, w2, w3}
MediumTasks == {t1, t2}
MediumKeys == {k1}
MediumOwnerNode == (o1 :> n1)
MediumWorkerNode == (w1 :> n1) @@ (w2 :> n1) @@ (w3 :> n2)
MediumCapacity == (n1 :> 1) @@ (n2 :> 2)
MediumTaskOwner == [t \in MediumTasks |-> o1]
MediumTaskKey == [t \in MediumTasks |-> k1]
MediumSubmitOrder == <<t1, t2>>
MediumTaskRetries == (t1 :> 0) @@ (t2 :> 1)

(***************************************************************************)
(* Reuse (CI): the Medium cluster with three tasks of one key and no       *)
(* crashes, for lease reuse and pipelining (three tasks on one lease, the  *)
(* third pushed behind the first while the second asks for a lease).       *)
(* Every config sets PipelineDepth to 2, the implementation's default;     *)
(* Reuse is the one with a task to pipeline (Small and Medium have two     *)
(* tasks of one key, and the second is the one that asks for a lease).     *)
(* Pipeline is Reuse with one crash.  Depth1 is Reuse with PipelineDepth  *)
(* 1: the third task must wait in the queue, so an owner that pipelines    *)
(* one task past its depth shows there.                                    *)
(***************************************************************************)
ReuseTasks == {t1, t2, t3}
ReuseTaskOwner == [t \in ReuseTasks |-> o1]
ReuseTaskKey == [t \in ReuseTasks |-> k1]
ReuseSubmitOrder == <<t1, t2, t3>>
ReuseTaskRetries == [t \in ReuseTasks |-> 0]
\* Pipeline: the pipelined t3 and t2 may be retried once, t1 not at all.
PipelineTaskRetries == (t1 :> 0) @@ (t2 :> 1) @@ (t3 :> 1)

(***************************************************************************)
(* Large: two owners on n1 competing for its slot and for n2, two keys     *)
(* (o1 holds leases of both at once), one crash; t2 has no retry.          *)
(***************************************************************************)
LargeOwners == {o1, o2}
LargeNodes == {n1, n2}
LargeWorkers == {w1, w2, w3}
LargeTasks == {t1, t2, t3}
LargeKeys == {k1, k2}
LargeOwnerNode == (o1 :> n1) @@ (o2 :> n1)
LargeWorkerNode == (w1 :> n1) @@ (w2 :> n1) @@ (w3 :> n2)
LargeCapacity == (n1 :> 1) @@ (n2 :> 2)
LargeTaskOwner == (t1 :> o1) @@ (t2 :> o1) @@ (t3 :> o2)
LargeTaskKey == (t1 :> k1) @@ (t2 :> k2) @@ (t3 :> k1)
LargeSubmitOrder == <<t1, t2, t3>>
LargeTaskRetries == (t1 :> 1) @@ (t2 :> 0) @@ (t3 :> 1)

\* Every variable but lastAction: states that differ only in how they were
\* reached are one state.
View == <<nodeAlive, workerAlive, crashes, members, pool, granted, lent, status,
          location, retries, queue, held, deadWorkers, deadNodes, msgs,
          execs, ranOn>>
=============================================================================
