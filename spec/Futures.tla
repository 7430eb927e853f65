-------------------------------- MODULE Futures --------------------------------
(***************************************************************************)
(* The contract of a future, as a program written against ownership        *)
(* relies on it, with no word of owners, copies, leases or crashes.        *)
(*                                                                         *)
(* A future is made (f.remote() or put), may be passed around, and         *)
(* resolves to its value: the value its lineage computes, whatever was     *)
(* lost and made again on the way.  It resolves to an error only when      *)
(* recovery became impossible: its retries were all spent, an argument it  *)
(* was computed from failed, its owner died, or it was cancelled.  Which   *)
(* futures are past saving is the environment's judgement (doomed): the    *)
(* protocol that refines this spec says what it means.  A get of a future  *)
(* always ends, with what the future resolved to.                          *)
(*                                                                         *)
(* Several futures may move in one step: one protocol step settles many    *)
(* entries of an ownership table at once.                                  *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    \* @type: Set(FUT);
    Futures

VARIABLES
    \* What each future is: not made yet, pending, resolved to its value, or
    \* resolved to an error.
    \* @type: FUT -> Str;
    fate,
    \* The futures recovery can no longer save (the environment's verdict).
    \* @type: Set(FUT);
    doomed,
    \* The futures a get is waiting for.
    \* @type: Set(FUT);
    waits,
    \* What the gets returned.
    \* @type: Set({f: FUT, res: Str});
    told

vars == <<fate, doomed, waits, told>>

Fates == {"unmade", "pending", "value", "error"}
Results == {"value", "error"}

Init ==
    /\ fate = [f \in Futures |-> "unmade"]
    /\ doomed = {}
    /\ waits = {}
    /\ told = {}

\* Future f's fate moves at most once a step, and only forwards: a value is
\* never replaced by another, an error comes only to a doomed future.  (A
\* put is made with its value; a task whose argument failed fails as it is
\* made.)
Resolve(f) ==
    \/ fate'[f] = fate[f]
    \/ fate[f] = "unmade" /\ fate'[f] \in {"pending", "value"}
    \/ fate[f] = "pending" /\ fate'[f] = "value"
    \/ fate[f] # "error" /\ f \in doomed /\ fate'[f] = "error"

\* A get of f begins (of a future that exists), goes on, or ends with what
\* f resolved to.
Told(f, S) == {t \in S : t.f = f}
Get(f) ==
    \/ (f \in waits') = (f \in waits) /\ Told(f, told') = Told(f, told)
    \/ /\ f \notin waits /\ f \in waits'
       /\ fate[f] # "unmade"
       /\ Told(f, told') = Told(f, told)
    \/ /\ f \in waits /\ f \notin waits'
       /\ fate[f] \in Results
       /\ Told(f, told') = Told(f, told) \cup {[f |-> f, res |-> fate[f]]}

Next ==
    /\ fate' \in [Futures -> Fates]
    /\ doomed' \subseteq Futures
    /\ waits' \subseteq Futures
    /\ told' \subseteq [f : Futures, res : Results]
    /\ \A f \in Futures : Resolve(f) /\ Get(f)

(***************************************************************************)
(* A get always ends.                                                      *)
(***************************************************************************)
GetEnds == \A f \in Futures : [](f \in waits => <>(f \notin waits))

Spec == Init /\ [][Next]_vars /\ GetEnds

TypeOK ==
    /\ fate \in [Futures -> Fates]
    /\ doomed \subseteq Futures
    /\ waits \subseteq Futures
    /\ told \subseteq [f : Futures, res : Results]

=============================================================================
