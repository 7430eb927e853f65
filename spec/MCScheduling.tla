---------------------------- MODULE MCScheduling ----------------------------
(***************************************************************************)
(* Models of Scheduling for TLC.  This module owns the model values (the  *)
(* .cfg files bind them) and the bounds; Small runs in CI, Large on       *)
(* demand.  No SYMMETRY: every config checks the liveness property, and   *)
(* symmetry reduction is unsound for liveness in TLC.                     *)
(***************************************************************************)
EXTENDS Scheduling, TLC

CONSTANTS o1, o2, n1, n2, n3, w1, w2, w3, w4, t1, t2, t3, t4, k1, k2

(***************************************************************************)
(* Small (CI): one owner on n1; n1 has two workers but one slot, so a     *)
(* second lease there must spill to n2 (one worker, two slots: its pool   *)
(* has not started a worker for every slot).  Two tasks of one key, one   *)
(* crash of any worker or of n2; t2 may be retried once, t1 not at all,   *)
(* so both resubmission and failure are reachable.                        *)
(***************************************************************************)
SmallOwners == {o1}
SmallNodes == {n1, n2}
SmallWorkers == {w1, w2, w3}
SmallTasks == {t1, t2}
SmallKeys == {k1}
SmallOwnerNode == (o1 :> n1)
SmallWorkerNode == (w1 :> n1) @@ (w2 :> n1) @@ (w3 :> n2)
SmallCapacity == (n1 :> 1) @@ (n2 :> 2)
SmallTaskOwner == [t \in SmallTasks |-> o1]
SmallTaskKey == [t \in SmallTasks |-> k1]
SmallSubmitOrder == <<t1, t2>>
SmallTaskRetries == (t1 :> 0) @@ (t2 :> 1)

(***************************************************************************)
(* Reuse (CI): the Small cluster with three tasks of one key and no       *)
(* crashes, for lease reuse and pipelining (three tasks on one lease).    *)
(* With a crash as well it has 35k states and takes a minute with the     *)
(* liveness check, too slow for CI.                                        *)
(***************************************************************************)
ReuseTasks == {t1, t2, t3}
ReuseTaskOwner == [t \in ReuseTasks |-> o1]
ReuseTaskKey == [t \in ReuseTasks |-> k1]
ReuseSubmitOrder == <<t1, t2, t3>>
ReuseTaskRetries == [t \in ReuseTasks |-> 0]

(***************************************************************************)
(* Large: two owners on n1 competing for its slot and for n2, two keys   *)
(* (o1 holds leases of both at once), one crash; t2 has no retry.         *)
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
View == <<nodeAlive, workerAlive, crashes, members, pool, granted, status,
          location, retries, queue, held, deadWorkers, deadNodes, msgs,
          execs, ranOn>>
=============================================================================
