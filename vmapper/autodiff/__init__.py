"""Reverse-mode gradients through batched control flow.

``tape`` records what ran, ``rules``/``array_rules``/``scan_rules`` attach the VJP rules to
the primitive registry, ``structural`` tapes the runtime's moves of lanes, and
``api`` is the public ``value_and_grad``/``grad``/``vjp`` (re-exported by
``vmapper``); ``checkpoint`` recomputes long loops' stretches in the backward
sweep (``checkpoint_loops``), and ``memory`` measures tapes (``tape_stats``).
Kept free of imports so the runtime can import the tape.
"""


def __getattr__(name):
    if name == "tape_stats":  # imported on first use: the runtime imports this package early
        from .memory import tape_stats
        return tape_stats
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
