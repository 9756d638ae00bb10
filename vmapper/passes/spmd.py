"""The SPMD pass: turn control dependence into data dependence.

Each block gets an execution mask: the OR, over its incoming forward edges,
of the source's mask ANDed with the edge's condition.  Blocks are linearized
in a topological order of the CFG with every loop collapsed to one node, so a
block runs only after all lanes that can reach it have arrived (lanes
reconverge at join points).  A loop becomes a :class:`LoopStep` that re-runs
its body while any lane sits at its header; its exits add lanes to the masks
of blocks after it, ``break``/``continue``/``return`` are just edges (or a
terminator) that move lanes between masks.

Guarantees: ``fn.annotations['schedule']`` is a list of steps (block ids and
:class:`LoopStep`) in which every block of the function appears exactly once,
after every block with a forward edge into it; a block inside a loop appears
only inside that loop's step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..ir import Function


@dataclass
class LoopStep:
    header: int
    blocks: frozenset
    body: list = field(default_factory=list)
    line: int = 0


def spmd_schedule(fn: Function) -> Function:
    loops = fn.annotations["loops"]
    fn.annotations["schedule"] = _order(fn, set(fn.blocks), None, loops)
    return fn


def _order(fn, region, header, loops):
    """Topologically ordered steps for ``region`` (a loop's blocks, or all blocks)."""
    inner = [l for l in loops.values()
             if l.header != header and l.header in region
             and (l.parent == header)]
    rep = {}
    for l in inner:
        for b in l.blocks:
            rep[b] = ("loop", l.header)
    g = nx.DiGraph()
    for b in region:
        node = rep.get(b, ("block", b))
        g.add_node(node)
    for b in region:
        for s in fn.blocks[b].successors():
            if s not in region or s == header:
                continue  # exits and back edges of this region
            u, v = rep.get(b, ("block", b)), rep.get(s, ("block", s))
            if u != v:
                g.add_edge(u, v)
    steps = []
    for kind, b in nx.lexicographical_topological_sort(g, key=lambda n: (n[1], n[0])):
        if kind == "block":
            steps.append(b)
        else:
            l = loops[b]
            steps.append(LoopStep(b, l.blocks, _order(fn, set(l.blocks), b, loops), l.line))
    return steps
