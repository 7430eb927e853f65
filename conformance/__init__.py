"""Conformance between the TLA+ specs (``spec/``) and the implementation.

One mapping per spec (:mod:`conformance.mappings`) serves both directions
(DESIGN §5):

- model -> implementation: :mod:`conformance.generate` turns TLC's state
  graph into ITF traces under ``traces/<Spec>/``; :mod:`conformance.replay`
  drives the in-memory cluster through each trace, stimulus by stimulus, and
  compares the mapping's projection with every state of the trace;
- implementation -> model: :mod:`conformance.eventlog` records what a run
  did as NDJSON (one line per spec action) and :mod:`conformance.validate`
  asks TLC whether the spec can take those steps in that order.
"""
