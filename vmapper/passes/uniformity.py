"""Uniformity analysis: which variables and branches may differ between lanes.

Guarantees: ``fn.annotations['varying']`` is a superset of the variables that
can hold different values on different lanes, given which parameters are
batched; ``fn.annotations['varying_branches']`` the blocks whose branch (or
loop exit) may split lanes.  A value computed only from uniform values is
uniform, unless it is assigned under a varying branch or after a loop that
lanes leave at different trips (divergent control makes it varying).
Branches on uniform values need no masks; the runtime discovers the same at
run time, so this analysis informs ``explain()`` and later passes.
"""
from __future__ import annotations

import networkx as nx

from ..ir import Branch, Function, Var


def analyze_uniformity(fn: Function, varying_params=None) -> Function:
    varying = set(fn.params if varying_params is None else varying_params)
    g = fn.to_networkx()
    # Post-dominators (on the reversed graph with a virtual exit) bound each branch's influence.
    rg = g.reverse(copy=True)
    exit_node = "exit"
    rg.add_node(exit_node)
    for b, blk in fn.blocks.items():
        if not blk.successors():
            rg.add_edge(exit_node, b)
    ipdom = nx.immediate_dominators(rg, exit_node)
    varying_branches = set()
    changed = True
    while changed:
        changed = False
        for b, blk in fn.blocks.items():
            t = blk.term
            if isinstance(t, Branch) and b not in varying_branches and \
                    (isinstance(t.cond, Var) and t.cond.name in varying):
                varying_branches.add(b)
                changed = True
        influenced = set()
        for b in varying_branches:
            stop = ipdom.get(b)
            stack = list(fn.blocks[b].successors())
            seen = set()
            while stack:
                x = stack.pop()
                if x in seen or x == stop:
                    continue
                seen.add(x)
                influenced.add(x)
                stack.extend(fn.blocks[x].successors())
        for b, blk in fn.blocks.items():
            for ins in blk.instrs:
                if ins.target and ins.target not in varying and (
                        b in influenced or any(u in varying for u in ins.uses())):
                    varying.add(ins.target)
                    changed = True
        loops = fn.annotations.get("loops", {})
        for l in loops.values():
            if any(u in l.blocks and u in varying_branches for u, _ in l.exits) or \
                    any(b in varying_branches for b in l.blocks):
                for b in l.blocks:
                    for ins in fn.blocks[b].instrs:
                        if ins.target and ins.target not in varying:
                            varying.add(ins.target)
                            changed = True
    fn.annotations["varying"] = varying
    fn.annotations["varying_branches"] = varying_branches
    return fn
