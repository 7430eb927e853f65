---------------------------- MODULE MCRefCounting ----------------------------
(***************************************************************************)
(* Model of RefCounting for TLC: model values for the processes, the two   *)
(* borrower sets used by the Small and Medium configs (two borrowers) and  *)
(* the Large one (three), and the VIEW that leaves out the auxiliary       *)
(* lastAction.  No SYMMETRY: every config checks the liveness property     *)
(* NoLeak, with which symmetry reduction is unsound.                       *)
(***************************************************************************)
EXTENDS RefCounting, TLC

CONSTANTS
    \* @type: PROC;
    o,
    \* @type: PROC;
    b1,
    \* @type: PROC;
    b2,
    \* @type: PROC;
    b3

MCOwner == o
MCBorrowersSmall == {b1, b2}
MCBorrowersLarge == {b1, b2, b3}
\* In Small and Medium the owner's tasks go to b1 only: with one worker of its own, any
\* behaviour where the owner uses b2 is a renaming of one where it uses b1.
MCOwnerWorkersSmall == {b1}
MCOwnerWorkersLarge == MCBorrowersLarge

\* Every variable but lastAction: states that differ only in how they were
\* reached are one state.
MCView == <<local, submitted, contained, running, waiting, borrowers,
            subBorrowers, removeWaits, tasksLeft, freed, lending, getting,
            servesLeft, msgs, passedOn>>

=============================================================================
