"""The intermediate representation: a control-flow graph of basic blocks.

A :class:`Function` is a CFG whose blocks hold three-address instructions over
named variables (not SSA: the SPMD runtime keeps one batched array per name,
and a masked assignment *is* the select that SSA would spell as a phi).
Every instruction names a primitive of :mod:`vmapper.primitives`; control flow
lives only in block terminators (:class:`Jump`, :class:`Branch`,
:class:`Return`, :class:`Raise`), so analyses see it explicitly.

Names that start with ``$t`` are expression temporaries: defined and used in
one block, never live across an edge, so the runtime keeps them out of the
variable environment and never masks their stores.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Var:
    name: str

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class Const:
    value: Any

    def __str__(self):
        v = self.value
        if callable(v) or type(v).__name__ == "module":
            return f"<{getattr(v, '__name__', type(v).__name__)}>"
        r = repr(v)
        return r if len(r) <= 40 else r[:37] + "..."


Operand = Union[Var, Const]


def is_temp(name: str) -> bool:
    return name.startswith("$t")


@dataclass
class Instr:
    """``target = op(*args; **attrs)``; ``target`` is None for an effect-only op."""
    op: str
    target: str | None
    args: tuple
    attrs: dict = field(default_factory=dict)
    line: int = 0
    #: ``((cond, taken), ...)`` on an instruction that if-conversion moved out of an arm: the
    #: lanes whose truth temporaries ``cond`` equal ``taken`` (all of them) are those that run it
    #: in the per-sample program; its failures are theirs alone (``runtime/speculation.py``).
    guards: tuple = ()

    def uses(self):
        return [a.name for a in self.args if isinstance(a, Var)]

    def __str__(self):
        parts = [str(a) for a in self.args] + [f"{k}={_fmt_attr(v)}" for k, v in self.attrs.items()]
        lhs = f"{self.target} = " if self.target else ""
        return f"{lhs}{self.op}({', '.join(parts)})"


def _fmt_attr(v):
    if isinstance(v, Function):
        return v.name
    if type(v) is dict and "__builtins__" in v:  # a module's namespace (load_global)
        return f"<globals of {v.get('__name__', '?')}>"
    if type(v) is types.CellType:
        return "<closure cell>"
    if callable(v):
        return getattr(v, "__qualname__", repr(v))
    return repr(v)


@dataclass
class Jump:
    target: int
    line: int = 0

    def successors(self):
        return (self.target,)

    def uses(self):
        return []

    def __str__(self):
        return f"jump b{self.target}"


@dataclass
class Branch:
    cond: Operand
    if_true: int
    if_false: int
    line: int = 0
    kind: str = "if"  # "if", "while", "for", "and", "or", "ifexp", "assert"

    def successors(self):
        return (self.if_true, self.if_false)

    def uses(self):
        return [self.cond.name] if isinstance(self.cond, Var) else []

    def __str__(self):
        return f"branch {self.cond} ? b{self.if_true} : b{self.if_false}  [{self.kind}]"


@dataclass
class Return:
    value: Operand
    line: int = 0

    def successors(self):
        return ()

    def uses(self):
        return [self.value.name] if isinstance(self.value, Var) else []

    def __str__(self):
        return f"return {self.value}"


@dataclass
class Raise:
    """Lanes that reach this block fail as the per-sample run would.  ``parts``: an
    f-string message, its literal pieces (str) and formatted values (``(operand, conversion,
    format spec)``), formatted with the first failing lane's values; else ``message``."""
    exc_type: type
    message: str
    line: int = 0
    parts: tuple = ()

    def successors(self):
        return ()

    def uses(self):
        return [p[0].name for p in self.parts if type(p) is tuple and isinstance(p[0], Var)]

    def __str__(self):
        if self.parts:
            shown = "".join(p if type(p) is str else f"{{{p[0]}}}" for p in self.parts)
            return f"raise {self.exc_type.__name__}(f{shown!r})"
        return f"raise {self.exc_type.__name__}({self.message!r})"


Terminator = Union[Jump, Branch, Return, Raise]


@dataclass
class Block:
    id: int
    instrs: list = field(default_factory=list)
    term: Terminator | None = None
    label: str = ""

    def successors(self):
        return self.term.successors() if self.term else ()


@dataclass
class SourceInfo:
    filename: str
    first_line: int
    lines: list  # the whole file's lines (1-based access through line())

    def line(self, lineno: int) -> str:
        if 1 <= lineno <= len(self.lines):
            return self.lines[lineno - 1].rstrip("\n")
        return ""


@dataclass
class Function:
    """A per-sample function as a CFG; ``params`` are the argument names."""
    name: str
    params: list
    blocks: dict
    entry: int
    source: SourceInfo
    python_function: Any = None
    annotations: dict = field(default_factory=dict)  # analysis results, by pass name

    def successors(self, bid):
        return self.blocks[bid].successors()

    def predecessors(self):
        preds = {b: [] for b in self.blocks}
        for b, blk in self.blocks.items():
            for s in blk.successors():
                preds[s].append(b)
        return preds

    def to_networkx(self):
        import networkx as nx
        g = nx.DiGraph()
        g.add_nodes_from(self.blocks)
        for b, blk in self.blocks.items():
            for s in blk.successors():
                g.add_edge(b, s)
        return g

    def where(self, line: int) -> str:
        return f"{self.source.filename}:{line}"

    def dump(self) -> str:
        out = [f"function {self.name}({', '.join(self.params)})  "
               f"# {self.source.filename}:{self.source.first_line}"]
        for bid in sorted(self.blocks):
            blk = self.blocks[bid]
            label = f"  ; {blk.label}" if blk.label else ""
            out.append(f"  b{bid}:{label}")
            for ins in blk.instrs:
                out.append(f"    {str(ins):<60} # line {ins.line}")
            if blk.term is not None:
                out.append(f"    {str(blk.term):<60} # line {blk.term.line}")
        return "\n".join(out)
