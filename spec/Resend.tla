------------------------------- MODULE Resend -------------------------------
(***************************************************************************)
(* Exactly-once, in-order delivery between two live processes over        *)
(* connections that reset.                                                 *)
(*                                                                         *)
(* The other specs assume that a message between two live processes      *)
(* arrives once and in order.  One TCP connection gives that only while   *)
(* it lasts: a reset loses what was in flight.  The transport keeps a     *)
(* stream per peer that outlives connections (runtime/resend.py): the     *)
(* sender numbers its messages and keeps them until acknowledged; each    *)
(* new connection opens with a resume frame in each direction (the first *)
(* number that follows; how much of the other side's arrived); the        *)
(* receiver numbers the frames after a resume itself (numbers do not      *)
(* travel per frame), delivers the next one and drops what it already     *)
(* delivered; acknowledgements travel back whenever the receiver likes.   *)
(*                                                                         *)
(* One direction is modelled (the other is the same, independent but for *)
(* sharing connections): Sender's messages 1..N to Receiver, the frames   *)
(* back carrying resumes and acknowledgements.  A stream's nonce (which   *)
(* lets a side that forgot a stream start over) is not modelled: both     *)
(* sides live throughout, which is the case the streams are for.          *)
(***************************************************************************)
EXTENDS Naturals, Sequences

CONSTANTS
    N,          \* messages the sender sends
    MaxResets   \* connection resets the environment may cause

VARIABLES
    \* @type: Int;
    sent,        \* messages numbered so far (Stream.sent)
    \* @type: Int;
    firstUnacked, \* the oldest message not acknowledged (Stream.first_unacked)
    \* @type: Int;
    received,    \* messages delivered so far (Stream.received)
    \* @type: Seq(Int);
    log,         \* history: the messages delivered, in order
    \* @type: Bool;
    up,          \* a connection is open
    \* @type: Int;
    nextOut,     \* the next message the sender writes on this connection
    \* @type: Int;
    nextIn,      \* the receiver's number for the next frame (0: no resume yet)
    \* @type: Seq([kind: Str, n: Int]);
    wire,        \* frames in flight to the receiver, in order
    \* @type: Seq([kind: Str, n: Int]);
    back,        \* frames in flight to the sender, in order
    \* @type: Int;
    resets,      \* resets so far
    \* @type: Bool;
    broken       \* the receiver saw a resume skipping frames (FrameError)

vars == <<sent, firstUnacked, received, log, up, nextOut, nextIn, wire, back, resets, broken>>

Frame(k, n) == [kind |-> k, n |-> n]

Init ==
    /\ sent = 0
    /\ firstUnacked = 1
    /\ received = 0
    /\ log = <<>>
    /\ up = FALSE
    /\ nextOut = 1
    /\ nextIn = 0
    /\ wire = <<>>
    /\ back = <<>>
    /\ resets = 0
    /\ broken = FALSE

(***************************************************************************)
(* The sender's process hands the transport a message: numbered, kept.    *)
(***************************************************************************)
\* impl: impl/ownership/runtime/resend.py::Stream.assign
Send ==
    /\ sent < N
    /\ sent' = sent + 1
    /\ UNCHANGED <<firstUnacked, received, log, up, nextOut, nextIn, wire, back, resets, broken>>

(***************************************************************************)
(* A connection opens: each side's first frame is its resume.  The sender *)
(* will write every unacknowledged message again, from the oldest.        *)
(***************************************************************************)
\* impl: impl/ownership/runtime/tcp.py::TCPTransport._install
Connect ==
    /\ ~up
    /\ up' = TRUE
    /\ wire' = <<Frame("resume", firstUnacked)>>
    /\ back' = <<Frame("resume", received)>>
    /\ nextOut' = firstUnacked
    /\ nextIn' = 0
    /\ UNCHANGED <<sent, firstUnacked, received, log, resets, broken>>

\* impl: impl/ownership/runtime/tcp.py::TCPTransport._write_batch
Write ==
    /\ up
    /\ nextOut <= sent
    /\ wire' = Append(wire, Frame("msg", nextOut))
    /\ nextOut' = nextOut + 1
    /\ UNCHANGED <<sent, firstUnacked, received, log, up, nextIn, back, resets, broken>>

(***************************************************************************)
(* The receiver takes the next frame.  A resume sets its count; a message *)
(* frame gets the next number, and is delivered if it is the next message *)
(* or dropped if it was delivered already.  (The payload number travels   *)
(* in the model only, so that the invariants can check the numbering.)   *)
(***************************************************************************)
\* impl: impl/ownership/runtime/resend.py::Stream.resumed
ReceiveResume ==
    /\ up
    /\ wire # <<>>
    /\ Head(wire).kind = "resume"
    /\ wire' = Tail(wire)
    /\ IF Head(wire).n > received + 1
         THEN /\ broken' = TRUE             \* FrameError: the connection closes
              /\ UNCHANGED nextIn
         ELSE /\ nextIn' = Head(wire).n
              /\ UNCHANGED broken
    /\ UNCHANGED <<sent, firstUnacked, received, log, up, nextOut, back, resets>>

\* impl: impl/ownership/runtime/resend.py::Stream.arrived
ReceiveMessage ==
    /\ up
    /\ wire # <<>>
    /\ Head(wire).kind = "msg"
    /\ nextIn > 0
    /\ wire' = Tail(wire)
    /\ nextIn' = nextIn + 1
    /\ IF nextIn <= received
         THEN UNCHANGED <<received, log>>          \* a duplicate: dropped
         ELSE /\ received' = nextIn
              /\ log' = Append(log, Head(wire).n)
    /\ UNCHANGED <<sent, firstUnacked, up, nextOut, back, resets, broken>>

(***************************************************************************)
(* The receiver acknowledges what it delivered (after 64 frames, 1 MiB, a *)
(* large frame, or the period: any time, here).                           *)
(***************************************************************************)
\* impl: impl/ownership/runtime/resend.py::Stream.ack_now
Acknowledge ==
    /\ up
    /\ IF back = <<>> THEN TRUE ELSE back[Len(back)] # Frame("ack", received)  \* nothing new: no frame
    /\ back' = Append(back, Frame("ack", received))
    /\ UNCHANGED <<sent, firstUnacked, received, log, up, nextOut, nextIn, wire, resets, broken>>

\* impl: impl/ownership/runtime/resend.py::Stream.acknowledged
ReceiveAck ==
    /\ up
    /\ back # <<>>
    /\ back' = Tail(back)
    /\ firstUnacked' = IF Head(back).n + 1 > firstUnacked THEN Head(back).n + 1 ELSE firstUnacked
    /\ UNCHANGED <<sent, received, log, up, nextOut, nextIn, wire, resets, broken>>

(***************************************************************************)
(* The environment resets the connection: what was in flight is lost.     *)
(* Both sides dial again (TCPTransport._connection_closed): Connect.      *)
(***************************************************************************)
\* env: impl/ownership/runtime/tcp.py::TCPTransport.cut
Reset ==
    /\ up
    /\ resets < MaxResets
    /\ up' = FALSE
    /\ wire' = <<>>
    /\ back' = <<>>
    /\ resets' = resets + 1
    /\ UNCHANGED <<sent, firstUnacked, received, log, nextOut, nextIn, broken>>

Done ==
    /\ received = N
    /\ UNCHANGED vars

Next ==
    \/ Send
    \/ Connect
    \/ Write
    \/ ReceiveResume
    \/ ReceiveMessage
    \/ Acknowledge
    \/ ReceiveAck
    \/ Reset
    \/ Done

\* Acknowledgements are not fair on their own: the protocol must deliver
\* everything even if the receiver acknowledges only in its resumes.
Fairness ==
    /\ WF_vars(Send)
    /\ WF_vars(Connect)
    /\ WF_vars(Write)
    /\ WF_vars(ReceiveResume)
    /\ WF_vars(ReceiveMessage)
    /\ WF_vars(ReceiveAck)

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
TypeOK ==
    /\ sent \in 0..N
    /\ firstUnacked \in 1..N + 1
    /\ received \in 0..N
    /\ up \in BOOLEAN
    /\ nextOut \in 1..N + 1
    /\ resets \in 0..MaxResets

(***************************************************************************)
(* Every message delivered once, in the order sent: the delivered history *)
(* is exactly 1..received.                                                *)
(***************************************************************************)
InOrderOnce == log = [i \in 1..Len(log) |-> i] /\ Len(log) = received

(***************************************************************************)
(* The sender forgets only what was delivered, and no resume ever skips a *)
(* message the receiver has not had.                                      *)
(***************************************************************************)
NothingForgotten == firstUnacked <= received + 1 /\ ~broken

(***************************************************************************)
(* With finitely many resets, every message sent is delivered.            *)
(***************************************************************************)
AllDelivered == <>(received = N)

=============================================================================
