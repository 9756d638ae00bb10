"""A short tour of vmapper: per-sample code with loops, branches and recursion, run over batches.

Run:  python examples/demo.py
"""
import time

import numpy as np

import vmapper
from vmapper.testing import check_batching


@vmapper.batched
def collatz_steps(n):
    """Steps for n to reach 1: a while loop whose trip count differs per sample."""
    steps = 0
    while n != 1:
        if n % 2 == 0:
            n = n // 2
        else:
            n = 3 * n + 1
        steps += 1
    return steps


@vmapper.batched
def escape_time(cr, ci):
    """Mandelbrot escape count: short-circuit `and` in a loop condition, tuple assignment."""
    zr, zi = 0.0, 0.0
    i = 0
    while i < 256 and zr * zr + zi * zi <= 4.0:
        zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
        i += 1
    return i


@vmapper.batched
def fib(n):
    """Recursion: calls run on the compacted lanes that make them."""
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


@vmapper.batched(in_axes=(0, None))
def tree_sum(node, weights):
    """Recursion over a batch of trees; sibling calls merge into one batched call."""
    if node.is_leaf:
        return weights[node.value]
    return tree_sum(node.left, weights) + tree_sum(node.right, weights)


def main():
    n = np.arange(1, 100_001)
    t = time.perf_counter()
    steps = collatz_steps(n)
    print(f"collatz: {len(n)} samples in {time.perf_counter() - t:.3f}s, longest {steps.max()} steps "
          f"(n={n[steps.argmax()]}); stats {collatz_steps.last_stats}")

    xs, ys = np.meshgrid(np.linspace(-2, 1, 300), np.linspace(-1.5, 1.5, 200))
    t = time.perf_counter()
    counts = escape_time(xs.ravel(), ys.ravel()).reshape(xs.shape)
    print(f"mandelbrot: {counts.size} pixels in {time.perf_counter() - t:.3f}s, "
          f"{(counts == 256).mean():.1%} inside the set")

    print("fib(0..15):", fib(np.arange(16)))

    rng = np.random.default_rng(0)
    def random_tree(depth):
        if depth == 0 or rng.random() < 0.3:
            return int(rng.integers(10))
        return (random_tree(depth - 1), random_tree(depth - 1))
    forest = vmapper.Forest.from_nested([random_tree(8) for _ in range(1000)])
    weights = np.arange(10.0)
    sums = tree_sum(forest.roots, weights)
    print(f"tree_sum over {len(forest)} trees (max depth {forest.max_depth}): {sums[:5]} ... "
          f"in {tree_sum.last_stats['calls']} batched calls")

    # The oracle compares the batched run with the per-sample Python loop.
    check_batching(collatz_steps, (np.arange(1, 2001),))
    check_batching(tree_sum, (forest.roots, weights), in_axes=(0, None))
    print("batched results equal the per-sample loop")
    print("\nThe transformed program (collatz_steps.explain()):\n")
    print(collatz_steps.explain())


if __name__ == "__main__":
    main()
