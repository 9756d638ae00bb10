"""Probing generated programs: instrumented runs that check types, bounds and loop trips."""
from __future__ import annotations
import ast
import math

from .program_generator import (
    EXPR_LIMIT, MAX_LOOP_STEPS, INT_VARS, FLOAT_VARS, INT_PARAMS, FLOAT_PARAMS, GeneratedProgram, _exec_source, generate_program)


_EXPECTED_TYPES = {name: int for name in INT_VARS + INT_PARAMS}
_EXPECTED_TYPES.update({name: float for name in FLOAT_VARS + FLOAT_PARAMS})


class ProgramProbe:
    """Runtime checks and statistics for an instrumented program.

    ``fn`` behaves like the generated function but asserts, on every
    evaluation, that values stay within :data:`EXPR_LIMIT` (finite for floats),
    that each variable has its declared type, and that loop bodies run at most
    :data:`MAX_LOOP_STEPS` times per call; it also records which way every
    ``if``/``while``/``x if c else y`` test went (``outcomes``).
    """

    def __init__(self, prog: GeneratedProgram):
        self.prog = prog
        self.outcomes: dict[int, set] = {}
        self.steps = 0
        self.max_steps_seen = 0
        self.n_sites = 0
        self.site_text: list[str] = []   # source of each test, by site id
        tree = ast.parse(prog.source)
        tree = _Instrumenter(self).visit(tree)
        ast.fix_missing_locations(tree)
        source = ast.unparse(tree) + "\n"
        filename = f"<vmapper-generated-{prog.seed}-instrumented>"
        inner = _exec_source(prog, source, filename, {
            "__chk": self._check_value, "__var": self._check_var,
            "__step": self._step, "__br": self._branch})
        kind = prog.return_kind

        def fn(*args):
            self.steps = 0
            result = inner(*args)
            self.max_steps_seen = max(self.max_steps_seen, self.steps)
            _check_return(result, kind)
            return result
        self.fn = fn

    @staticmethod
    def _check_value(v):
        if isinstance(v, bool):
            raise AssertionError(f"bool {v!r} used as a number")
        if isinstance(v, int):
            if abs(v) > EXPR_LIMIT:
                raise AssertionError(f"int {v} exceeds EXPR_LIMIT")
        elif isinstance(v, float):
            if not math.isfinite(v) or abs(v) > EXPR_LIMIT:
                raise AssertionError(f"float {v!r} exceeds EXPR_LIMIT")
        return v

    def _check_var(self, name, v):
        expected = _EXPECTED_TYPES.get(name, int)   # counters and targets: int
        if type(v) is not expected:
            raise AssertionError(f"{name} is {type(v).__name__}, expected {expected.__name__}")
        return self._check_value(v)

    def _step(self):
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise AssertionError(f"more than {MAX_LOOP_STEPS} loop trips in one call")

    def _branch(self, site, value):
        self.outcomes.setdefault(site, set()).add(bool(value))
        return value

    def branch_coverage(self) -> tuple[int, int]:
        """(sites whose test went both ways, sites in the program)."""
        both = sum(1 for s in range(self.n_sites) if len(self.outcomes.get(s, ())) == 2)
        return both, self.n_sites


def _check_return(result, kind: str) -> None:
    expected = {"int": int, "float": float}
    if kind == "tuple":
        ok = (type(result) is tuple and len(result) == 2
              and type(result[0]) is int and type(result[1]) is float)
    else:
        ok = type(result) is expected[kind]
    if not ok:
        raise AssertionError(f"return value {result!r} is not of kind {kind!r}")


class _Instrumenter(ast.NodeTransformer):
    """Rewrites a generated program to call the hooks of a ProgramProbe."""

    def __init__(self, probe: ProgramProbe):
        self.probe = probe

    @staticmethod
    def _call(name: str, *args: ast.expr) -> ast.Call:
        return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])

    def _site(self, test: ast.expr, text: str) -> ast.Call:
        site = self.probe.n_sites
        self.probe.n_sites += 1
        self.probe.site_text.append(text)
        return self._call("__br", ast.Constant(site), test)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id not in ("math", "abs", "min", "max",
                                                               "int", "float", "range"):
            return self._call("__var", ast.Constant(node.id), node)
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._call("__chk", node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return node if isinstance(node.op, ast.Not) else self._call("__chk", node)

    def visit_Call(self, node):
        self.generic_visit(node)   # callees (abs, math.sqrt, ...) are not wrapped
        return self._call("__chk", node)

    def visit_IfExp(self, node):
        text = ast.unparse(node.test)
        self.generic_visit(node)
        node.test = self._site(node.test, text)
        return node

    def visit_If(self, node):
        text = ast.unparse(node.test)
        self.generic_visit(node)
        node.test = self._site(node.test, text)
        return node

    def visit_While(self, node):
        text = ast.unparse(node.test)
        self.generic_visit(node)
        if not (isinstance(node.test, ast.Constant) and node.test.value is True):
            node.test = self._site(node.test, text)
        node.body.insert(0, ast.Expr(self._call("__step")))
        return node

    def visit_For(self, node):
        self.generic_visit(node)
        node.body.insert(0, ast.Expr(self._call("__step")))
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        # Check the updated value right away.
        check = ast.Expr(self._call("__var", ast.Constant(node.target.id),
                                    ast.Name(id=node.target.id, ctx=ast.Load())))
        return [node, check]


def instrument_program(prog: GeneratedProgram) -> ProgramProbe:
    """Compile a checked variant of ``prog``; see :class:`ProgramProbe`."""
    return ProgramProbe(prog)


# ---------------------------------------------------------------------------
# Which constructs a program uses
# ---------------------------------------------------------------------------

def program_features(source: str) -> set[str]:
    """Names of the constructs ``source`` uses, found by parsing it.

    ``while``, ``while_true``, ``for``, ``range_step``, ``break``,
    ``continue``, ``return_in_loop``, ``early_return`` (a ``return`` before
    the last statement), ``if``, ``if_else``, ``if_elif``, ``ifexp``,
    ``and_or``, ``not``, ``truthiness`` (a bare int/float tested),
    ``augassign``, ``min_max``, ``abs``, ``sqrt``, ``floor``, ``int_conv``,
    ``float_conv``, ``floordiv``, ``mod``, ``true_div``, ``tuple_return``.
    """
    tree = ast.parse(source)
    func = tree.body[0]
    found: set[str] = set()
    calls = {"min": "min_max", "max": "min_max", "abs": "abs", "int": "int_conv",
             "float": "float_conv", "sqrt": "sqrt", "floor": "floor"}

    def visit(node: ast.AST, in_loop: bool) -> None:
        if isinstance(node, ast.While):
            is_true = isinstance(node.test, ast.Constant) and node.test.value is True
            found.add("while_true" if is_true else "while")
        elif isinstance(node, ast.For):
            found.add("for")
            if len(node.iter.args) == 3:
                found.add("range_step")
        elif isinstance(node, ast.Break):
            found.add("break")
        elif isinstance(node, ast.Continue):
            found.add("continue")
        elif isinstance(node, ast.Return):
            if in_loop:
                found.add("return_in_loop")
            if isinstance(node.value, ast.Tuple):
                found.add("tuple_return")
        elif isinstance(node, ast.If):
            found.add("if")
            if node.orelse:
                is_elif = len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If)
                found.add("if_elif" if is_elif else "if_else")
        elif isinstance(node, ast.IfExp):
            found.add("ifexp")
        elif isinstance(node, ast.BoolOp):
            found.add("and_or")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.add("not")
        elif isinstance(node, ast.AugAssign):
            found.add("augassign")
        elif isinstance(node, ast.BinOp):
            op = {ast.FloorDiv: "floordiv", ast.Mod: "mod", ast.Div: "true_div"}.get(type(node.op))
            if op:
                found.add(op)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in calls:
                found.add(calls[name])
        tests = []
        if isinstance(node, (ast.If, ast.While, ast.IfExp)):
            tests.append(node.test)
        if isinstance(node, ast.BoolOp):
            tests.extend(node.values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            tests.append(node.operand)
        if any(not isinstance(t, (ast.Compare, ast.BoolOp, ast.Constant)) and
               not (isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not)) for t in tests):
            found.add("truthiness")
        for child in ast.iter_child_nodes(node):
            visit(child, in_loop or isinstance(node, (ast.For, ast.While)))

    for index, stmt in enumerate(func.body):
        visit(stmt, False)
        if index < len(func.body) - 1 and any(isinstance(n, ast.Return) for n in ast.walk(stmt)):
            found.add("early_return")
    return found


if __name__ == "__main__":   # pragma: no cover - manual inspection helper
    import sys
    for arg in sys.argv[1:] or ["0"]:
        program = generate_program(int(arg))
        print(f"# seed {arg}: {' '.join(sorted(program_features(program.source)))}")
        print(program.source)
