"""The per-sample function's source: read from its file, dedented, and checked against the
running function (a file edited after its module was imported holds another function)."""
from __future__ import annotations

import __future__
import ast
import inspect
import linecache
import types

from .errors import UnsupportedSyntaxError


def get_source(fn):
    """Return (dedented source, filename, first line, all file lines) of ``fn``."""
    try:
        # the function's own code: inspect would follow a functools.wraps wrapper's
        # __wrapped__ to the function it wraps, and batch that one instead
        lines, first = inspect.getsourcelines(getattr(fn, "__code__", fn))
    except (OSError, TypeError) as exc:
        raise UnsupportedSyntaxError(
            f"function {getattr(fn, '__qualname__', fn)!r} without readable source",
            getattr(getattr(fn, "__code__", None), "co_filename", None),
            getattr(getattr(fn, "__code__", None), "co_firstlineno", None),
            hint="vmapper reads the per-sample function's source; define it in a file "
                 "(or register exec'd source with linecache)") from exc
    filename = fn.__code__.co_filename
    all_lines = linecache.getlines(filename) or lines
    return _dedented(lines), filename, first, all_lines


def _dedented(lines):
    """The source lines without the first line's indentation (a method's, a nested function's).
    A line that does not start with it, a comment or a string's line at column 0, is kept as it
    is, where ``textwrap.dedent`` would dedent nothing at all."""
    first = lines[0]
    margin = first[:len(first) - len(first.lstrip(" \t"))]
    return "".join(line[len(margin):] if line.startswith(margin) else line for line in lines)


_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag


_IMPORTED = {}  # filename -> (the file's lines, the names its module scope binds by import)


def _imported_names(filename, lines):
    cached = _IMPORTED.get(filename)
    if cached is None or cached[0] is not lines:
        try:
            tree = ast.parse("".join(lines))
        except (SyntaxError, ValueError):
            return None
        names = set()
        stack = list(tree.body)
        while stack:  # (module scope: imports under if/try too, not in functions or classes)
            node = stack.pop()
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).partition(".")[0] for a in node.names if a.name != "*")
            elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                stack.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
        cached = _IMPORTED[filename] = (lines, sorted(names))
    return cached[1]


def compiles_to(src, code, all_lines):
    """Whether the module-level ``def`` in ``src`` compiles to ``code`` (a source edited after
    its module was imported does not); True where it cannot tell.  Names the module imports are
    imported first: CPython compiles ``math.sqrt(x)`` otherwise when ``math`` is an import."""
    imported = _imported_names(code.co_filename, all_lines)
    if imported is None:
        return True
    prefix = "".join(f"import sys as {name}\n" for name in imported)
    try:
        module = compile(prefix + src, code.co_filename, "exec", flags=code.co_flags & _FUTURE_FLAGS,
                         dont_inherit=True)
    except (SyntaxError, ValueError):
        return True
    found = [c for c in module.co_consts if isinstance(c, types.CodeType) and c.co_name == code.co_name]
    return not found or _same_code(found[0], code)


def _same_code(a, b):
    if a.co_code != b.co_code or a.co_names != b.co_names or len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType) and isinstance(y, types.CodeType):
            if not _same_code(x, y):
                return False
        elif type(x) is not type(y) or (x != y if isinstance(x, frozenset) else repr(x) != repr(y)):
            return False  # (repr: -0.0 and 0.0, nan and nan)
    return True
