--------------------------- MODULE RefCountingTests ---------------------------
(***************************************************************************)
(* Scenarios of RefCounting that conformance wants traces of.  Each Test*  *)
(* is a state predicate; TLC checking the invariant NotTest* on the Small  *)
(* model stops with a counterexample, a behaviour that ends in the         *)
(* scenario.                                                               *)
(***************************************************************************)
EXTENDS MCRefCounting

(***************************************************************************)
(* x went from the owner to b1 and from b1 on to b2; everyone let go, and  *)
(* the owner freed it.                                                     *)
(***************************************************************************)
TestBorrowerOfBorrowerFreed ==
    /\ freed
    /\ passedOn

(***************************************************************************)
(* x lives only inside a value the owner got back from a task: no local    *)
(* ref, no task, no borrower uses it, and it is not freed.                 *)
(***************************************************************************)
TestRefReturnedInValue ==
    /\ ~freed
    /\ contained[Owner] > 0
    /\ local[Owner] = 0
    /\ submitted[Owner] = 0
    /\ \A b \in Borrowers : ~Uses(b)

(***************************************************************************)
(* The owner's WaitForRefRemoved is registered at b, which has since       *)
(* learned of a sub-borrower c that still uses x: c registered with the    *)
(* owner itself, so the owner counts it already and will count it again    *)
(* when b reports it.                                                      *)
(***************************************************************************)
TestWaitForRefRemovedWhileSubBorrowerHolds ==
    \E b, c \in Borrowers :
        /\ b # c
        /\ removeWaits[b] > 0
        /\ c \in subBorrowers[b]
        /\ Uses(c)
        /\ borrowers[c] > 0

(***************************************************************************)
(* A borrower uses x only through a value it owns: a task it called        *)
(* returned x inside its value.                                            *)
(***************************************************************************)
TestRefReturnedToBorrower ==
    \E b \in Borrowers :
        /\ contained[b] > 0
        /\ local[b] = 0
        /\ Running(b) = 0

(***************************************************************************)
(* b answered the owner (its RefRemoved is in flight), then borrowed x     *)
(* again and was reported again: the owner waits on b twice, so that the   *)
(* old RefRemoved does not release the new borrow.                         *)
(***************************************************************************)
TestReborrowWhileRefRemovedInFlight ==
    \E b \in Borrowers :
        /\ \E m \in DOMAIN msgs : m.type = "RefRemoved" /\ m.borrower = b
        /\ Uses(b)
        /\ borrowers[b] >= 2

(***************************************************************************)
(* x went back and forth between two workers: a task reply carries the     *)
(* worker's sub-borrower list to a caller that the list names.  The worker *)
(* keeps that caller in its list, since the caller does not report itself. *)
(***************************************************************************)
TestSubBorrowersReportedToOneOfThem ==
    \E m \in DOMAIN msgs :
        /\ m.type = "TaskReply"
        /\ m.caller \in m.borrowers
        /\ m.caller \in subBorrowers[m.worker]

NotTestBorrowerOfBorrowerFreed == ~TestBorrowerOfBorrowerFreed
NotTestRefReturnedInValue == ~TestRefReturnedInValue
NotTestWaitForRefRemovedWhileSubBorrowerHolds == ~TestWaitForRefRemovedWhileSubBorrowerHolds
NotTestRefReturnedToBorrower == ~TestRefReturnedToBorrower
NotTestReborrowWhileRefRemovedInFlight == ~TestReborrowWhileRefRemovedInFlight
NotTestSubBorrowersReportedToOneOfThem == ~TestSubBorrowersReportedToOneOfThem

=============================================================================
