--------------------------- MODULE FateSharingTests ---------------------------
(***************************************************************************)
(* Scenarios of FateSharing, as state predicates.  Conformance asks TLC    *)
(* for a counterexample to ~TestX (checked as the invariant NotTestX) and  *)
(* gets a trace that ends in the scenario.                                 *)
(***************************************************************************)
EXTENDS MCFateSharing

(***************************************************************************)
(* A node died, and an object together with its by-value argument were     *)
(* both recomputed from lineage: the object is available again at its      *)
(* owner, and both spent retry budget.  (Figure 10.)                       *)
(***************************************************************************)
TestNodeDiesObjectAndArgRebuilt ==
    /\ up # Nodes
    /\ \E o \in Workers, x \in Objects :
          /\ Alive(o)
          /\ x \in DOMAIN table[o]
          /\ Args[x] # {}
          /\ table[o][x].st = "ready"
          /\ table[o][x].budget < Retries[x]
          /\ \A y \in Args[x] : table[o][y].st = "ready" /\ table[o][y].budget < Retries[y]

(***************************************************************************)
(* The owner of a borrowed reference died while the borrower's task runs   *)
(* with it, and the borrower has not yet heard.  (Figure 11a.)             *)
(***************************************************************************)
TestOwnerDiesWhileBorrowerHolds ==
    \E h \in Workers : \E r \in HeldRefs(h) :
        /\ r[1] \in SharedArgs[h[1]]
        /\ status[r[2]] = "dead"

(***************************************************************************)
(* The same, for a borrower of a borrower: the task got the reference      *)
(* from a process that is not the owner.                                   *)
(***************************************************************************)
TestOwnerDiesWhileBorrowerOfBorrowerHolds ==
    \E h \in Workers : \E r \in HeldRefs(h) :
        /\ r[1] \in SharedArgs[h[1]]
        /\ ctx[h].owner # r[2]
        /\ status[r[2]] = "dead"

(***************************************************************************)
(* A borrower fate-shared: its task failed because the owner of a          *)
(* reference it held died.                                                 *)
(***************************************************************************)
TestBorrowerFateShared ==
    \E h \in Workers :
        /\ Alive(h)
        /\ ctx[h].body = "failed"
        /\ SharedArgs[h[1]] # {}
        /\ \E r \in ctx[h].borrowed : status[r[2]] = "dead"

(***************************************************************************)
(* An object ran out of retry budget, and a get returned ObjectLost.       *)
(***************************************************************************)
TestBudgetExhausted ==
    \E h \in Workers : \E g \in got[h] : g.res = "ObjectLost"

(***************************************************************************)
(* An owner died while its task ran, after it had dispatched a child; the  *)
(* dead owner's owner re-executed the task, and the new execution          *)
(* recreated that child's object under its own ownership.  (Figure 11b.)   *)
(***************************************************************************)
TestOwnerReexecutedByItsOwner ==
    \E t \in Objects, j, k \in 1..MaxExec :
        /\ j < k
        /\ status[<<t, j>>] = "dead"
        /\ Alive(<<t, k>>)
        /\ \E x \in Children(t) :
              /\ table[<<t, j>>][x].st \in {"pending", "ready"}
              /\ table[<<t, k>>][x].st = "ready"

NotTestNodeDiesObjectAndArgRebuilt == ~TestNodeDiesObjectAndArgRebuilt
NotTestOwnerDiesWhileBorrowerHolds == ~TestOwnerDiesWhileBorrowerHolds
NotTestOwnerDiesWhileBorrowerOfBorrowerHolds == ~TestOwnerDiesWhileBorrowerOfBorrowerHolds
NotTestBorrowerFateShared == ~TestBorrowerFateShared
NotTestBudgetExhausted == ~TestBudgetExhausted
NotTestOwnerReexecutedByItsOwner == ~TestOwnerReexecutedByItsOwner
=============================================================================
