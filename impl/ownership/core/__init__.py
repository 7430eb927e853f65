"""The Ownership protocol as pure state machines.

No trio, no sockets, no clocks, no randomness: every input is an event, every
output an effect (DESIGN §3). Each method that implements a TLA+ action starts
its docstring with ``Spec: <Module>!<Action>``.
"""
