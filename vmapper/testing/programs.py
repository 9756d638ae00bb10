"""Small per-sample programs used by vmapper's tests and examples (importable by users too)."""


def collatz_steps(n):
    """Steps for n to reach 1: a loop whose trip count differs per sample, with a branch inside."""
    steps = 0
    while n != 1:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
        steps += 1
    return steps


def escape_time(cr, ci, maxiter=64):
    """Mandelbrot escape count: short-circuit loop condition and tuple assignment."""
    zr, zi = 0.0, 0.0
    i = 0
    while i < maxiter and zr * zr + zi * zi <= 4.0:
        zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        i += 1
    return i
