"""Ctrl-C for compiled loops: a SIGINT stops a running kernel whose function loops.

A numba kernel holds the main thread until it returns, and CPython runs Python's
signal handlers only between bytecodes: a lane that loops forever (a ``while``
that a NaN or an infinity never lets end, say) would leave the process deaf to
Ctrl-C, where the per-sample loop it stands for stops with ``KeyboardInterrupt``.

So while a kernel of a looping function runs (:func:`arm` ... :func:`disarm`), CPython's
signal wakeup fd (:func:`signal.set_wakeup_fd`) points at a socket that a watcher
thread reads.  CPython's C-level handler writes the signal's number there even
while the main thread is in compiled code; kernels release the GIL (``nogil``),
so the watcher runs and, on a SIGINT, sets :data:`STOP`.  Kernels poll it:

* a scalar kernel's lane function at its loop headers, on each lane's first
  loop trip and every :data:`POLL_TRIPS` trips after that (a countdown: one
  decrement and one predictable branch per trip);
* a lockstep kernel once per step of its chunk.

A kernel that sees it set leaves its lanes unfinished and returns; the caller
(:class:`~vmapper.kernels.codegen.Kernel`) discards the results, and CPython
runs the SIGINT handler as the call returns: ``KeyboardInterrupt``.  Bytes meant for
a wakeup fd that was set before (asyncio's) are passed on to it.

``stop_requested(STOP)`` is the poll compiled into kernels: an atomic (monotonic)
load, which LLVM may not hoist out of a loop as it would a plain load of memory the
loop never writes.  ``SOURCE_TAG`` (a hash of this file) goes into the kernel source
header, so an edit here gives new kernel files.

``VMAPPER_INTERRUPTIBLE=0`` generates kernels without the polls (they cost up to 6%
on loop workloads: ``benchmarks/kernel_loops_probe.py --polls``); those cannot be stopped.

Nothing is armed outside the main thread (signals reach only that thread's
handlers), nor where SIGINT's handler is not Python's default one (which raises
``KeyboardInterrupt``): a program's own handler (one that asks a training loop to stop
after its step, say) expects the work in progress to finish, so the kernel runs to the
end and the handler runs when the call returns, as after any other compiled call.
CUDA kernels are not covered: a GPU kernel that never ends cannot be stopped
from the host.
"""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading

import numpy as np

try:  # signal.getsignal converts the handler to an enum member: ~2 us a call
    from _signal import getsignal as _getsignal
except ImportError:
    _getsignal = signal.getsignal

#: The flag kernels poll (an argument of every kernel of a looping function): nonzero = stop.
STOP = np.zeros(1, dtype=np.int64)
#: What an unarmed call polls instead: never set, so a SIGINT meant for the main thread's
#: kernel cannot stop another thread's (whose caller would not know).
_NEVER = np.zeros(1, dtype=np.int64)
#: A scalar kernel's lane polls :data:`STOP` on its first loop trip and then every this many.
POLL_TRIPS = 1 << 16

with open(os.path.abspath(__file__), "rb") as _f:
    SOURCE_TAG = hashlib.sha256(_f.read()).hexdigest()[:16]

_lock = threading.Lock()
_armed = False     # whether the main thread is in an armed call
_forward_fd = -1   # the wakeup fd set before ours, which gets every byte the watcher reads
_socks = None      # (read end, write end) of the watched socket pair


def _after_fork_in_child():
    # The child has no watcher thread, and the lock may have been held by the parent's.
    global _lock, _armed, _forward_fd, _socks
    _lock, _armed, _forward_fd, _socks = threading.Lock(), False, -1, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def polls_enabled():
    """Whether kernels of looping functions are generated with the polls."""
    return os.environ.get("VMAPPER_INTERRUPTIBLE", "1") != "0"


def kernel_polls(loop_headers, blocks):
    """Whether a kernel running ``blocks`` polls: one of them heads a loop, and polls are on."""
    return polls_enabled() and any(h in blocks for h in loop_headers)


def _watch(rsock):
    while True:
        try:
            data = rsock.recv(512)
        except OSError:
            return
        if not data:
            return
        with _lock:
            if _armed and signal.SIGINT in data:
                STOP[0] = 1
            fd = _forward_fd
        if fd != -1:
            try:
                os.write(fd, data)
            except OSError:
                pass


def _sockets():
    """The socket pair and its watcher thread, made once per process (again after a fork)."""
    global _socks
    if _socks is None:
        rsock, wsock = socket.socketpair()
        wsock.setblocking(False)  # (CPython requires a non-blocking wakeup fd)
        threading.Thread(target=_watch, args=(rsock,), name="vmapper-sigint-watcher", daemon=True).start()
        _socks = (rsock, wsock)
    return _socks


def arm():
    """The flag for a kernel call about to run: :data:`STOP`, armed so that a SIGINT sets
    it until :func:`disarm` (see the module docstring), or, for a nested call, a call
    outside the main thread or one where SIGINT's handler is not the default one, a flag
    that is never set.  Pass the result to :func:`disarm` when the call returns."""
    global _armed, _forward_fd
    if _armed or threading.get_ident() != threading.main_thread().ident \
            or _getsignal(signal.SIGINT) is not signal.default_int_handler:
        return _NEVER
    wsock = _sockets()[1]
    with _lock:
        STOP[0] = 0
        _armed = True
    try:
        _forward_fd = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):  # (an embedding that does not allow it: run unarmed)
        with _lock:
            _armed = False
        return _NEVER
    return STOP


def disarm(flag):
    """After the call that :func:`arm` returned ``flag`` for: True if a SIGINT stopped it.
    The previous wakeup fd is back."""
    global _armed, _forward_fd
    if flag is not STOP:
        return False
    signal.set_wakeup_fd(_forward_fd)
    with _lock:
        stopped = bool(STOP[0])
        STOP[0] = 0
        _armed = False
        _forward_fd = -1
    return stopped


def _make_poll():
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def stop_requested(typingctx, flag):
        if not (isinstance(flag, types.Array) and flag.dtype == types.int64):
            return None

        def codegen(context, builder, sig, args):
            arr = context.make_array(sig.args[0])(context, builder, args[0])
            return builder.icmp_signed("!=", builder.load_atomic(arr.data, "monotonic", 8),
                                       ir.Constant(ir.IntType(64), 0))
        return types.boolean(flag), codegen
    return stop_requested


def __getattr__(name):
    # ``stop_requested`` is made on first use: generating CUDA source imports this module
    # (through the kernel generator) and must not import numba.
    if name == "stop_requested":
        globals()[name] = poll = _make_poll()
        return poll
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
