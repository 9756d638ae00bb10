"""Data globals as trailing parameters: the IR that kernels compile.

Not part of the default pipeline: the runtime applies it to the function a
kernel is generated from (``runtime/kernel_globals.py``), and
``kernel_regions`` asks it whether a function would be one kernel.
"""
from __future__ import annotations

import dataclasses

from ..ir import Block, Instr, Var


def globals_as_params(fn):
    """``(function, reads)``: ``fn`` with each ``load_global`` a copy of a trailing parameter
    (one per name or closure cell), and the ``load_global`` attributes of those parameters
    in order; ``(fn, [])`` when ``fn`` reads no globals.

    Guarantees: ``fn`` is not changed (the result has its own blocks and annotations); the
    result has no ``load_global``; the parameters before the new ones are ``fn``'s."""
    reads, params, blocks = [], {}, {}
    for bid, blk in fn.blocks.items():
        instrs = []
        for ins in blk.instrs:
            if ins.op == "load_global":
                key = ("cell", id(ins.attrs["cell"])) if "cell" in ins.attrs else ("name", ins.attrs["name"])
                if key not in params:
                    params[key] = f"<global {ins.attrs['name']}>"
                    reads.append(ins.attrs)
                ins = Instr("copy", ins.target, (Var(params[key]),), {}, ins.line)
            instrs.append(ins)
        blocks[bid] = Block(blk.id, instrs, blk.term, blk.label)
    if not reads:
        return fn, []
    return dataclasses.replace(fn, params=list(fn.params) + list(params.values()), blocks=blocks,
                               annotations=dict(fn.annotations)), reads
