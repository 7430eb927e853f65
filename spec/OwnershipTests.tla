---------------------------- MODULE OwnershipTests ----------------------------
(***************************************************************************)
(* Scenarios of Ownership, as state predicates.  Conformance asks TLC for  *)
(* a counterexample to ~TestX (checked as the invariant NotTestX) and gets *)
(* a trace that ends in the scenario.  Each of the first three is a bug   *)
(* the implementation had: its trace failed on the old code.               *)
(***************************************************************************)
EXTENDS MCOwnership

(***************************************************************************)
(* A leased worker was told a location its owner still believed while the *)
(* worker already knew that node was dead, and asked again naming it:     *)
(* the owner writes the node off and rebuilds the argument.  (The old     *)
(* worker found no live location and never asked again: its task hung.)  *)
(***************************************************************************)
TestStaleLocationAskedAgain ==
    \E m \in msgs : m.type = "GetObject" /\ m.locs # {} /\ ent[m.x].obj = "ready"

(***************************************************************************)
(* A task leased before its argument's only copy was lost finished: the   *)
(* argument was rebuilt while the task waited at its worker, which lent   *)
(* its node's CPU to the rebuild.  (The old worker held the CPU: on a     *)
(* node of one CPU the rebuild queued behind it.)                          *)
(***************************************************************************)
TestArgumentRebuiltForLeasedTask ==
    /\ ent[Y].task = "done"
    /\ ent[Y].budget = Retries[Y]
    /\ ent[X].budget < Retries[X]

(***************************************************************************)
(* A put nobody refers to any more keeps its value, because the lineage   *)
(* of an object that may be rebuilt names it.  (The old owner freed it,   *)
(* and the rebuild failed with "no lineage".)                              *)
(***************************************************************************)
TestPutPinnedByLineage ==
    /\ Kind[X] = "put"
    /\ ent[X].obj = "ready"
    /\ ent[X].local = 0 /\ ent[X].submitted = 0
    /\ ent[X].lineage > 0
    /\ ent[Y].obj = "ready"

(***************************************************************************)
(* An object lost after its argument was freed is rebuilt with the        *)
(* argument rebuilt first (the lineage pin kept the argument's spec).     *)
(***************************************************************************)
TestFreedArgumentRebuilt ==
    /\ ent[Y].obj = "ready"
    /\ ent[Y].budget < Retries[Y]
    /\ ent[X].budget < Retries[X]

(***************************************************************************)
(* The argument of a task that waits at its worker is rebuilt on a node   *)
(* whose only CPU that worker lent.                                        *)
(***************************************************************************)
TestCpuLentForRebuild ==
    \E n \in Nodes : \E l \in leases[n] :
        /\ l.lent
        /\ \E l2 \in leases[n] : l2 # l /\ ~l2.lent

(***************************************************************************)
(* y, which borrowed x (x passed inside a value), lost its copy and ran   *)
(* again after the driver dropped x: y's lineage kept x, which was made   *)
(* again for the rerun.  (The old owner pinned the arguments only: it     *)
(* forgot x, and the rerun's get of x failed with ObjectLostError.)       *)
(***************************************************************************)
TestBorrowedObjectKeptForRerun ==
    /\ X \in SharedArgs[Y]
    /\ ent[Y].obj = "ready"
    /\ ent[Y].budget < Retries[Y]
    /\ ent[X].local = 0

(***************************************************************************)
(* Actors (model Actor).  The calls ran in submission order: the second   *)
(* arrived while the first ran and was queued behind it.                   *)
(***************************************************************************)
TestCallQueuedBehindRunningOne ==
    \E a \in Workers :
        /\ IsUp(Cur(a)) /\ ex[a].phase = "host"
        /\ ex[a].cur.x = CallSeq(ex[a].x)[1]
        /\ Len(ex[a].q) = 1

(***************************************************************************)
(* The actor's worker died with a call queued behind the running one: the *)
(* owner failed both with ActorDied.                                       *)
(***************************************************************************)
TestActorDiedWithCallsQueued ==
    \E a \in Workers :
        /\ ~IsUp(Cur(a)) /\ ex[a].phase = "host"
        /\ ex[a].cur # NoCall /\ ex[a].q # <<>>
        /\ ent[ex[a].cur.x].err = "ActorDied"
        /\ \A i \in 1..Len(ex[a].q) : ent[ex[a].q[i].x].err = "ActorDied"

(***************************************************************************)
(* A call submitted to the actor after its worker died, before the owner *)
(* heard of it, failed with ActorDied without running.                    *)
(***************************************************************************)
TestCallToDeadActorFails ==
    \E x \in Calls :
        /\ \E g \in got : g.x = x /\ g.res = "ActorDied"
        /\ x \notin Range(actorLog[Target[x]].ran)
        /\ ent[Target[x]].obj = "failed"

(***************************************************************************)
(* The handle was dropped while both calls were pending; they held the    *)
(* actor until they returned, and then its worker was stopped and its     *)
(* lease given back, with no crash.                                        *)
(***************************************************************************)
TestActorStoppedAfterLastHandle ==
    /\ crashes = 0
    /\ \A x \in Calls : \E g \in got : g.x = x /\ g.res = "value"
    /\ \E r \in Actors : actorLog[r].host # NoProc /\ ~IsUp(actorLog[r].host)
    /\ \A n \in Nodes : leases[n] = {}

(***************************************************************************)
(* Cancel (model Cancel).  A call cancelled while queued at the caller     *)
(* never left it; one cancelled once pushed was dropped from the actor's  *)
(* queue by the cancel that followed it; and one may also start before   *)
(* its cancel arrives (the owner's get raised at once all the same, and   *)
(* the reply only let go of the handle).                                   *)
(***************************************************************************)
TestCallCancelledBeforePush ==
    \E x \in Calls : why[x] = "cancelled" /\ ent[x].task = "failed" /\ ent[x].att = 0

TestCancelledCallDroppedAtWorker ==
    \E m \in msgs : m.type = "TaskReply" /\ m.err = "Cancelled"

TestCancelledCallStartedBeforeItsCancel ==
    \E x \in Calls : why[x] = "cancelled" /\ x \in Range(actorLog[Target[x]].ran)

=============================================================================
