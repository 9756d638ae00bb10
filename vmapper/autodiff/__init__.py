"""Reverse-mode gradients through batched control flow.

``tape`` records what ran, ``rules``/``array_rules`` attach the VJP rules to
the primitive registry, ``structural`` tapes the runtime's moves of lanes, and
``api`` is the public ``value_and_grad``/``grad``/``vjp`` (re-exported by
``vmapper``).  Kept free of imports so the runtime can import the tape.
"""
