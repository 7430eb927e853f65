----------------------------- MODULE RefCounting -----------------------------
(***************************************************************************)
(* Distributed reference counting of one object under Ownership (Wang et   *)
(* al., NSDI 2021, section 4.2 "Memory management", and the Ref counts     *)
(* columns of table 2: local refs, submitted-task refs, borrowers,         *)
(* contained-in).                                                          *)
(*                                                                         *)
(* The object x belongs to the process that created it, the owner.  A      *)
(* reference to x leaves the owner when it is passed to a task as a        *)
(* shared(x) argument: the executing worker becomes a borrower.  A         *)
(* borrower may pass the ref on to tasks of its own (it is their caller),  *)
(* keep it beyond its task (actor state), or return it inside the task's   *)
(* value to its caller.  Counting is hierarchical (and a borrower of a     *)
(* borrower also registers with the owner itself, below).  A finished      *)
(* task's reply tells its caller whether the worker still holds the ref    *)
(* and which sub-borrowers the worker created; the caller merges them into *)
(* its own borrower set and forwards them when it reports in turn, until   *)
(* they reach the owner.  The owner sends WaitForRefRemoved to every       *)
(* borrower it learns of; a borrower answers RefRemoved, with the          *)
(* sub-borrowers it learned since, once it no longer holds the ref.  The   *)
(* owner frees the value (and tells the object store with FreeObject) when *)
(* its own local refs, submitted-task refs and contained-in values are     *)
(* gone and no borrower is outstanding.                                    *)
(*                                                                         *)
(* A worker that gets x from a task whose caller is not the owner (a       *)
(* borrower of a borrower) registers with the owner before the task runs:  *)
(* AddBorrower, answered by BorrowerAdded once the owner counts it (the    *)
(* answer doubles as the owner's WaitForRefRemoved).  Reported only        *)
(* through its lender's reply, it would be lost to the owner when the      *)
(* lender dies before passing it on, and the owner would free x while it   *)
(* is used (crashes are in Ownership.tla).  The lender's own borrow holds  *)
(* x while the task waits, so the owner cannot have freed it: the wait is  *)
(* what makes the order of messages from different senders irrelevant.    *)
(* SubBorrowerKnown states, without crashes, what a crash of the lender    *)
(* needs: a task that got x from a borrower runs only while the owner      *)
(* counts its worker.  The lender still reports it in its reply too (a     *)
(* second, harmless count: the owner counts requests, each answered on its *)
(* own).                                                                   *)
(*                                                                         *)
(* Processes do not crash and messages are not lost here: what happens to  *)
(* borrowers and values when the owner or a borrower dies is the           *)
(* FateSharing spec (section 4.3).  Messages are delivered in any order (a *)
(* bag: the same message may be in flight twice).                          *)
(*                                                                         *)
(* One object is counted.  A value that contains x (the return value of a  *)
(* task whose worker put x in it) is owned by that task's caller and is    *)
(* modelled only by its count contained[p].  Its owner may serve it to     *)
(* another process that gets it (MaxServes times): the reader then holds x *)
(* too.  When the value's owner is x's owner, it counts the reader as it   *)
(* serves.  When it is a borrower, it asks the owner to count the reader   *)
(* (RegisterBorrower) and serves only once the owner has (the answer,      *)
(* BorrowerRegistered), holding x meanwhile: listed only among the         *)
(* lender's sub-borrowers, as in Ray, the reader would be lost to the      *)
(* owner when the lender dies before it reports (ReaderKnown states,       *)
(* without crashes, what a crash of the lender needs; mutant               *)
(* "reader-known-only-to-its-lender").                                     *)
(*                                                                         *)
(* Two deviations from Ray's reference_count.cc, each needed for           *)
(* MemorySafety in this model (the Ray behaviour is kept as a mutant in    *)
(* RefCounting.json):                                                      *)
(*                                                                         *)
(* (1) When the owner learns of a borrower it is already waiting for, it   *)
(* sends another WaitForRefRemoved and counts the borrower twice           *)
(* (borrowers is a multiset).  With a set, a RefRemoved sent before the    *)
(* borrower borrowed x again can overtake the reply that reports the new   *)
(* borrow, and the owner frees x while it is used (mutant                  *)
(* "reborrow-absorbed").                                                   *)
(*                                                                         *)
(* (2) A borrower that reports its sub-borrowers to a caller keeps the one *)
(* that is the caller itself, to hand it to the owner later.  Cleared on   *)
(* every report, the list can reach a caller that it names, which does not *)
(* report itself, and never the owner (mutant                              *)
(* "reply-clears-subborrowers").                                           *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    \* @type: PROC;
    Owner,          \* the process that owns x
    \* @type: Set(PROC);
    Borrowers,      \* the workers that may execute tasks and borrow x
    \* @type: Set(PROC);
    OwnerWorkers,   \* the workers the owner itself submits tasks to
    \* @type: Int;
    MaxTasks,       \* bound on the number of tasks submitted, all taking shared(x)
    \* @type: Int;
    MaxLocal,       \* bound on the local refs a borrower keeps beyond its tasks
    \* @type: Int;
    MaxServes       \* bound on the values containing x served to a reader

ASSUME /\ Owner \notin Borrowers
       /\ Borrowers # {}
       /\ OwnerWorkers \subseteq Borrowers
       /\ MaxTasks \in Nat
       /\ MaxLocal \in Nat \ {0}
       /\ MaxServes \in Nat

Procs == {Owner} \cup Borrowers

(***************************************************************************)
(* Type aliases for Apalache.  Message and lastAction records are typed as *)
(* one sparse record with the union of the fields: each message type uses  *)
(* only its own fields.  (Apalache versions with row-typed records want a  *)
(* variant instead.)                                                       *)
(***************************************************************************)
\* @typeAlias: msg = {type: Str, caller: PROC, worker: PROC, borrowing: Bool, borrowers: Set(PROC), contained: Bool, owner: PROC, borrower: PROC, ok: Bool, lender: PROC};
\* @typeAlias: params = {p: PROC, c: PROC, b: PROC, w: PROC, o: PROC, r: PROC, m: $msg};
\* @typeAlias: action = {name: Str, params: $params};
RefCounting_typedefs == TRUE

VARIABLES
    \* @type: PROC -> Int;
    local,
        \* local[p]: refs to x held in p's own process.  The owner starts
        \* with the one that f.remote() returned; a borrower's count holds
        \* the copies its tasks kept beyond their end (actor state, globals).
    \* @type: PROC -> Int;
    submitted,
        \* submitted[p]: tasks p submitted with shared(x) whose reply p has
        \* not handled yet (the submitted-task refs column).
    \* @type: PROC -> Int;
    contained,
        \* contained[p]: live values owned by p that contain x (contained-in).
    \* @type: PROC -> (PROC -> Int);
    running,
        \* running[b][p]: tasks from caller p executing at borrower b; each
        \* pins its argument x until it finishes.  Domain Borrowers.
    \* @type: PROC -> (PROC -> Int);
    waiting,
        \* waiting[b][p]: tasks from caller p, a borrower, received at b and
        \* waiting for the owner to count b (BorrowerAdded) before they run;
        \* each pins x as a running task does.  Domain Borrowers.
    \* @type: PROC -> Int;
    borrowers,
        \* borrowers[b], at the owner: WaitForRefRemoved requests sent to b
        \* and not yet answered.  Domain Borrowers.
    \* @type: PROC -> Set(PROC);
    subBorrowers,
        \* subBorrowers[b]: borrowers that b learned of from the replies of
        \* its own tasks and has not handed on (see FinishTask).  Domain
        \* Borrowers.
    \* @type: PROC -> Int;
    removeWaits,
        \* removeWaits[b]: WaitForRefRemoved requests b has received and not
        \* answered yet.  Domain Borrowers.
    \* @type: Int;
    tasksLeft,
        \* how many more tasks may be submitted (the MaxTasks bound)
    \* @type: Bool;
    freed,
        \* the owner has freed the value
    \* @type: PROC -> (PROC -> Int);
    lending,
        \* lending[p][r]: values containing x that borrower p serves to r
        \* once the owner has counted r; p holds x for each meanwhile.
        \* Domain Borrowers.
    \* @type: PROC -> Int;
    getting,
        \* getting[r]: r's gets of a value containing x, from the serve
        \* until the value arrives; r holds x for each, so that the owner's
        \* request can wait for the value.  Domain Borrowers.
    \* @type: Int;
    servesLeft,
        \* how many more values may be served (the MaxServes bound)
    \* @type: $msg -> Int;
    msgs,
        \* messages in flight, a bag: msgs[m] copies of m
    \* @type: Bool;
    passedOn,
        \* history for tests, never read by an action: a borrower has
        \* passed x on to a task of its own
    \* @type: $action;
    lastAction
        \* auxiliary: the last action taken and its parameters, for
        \* conformance; not in the model's VIEW nor in any invariant

serveVars == <<lending, getting, servesLeft>>

vars == <<local, submitted, contained, running, waiting, borrowers,
          subBorrowers, removeWaits, tasksLeft, freed, lending, getting,
          servesLeft, msgs, passedOn, lastAction>>

-----------------------------------------------------------------------------
(***************************************************************************)
(* Messages.  Field names are those of the core's message classes (which   *)
(* have more, such as a task id: tasks are not named here, as only how     *)
(* many are in flight between a caller and a worker matters to the         *)
(* counts).  Every task takes shared(x), so PushTask carries the ref.      *)
(* TaskReply says whether the worker still borrows x (borrowing), the      *)
(* sub-borrowers it reports (borrowers), and whether the returned value    *)
(* contains x (contained).                                                 *)
(***************************************************************************)
PushTaskMsg(p, c) ==
    [type |-> "PushTask", caller |-> p, worker |-> c]

TaskReplyMsg(p, w, still, subs, inValue) ==
    [type |-> "TaskReply", caller |-> p, worker |-> w,
     borrowing |-> still, borrowers |-> subs, contained |-> inValue]

WaitForRefRemovedMsg(b) ==
    [type |-> "WaitForRefRemoved", owner |-> Owner, borrower |-> b]

RefRemovedMsg(b, subs) ==
    [type |-> "RefRemoved", owner |-> Owner, borrower |-> b, borrowers |-> subs]

FreeObjectMsg == [type |-> "FreeObject", owner |-> Owner]

AddBorrowerMsg(b) ==
    [type |-> "AddBorrower", owner |-> Owner, borrower |-> b]

BorrowerAddedMsg(b, ok) ==
    [type |-> "BorrowerAdded", owner |-> Owner, borrower |-> b, ok |-> ok]

\* Borrower p asks the owner to count r, to whom p serves a value holding x.
RegisterBorrowerMsg(p, r) ==
    [type |-> "RegisterBorrower", owner |-> Owner, borrower |-> r, lender |-> p]

\* The owner counts r (and has sent it a WaitForRefRemoved).
BorrowerRegisteredMsg(p, r) ==
    [type |-> "BorrowerRegistered", owner |-> Owner, borrower |-> r, lender |-> p]

\* The value p serves to r, with x inside.
ObjectValueMsg(p, r) ==
    [type |-> "ObjectValue", owner |-> Owner, borrower |-> r, lender |-> p]

PushTaskMessages ==
    [type : {"PushTask"}, caller : Procs, worker : Borrowers]
TaskReplyMessages ==
    [type : {"TaskReply"}, caller : Procs, worker : Borrowers,
     borrowing : BOOLEAN, borrowers : SUBSET Borrowers, contained : BOOLEAN]
WaitForRefRemovedMessages ==
    [type : {"WaitForRefRemoved"}, owner : {Owner}, borrower : Borrowers]
RefRemovedMessages ==
    [type : {"RefRemoved"}, owner : {Owner}, borrower : Borrowers,
     borrowers : SUBSET Borrowers]

AddBorrowerMessages ==
    [type : {"AddBorrower"}, owner : {Owner}, borrower : Borrowers]
BorrowerAddedMessages ==
    [type : {"BorrowerAdded"}, owner : {Owner}, borrower : Borrowers,
     ok : BOOLEAN]
ServeMessages ==
    [type : {"RegisterBorrower", "BorrowerRegistered", "ObjectValue"},
     owner : {Owner}, borrower : Borrowers, lender : Procs]

Messages ==
    PushTaskMessages \cup TaskReplyMessages \cup WaitForRefRemovedMessages
    \cup RefRemovedMessages \cup {FreeObjectMsg} \cup AddBorrowerMessages
    \cup BorrowerAddedMessages \cup ServeMessages

\* @type: ($msg -> Int, Set($msg)) => ($msg -> Int);
Put(bag, S) ==
    [m \in DOMAIN bag \cup S |->
        (IF m \in DOMAIN bag THEN bag[m] ELSE 0) + (IF m \in S THEN 1 ELSE 0)]

\* @type: ($msg -> Int, $msg) => ($msg -> Int);
Take(bag, m) ==
    [x \in {y \in DOMAIN bag : y # m \/ bag[y] > 1} |->
        IF x = m THEN bag[x] - 1 ELSE bag[x]]

RECURSIVE Copies(_)
\* @type: (Set($msg)) => Int;
Copies(S) ==
    \* copies in flight of the messages in S (a subset of DOMAIN msgs)
    IF S = {} THEN 0
    ELSE LET m == CHOOSE y \in S : TRUE IN msgs[m] + Copies(S \ {m})

\* @type: (PROC -> Int) => Int;
SumOver(f) ==
    \* the sum of the values of f, a function on a few processes
    LET RECURSIVE Sum(_)
        \* @type: Set(PROC) => Int;
        Sum(S) == IF S = {} THEN 0
                  ELSE LET q == CHOOSE y \in S : TRUE IN f[q] + Sum(S \ {q})
    IN  Sum(DOMAIN f)

\* @type: (Str, $params) => $action;
Act(name, params) == [name |-> name, params |-> params]

-----------------------------------------------------------------------------
\* tasks running at p
Running(p) ==
    IF p \in Borrowers
    THEN SumOver(running[p])
    ELSE 0

\* tasks at p waiting for the owner to count p
Waiting(p) ==
    IF p \in Borrowers
    THEN SumOver(waiting[p])
    ELSE 0

\* values p serves once the owner counts their readers
Lending(p) ==
    IF p \in Borrowers
    THEN SumOver(lending[p])
    ELSE 0

\* p's gets of a value holding x still on their way
Getting(p) ==
    IF p \in Borrowers
    THEN getting[p]
    ELSE 0

(***************************************************************************)
(* p holds x: a local ref, a submitted task, a live value containing x, or *)
(* a task running (or waiting to run) at p with x as its argument.  This   *)
(* is the Ray RefCount()                                                   *)
(* > 0 of a process, with the pin of a running task's argument made        *)
(* explicit.                                                               *)
(***************************************************************************)
Holds(p) ==
    \/ local[p] > 0
    \/ submitted[p] > 0
    \/ contained[p] > 0
    \/ Running(p) > 0
    \/ Waiting(p) > 0
    \/ Lending(p) > 0
    \/ Getting(p) > 0

\* p can name x in code, so it can pass it to a task.
HasHandle(p) == local[p] > 0 \/ Running(p) > 0

(***************************************************************************)
(* p can still use x: dereference it, pass it on, or return it.  A         *)
(* submitted task whose reply is in flight and does not carry x is the     *)
(* protocol's bookkeeping (Holds), not a use.                              *)
(***************************************************************************)
Uses(p) ==
    \/ local[p] > 0
    \/ contained[p] > 0
    \/ Running(p) > 0
    \/ Waiting(p) > 0
    \/ Lending(p) > 0

\* a message in flight that carries x itself
CarriesRef(m) == \/ m.type = "PushTask"
                 \/ m.type = "TaskReply" /\ m.contained
                 \/ m.type = "ObjectValue"

-----------------------------------------------------------------------------
Init ==
    /\ local = [p \in Procs |-> IF p = Owner THEN 1 ELSE 0]
    /\ submitted = [p \in Procs |-> 0]
    /\ contained = [p \in Procs |-> 0]
    /\ running = [b \in Borrowers |-> [p \in Procs |-> 0]]
    /\ waiting = [b \in Borrowers |-> [p \in Procs |-> 0]]
    /\ borrowers = [b \in Borrowers |-> 0]
    /\ subBorrowers = [b \in Borrowers |-> {}]
    /\ removeWaits = [b \in Borrowers |-> 0]
    /\ tasksLeft = MaxTasks
    /\ freed = FALSE
    /\ lending = [p \in Borrowers |-> [r \in Borrowers |-> 0]]
    /\ getting = [r \in Borrowers |-> 0]
    /\ servesLeft = MaxServes
    /\ msgs = [m \in {} |-> 0]
    /\ passedOn = FALSE
    /\ lastAction = Act("Init", [p |-> Owner])

-----------------------------------------------------------------------------
HolderSubmitWithRef(p, c) ==
    (***********************************************************************)
    (* p, the owner or a borrower, submits a task to worker c with         *)
    (* shared(x) as argument.  p counts the task in its submitted-task     *)
    (* refs in the same step as it sends the ref away, so that p holds x   *)
    (* until the reply is merged: p becomes the caller of the task, and    *)
    (* the reply's report of c and c's sub-borrowers reaches p before p    *)
    (* can stop holding x.                                                 *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.submit_with_ref
    /\ c \in (IF p = Owner THEN OwnerWorkers ELSE Borrowers \ {p})
    /\ HasHandle(p)
    /\ tasksLeft > 0
    /\ submitted' = [submitted EXCEPT ![p] = @ + 1]
    /\ msgs' = Put(msgs, {PushTaskMsg(p, c)})
    /\ tasksLeft' = tasksLeft - 1
    /\ passedOn' = (passedOn \/ p # Owner)
    /\ lastAction' = Act("HolderSubmitWithRef", [p |-> p, c |-> c])
    /\ UNCHANGED <<local, contained, running, waiting, borrowers, subBorrowers,
                   removeWaits, freed, serveVars>>

BorrowerReceiveRef(b, p) ==
    (***********************************************************************)
    (* Worker b receives a task from caller p: deserializing the shared(x) *)
    (* argument makes b a borrower (it records x's owner), and the task    *)
    (* pins x until it finishes.  From the owner the task runs at once:    *)
    (* b's reply will tell the owner.  From a borrower it first waits for  *)
    (* the owner to count b: b asks with AddBorrower, unless a task of its *)
    (* waits for that answer already.                                      *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.receive_ref
    /\ PushTaskMsg(p, b) \in DOMAIN msgs
    /\ IF p = Owner
       THEN /\ running' = [running EXCEPT ![b][p] = @ + 1]
            /\ msgs' = Take(msgs, PushTaskMsg(p, b))
            /\ UNCHANGED waiting
       ELSE /\ waiting' = [waiting EXCEPT ![b][p] = @ + 1]
            /\ msgs' = IF Waiting(b) > 0
                       THEN Take(msgs, PushTaskMsg(p, b))
                       ELSE Put(Take(msgs, PushTaskMsg(p, b)), {AddBorrowerMsg(b)})
            /\ UNCHANGED running
    /\ lastAction' = Act("BorrowerReceiveRef", [b |-> b, p |-> p])
    /\ UNCHANGED <<local, submitted, contained, borrowers, subBorrowers,
                   removeWaits, tasksLeft, freed, passedOn, serveVars>>

BorrowerAddLocalRef(b) ==
    (***********************************************************************)
    (* A task running at b keeps a copy of x that outlives the task (actor *)
    (* state, a global): b will still borrow x after the task's reply.     *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.add_local_ref
    /\ Running(b) > 0
    /\ local[b] + getting[b] < MaxLocal
    /\ local' = [local EXCEPT ![b] = @ + 1]
    /\ lastAction' = Act("BorrowerAddLocalRef", [b |-> b])
    /\ UNCHANGED <<submitted, contained, running, waiting, borrowers, subBorrowers,
                   removeWaits, tasksLeft, freed, msgs, passedOn, serveVars>>

HolderReleaseRef(p) ==
    (***********************************************************************)
    (* A local ref to x in p goes out of scope (del x, or the actor drops  *)
    (* it).                                                                *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.release_ref
    /\ local[p] > 0
    /\ local' = [local EXCEPT ![p] = @ - 1]
    /\ lastAction' = Act("HolderReleaseRef", [p |-> p])
    /\ UNCHANGED <<submitted, contained, running, waiting, borrowers, subBorrowers,
                   removeWaits, tasksLeft, freed, msgs, passedOn, serveVars>>

HolderReleaseContents(p) ==
    (***********************************************************************)
    (* A value owned by p that contains x goes out of scope at p and is    *)
    (* freed, which releases the refs it contains: x is no longer          *)
    (* contained in it.                                                    *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.release_contents
    /\ contained[p] > 0
    /\ contained' = [contained EXCEPT ![p] = @ - 1]
    /\ lastAction' = Act("HolderReleaseContents", [p |-> p])
    /\ UNCHANGED <<local, submitted, running, waiting, borrowers, subBorrowers,
                   removeWaits, tasksLeft, freed, msgs, passedOn, serveVars>>

(***************************************************************************)
(* A task at w finishes and w replies to the task's caller p.  The task's  *)
(* pin on x is dropped; the reply reports whether w still borrows x        *)
(* without it, and the sub-borrowers w has collected, which p takes over,  *)
(* except p itself: p does not report itself to itself.  So w forgets them *)
(* all but p, and keeps p to hand it to the owner later.  (When p is the   *)
(* owner, which is no borrower, w forgets them all.)  If w and p pass x    *)
(* back and forth, w's list can name p.  Deviation from Ray, which clears  *)
(* the whole list on every report (mutant "reply-clears-subborrowers").    *)
(***************************************************************************)
FinishTask(w, p, inValue) ==
    /\ running[w][p] > 0
    /\ LET still == \/ local[w] > 0
                    \/ submitted[w] > 0
                    \/ contained[w] > 0
                    \/ Running(w) > 1
                    \/ Waiting(w) > 0
                    \/ Lending(w) > 0
                    \/ Getting(w) > 0
       IN  /\ running' = [running EXCEPT ![w][p] = @ - 1]
           /\ msgs' = Put(msgs, {TaskReplyMsg(p, w, still, subBorrowers[w],
                                              inValue)})
    /\ subBorrowers' = [subBorrowers EXCEPT ![w] = @ \cap {p}]

WorkerFinishTask(w, p) ==
    (***********************************************************************)
    (* The task returns a value that does not contain x.                   *)
    (***********************************************************************)
    \* impl: impl/ownership/core/executor.py::TaskExecutor.finish_task
    /\ FinishTask(w, p, FALSE)
    /\ lastAction' = Act("WorkerFinishTask", [w |-> w, p |-> p])
    /\ UNCHANGED <<local, submitted, contained, waiting, borrowers,
                   removeWaits, tasksLeft, freed, passedOn, serveVars>>

WorkerReturnRefInValue(w, p) ==
    (***********************************************************************)
    (* The task returns a value that contains x.  The value is owned by    *)
    (* the task's caller, so the reply carries x to the caller, which      *)
    (* holds x through that value until it goes out of scope               *)
    (* (contained-in).                                                     *)
    (***********************************************************************)
    \* impl: impl/ownership/core/executor.py::TaskExecutor.return_ref_in_value
    /\ FinishTask(w, p, TRUE)
    /\ lastAction' = Act("WorkerReturnRefInValue", [w |-> w, p |-> p])
    /\ UNCHANGED <<local, submitted, contained, waiting, borrowers,
                   removeWaits, tasksLeft, freed, passedOn, serveVars>>

(***************************************************************************)
(* The owner learns of borrowers: each one is counted once more and sent a *)
(* WaitForRefRemoved, also when the owner is already waiting for it (see   *)
(* the note at the top: the earlier request may already be answered by a   *)
(* RefRemoved still in flight).  gone is the borrower whose RefRemoved is  *)
(* being handled, if any.                                                  *)
(***************************************************************************)
OwnerLearn(learned, gone, bag) ==
    LET fresh == learned
    IN  /\ borrowers' = [b \in Borrowers |->
                            borrowers[b] + (IF b \in fresh THEN 1 ELSE 0)
                                         - (IF b \in gone THEN 1 ELSE 0)]
        /\ msgs' = Put(bag, {WaitForRefRemovedMsg(b) : b \in fresh})

HolderHandleReply(p, w) ==
    (***********************************************************************)
    (* The caller p handles the reply of a task it submitted to w: the     *)
    (* task's submitted-task ref is gone; a value containing x now lives   *)
    (* at p; the worker, if it still borrows, and the sub-borrowers it     *)
    (* reported become p's borrowers, except p itself.  The owner waits on *)
    (* them at once; a borrower keeps them to report to its own caller, or *)
    (* to the owner in its RefRemoved.                                     *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_reply
    \E m \in DOMAIN msgs :
    /\ m.type = "TaskReply"
    /\ m.caller = p
    /\ m.worker = w
    /\ LET learned == ((IF m.borrowing THEN {m.worker} ELSE {}) \cup m.borrowers)
                       \ {p}
       IN  IF p = Owner
           THEN /\ OwnerLearn(learned, {}, Take(msgs, m))
                /\ UNCHANGED subBorrowers
           ELSE /\ subBorrowers' = [subBorrowers EXCEPT ![p] = @ \cup learned]
                /\ msgs' = Take(msgs, m)
                /\ UNCHANGED borrowers
    /\ submitted' = [submitted EXCEPT ![p] = @ - 1]
    /\ contained' = IF m.contained THEN [contained EXCEPT ![p] = @ + 1]
                                   ELSE contained
    /\ lastAction' = Act("HolderHandleReply", [p |-> p, w |-> w, m |-> m])
    /\ UNCHANGED <<local, running, waiting, removeWaits, tasksLeft, freed, passedOn,
                   serveVars>>

HolderServeContents(p, r) ==
    (***********************************************************************)
    (* p serves a value it owns that contains x to r, which gets it: r     *)
    (* will hold x too, and holds it for the get until the value arrives.  *)
    (* The owner counts r and asks it to say when it lets go               *)
    (* (WaitForRefRemoved).  A borrower p cannot count r itself: it asks   *)
    (* the owner to (RegisterBorrower) and keeps the value back, holding   *)
    (* x, until the owner has; only then does r's count not depend on p,   *)
    (* which may die before it would report r.                             *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.lend
    /\ contained[p] > 0
    /\ r \in Borrowers \ {p}
    /\ servesLeft > 0
    /\ local[r] + getting[r] < MaxLocal
    /\ servesLeft' = servesLeft - 1
    /\ getting' = [getting EXCEPT ![r] = @ + 1]
    /\ IF p = Owner
       THEN /\ OwnerLearn({r}, {}, Put(msgs, {ObjectValueMsg(p, r)}))
            /\ UNCHANGED lending
       ELSE /\ lending' = [lending EXCEPT ![p][r] = @ + 1]
            /\ msgs' = Put(msgs, {RegisterBorrowerMsg(p, r)})
            /\ UNCHANGED borrowers
    /\ lastAction' = Act("HolderServeContents", [p |-> p, r |-> r])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                   removeWaits, tasksLeft, freed, passedOn>>

OwnerHandleRegisterBorrower(o, m) ==
    (***********************************************************************)
    (* The owner counts the reader a borrower serves x to, and sends it    *)
    (* the request to be told when it lets go, as for any borrower it      *)
    (* learns of; then it tells the lender.  x is not freed here: the      *)
    (* lender holds it (a refusal, once x is freed, is for crashes).       *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_register_borrower
    /\ o = Owner
    /\ m \in DOMAIN msgs
    /\ m.type = "RegisterBorrower"
    /\ OwnerLearn({m.borrower}, {},
                  Put(Take(msgs, m), {BorrowerRegisteredMsg(m.lender, m.borrower)}))
    /\ lastAction' = Act("OwnerHandleRegisterBorrower", [o |-> o, m |-> m])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                   removeWaits, tasksLeft, freed, passedOn, serveVars>>

LenderHandleBorrowerRegistered(p, m) ==
    (***********************************************************************)
    (* The owner counts the reader: the lender serves it the value and     *)
    (* stops holding x for it.                                             *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_borrower_registered
    /\ m \in DOMAIN msgs
    /\ m.type = "BorrowerRegistered"
    /\ m.lender = p
    /\ lending' = [lending EXCEPT ![p][m.borrower] = @ - 1]
    /\ msgs' = Put(Take(msgs, m), {ObjectValueMsg(p, m.borrower)})
    /\ lastAction' = Act("LenderHandleBorrowerRegistered", [p |-> p, m |-> m])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                   subBorrowers, removeWaits, tasksLeft, freed, passedOn,
                   getting, servesLeft>>

ReaderReceiveValue(r, p) ==
    (***********************************************************************)
    (* r gets the value p served: it holds x now through its own ref (a    *)
    (* local ref, as the deserialized value's).                            *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_object_value
    /\ ObjectValueMsg(p, r) \in DOMAIN msgs
    /\ msgs' = Take(msgs, ObjectValueMsg(p, r))
    /\ getting' = [getting EXCEPT ![r] = @ - 1]
    /\ local' = [local EXCEPT ![r] = @ + 1]
    /\ lastAction' = Act("ReaderReceiveValue", [r |-> r, p |-> p])
    /\ UNCHANGED <<submitted, contained, running, waiting, borrowers,
                   subBorrowers, removeWaits, tasksLeft, freed, passedOn,
                   lending, servesLeft>>

BorrowerHandleWaitForRefRemoved(b, m) ==
    (***********************************************************************)
    (* Borrower b handles the owner's request.  If b no longer holds x it  *)
    (* answers at once, as in BorrowerSendRefRemoved; otherwise it         *)
    (* registers the request and answers it once it stops holding x.  Each *)
    (* request is answered on its own.                                     *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_wait_for_ref_removed
    /\ m \in DOMAIN msgs
    /\ m.type = "WaitForRefRemoved"
    /\ m.borrower = b
    /\ IF Holds(b)
       THEN /\ removeWaits' = [removeWaits EXCEPT ![b] = @ + 1]
            /\ msgs' = Take(msgs, m)
            /\ UNCHANGED subBorrowers
       ELSE /\ msgs' = Put(Take(msgs, m), {RefRemovedMsg(b, subBorrowers[b])})
            /\ subBorrowers' = [subBorrowers EXCEPT ![b] = {}]
            /\ UNCHANGED removeWaits
    /\ lastAction' = Act("BorrowerHandleWaitForRefRemoved", [b |-> b, m |-> m])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                   tasksLeft, freed, passedOn, serveVars>>

BorrowerSendRefRemoved(b) ==
    (***********************************************************************)
    (* Borrower b no longer holds x: no local ref, no submitted task, no   *)
    (* value containing it, no running task pinning it.  It answers one    *)
    (* request with RefRemoved, which carries the sub-borrowers b learned  *)
    (* and has not reported, and forgets them.                             *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.send_ref_removed
    /\ removeWaits[b] > 0
    /\ ~Holds(b)
    /\ removeWaits' = [removeWaits EXCEPT ![b] = @ - 1]
    /\ msgs' = Put(msgs, {RefRemovedMsg(b, subBorrowers[b])})
    /\ subBorrowers' = [subBorrowers EXCEPT ![b] = {}]
    /\ lastAction' = Act("BorrowerSendRefRemoved", [b |-> b])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                   tasksLeft, freed, passedOn, serveVars>>

OwnerHandleRefRemoved(o, m) ==
    (***********************************************************************)
    (* The owner handles a RefRemoved: it waits on the sub-borrowers it    *)
    (* reports, then counts one request to its sender as answered.         *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_ref_removed
    /\ o = Owner
    /\ m \in DOMAIN msgs
    /\ m.type = "RefRemoved"
    /\ OwnerLearn(m.borrowers, {m.borrower}, Take(msgs, m))
    /\ lastAction' = Act("OwnerHandleRefRemoved", [o |-> o, m |-> m])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                   removeWaits, tasksLeft, freed, passedOn, serveVars>>

OwnerHandleAddBorrower(o, m) ==
    (***********************************************************************)
    (* The owner counts the borrower that asks, as it counts one a reply   *)
    (* reports, and says so; its answer is also the request to be told     *)
    (* when the borrower lets go (it stands for the WaitForRefRemoved that *)
    (* OwnerLearn would send).  Once it has freed x it refuses: the        *)
    (* borrower's tasks fail                                               *)
    (* (ObjectLostError).  Here the refusal never happens (MemorySafety: a *)
    (* waiting task uses x); with crashes (Ownership.tla) it does, when    *)
    (* the lender died and x went out of scope meanwhile.                  *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_add_borrower
    /\ o = Owner
    /\ m \in DOMAIN msgs
    /\ m.type = "AddBorrower"
    /\ IF freed
       THEN /\ msgs' = Put(Take(msgs, m), {BorrowerAddedMsg(m.borrower, FALSE)})
            /\ UNCHANGED borrowers
       ELSE /\ borrowers' = [borrowers EXCEPT ![m.borrower] = @ + 1]
            /\ msgs' = Put(Take(msgs, m), {BorrowerAddedMsg(m.borrower, TRUE)})
    /\ lastAction' = Act("OwnerHandleAddBorrower", [o |-> o, m |-> m])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                   removeWaits, tasksLeft, freed, passedOn, serveVars>>

BorrowerHandleBorrowerAdded(b, m) ==
    (***********************************************************************)
    (* The owner counts b: the tasks that waited for it run, and b         *)
    (* registers the owner's request, as BorrowerHandleWaitForRefRemoved   *)
    (* does while b holds x (it does: its tasks waited).  (A refusal fails *)
    (* the tasks instead; it cannot happen here, see                       *)
    (* OwnerHandleAddBorrower.)                                            *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.handle_borrower_added
    /\ m \in DOMAIN msgs
    /\ m.type = "BorrowerAdded"
    /\ m.borrower = b
    /\ m.ok
    /\ running' = [running EXCEPT ![b] = [p \in Procs |-> @[p] + waiting[b][p]]]
    /\ waiting' = [waiting EXCEPT ![b] = [p \in Procs |-> 0]]
    /\ removeWaits' = [removeWaits EXCEPT ![b] = @ + 1]
    /\ msgs' = Take(msgs, m)
    /\ lastAction' = Act("BorrowerHandleBorrowerAdded", [b |-> b, m |-> m])
    /\ UNCHANGED <<local, submitted, contained, borrowers, subBorrowers,
                   tasksLeft, freed, passedOn, serveVars>>

OwnerFree(o) ==
    (***********************************************************************)
    (* All four reference columns of the owner's table are empty: the      *)
    (* owner frees the value and tells the object store holding it.        *)
    (***********************************************************************)
    \* impl: impl/ownership/core/refcount.py::ReferenceCounter.free
    /\ o = Owner
    /\ ~freed
    /\ local[o] = 0
    /\ submitted[o] = 0
    /\ contained[o] = 0
    /\ \A b \in Borrowers : borrowers[b] = 0
    /\ freed' = TRUE
    /\ msgs' = Put(msgs, {FreeObjectMsg})
    /\ lastAction' = Act("OwnerFree", [o |-> o])
    /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                   subBorrowers, removeWaits, tasksLeft, passedOn, serveVars>>

(***************************************************************************)
(* Nothing is in flight but the FreeObject notice and no task is running:  *)
(* the system has stopped.  It stutters here instead of deadlocking, so    *)
(* that a stop without the free is reported as a NoLeak violation; a state *)
(* stuck with work in flight is still a deadlock.                          *)
(***************************************************************************)
Quiescent ==
    /\ \A m \in DOMAIN msgs : m.type = "FreeObject"
    /\ \A b \in Borrowers : Running(b) = 0 /\ Waiting(b) = 0

Done ==
    /\ Quiescent
    /\ UNCHANGED vars

(***************************************************************************)
(* Every parameter is quantified over a constant set (processes, the few   *)
(* possible WaitForRefRemoved and RefRemoved messages), not over DOMAIN    *)
(* msgs, so that TLC splits Next into named actions and prints their names *)
(* in traces.  A TaskReply, whose fields are many, is found inside         *)
(* HolderHandleReply by its caller and worker.                             *)
(***************************************************************************)
Next ==
    \/ \E p \in Procs, c \in Borrowers : HolderSubmitWithRef(p, c)
    \/ \E b \in Borrowers, p \in Procs : BorrowerReceiveRef(b, p)
    \/ \E b \in Borrowers : BorrowerAddLocalRef(b)
    \/ \E p \in Procs : HolderReleaseRef(p)
    \/ \E p \in Procs : HolderReleaseContents(p)
    \/ \E w \in Borrowers, p \in Procs : WorkerFinishTask(w, p)
    \/ \E w \in Borrowers, p \in Procs : WorkerReturnRefInValue(w, p)
    \/ \E p \in Procs, w \in Borrowers : HolderHandleReply(p, w)
    \/ \E m \in WaitForRefRemovedMessages :
           BorrowerHandleWaitForRefRemoved(m.borrower, m)
    \/ \E b \in Borrowers : BorrowerSendRefRemoved(b)
    \/ \E m \in RefRemovedMessages : OwnerHandleRefRemoved(Owner, m)
    \/ \E m \in AddBorrowerMessages : OwnerHandleAddBorrower(Owner, m)
    \/ \E m \in BorrowerAddedMessages : BorrowerHandleBorrowerAdded(m.borrower, m)
    \/ \E p \in Procs, r \in Borrowers : HolderServeContents(p, r)
    \/ \E m \in ServeMessages : OwnerHandleRegisterBorrower(Owner, m)
    \/ \E m \in ServeMessages : LenderHandleBorrowerRegistered(m.lender, m)
    \/ \E r \in Borrowers, p \in Procs : ReaderReceiveValue(r, p)
    \/ OwnerFree(Owner)
    \/ Done

(***************************************************************************)
(* The protocol's own steps: delivering tasks and messages, merging        *)
(* replies, answering, freeing.  User code (submitting, keeping,           *)
(* releasing, finishing a task) need not act.                              *)
(***************************************************************************)
ProtocolStep ==
    \/ \E b \in Borrowers, p \in Procs : BorrowerReceiveRef(b, p)
    \/ \E p \in Procs, w \in Borrowers : HolderHandleReply(p, w)
    \/ \E m \in WaitForRefRemovedMessages :
           BorrowerHandleWaitForRefRemoved(m.borrower, m)
    \/ \E b \in Borrowers : BorrowerSendRefRemoved(b)
    \/ \E m \in RefRemovedMessages : OwnerHandleRefRemoved(Owner, m)
    \/ \E m \in AddBorrowerMessages : OwnerHandleAddBorrower(Owner, m)
    \/ \E m \in BorrowerAddedMessages : BorrowerHandleBorrowerAdded(m.borrower, m)
    \/ \E m \in ServeMessages : OwnerHandleRegisterBorrower(Owner, m)
    \/ \E m \in ServeMessages : LenderHandleBorrowerRegistered(m.lender, m)
    \/ \E r \in Borrowers, p \in Procs : ReaderReceiveValue(r, p)
    \/ OwnerFree(Owner)

(***************************************************************************)
(* Weak fairness on the protocol's steps taken together is enough for      *)
(* NoLeak: once nothing uses x, no user step is enabled, every protocol    *)
(* step consumes a message or a pending request, and what remains to do is *)
(* finite.                                                                 *)
(***************************************************************************)
Fairness == WF_vars(ProtocolStep)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
TypeOK ==
    /\ local \in [Procs -> 0..MaxLocal]
    /\ submitted \in [Procs -> 0..MaxTasks]
    /\ contained \in [Procs -> 0..MaxTasks]
    /\ running \in [Borrowers -> [Procs -> 0..MaxTasks]]
    /\ waiting \in [Borrowers -> [Procs -> 0..MaxTasks]]
    /\ borrowers \in [Borrowers -> Nat]
    /\ subBorrowers \in [Borrowers -> SUBSET Borrowers]
    /\ removeWaits \in [Borrowers -> Nat]
    /\ tasksLeft \in 0..MaxTasks
    /\ freed \in BOOLEAN
    /\ lending \in [Borrowers -> [Borrowers -> 0..MaxServes]]
    /\ getting \in [Borrowers -> 0..MaxServes]
    /\ servesLeft \in 0..MaxServes
    /\ DOMAIN msgs \subseteq Messages
    /\ \A m \in DOMAIN msgs : msgs[m] \in Nat \ {0}
    /\ passedOn \in BOOLEAN

(***************************************************************************)
(* Nothing can use x any more: no process, and no message in flight        *)
(* carries it.                                                             *)
(***************************************************************************)
NothingUses ==
    /\ \A p \in Procs : ~Uses(p)
    /\ \A m \in DOMAIN msgs : ~CarriesRef(m)

(***************************************************************************)
(* The value is never freed while a process can use x or a message carries *)
(* it.                                                                     *)
(***************************************************************************)
MemorySafety == freed => NothingUses

(***************************************************************************)
(* A task that got x from a borrower runs only while the owner counts its  *)
(* worker: the owner's count of a borrower of a borrower never depends on  *)
(* the lender, which may die before it reports it (Ownership.tla).         *)
(***************************************************************************)
SubBorrowerKnown ==
    \A b \in Borrowers :
        (\E p \in Borrowers : running[b][p] > 0) => borrowers[b] > 0

(***************************************************************************)
(* A value holding x travels to its reader only while the owner counts the *)
(* reader: its count never depends on the value's owner, a borrower that   *)
(* may die before it reports it (Ownership.tla).                           *)
(***************************************************************************)
ReaderKnown ==
    \A m \in DOMAIN msgs :
        m.type = "ObjectValue" => borrowers[m.borrower] > 0

(***************************************************************************)
(* Every request the owner counts at a borrower is in one place: in        *)
(* flight (a WaitForRefRemoved, or a BorrowerAdded that says yes),         *)
(* registered at the borrower, or answered by a RefRemoved in flight.      *)
(***************************************************************************)
WaitAccounting ==
    \A b \in Borrowers :
        borrowers[b] =
            Copies({m \in DOMAIN msgs : m.type = "WaitForRefRemoved" /\ m.borrower = b})
            + Copies({m \in DOMAIN msgs : m.type = "BorrowerAdded" /\ m.ok /\ m.borrower = b})
            + removeWaits[b]
            + Copies({m \in DOMAIN msgs : m.type = "RefRemoved" /\ m.borrower = b})

(***************************************************************************)
(* Once nothing can use x, the owner eventually frees it.                  *)
(***************************************************************************)
NoLeak == NothingUses ~> freed

=============================================================================
