"""ListOps-style data: nested MAX / MIN / MED / SUM_MOD expressions over digits, as binary trees.

An expression such as ``[MAX 2 9 [MIN 4 7] 0]`` is binarized LEFT-BRANCHING, with the
operator as the first leaf of its chain::

    [MAX 2 9 [MIN 4 7] 0]   ->   ((((MAX 2) 9) ((MIN 4) 7)) 0)

Every node is labelled with a value 0-9 (10 classes), so every node is supervised:

* a digit leaf: its digit;
* a chain node, i.e. an internal node whose left spine ends at the operator leaf ``OP``
  and whose right children along that spine are the arguments ``a1 .. ak`` seen so far:
  ``OP(a1, .., ak)``, the operator applied to that PREFIX of its arguments. The top
  node of a chain is the whole subexpression, so its label is the subexpression's
  value, and the root's label is the value of the whole expression. Arguments are
  always RIGHT children (a digit leaf, or the top of a nested chain); left children
  are the partial chain or the operator leaf. A binary Tree-LSTM can therefore read
  "partial result so far" on the left and "next argument's value" on the right.
* an operator leaf: the operator's neutral element of the left fold, i.e. its value on
  the empty argument list: ``MAX -> 0``, ``MIN -> 9``, ``SUM_MOD -> 0``, ``MED -> 0`` (MED
  has no neutral element; 0 is a convention). These labels are a fixed function of the
  token, so they are trivially learned.

Operators (on a non-empty list of digits):
``MAX`` / ``MIN``: maximum / minimum; ``MED``: the lower median ``sorted(a)[(len(a)-1)//2]``;
``SUM_MOD``: ``sum(a) % 10``.

Trees are emitted as PTB strings, e.g. ``(9 (9 (9 (2 (0 MAX) (2 2)) (9 9)) (4 (4 (9 MIN) (4 4)) (7 7))) (0 0))``
(the LAST chain node is ``(9 ... (0 0))``: max(2, 9, 4, 0) = 9), and read with
``vmapper.Forest.from_ptb`` like SST. :data:`VOCAB` fixes the word ids: digits 0-9 are
ids 0-9, the operators 10-13.
"""
from __future__ import annotations

import numpy as np

OPS = ("MAX", "MIN", "MED", "SUM_MOD")
VOCAB = {**{str(d): d for d in range(10)}, **{op: 10 + k for k, op in enumerate(OPS)}}
N_CLASSES = 10
# Label of an operator leaf: the operator on an empty argument list (see module docstring).
EMPTY_VALUE = {"MAX": 0, "MIN": 9, "SUM_MOD": 0, "MED": 0}


def apply_op(op: str, args) -> int:
    """The value of ``op`` on a non-empty list of digits."""
    args = [int(a) for a in args]
    if not args:
        return EMPTY_VALUE[op]
    if op == "MAX":
        return max(args)
    if op == "MIN":
        return min(args)
    if op == "MED":
        return sorted(args)[(len(args) - 1) // 2]
    if op == "SUM_MOD":
        return sum(args) % 10
    raise ValueError(f"unknown operator {op!r}")


def random_expression(rng: np.random.Generator, max_depth: int, min_args=2, max_args=4,
                      p_nest=0.3):
    """A nested expression ``(op, [args])`` whose args are digits or expressions.

    ``max_depth`` is the maximum operator nesting (1: a flat expression over digits).
    Each argument is a nested expression with probability ``p_nest`` while depth allows.
    """
    op = OPS[int(rng.integers(len(OPS)))]
    n = int(rng.integers(min_args, max_args + 1))
    args = []
    for _ in range(n):
        if max_depth > 1 and rng.random() < p_nest:
            args.append(random_expression(rng, max_depth - 1, min_args, max_args, p_nest))
        else:
            args.append(int(rng.integers(10)))
    return op, args


def evaluate(expr) -> int:
    if isinstance(expr, int):
        return expr
    op, args = expr
    return apply_op(op, [evaluate(a) for a in args])


def to_ptb(expr) -> str:
    """Left-branching binarized PTB string of an expression, every node labelled."""
    if isinstance(expr, int):
        return f"({expr} {expr})"
    op, args = expr
    s = f"({EMPTY_VALUE[op]} {op})"
    values = []
    for a in args:
        values.append(evaluate(a))
        s = f"({apply_op(op, values)} {s} {to_ptb(a)})"
    return s


def to_listops(expr) -> str:
    """The usual flat ListOps notation, ``[MAX 2 9 [MIN 4 7 ] 0 ]``, for display."""
    if isinstance(expr, int):
        return str(expr)
    op, args = expr
    return f"[{op} " + " ".join(to_listops(a) for a in args) + " ]"


def make_listops(n_trees: int, max_depth: int = 4, seed: int = 0, **kw) -> list[str]:
    """``n_trees`` PTB strings of random expressions (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    return [to_ptb(random_expression(rng, max_depth, **kw)) for _ in range(n_trees)]


def make_splits(n_train=2000, n_dev=500, n_test=500, max_depth=4, seed=0):
    """``{'train': [...], 'dev': [...], 'test': [...]}`` PTB strings, from independent seeds."""
    return {"train": make_listops(n_train, max_depth, seed),
            "dev": make_listops(n_dev, max_depth, seed + 1_000_003),
            "test": make_listops(n_test, max_depth, seed + 2_000_003)}


def load_splits(n_train=2000, n_dev=500, n_test=500, max_depth=4, seed=0):
    """The splits as ``vmapper.Forest`` objects sharing :data:`VOCAB`."""
    import vmapper
    return {k: vmapper.Forest.from_ptb(v, vocab=dict(VOCAB))
            for k, v in make_splits(n_train, n_dev, n_test, max_depth, seed).items()}


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    for _ in range(3):
        e = random_expression(rng, 3)
        print(to_listops(e), "=", evaluate(e))
        print("   ", to_ptb(e))
