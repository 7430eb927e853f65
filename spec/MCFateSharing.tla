---------------------------- MODULE MCFateSharing ----------------------------
(***************************************************************************)
(* Models of FateSharing: model values, the programs that run, the view.   *)
(***************************************************************************)
EXTENDS FateSharing, TLC

CONSTANTS a, b, c, d, e, n1, n2, n3

S(x) == [op |-> "submit", obj |-> x]
G(x) == [op |-> "get", obj |-> x]

(***************************************************************************)
(* Small program (tasks a and b), sized for conformance replay:           *)
(*                                                                         *)
(*   driver:  a = A.remote(); get(a)                                       *)
(*   A:  b = B.remote(); get(b)                                            *)
(*                                                                         *)
(* The driver owns a, A's worker owns b.  A runs on the head node with the *)
(* driver, B on n2: a loss of n2 loses b (rebuilt from lineage when A      *)
(* needs it), a loss of A's worker makes B fate-share and the driver       *)
(* re-execute A, which submits b again.                                    *)
(*                                                                         *)
(* Medium program (tasks a..d):                                            *)
(*                                                                         *)
(*   driver:  a = A.remote(); get(a)                                       *)
(*   A:  b = B.remote(); c = C.remote(b); d = D.remote(shared(c));         *)
(*       get(c); get(d)                                                    *)
(*   D:  get(c)                        -- D borrows c from A's worker      *)
(*                                                                         *)
(* The driver owns a; A's worker owns b, c and d; c's lineage holds b.     *)
(* A runs on the head node with the driver, B, C and D on n2, so that one  *)
(* loss of n2 takes c together with its argument b, and d.  D runs with    *)
(* max_retries = 0, so that the same loss makes get(d) ObjectLost.         *)
(*                                                                         *)
(* Large program: the Medium one, but D passes c on to E (a borrower of a  *)
(* borrower), which runs on its own node:                                  *)
(*                                                                         *)
(*   D:  e = E.remote(shared(c)); get(c)                                   *)
(*   E:  get(c)                                                            *)
(***************************************************************************)
SmallTasks == {a, b}
MediumTasks == {a, b, c, d}
LargeTasks == {a, b, c, d, e}

SmallParent == [x \in SmallTasks |-> IF x = a THEN Root ELSE a]
MediumParent == [x \in MediumTasks |-> IF x = a THEN Root ELSE a]
LargeParent == [x \in LargeTasks |-> CASE x = a -> Root [] x = e -> d [] OTHER -> a]
MCArgs(xs) == [x \in xs |-> IF x = c THEN {b} ELSE {}]
MCSharedArgs(xs) == [x \in xs |-> IF x \in {d, e} THEN {c} ELSE {}]
SmallBody == [t \in SmallTasks \cup {Root} |->
    CASE t = Root -> <<S(a), G(a)>>
      [] t = a -> <<S(b), G(b)>>
      [] OTHER -> <<>>]
MediumBody == [t \in MediumTasks \cup {Root} |->
    CASE t = Root -> <<S(a), G(a)>>
      [] t = a -> <<S(b), S(c), S(d), G(c), G(d)>>
      [] t = d -> <<G(c)>>
      [] OTHER -> <<>>]
LargeBody == [t \in LargeTasks \cup {Root} |->
    CASE t = Root -> <<S(a), G(a)>>
      [] t = a -> <<S(b), S(c), S(d), G(c), G(d)>>
      [] t = d -> <<S(e), G(c)>>
      [] t = e -> <<G(c)>>
      [] OTHER -> <<>>]
MCRetries(xs) == [x \in xs |-> IF x \in {d, e} THEN 0 ELSE 1]
SmallPlacement == [x \in SmallTasks |-> IF x = a THEN n1 ELSE n2]
MediumPlacement == [x \in MediumTasks |-> IF x = a THEN n1 ELSE n2]
LargePlacement == [x \in LargeTasks |-> CASE x = a -> n1 [] x = e -> n3 [] OTHER -> n2]

SmallArgs == MCArgs(SmallTasks)
SmallSharedArgs == MCSharedArgs(SmallTasks)
SmallRetries == MCRetries(SmallTasks)
MediumArgs == MCArgs(MediumTasks)
MediumSharedArgs == MCSharedArgs(MediumTasks)
MediumRetries == MCRetries(MediumTasks)
LargeArgs == MCArgs(LargeTasks)
LargeSharedArgs == MCSharedArgs(LargeTasks)
LargeRetries == MCRetries(LargeTasks)

\* The model's view: every variable but the auxiliary lastAction.
MCView == <<up, crashes, status, nodeOf, ctx, got, table, copies, announced,
            announcedNodes, msgs>>
=============================================================================
