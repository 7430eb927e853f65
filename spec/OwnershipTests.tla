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

=============================================================================
