"""Loop analysis: dominators, natural loops and their nesting (with networkx).

Guarantees: ``fn.annotations['loops']`` maps each loop header to a
:class:`Loop` whose ``blocks`` is the natural loop (union over the header's
back edges), ``parent`` is the innermost enclosing loop's header, and
``exits`` lists the edges leaving it.  Raises if the CFG is irreducible
(which lowering from Python source never produces).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..ir import Function


@dataclass
class Loop:
    header: int
    blocks: frozenset
    line: int = 0
    parent: int | None = None
    children: list = field(default_factory=list)
    exits: list = field(default_factory=list)


def find_loops(fn: Function) -> Function:
    g = fn.to_networkx()
    idom = nx.immediate_dominators(g, fn.entry)

    def dominates(a, b):
        while True:
            if b == a:
                return True
            nb = idom.get(b, b)
            if nb == b:
                return False
            b = nb

    bodies: dict[int, set] = {}
    for u, h in g.edges:
        if dominates(h, u):
            body = bodies.setdefault(h, {h})
            stack = [u]
            while stack:
                x = stack.pop()
                if x not in body:
                    body.add(x)
                    stack.extend(g.predecessors(x))
    # Reducible iff the graph without back edges (target dominates source) is acyclic.
    forward = nx.DiGraph((u, v) for u, v in g.edges if not dominates(v, u))
    forward.add_nodes_from(g)
    if not nx.is_directed_acyclic_graph(forward):
        raise ValueError("irreducible control flow")
    loops = {h: Loop(h, frozenset(b), fn.blocks[h].term.line if fn.blocks[h].term else 0)
             for h, b in bodies.items()}
    for h, loop in loops.items():
        enclosing = [o for o in loops.values() if o.header != h and h in o.blocks]
        if enclosing:
            loop.parent = min(enclosing, key=lambda o: len(o.blocks)).header
            loops[loop.parent].children.append(h)
        loop.exits = sorted((u, v) for u in loop.blocks for v in g.successors(u) if v not in loop.blocks)
    fn.annotations["loops"] = loops
    return fn
