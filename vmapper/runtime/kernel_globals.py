"""Data globals that a kernel reads: uniform arguments of each launch.

Per-sample code reads a module-level value (``LR = 0.05``) or a closure
variable with a ``load_global`` instruction at run time, so that a new value
reaches the next call.  A compiled kernel cannot look names up, so the kernel
of a function that reads globals is that function with every ``load_global``
turned into a read of an extra, trailing parameter (:func:`kernel_program`,
:func:`~vmapper.passes.globals_as_params.globals_as_params`),
and each launch passes the names' current values after the call's arguments
(:func:`with_global_values`).  An elementwise function cannot assign a
global or call code that does, so reading them all at launch reads what the
per-sample run reads at each instruction.
"""
from __future__ import annotations

from ..passes.globals_as_params import globals_as_params

_UNBOUND = object()


class KernelProgram:
    """``program`` as the kernel paths see it: ``ir`` reads its globals from parameters;
    every other attribute is the program's."""

    def __init__(self, program, ir, reads):
        self.program, self.ir, self.reads = program, ir, reads

    def __getattr__(self, name):
        return getattr(self.program, name)


def kernel_program(program):
    """The program with its globals as trailing parameters (cached on it), or the program
    itself when it reads none."""
    hit = program.__dict__.get("_kernel_program")
    if hit is None:
        ir, reads = globals_as_params(program.ir)
        hit = program._kernel_program = KernelProgram(program, ir, reads) if reads else program
    return hit


def with_global_values(kprog, args):
    """The call's arguments followed by the current values of the globals ``kprog`` reads;
    ``(None, name)`` when a name is not bound (the numpy runtime raises the per-sample
    ``NameError`` at its line)."""
    if not isinstance(kprog, KernelProgram):
        return list(args), None
    values = []
    for attrs in kprog.reads:
        if "cell" in attrs:
            try:
                v = attrs["cell"].cell_contents
            except ValueError:
                v = _UNBOUND
        else:
            v = attrs["globals"].get(attrs["name"], _UNBOUND)
        if v is _UNBOUND:
            return None, attrs["name"]
        values.append(v)
    return list(args) + values, None
