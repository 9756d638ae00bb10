"""Capture a per-sample Python function as an IR :class:`~vmapper.ir.Function`.

The source is read with :mod:`inspect` and lowered from the AST statement by
statement.  Short-circuit ``and``/``or``, chained comparisons and conditional
expressions become branches, so that their right-hand sides run only on the
lanes that need them.  ``for`` loops over ``range``, ``enumerate``, ``zip``
and sequences become counted ``while`` loops.  Names resolve as in Python:
parameters and assigned names are locals; modules, functions and types from
globals, closures and builtins are bound when the function is compiled, and
other globals are read (as uniform values) each time the function runs.
Anything the runtime cannot batch raises :class:`UnsupportedSyntaxError`
naming the construct, file and line.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import types

from .errors import UnsupportedSyntaxError
from .frontend_source import compiles_to, get_source
from .frontend_builtins import (as_generator, builtin_call, enumerate_args, for_header, in_range, range_arguments,
                                range_sequence)
from .frontend_comprehensions import loops_of
from .frontend_dicts import rewrite_dicts
from .frontend_lists import LIST_METHODS, join_branch_appends, list_changes, list_locals
from .guards import MISSING
from .ir import Block, Branch, Const, Function, Instr, Jump, Raise, Return, SourceInfo, Var
from . import primitives

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv",
           ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Pow: "pow", ast.MatMult: "matmul",
           ast.LShift: "lshift", ast.RShift: "rshift", ast.BitOr: "bitor",
           ast.BitXor: "bitxor", ast.BitAnd: "bitand"}
_OTHER_LIST_MUTATORS = primitives.array_ops.LIST_MUTATORS - set(LIST_METHODS)  # (insert, pop, sort...)
_UNARY = {ast.USub: "neg", ast.UAdd: "pos", ast.Not: "not", ast.Invert: "invert"}
_COMPARE = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq",
            ast.NotEq: "ne", ast.Is: "is", ast.IsNot: "is_not"}

_UNSUPPORTED_STMT = {ast.With: "'with' statement", ast.Try: "'try' statement",
                     ast.Global: "'global' statement", ast.Nonlocal: "'nonlocal' statement",
                     ast.Delete: "'del' statement", ast.Import: "'import' statement",
                     ast.ImportFrom: "'import' statement", ast.FunctionDef: "nested function definition",
                     ast.AsyncFunctionDef: "nested function definition",
                     ast.ClassDef: "class definition", ast.AsyncFor: "'async for'",
                     ast.AsyncWith: "'async with'", ast.Match: "'match' statement"}
_UNSUPPORTED_EXPR = {ast.Lambda: "lambda",
                     ast.SetComp: "set comprehension", ast.DictComp: "dict comprehension",
                     ast.GeneratorExp: "generator expression (outside sum(), any(), all(), min() and max())",
                     ast.Dict: "dict literal other than the value of a local ('d = {...}', constant keys)",
                     ast.JoinedStr: "f-string", ast.Await: "'await'",
                     ast.Yield: "'yield'", ast.YieldFrom: "'yield from'",
                     ast.Starred: "starred expression (*args)"}


def local_names(fdef: ast.FunctionDef) -> set:
    """Names that Python treats as locals of ``fdef``: parameters and assigned names."""
    names = {a.arg for a in fdef.args.posonlyargs + fdef.args.args + fdef.args.kwonlyargs}
    for node in ast.walk(fdef):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
    return names


def _template(node):
    """An f-string message as written (``"bad x={x}"``): what a compiled kernel reports, as it
    keeps no values to format (the numpy runtime formats the failing lane's); "" otherwise."""
    if not isinstance(node, ast.JoinedStr):
        return ""
    return ast.unparse(node)[2:-1]


class Builder:
    """Lowers one function's AST into a CFG of basic blocks."""

    def __init__(self, fn):
        self.fn = fn
        src, self.filename, self.first_line, all_lines = get_source(fn)
        self.source = SourceInfo(self.filename, self.first_line, all_lines)
        self.line_offset = self.first_line - 1
        if fn.__name__ == "<lambda>":  # (its source lines may be a statement that does not parse alone)
            raise UnsupportedSyntaxError("a callable that is not a plain 'def' function (a lambda)", self.filename,
                                         self.first_line, source_line=all_lines[self.first_line - 1].strip()
                                         if self.first_line <= len(all_lines) else None,
                                         hint="write the per-sample function with 'def'")
        module = ast.parse(src)
        fdefs = [n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not fdefs:
            raise self.error("a callable that is not a plain 'def' function", module.body[0] if module.body else None)
        self.fdef = fdefs[0]
        if isinstance(self.fdef, ast.AsyncFunctionDef):
            raise self.error("async function", self.fdef)
        self._check_source_matches(fn, src)
        # (before the locals are read: a record dict is rewritten into a local list)
        self.dict_locals = rewrite_dicts(self.fdef, self.error)
        join_branch_appends(self.fdef)
        self.locals = local_names(self.fdef)
        self.list_locals = list_locals(self.fdef)
        # variables that always hold a list of this function: reading an item of one, or a
        # ``for`` loop's snapshot of one the loop does not change, leaves the list unshared
        # (``Function.annotations["lists"]``, read by runtime/block_compiler.py)
        self.list_names = set(self.list_locals)
        self.blocks: dict[int, Block] = {}
        self.loops: list = []  # (continue_target, break_target)
        self.counter = 0
        self.cur = self.new_block("entry")
        self.closure = {}
        if fn.__closure__:
            self.closure = dict(zip(fn.__code__.co_freevars, fn.__closure__))
        # (kind, where, key) -> the value compiled in: ``Function.annotations["guards"]``
        self.guards = {}

    # ---- helpers --------------------------------------------------------------
    def bound(self, kind, where, key, value):
        """``value``, read while compiling from a global (``kind`` "global": ``where`` is the
        globals dict; ``value`` MISSING: a builtin not shadowed there), a closure cell
        ("cell") or an attribute ("attr") and compiled in as a constant: recorded, so that the
        program is compiled again once that name holds something else (guards.py)."""
        self.guards.setdefault((kind, id(where), key), (kind, where, key, value))
        return value

    def line(self, node) -> int:
        return getattr(node, "lineno", 0) + self.line_offset if node is not None else self.first_line

    def _check_source_matches(self, fn, src):
        """The parsed ``def`` must be the running function's: its source file may have been
        edited since it was imported (a notebook, autoreload), and its lines are another one's.
        A module-level function's source must also compile to the running function's code."""
        code = getattr(fn, "__code__", None)
        if code is None:
            return
        a = self.fdef.args
        params = [p.arg for p in a.posonlyargs + a.args] + ([a.vararg.arg] if a.vararg else []) \
            + [p.arg for p in a.kwonlyargs] + ([a.kwarg.arg] if a.kwarg else [])
        nparams = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & inspect.CO_VARARGS) \
            + bool(code.co_flags & inspect.CO_VARKEYWORDS)
        if self.fdef.name != code.co_name or params != list(code.co_varnames[:nparams]):
            raise UnsupportedSyntaxError(
                f"the source at {self.filename}:{self.first_line} is 'def {self.fdef.name}({', '.join(params)})', "
                f"not the running function {code.co_name}{tuple(code.co_varnames[:nparams])}",
                self.filename, self.first_line,
                hint="the file was edited after the function was defined: reload its module")
        # (not where pytest's import hook rewrote the function's asserts)
        if not code.co_freevars and "." not in getattr(fn, "__qualname__", ".") \
                and not any(isinstance(n, ast.Assert) for n in ast.walk(self.fdef)) \
                and not compiles_to(src, code, self.source.lines):
            raise UnsupportedSyntaxError(
                f"source at {self.filename}:{self.first_line} that is not the running function {code.co_name}'s code",
                self.filename, self.first_line,
                hint="the file was edited after the function was defined: reload its module (or an import hook "
                     "rewrote the function as it was imported)")

    def error(self, construct, node, hint=None, python_error=None):
        line = self.line(node)
        return UnsupportedSyntaxError(construct, self.filename, line, self.source.line(line), hint, python_error)

    def new_block(self, label="") -> int:
        bid = len(self.blocks)
        self.blocks[bid] = Block(bid, label=label)
        return bid

    def fresh(self, prefix="$t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, op, args, node, target=None, **attrs) -> Var | None:
        if target is None and op not in primitives.EFFECT_ONLY:
            target = self.fresh()
        self.blocks[self.cur].instrs.append(Instr(op, target, tuple(args), attrs, self.line(node)))
        return Var(target) if target else None

    def terminate(self, term):
        blk = self.blocks[self.cur]
        if blk.term is None:
            blk.term = term

    def goto(self, target, node=None):
        self.terminate(Jump(target, self.line(node)))

    def terminated(self) -> bool:
        return self.blocks[self.cur].term is not None

    # ---- entry point ------------------------------------------------------------
    def build(self) -> Function:
        a = self.fdef.args
        if a.vararg or a.kwarg:
            raise self.error("*args/**kwargs parameters", self.fdef)
        params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
        self.statements(self.fdef.body)
        if not self.terminated():
            end = self.fdef.body[-1]
            self.terminate(Return(Const(None), getattr(end, "end_lineno", end.lineno) + self.line_offset))
        for blk in self.blocks.values():
            if blk.term is None:  # unreachable tail after break/continue/return
                blk.term = Return(Const(None), 0)
        fn = Function(self.fdef.name, params, self.blocks, 0, self.source, self.fn)
        fn.annotations["lists"] = frozenset(self.list_names)
        fn.annotations["guards"] = tuple(self.guards.values())
        return fn

    # ---- statements -------------------------------------------------------------
    def statements(self, body):
        for node in body:
            if self.terminated():
                self.cur = self.new_block("unreachable")
            self.statement(node)

    def statement(self, node):
        kind = type(node)
        if kind in _UNSUPPORTED_STMT:
            raise self.error(_UNSUPPORTED_STMT[kind], node)
        method = getattr(self, "stmt_" + kind.__name__, None)
        if method is None:
            raise self.error(f"'{kind.__name__}' statement", node)
        method(node)

    def stmt_Pass(self, node):
        pass

    def stmt_Expr(self, node):
        if isinstance(node.value, ast.Constant):  # docstring or bare constant
            return
        v = node.value
        if isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr in LIST_METHODS \
                and isinstance(v.func.value, ast.Name) and v.func.value.id in self.list_locals:
            name, method = v.func.value.id, v.func.attr
            if len(v.args) != 1 or v.keywords or isinstance(v.args[0], ast.Starred):
                raise self.error(f"'{name}.{method}()' with other than one positional argument", node)
            self.list_update(method, name, v.args[0], node)
            return
        self.expr(v)

    def list_update(self, method, name, arg, node, how=None):
        """``name.append(arg)`` / ``name.extend(arg)`` on a local list: ``name`` is rebound to
        the longer list; ``inplace`` makes the runtime refuse it when another name can reach
        the list (Python would change the list there too)."""
        value = self.expr(arg)
        self.emit(f"list_{method}", [self.load_name(name, node), value], node, target=name, inplace=name,
                  how=how or f"{name}.{method}()")

    def stmt_Assign(self, node):
        value = self.expr(node.value)
        if len(node.targets) > 1 and isinstance(value, Var):
            # ``a = b = v``, ``a, b = c = v``: every target reads one named local, so that the
            # names are seen to reach one object (an update of one in place shows through the
            # others), where copies of one temporary would each look fresh
            shared = self.fresh("_vm_chain")
            self.locals.add(shared)
            self.emit("copy", [value], node, target=shared)
            value = Var(shared)
        for target in node.targets:
            self.assign(target, value, node)

    def stmt_AnnAssign(self, node):
        if node.value is not None:
            self.assign(node.target, self.expr(node.value), node)

    def stmt_AugAssign(self, node):
        op = _BINOPS[type(node.op)]
        tgt = node.target
        if isinstance(tgt, ast.Name) and tgt.id in self.list_locals:
            self.list_update("extend", tgt.id, node.value, node, how=f"'{tgt.id} += ...'")
        elif isinstance(tgt, ast.Name):
            cur = self.load_name(tgt.id, tgt)
            # ``inplace`` names the variable: on an array, Python updates the object in place.
            self.assign(tgt, self.emit(op, [cur, self.expr(node.value)], node, inplace=tgt.id), node)
        elif isinstance(tgt, ast.Subscript):
            base = self.expr(tgt.value)
            index = self.index_operands(tgt.slice)
            cur = self.emit("getitem", [base, *index], node)
            new = self.emit(op, [cur, self.expr(node.value)], node)
            self.store_subscript(tgt, base, index, new, node)
        else:
            raise self.error("augmented assignment to this target", node)

    def assign(self, target, value, node):
        if isinstance(target, ast.Name):
            self.emit("copy", [value], node, target=target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            if any(isinstance(e, ast.Starred) for e in target.elts):
                raise self.error("starred assignment target", node)
            self.emit("check_len", [value], node, n=len(target.elts))
            for i, elt in enumerate(target.elts):
                self.assign(elt, self.emit("getitem", [value, Const(i)], node), node)
        elif isinstance(target, ast.Subscript):
            base = self.expr(target.value)
            self.store_subscript(target, base, self.index_operands(target.slice), value, node)
        else:
            raise self.error(f"assignment to {type(target).__name__.lower()}", node)

    def store_subscript(self, target, base, index, value, node):
        if not isinstance(target.value, ast.Name) or target.value.id not in self.locals:
            raise self.error("item assignment to something other than a local variable", node)
        name = target.value.id
        if name in self.list_locals:  # a list the function builds: rebound to the updated list
            self.emit("list_setitem", [base, value, *index], node, target=name, inplace=name,
                      how=f"'{name}[...] = ...'")
            return
        self.emit("setitem", [base, value, *index], node, target=name)

    def stmt_If(self, node):
        cond = self.expr(node.test)
        then_b, join_b = self.new_block(f"then (line {self.line(node)})"), None
        else_b = self.new_block(f"else (line {self.line(node)})") if node.orelse else None
        join_b = self.new_block(f"endif (line {self.line(node)})")
        self.terminate(Branch(cond, then_b, else_b if else_b is not None else join_b, self.line(node), "if"))
        self.cur = then_b
        self.statements(node.body)
        self.goto(join_b, node)
        if else_b is not None:
            self.cur = else_b
            self.statements(node.orelse)
            self.goto(join_b, node)
        self.cur = join_b

    def stmt_While(self, node):
        line = self.line(node)
        header = self.new_block(f"while header (line {line})")
        self.goto(header, node)
        self.cur = header
        cond = self.expr(node.test)
        body = self.new_block(f"while body (line {line})")
        exit_b = self.new_block(f"after while (line {line})")
        else_b = self.new_block(f"while-else (line {line})") if node.orelse else exit_b
        self.terminate(Branch(cond, body, else_b, line, "while"))
        self.loop_body(node.body, body, header, exit_b)
        if node.orelse:
            self.cur = else_b
            self.statements(node.orelse)
            self.goto(exit_b, node)
        self.cur = exit_b

    def loop_body(self, stmts, body, continue_to, break_to, prologue=None):
        self.loops.append((continue_to, break_to))
        self.cur = body
        if prologue:
            prologue()
        self.statements(stmts)
        self.goto(continue_to)
        self.loops.pop()

    def stmt_Break(self, node):
        if not self.loops:
            raise self.error("'break' outside a loop", node)
        self.goto(self.loops[-1][1], node)

    def stmt_Continue(self, node):
        if not self.loops:
            raise self.error("'continue' outside a loop", node)
        self.goto(self.loops[-1][0], node)

    def stmt_Return(self, node):
        value = self.expr(node.value) if node.value is not None else Const(None)
        self.terminate(Return(value, self.line(node)))

    def stmt_Assert(self, node):
        if not __debug__:  # python -O: Python compiles asserts away, and so does vmapper
            return
        cond = self.expr(node.test)
        ok, fail = self.new_block("assert ok"), self.new_block("assert failed")
        self.terminate(Branch(cond, ok, fail, self.line(node), "assert"))
        self.cur = fail
        msg = node.msg.value if isinstance(node.msg, ast.Constant) else _template(node.msg)
        self.terminate(Raise(AssertionError, str(msg), self.line(node), self.message_parts(node.msg)))
        self.cur = ok

    def stmt_Raise(self, node):
        exc, msg, parts = node.exc, "", ()
        if isinstance(exc, ast.Call):
            if exc.args and isinstance(exc.args[0], ast.Constant):
                msg = str(exc.args[0].value)
            elif exc.args:
                msg = _template(exc.args[0])
            parts = self.message_parts(exc.args[0] if exc.args else None)
            exc = exc.func
        exc_type = self.resolve_constant(exc) if exc is not None else RuntimeError
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            raise self.error("'raise' of something that is not an exception class", node)
        self.terminate(Raise(exc_type, msg, self.line(node), parts))

    def message_parts(self, node):
        """An f-string message's pieces for :class:`Raise` (its values computed here, on the
        lanes that raise, as Python computes them); () for any other message."""
        if not isinstance(node, ast.JoinedStr):
            return ()
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
                continue
            spec = v.format_spec
            if spec is not None and not all(isinstance(s, ast.Constant) for s in spec.values):
                raise self.error("a nested replacement field in an f-string's format spec", v)
            parts.append((self.expr(v.value), None if v.conversion == -1 else chr(v.conversion),
                          "" if spec is None else "".join(str(s.value) for s in spec.values)))
        return tuple(parts)

    def stmt_For(self, node):
        node = for_header(self, node)  # reversed(...) in the header (frontend_builtins)
        line = self.line(node)
        if node.orelse:
            exit_b = self.new_block(f"after for (line {line})")
            else_b = self.new_block(f"for-else (line {line})")
        else:
            exit_b = else_b = self.new_block(f"after for (line {line})")
        it = node.iter
        func = self.resolve_constant(it.func) if isinstance(it, ast.Call) else None
        k = self.fresh("$for")
        counter = f"{k}_i"
        if func is range:
            # range() yields Python ints whatever its bounds are (an int8 start must not make
            # the counter wrap at 127)
            start, stop, step = (v if isinstance(v, Const) else self.emit("int", [v], node)
                                 for v in range_arguments(self, it, node))
            stop = self.emit("copy", [stop], node, target=f"{k}_stop")
            step = self.emit("copy", [step], node, target=f"{k}_step")
            self.emit("copy", [start], node, target=counter)
            bind = lambda: self.assign(node.target, Var(counter), node)  # noqa: E731
            test = ("range_cond", [Var(counter), stop, step])
        else:
            start = zipped = None
            if func is enumerate:
                start, zipped = enumerate_args(self, it, node)
                seq_nodes = zipped.args if zipped is not None else it.args[:1]
            elif func is zip:
                if it.keywords or not it.args:
                    raise self.error("zip() with these arguments", node)
                seq_nodes = it.args
            else:
                seq_nodes = [it]
            live = {}  # j -> the list that sequence j is: its items are read as the loop reaches them
            for j, a in enumerate(seq_nodes):
                if isinstance(a, ast.Name) and a.id in self.list_locals:
                    changes = list_changes(node, a.id)
                    if changes is None:
                        self.list_names.add(f"{k}_seq{j}")
                    elif changes == "items":  # (Python's iterator sees the items the body assigns)
                        live[j] = a.id
            # a range() among zip()'s or enumerate()'s sequences: (first, step, length), never made
            seqs = [range_sequence(self, a, node, f"{k}_seq{j}")
                    if func in (enumerate, zip) and isinstance(a, ast.Call) and self.resolve_constant(a.func) is range
                    else Var(live[j]) if j in live  # (read at every trip: the list as it is then)
                    else self.emit("copy", [self.expr(a)], node, target=f"{k}_seq{j}")
                    for j, a in enumerate(seq_nodes)]
            if start is not None:  # (evaluated once, after the sequences, as Python does)
                start = self.emit("copy", [self.expr(start)], node, target=f"{k}_start")
            lens = [s[2] if type(s) is tuple else self.emit("len", [s], node) for s in seqs]
            n = lens[0] if len(lens) == 1 else self.emit("min", lens, node)
            n = self.emit("copy", [n], node, target=f"{k}_n")
            self.emit("copy", [Const(0)], node, target=counter)

            def bind():
                items = [self.emit("add", [s[0], self.emit("mul", [Var(counter), s[1]], node)], node)
                         if type(s) is tuple else self.emit("getitem", [s, Var(counter)], node) for s in seqs]
                if func is enumerate:
                    index = Var(counter) if start is None else self.emit("add", [Var(counter), start], node)
                    item = self.emit("tuple", items, node) if zipped is not None else items[0]
                    value = self.emit("tuple", [index, item], node)
                elif func is zip:
                    value = self.emit("tuple", items, node)
                else:
                    value = items[0]
                self.assign(node.target, value, node)
            test = ("lt", [Var(counter), n])
        header = self.new_block(f"for header (line {line})")
        self.goto(header, node)
        self.cur = header
        cond = self.emit(test[0], test[1], node)
        body = self.new_block(f"for body (line {line})")
        latch = self.new_block(f"for next (line {line})")
        self.terminate(Branch(cond, body, else_b, line, "for"))
        self.loop_body(node.body, body, latch, exit_b, prologue=bind)
        self.cur = latch
        step_operand = Var(f"{k}_step") if func is range else Const(1)
        self.emit("add", [Var(counter), step_operand], node, target=counter)
        self.goto(header, node)
        if node.orelse:
            self.cur = else_b
            self.statements(node.orelse)
            self.goto(exit_b, node)
        self.cur = exit_b

    # ---- expressions -------------------------------------------------------------
    def expr(self, node):
        kind = type(node)
        if kind in _UNSUPPORTED_EXPR:
            raise self.error(_UNSUPPORTED_EXPR[kind], node)
        method = getattr(self, "expr_" + kind.__name__, None)
        if method is None:
            raise self.error(f"'{kind.__name__}' expression", node)
        return method(node)

    def expr_Constant(self, node):
        return Const(node.value)

    def expr_Name(self, node):
        return self.load_name(node.id, node)

    def is_undefined(self, name):
        """Whether ``name`` is no local, closure variable, global or builtin of the function."""
        return not (name in self.locals or name in self.closure or name in self.fn.__globals__
                    or hasattr(builtins, name))

    def load_name(self, name, node):
        if name in self.locals:
            return Var(name)
        if name in self.closure:
            cell = self.closure[name]
            try:
                value = cell.cell_contents
            except ValueError:
                raise self.error(f"closure variable '{name}' that is not bound yet", node)
            if _is_static(value):
                return Const(self.bound("cell", cell, name, value))
            return self.emit("load_global", [], node, name=name, cell=cell)
        g = self.fn.__globals__
        if name in g:
            if _is_static(g[name]):
                return Const(self.bound("global", g, name, g[name]))
            return self.emit("load_global", [], node, name=name, globals=g)
        if hasattr(builtins, name):
            self.bound("global", g, name, MISSING)
            return Const(getattr(builtins, name))
        # read when a lane gets here, as Python does: a NameError on those lanes only (or the
        # value, if the module defines it by then)
        return self.emit("load_global", [], node, name=name, globals=g)

    def resolve_constant(self, node):
        """The compile-time value of a name or module attribute, or None."""
        if isinstance(node, ast.Constant):  # a callable in synthesized code (frontend_builtins)
            return node.value
        if isinstance(node, ast.Name) and node.id not in self.locals:
            op = self.load_name(node.id, node)
            return op.value if isinstance(op, Const) else None
        if isinstance(node, ast.Attribute):
            base = self.resolve_constant(node.value)
            if isinstance(base, types.ModuleType) or isinstance(base, type):
                return self.bound("attr", base, node.attr, getattr(base, node.attr, None))
        return None

    def expr_Attribute(self, node):
        base = self.expr(node.value)
        if isinstance(base, Const) and (isinstance(base.value, types.ModuleType) or isinstance(base.value, type)):
            if not hasattr(base.value, node.attr):
                raise self.error(_no_attribute(base.value, node.attr), node, python_error=AttributeError)
            return Const(self.bound("attr", base.value, node.attr, getattr(base.value, node.attr)))
        return self.emit("getattr", [base], node, name=node.attr)

    def expr_BinOp(self, node):
        return self.emit(_BINOPS[type(node.op)], [self.expr(node.left), self.expr(node.right)], node)

    def expr_UnaryOp(self, node):
        operand = node.operand
        if isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(operand, ast.Constant) \
                and type(operand.value) in (int, float, complex):
            # -1 is a constant, as Python's compiler makes it: passes that look at constants
            # (if-conversion's narrow-int test) see its value
            return Const(-operand.value if isinstance(node.op, ast.USub) else operand.value)
        return self.emit(_UNARY[type(node.op)], [self.expr(node.operand)], node)

    def expr_Tuple(self, node):
        if all(isinstance(e, ast.Constant) for e in node.elts):
            return Const(tuple(e.value for e in node.elts))
        return self.emit("tuple", [self.expr(e) for e in node.elts], node)

    expr_List = expr_Tuple

    def expr_Set(self, node):
        if all(isinstance(e, ast.Constant) for e in node.elts):
            return Const(frozenset(e.value for e in node.elts))
        raise self.error("set literal of non-constants", node)

    def expr_NamedExpr(self, node):
        value = self.expr(node.value)
        self.assign(node.target, value, node)
        return Var(node.target.id)

    def expr_Subscript(self, node):
        base = self.expr(node.value)
        return self.emit("getitem", [base, *self.index_operands(node.slice)], node)

    def index_operands(self, sl):
        elts = sl.elts if isinstance(sl, ast.Tuple) else [sl]
        out = []
        for e in elts:
            if isinstance(e, ast.Slice):
                parts = [self.expr(p) if p is not None else Const(None) for p in (e.lower, e.upper, e.step)]
                out.append(self.emit("slice", parts, e))
            else:
                out.append(self.expr(e))
        return out

    def expr_BoolOp(self, node):
        result = self.fresh("$v")
        join = self.new_block(f"end {'and' if isinstance(node.op, ast.And) else 'or'} (line {self.line(node)})")
        kind = "and" if isinstance(node.op, ast.And) else "or"
        for i, value_node in enumerate(node.values):
            self.emit("copy", [self.expr(value_node)], node, target=result)
            if i == len(node.values) - 1:
                self.goto(join, node)
                break
            nxt = self.new_block(f"{kind} rhs (line {self.line(node)})")
            t, f = (nxt, join) if kind == "and" else (join, nxt)
            self.terminate(Branch(Var(result), t, f, self.line(node), kind))
            self.cur = nxt
        self.cur = join
        return Var(result)

    def expr_IfExp(self, node):
        result = self.fresh("$v")
        cond = self.expr(node.test)
        a, b = self.new_block("ifexp then"), self.new_block("ifexp else")
        join = self.new_block(f"end ifexp (line {self.line(node)})")
        self.terminate(Branch(cond, a, b, self.line(node), "ifexp"))
        for blk, value in ((a, node.body), (b, node.orelse)):
            self.cur = blk
            self.emit("copy", [self.expr(value)], node, target=result)
            self.goto(join, node)
        self.cur = join
        return Var(result)

    def expr_Compare(self, node):
        left = self.expr(node.left)
        if len(node.ops) == 1:
            op, right_node = node.ops[0], node.comparators[0]
            if isinstance(op, (ast.In, ast.NotIn)) and isinstance(right_node, ast.Call) \
                    and self.resolve_constant(right_node.func) is builtins.range:
                return in_range(self, op, left, right_node, node)
            return self.compare(op, left, self.expr(right_node), node)
        result = self.fresh("$v")
        join = self.new_block(f"end comparison chain (line {self.line(node)})")
        for i, (op, right_node) in enumerate(zip(node.ops, node.comparators)):
            right = self.emit("copy", [self.expr(right_node)], node, target=self.fresh("$v"))
            self.emit("copy", [self.compare(op, left, right, node)], node, target=result)
            if i == len(node.ops) - 1:
                break
            nxt = self.new_block("comparison chain next")
            self.terminate(Branch(Var(result), nxt, join, self.line(node), "and"))
            self.cur = nxt
            left = right
        self.goto(join, node)
        self.cur = join
        return Var(result)

    def compare(self, op, left, right, node):
        if isinstance(op, (ast.In, ast.NotIn)):
            result = self.emit("contains", [right, left], node)
            return self.emit("not", [result], node) if isinstance(op, ast.NotIn) else result
        return self.emit(_COMPARE[type(op)], [left, right], node)

    def expr_ListComp(self, node):
        return self.comprehension(node, None)

    def comprehension(self, node, start):
        """A list comprehension (``start`` None) or ``sum(<generator>, start)``, lowered as the
        loops it stands for (:mod:`.frontend_comprehensions`); the value's variable."""
        if any(gen.is_async for gen in node.generators):
            raise self.error("async comprehension", node)
        result, names, stmts = loops_of(node, self.fresh, start)
        self.locals.update(names)
        if start is None:
            self.list_locals.add(result)
            self.list_names.add(result)
        self.statements(stmts)
        return Var(result)

    def expr_Call(self, node):
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise self.error("call with *args or **kwargs", node)
        lowered = builtin_call(self, node)  # pow, any, all, reversed (frontend_builtins)
        if lowered is not None:
            return lowered
        if isinstance(node.func, ast.Name) and node.args \
                and (isinstance(node.args[0], (ast.GeneratorExp, ast.ListComp)) or self.is_range_call(node.args[0])) \
                and self.resolve_constant(node.func) is builtins.sum and len(node.args) <= 2 and not node.keywords:
            # sum([...]) adds what sum(...) adds: no list is built (its length may differ per lane);
            # sum(range(...)) adds the loop's numbers
            start = node.args[1] if len(node.args) == 2 else ast.Constant(0)
            return self.comprehension(as_generator(node.args[0]), start)
        if isinstance(node.func, ast.Attribute):
            owner, method = node.func.value, node.func.attr
            if isinstance(owner, ast.Name) and owner.id in self.list_locals and method in _OTHER_LIST_MUTATORS:
                raise self.error(f"'{owner.id}.{method}()' on a local list", node,
                                 hint="a local list supports append(), extend(), += and item assignment; "
                                      "build a new list instead (r = r[:k] + r[k + 1:] for a uniform k)")
            base = self.expr(node.func.value)
            if not isinstance(base, Const):  # a method of a per-sample value
                args = [self.expr(a) for a in node.args] + [self.expr(k.value) for k in node.keywords]
                return self.emit("method", [base, *args], node, name=node.func.attr,
                                 kw=tuple(k.arg for k in node.keywords))
            func = self.bound("attr", base.value, node.func.attr, getattr(base.value, node.func.attr, None))
            if func is None:
                if not hasattr(base.value, node.func.attr):
                    raise self.error(_no_attribute(base.value, node.func.attr), node, python_error=AttributeError)
                raise self.error(f"attribute '{node.func.attr}'", node)
        else:
            if isinstance(node.func, ast.Name) and self.is_undefined(node.func.id):
                raise self.error(f"name '{node.func.id}' is not defined", node, python_error=NameError)
            fop = self.expr(node.func)
            if not isinstance(fop, Const):
                raise self.error("call of a value computed at run time", node)
            func = fop.value
        prim = primitives.lookup_callable(func)
        if prim in ("float", "int") and len(node.args) == 1 and not node.keywords \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            try:  # float("nan"), float("inf"): a constant (a compiled kernel takes no strs)
                return Const(func(node.args[0].value))
            except ValueError:
                pass  # (raised on the lanes that reach it, as Python does)
        if prim is not None:
            if prim == "range":
                raise self.error("range() outside a 'for' loop header", node)
            args = [self.expr(a) for a in node.args] + [self.expr(k.value) for k in node.keywords]
            if prim == "math.hypot" and len(args) != 2 and not node.keywords:
                return self.hypot_of(args, node)
            return self.emit(prim, args, node, kw=tuple(k.arg for k in node.keywords))
        target = getattr(func, "per_sample", None) if hasattr(func, "__vmapper_batched__") else func
        if isinstance(target, types.FunctionType):
            extra = {"memo": True} if getattr(func, "memo", False) else {}  # @batched(memo=True): DAG mode for its calls
            if getattr(func, "max_iters", None) is not None and target is not func:  # (@batched(max_iters=N))
                extra["max_iters"] = func.max_iters
            return self.emit("call", self.bind_call_args(target, node), node, callee=target, **extra)
        name = getattr(func, "__qualname__", getattr(func, "__name__", repr(func)))
        if isinstance(func, type) and issubclass(func, tuple) and hasattr(func, "_fields"):
            raise self.error(f"building the NamedTuple {name}", node,
                             hint=f"return a plain tuple and build {name} from the batched results "
                                  f"outside: {name}(*f(...)), each field an array with the batch axis")
        if isinstance(func, type):
            raise self.error(f"calling the class {name} (making an object per sample)", node,
                             hint="per-sample code makes numbers, arrays, tuples, lists and dicts; "
                                  "return those and build objects from the batched results outside")
        raise self.error(f"call to {name}", node,
                         hint="vmapper batches plain Python functions, @batched functions and the "
                              "primitives listed in the README")

    def is_range_call(self, node):
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and self.resolve_constant(node.func) is builtins.range

    def hypot_of(self, args, node):
        """``math.hypot`` of other than two coordinates: 0.0, ``fabs(x)``, or a left fold of the
        two-coordinate ``hypot`` (within about 2 ulp of CPython's single rounding; inf wins
        over nan, as there)."""
        if not args:
            return Const(0.0)
        if len(args) == 1:
            return self.emit("math.fabs", args, node, kw=())
        acc = self.emit("math.hypot", args[:2], node, kw=())
        for a in args[2:]:
            acc = self.emit("math.hypot", [acc, a], node, kw=())
        return acc

    def bind_call_args(self, target, node):
        """Positional operands for a call to a user function, defaults filled in."""
        sig = inspect.signature(target)
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise self.error(f"call to {target.__name__} that takes *args/**kwargs", node)
        keywords = {k.arg: k.value for k in node.keywords}
        try:
            bound = sig.bind(*node.args, **keywords)
        except TypeError as exc:
            from .api import _unexpected_keyword  # (Python names a wrong keyword before a missing argument)
            raise self.error(f"{target.__name__}() {_unexpected_keyword(sig, keywords) or exc}", node,
                             python_error=TypeError)
        ops = []
        for name, p in sig.parameters.items():
            if name in bound.arguments:
                ops.append(self.expr(bound.arguments[name]))
            else:
                ops.append(Const(p.default))
        return ops


def _no_attribute(owner, name):
    """Python's AttributeError message for ``owner.name``."""
    kind = f"module '{owner.__name__}'" if isinstance(owner, types.ModuleType) else f"type object '{owner.__name__}'"
    return f"{kind} has no attribute '{name}'"


def _is_static(value) -> bool:
    """Values bound at compile time: code and namespaces, not data."""
    return (isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type))
            or callable(value) and not hasattr(value, "shape")
            or value is None)


def build_function(fn) -> Function:
    """Lower the Python function ``fn`` into an IR function (no passes run)."""
    return Builder(fn).build()
