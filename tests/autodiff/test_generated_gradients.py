"""Gradients of random generated programs (value-dependent if/while/for/break/continue/return)
match central finite differences, lane by lane, wherever the program is smooth there."""
import numpy as np
import pytest

import vmapper
from vmapper.testing.program_generator import compile_program, generate_program

SEEDS = range(40)
H = 1e-6


def _float_part(out):
    """The float result of a generated program (the second item of a tuple result)."""
    if isinstance(out, tuple):
        out = out[1]
    out = np.asarray(out)
    return out if out.dtype.kind == "f" else None


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("seed", SEEDS)
def test_generated_program_gradients_match_finite_differences(seed, backend):
    prog = generate_program(seed)
    f = vmapper.batched(compile_program(prog), backend=backend)
    a, b, _, _ = prog.make_args(np.random.default_rng(seed), 64)
    # continuous floats: the generator's exact zeros and small integers sit on branch
    # boundaries (``if x``, ties of min/max) where a derivative and a difference quotient
    # legitimately see different branches
    rng = np.random.default_rng(seed + 1000)
    x, y = np.clip(rng.normal(0, 5, 64), -50, 50), np.clip(rng.normal(0, 5, 64), -50, 50)
    out, back = vmapper.vjp(f, a, b, x, y)
    value = _float_part(out)
    if value is None:
        pytest.skip("integer result: no gradient to check")
    cot = tuple(np.zeros(64) if np.asarray(o).dtype.kind != "f" else np.ones(64) for o in out) \
        if isinstance(out, tuple) else np.ones(64)
    grads = back(cot)
    checked = 0
    for k, arg in ((2, x), (3, y)):
        def at(delta):
            args = [a, b, x, y]
            args[k] = arg + delta
            return _float_part(f(*args))
        plus, minus, here = at(H), at(-H), at(0.0)
        plus10, minus10 = at(10 * H), at(-10 * H)
        fd = (plus - minus) / (2 * H)
        fd10 = (plus10 - minus10) / (20 * H)
        # smooth on a lane: both step sizes and both one-sided differences agree (no jump,
        # no kink such as abs at 0), and nothing is infinite
        one_sided = np.isclose((plus - here) / H, (here - minus) / H, rtol=1e-3, atol=1e-4)
        smooth = np.isfinite(fd) & np.isfinite(fd10) & np.isclose(fd, fd10, rtol=1e-4, atol=1e-6) & one_sided
        g = np.zeros(64) if grads[k] is None else np.asarray(grads[k])
        np.testing.assert_allclose(g[smooth], fd[smooth], rtol=1e-5, atol=1e-6,
                                   err_msg=f"d/d{'xy'[k - 2]}, seed {seed}, {backend}\n{prog.source}")
        checked += int(smooth.sum())
    assert checked > 0
