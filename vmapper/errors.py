"""The errors vmapper raises; every one is a subclass of :class:`BatchingError`.

Messages name what the user can act on: the construct, the argument, the
lane, and the file and line of the per-sample code.
"""
from __future__ import annotations


class BatchingError(Exception):
    """Base class of every error vmapper raises on purpose."""


class UnsupportedSyntaxError(BatchingError):
    """A construct of the per-sample code that vmapper cannot batch (yet).

    Raised when the function is compiled (first call or ``explain()``), or at
    run time for a type combination whose batched form would differ from the
    per-sample result.
    """

    def __init__(self, construct: str, filename: str | None = None, line: int | None = None,
                 source_line: str | None = None, hint: str | None = None, python_error: type | None = None):
        self.construct = construct
        self.filename = filename
        self.line = line
        self.source_line = source_line
        self.hint = hint
        self.python_error = python_error
        msg = self._headline(construct, f"{filename}:{line}" if filename else "<unknown location>")
        if source_line:
            msg += f"\n    {line} | {source_line.strip()}"
        if hint:
            msg += f"\n  hint: {hint}"
        super().__init__(msg)

    def _headline(self, construct, where):
        if self.python_error is not None:  # a mistake in the code, which Python reports when a sample reaches it
            return (f"{construct} ({where}): {with_article(self.python_error.__name__)} per sample, which vmapper "
                    f"finds when it compiles the function, whether or not a lane reaches the line")
        return f"{construct} is not supported by vmapper ({where})"


class RecursionDepthError(UnsupportedSyntaxError, RecursionError):
    """Recursion deeper than the batched runtime can follow on Python's stack.

    Also a ``RecursionError``, as the per-sample run's would be (a recursion that never
    ends, say), so ``except RecursionError`` catches both.
    """

    def _headline(self, construct, where):
        return f"{construct} ({where})"  # (a limit of the stack, not of what vmapper batches)


class BatchError(BatchingError, ValueError):
    """Bad batched arguments: sizes that disagree, wrong ``in_axes``, bad leaves."""


class NonTerminationError(BatchingError):
    """A loop ran more than ``max_iters`` trips; names the loop and the lanes still in it."""

    def __init__(self, message: str, lanes=None, line: int | None = None):
        self.lanes = lanes
        self.line = line
        super().__init__(message)


class LaneError(BatchingError):
    """An active lane did what the per-sample run raises on.

    ``lanes`` holds the batch positions that fail, ``line`` the user's line,
    ``operation`` a short name of what failed, ``python_error`` the exception
    type a per-sample run would raise.  The error is also an instance of
    ``python_error`` (a subclass of both), so the ``except ZeroDivisionError:``
    that caught the per-sample loop's error catches the batched one.
    """

    def __new__(cls, message: str = "", lanes=None, line: int | None = None,
                operation: str | None = None, python_error: type | None = None):
        if cls is LaneError and python_error is not None:
            cls = _lane_error_type(python_error)
        return super().__new__(cls, message)

    def __init__(self, message: str, lanes=None, line: int | None = None,
                 operation: str | None = None, python_error: type | None = None):
        self.lanes = lanes
        self.line = line
        self.operation = operation
        self.python_error = python_error
        BatchingError.__init__(self, message)

    def __str__(self):  # (the message as it is, whatever ``python_error`` makes of its arguments: KeyError quotes them)
        return self.args[0] if self.args else ""

    def __reduce__(self):  # (the subclass is made at run time: pickled as a LaneError of its python_error)
        return _rebuilt_lane_error, (str(self), self.__dict__)


def _rebuilt_lane_error(message, state):
    err = LaneError(message, python_error=state.get("python_error"))
    err.__dict__.update(state)
    return err


_lane_error_types: dict = {}


def _lane_error_type(python_error):
    """``LaneError`` subclassed with ``python_error`` too, made once per type; ``LaneError``
    itself for a type that cannot be a second base (not an ``Exception``, or one whose
    instance layout or constructor conflicts)."""
    hit = _lane_error_types.get(python_error)
    if hit is None:
        hit = LaneError
        if isinstance(python_error, type) and issubclass(python_error, Exception) \
                and not issubclass(python_error, BatchingError):
            try:
                sub = type(f"LaneError[{python_error.__name__}]", (LaneError, python_error),
                           {"__module__": __name__, "__qualname__": f"LaneError[{python_error.__qualname__}]"})
                sub.__new__(sub, "probe").__init__("probe")
                hit = sub
            except TypeError:  # (a layout conflict, or a constructor that needs more arguments)
                pass
        _lane_error_types[python_error] = hit
    return hit


class ForestError(BatchingError, ValueError):
    """Malformed tree or graph input; names the tree and the position."""


class CupyBackendError(BatchingError):
    """A call on CuPy arrays (or with ``backend="cupy"``) that cannot run as one CUDA kernel."""


def with_article(noun) -> str:
    """``noun`` (a str, or a dtype) after its indefinite article: "an object", "a str", "an int8"."""
    noun = str(noun)
    return f"{'an' if noun[:1].lower() in 'aeiou' and not noun.startswith('uint') else 'a'} {noun}"
