"""Model-checker wrappers (TLC, Apalache), TLA+ values, ITF traces, state graphs."""
