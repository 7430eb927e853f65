-------------------------- MODULE OwnerRecoveryTests --------------------------
(***************************************************************************)
(* Scenarios of OwnerRecovery, as state predicates.  Conformance asks TLC  *)
(* for a counterexample to ~TestX (checked as the invariant NotTestX) and  *)
(* gets a trace that ends in the scenario.                                 *)
(***************************************************************************)
EXTENDS MCOwnerRecovery

\* The owner that ran the parent first was declared dead.
FirstOwnerGone == FirstOwner \in declared

(***************************************************************************)
(* The owner died after its task's result was stored: the store re-pinned  *)
(* the copy for the driver, and the holder's get returned the value from   *)
(* the new owner.                                                          *)
(***************************************************************************)
TestHolderGetsValueFromNewOwner ==
    /\ FirstOwnerGone
    /\ \E g \in got, x \in Objects :
          /\ g.x = x /\ g.by = "holder" /\ g.res = "value" /\ Recoverable[x]
          /\ brw[g.h][x].o = Driver
          /\ log[x].att = 1
          /\ \E c \in copies : c.x = x /\ c.o = Driver

(***************************************************************************)
(* The owner died while its task ran: the worker sent the result to the    *)
(* new owner, which attached to the running task instead of rebuilding.    *)
(***************************************************************************)
TestAttachedToRunningTask ==
    /\ FirstOwnerGone
    /\ \E x \in Objects :
          /\ Recoverable[x]
          /\ ent[Driver][x].st = "pending"
          /\ log[x].att = 1
          /\ \E p \in Procs : \E r \in run[p] : r.x = x /\ r.o = Driver /\ r.src[1] = FirstOwner

(***************************************************************************)
(* The owner died before its task ran anywhere (its push dropped as        *)
(* stale, or never sent): the new owner rebuilt the object from its        *)
(* lineage and the holder got the value.                                   *)
(***************************************************************************)
TestRebuiltFromLineage ==
    /\ FirstOwnerGone
    /\ \E g \in got : g.by = "holder" /\ g.res = "value" /\ Recoverable[g.x] /\ log[g.x].att = 2

(***************************************************************************)
(* The driver re-executed the parent, which found its object logged and    *)
(* adopted it rather than making a second one.                             *)
(***************************************************************************)
TestParentAdoptsRecoveredObject ==
    \E x \in Objects : \E p \in Procs : p \in log[x].adopt /\ brw[p][x].o = Driver

(***************************************************************************)
(* In one run, the default object failed with OwnerDied while the          *)
(* recoverable one returned its value.                                     *)
(***************************************************************************)
TestDefaultFailsRecoverableSurvives ==
    /\ \E g \in got : g.res = "OwnerDied" /\ ~Recoverable[g.x]
    /\ \E g \in got : g.res = "value" /\ Recoverable[g.x] /\ g.by = "holder"

(***************************************************************************)
(* A false suspicion: the owner, declared dead, still up and owning its    *)
(* object at the old epoch while the driver owns it at the new one.        *)
(***************************************************************************)
TestStaleOwnerBesideNewOwner ==
    /\ FirstOwner \in declared \cap up
    /\ \E x \in Objects :
          /\ ent[FirstOwner][x].st # "none"
          /\ ent[Driver][x].st # "none"
          /\ ent[FirstOwner][x].ep < ent[Driver][x].ep

(***************************************************************************)
(* A recoverable put whose only copy died with its owner was restored from *)
(* the value logged at the head, and the task computed from it ran again.  *)
(***************************************************************************)
TestPutRestoredFromHead ==
    /\ FirstOwnerGone
    /\ \E x \in Objects :
          /\ Kind[x] = "put" /\ Recoverable[x]
          /\ \E c \in copies : c.x = x /\ c.n = Driver /\ c.o = Driver
    /\ \E g \in got : g.res = "value" /\ g.x # NoObj /\ Args[g.x] # {}

(***************************************************************************)
(* The object the driver took over was freed, and the re-executed parent  *)
(* made it anew and handed it to a holder that had heard it moved: the    *)
(* holder borrows it from its maker, not from the driver, and its get     *)
(* returns the value.                                                     *)
(***************************************************************************)
TestRemadeObjectBorrowedFromItsMaker ==
    /\ FirstOwnerGone
    /\ \E x \in Objects, q \in Procs :
          /\ mv[q][x].o = Driver
          /\ brw[q][x].held
          /\ brw[q][x].o \notin {Driver, FirstOwner}
          /\ brw[q][x].ep > mv[q][x].ep
          /\ gst[q][x] = "value"

(***************************************************************************)
(* The owner died with the small value of its object in its own store:    *)
(* the new owner ran the object's task again on the worker that had made  *)
(* it for the dead owner, as an attempt of its own (not a duplicate of    *)
(* the one that worker had finished), and the holder got the value.       *)
(***************************************************************************)
TestRerunOnTheWorkerThatRanIt ==
    /\ FirstOwnerGone
    /\ \E x \in Objects, p \in Procs :
          /\ Inline[x]
          /\ \E f \in fin[p] : f[1] = x /\ f[2] = FirstOwner
          /\ \E f \in fin[p] : f[1] = x /\ f[2] = Driver
          /\ \E g \in got : g.x = x /\ g.by = "holder" /\ g.res = "value" /\ brw[g.h][x].o = Driver

NotTestHolderGetsValueFromNewOwner == ~TestHolderGetsValueFromNewOwner
NotTestAttachedToRunningTask == ~TestAttachedToRunningTask
NotTestRebuiltFromLineage == ~TestRebuiltFromLineage
NotTestParentAdoptsRecoveredObject == ~TestParentAdoptsRecoveredObject
NotTestDefaultFailsRecoverableSurvives == ~TestDefaultFailsRecoverableSurvives
NotTestStaleOwnerBesideNewOwner == ~TestStaleOwnerBesideNewOwner
NotTestPutRestoredFromHead == ~TestPutRestoredFromHead
NotTestRemadeObjectBorrowedFromItsMaker == ~TestRemadeObjectBorrowedFromItsMaker
NotTestRerunOnTheWorkerThatRanIt == ~TestRerunOnTheWorkerThatRanIt
=============================================================================
