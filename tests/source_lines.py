"""Where a test function's marked line is, for asserting that errors name the user's line."""
import inspect


def line_of(fn, marker):
    """The file line number of the first source line of ``fn`` that contains ``marker``."""
    lines, first = inspect.getsourcelines(fn)
    for k, text in enumerate(lines):
        if marker in text:
            return first + k
    raise AssertionError(f"{marker!r} not in the source of {fn.__name__}")
