"""Compiled programs: a per-sample function after the pass pipeline, cached per function."""
from __future__ import annotations

import threading

from .frontend import build_function
from .guards import guards_hold
from .profiler import compiling
from .passes.manager import PassManager


class Program:
    """An IR function with its SPMD schedule, ready for the runtime."""

    def __init__(self, fn):
        self.ir = fn
        self.name = fn.name
        self.params = fn.params
        self.entry = fn.entry
        self.blocks = fn.blocks
        self.schedule = fn.annotations["schedule"]
        self.source = fn.source
        self.guards = fn.annotations.get("guards", ())
        self.self_recursive = any(_calls_itself(fn, ins) for blk in fn.blocks.values() for ins in blk.instrs)

    def where(self, line):
        return f"{self.source.filename}:{line}"

    def source_line(self, line):
        return self.source.line(line)


def reaches_itself(program, get) -> bool:
    """Whether ``program``'s function can call itself, directly or through the user functions it
    calls (``get``: a Python function's program); cached on the program."""
    known = getattr(program, "_reaches_itself", None)
    if known is None:
        known = program.self_recursive or program.ir.python_function in _callees_reached(program, get)
        program._reaches_itself = known
    return known


def _callees_reached(program, get):
    seen, todo = set(), [program]
    while todo:
        for blk in todo.pop().ir.blocks.values():
            for ins in blk.instrs:
                callee = ins.attrs.get("callee") if ins.op in ("call", "map_call") else None
                if callee is None or callee in seen:
                    continue
                seen.add(callee)
                try:
                    todo.append(get(callee))
                except Exception:  # (a callee that does not compile raises where it is called)
                    pass
    return seen


def _calls_itself(fn, ins):
    """A call of ``fn`` itself, or (a method) of ``self.<its name>(...)`` on its first parameter:
    the method on the object's class, as it most often is (it only orders the evaluation)."""
    if ins.op in ("call", "map_call"):
        return ins.attrs.get("callee") is fn.python_function
    return ins.op in ("method", "map_method") and ins.attrs.get("name") == fn.python_function.__name__ \
        and bool(fn.params) and getattr(ins.args[0], "name", None) == fn.params[0]


_cache: dict = {}
_lock = threading.RLock()


def get_program(pyfunc) -> Program:
    """The compiled program of a plain Python function (compiled once, thread-safely; again
    when its code, or a global, closure variable or attribute it was compiled with, changed)."""
    key = pyfunc
    prog = _cache.get(key)
    if prog is not None and prog[0] is pyfunc.__code__ and guards_hold(prog[1].guards):
        return prog[1]
    with _lock:
        prog = _cache.get(key)
        if prog is not None and prog[0] is pyfunc.__code__ and guards_hold(prog[1].guards):
            return prog[1]
        with compiling("capture and passes"):  # (an open vmapper.profile() books it apart)
            compiled = Program(PassManager().run(build_function(pyfunc)))
        _cache[key] = (pyfunc.__code__, compiled)
        return compiled
