"""Ctrl-C stops a compiled kernel whose function loops (vmapper.kernels.interrupt).

A lane that loops forever must not leave the process deaf to SIGINT: the kernel
polls a flag that a watcher thread sets on SIGINT, gives up, and the call raises
``KeyboardInterrupt`` as the per-sample loop would.  The signals are sent in child
processes (a stray SIGINT must not reach pytest), each under a timeout: a kernel
that does not poll hangs, and the test fails instead of hanging with it.
"""
from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

pytest.importorskip("numba")

import vmapper  # noqa: E402
from vmapper.kernels import interrupt  # noqa: E402
from vmapper.kernels.codegen import compile_kernel  # noqa: E402
from vmapper.program import get_program  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def count_down(x):
    n = 0
    while x > 0:  # never ends for x = inf
        x = x - 1.0
        n += 1
    return n


def straight(x):
    return x * 2.0 + 1.0


_CHILD = textwrap.dedent("""
    import os, signal, sys, threading, time
    import numpy as np
    import vmapper
    sys.path.insert(0, {tests!r})
    from test_interrupt import count_down

    f = vmapper.batched(count_down, backend="numba")
    x = np.array([3.0, 1.0, 5.0] * 1000)
    print("warm", f(x)[:3].tolist(), flush=True)   # both drivers compiled before the timer starts
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    t = time.perf_counter()
    try:
        f(np.array([3.0, np.inf, 5.0] * 1000))  # (lane 1 never ends)
        print("no interrupt", flush=True)
    except KeyboardInterrupt:
        print("interrupted after %.2f s" % (time.perf_counter() - t), flush=True)
    print("again", f(x)[:3].tolist(), flush=True)   # the flag was cleared
""")


@pytest.mark.parametrize("lockstep", ["0", "1"], ids=["scalar", "lockstep"])
def test_sigint_stops_a_kernel_that_loops_forever(lockstep):
    env = dict(os.environ, VMAPPER_LOCKSTEP=lockstep)
    code = _CHILD.format(tests=os.path.join(REPO, "tests", "kernels"))
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                             cwd=REPO, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the kernel did not stop on SIGINT: {exc.stdout!r}")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "warm [3, 1, 5]"
    assert lines[1].startswith("interrupted after "), out.stdout
    assert lines[2] == "again [3, 1, 5]"


def test_kernels_of_looping_functions_poll_and_others_do_not(monkeypatch):
    f64 = [("lanes", np.float64, False)]
    for lockstep in (False, True):
        k = compile_kernel(get_program(count_down).ir, f64, lockstep=lockstep)
        assert k.polls and "_stop_requested(stop)" in k.source
        x = np.array([0.5, 3.0, -1.0, 7.25])
        assert k([x], 4)[0].tolist() == [count_down(v) for v in x]
    k = compile_kernel(get_program(straight).ir, f64)
    assert not k.polls and "_stop_requested" not in k.source
    monkeypatch.setenv("VMAPPER_INTERRUPTIBLE", "0")  # the opt-out: no polls, another kernel
    k = compile_kernel(get_program(count_down).ir, f64)
    assert not k.polls and "_stop_requested" not in k.source


@pytest.mark.parametrize("lockstep", [False, True], ids=["scalar", "lockstep"])
def test_a_kernel_that_finds_the_flag_set_returns_and_the_call_raises(lockstep, monkeypatch):
    k = compile_kernel(get_program(count_down).ir, [("lanes", np.float64, False)], lockstep=lockstep)
    x = np.array([np.inf] * 3)
    # the flag set from the start: the kernel must give up at once
    monkeypatch.setattr(interrupt, "arm", lambda: np.ones(1, dtype=np.int64))
    monkeypatch.setattr(interrupt, "disarm", lambda flag: bool(flag[0]))
    done = []
    worker = threading.Thread(target=lambda: done.append(_raises(lambda: k([x], len(x)))), daemon=True)
    worker.start()
    worker.join(60)
    assert done == [KeyboardInterrupt], "the kernel did not poll its flag"


def _raises(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the type is the result
        return type(exc)
    return None


def _sigint_self(flag):
    """Send this process SIGINT; True once the default handler raised and ``flag`` is set."""
    raised = False
    collecting = gc.isenabled()
    gc.disable()  # (the KeyboardInterrupt must not land in a collector callback, where it is lost)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)  # (interrupted by the handler's KeyboardInterrupt)
    except KeyboardInterrupt:
        raised = True
    finally:
        if collecting:
            gc.enable()
    t = time.perf_counter()
    while not flag[0] and time.perf_counter() - t < 10:
        time.sleep(0.01)
    return raised and bool(flag[0])


def test_arm_sets_the_flag_on_sigint_and_forwards_the_wakeup_byte():
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    rsock, wsock = socket.socketpair()
    wsock.setblocking(False)
    rsock.settimeout(10)
    old_fd = signal.set_wakeup_fd(wsock.fileno())
    try:
        flag = interrupt.arm()
        assert flag is interrupt.STOP and flag[0] == 0
        assert _sigint_self(flag)
        assert interrupt.disarm(flag) and flag[0] == 0
        assert signal.set_wakeup_fd(wsock.fileno()) == wsock.fileno()  # ours is back
        assert rsock.recv(16) == bytes([signal.SIGINT])  # and got the byte
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, before)
        rsock.close()
        wsock.close()


def test_nothing_is_armed_outside_the_main_thread_or_when_nested():
    seen = []

    def other():
        flag = interrupt.arm()
        seen.append(flag is interrupt.STOP)
        seen.append(interrupt.disarm(flag))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    outer = interrupt.arm()
    inner = interrupt.arm()
    seen += [inner is interrupt.STOP, interrupt.disarm(inner), outer is interrupt.STOP]
    interrupt.disarm(outer)
    assert seen == [False, False, False, False, True]
    # Only Python's default handler (KeyboardInterrupt) arms: a program's own handler (a
    # graceful stop after the current step) expects the work in progress to finish.
    for handler in (signal.SIG_IGN, lambda *a: None):
        before = signal.signal(signal.SIGINT, handler)
        try:
            assert interrupt.arm() is not interrupt.STOP
        finally:
            signal.signal(signal.SIGINT, before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_arms_its_own_watcher():
    interrupt.disarm(interrupt.arm())  # the parent's watcher exists
    pid = os.fork()
    if pid == 0:  # the child: no watcher thread inherited, a fresh one made on first use
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            flag = interrupt.arm()
            code = 0 if flag is interrupt.STOP and _sigint_self(flag) and interrupt.disarm(flag) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def halve_until_small(x):
    n = 0
    while x > 1.0:
        x = x * 0.5
        n += 1
    return n


def test_a_compile_cut_short_is_redone_on_a_fresh_module(monkeypatch):
    # Ctrl-C during a first call's compile can leave numba's dispatcher half-built; the
    # kernel cache must not hand that dispatcher out again.
    from numba.core.dispatcher import Dispatcher
    from vmapper.kernels import cache
    real, seen = Dispatcher.compile, []

    def interrupted_once(self, sig):
        seen.append(self)
        if len(seen) == 1:
            raise KeyboardInterrupt
        return real(self, sig)

    monkeypatch.setattr(Dispatcher, "compile", interrupted_once)
    cache.clear_memory()
    f = vmapper.batched(halve_until_small, backend="numba")
    x = np.array([0.5, 3.0, 100.0, 7.0])
    with pytest.raises(KeyboardInterrupt):
        f(x)
    stale = seen[0].py_func.__module__
    assert stale not in sys.modules
    assert f(x).tolist() == [halve_until_small(v) for v in x]
    assert seen[1] is not seen[0]  # a new module's dispatcher
