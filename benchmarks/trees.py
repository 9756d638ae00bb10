"""Tree-LSTM training steps: vmapper against PyTorch and JAX, on SST batches.

One training step = forward, backward and an Adagrad update (lr 0.05, no L2,
eps 1e-10 as ``torch.optim.Adagrad``) on a batch of 25 trees, with the binary
constituency Tree-LSTM of ``examples/trees/model.py`` (embedding 300, hidden
150, 5 classes, a softmax classifier on every node, loss = summed
cross-entropy over all nodes of all trees of the batch).  float32 by default
(``--float64``).  Trees come from ``shared/data/sst/train.txt`` next to the
repository (``vmapper.Forest.from_ptb``); when that file is absent,
SST-shaped generated trees are used instead and the output says so.

Peers, all in this one process, all starting from the same parameters
(``model.init_params``) and training on the same batches:

1. ``vmapper``        ``vmapper.value_and_grad(model.tree_loss, argnums=1)`` of
                      the per-tree function (``memo=True``: bottom-up by height),
                      then an Adagrad update, one fused pass per parameter
                      (``vmapper.kernels.optim.adagrad_update``; the embedding's
                      ``RowSparse`` gradient updates only its rows).
2. ``torch-recursive`` the common PyTorch implementation: an ``nn.Module``
                      whose ``forward(tree)`` embeds the tree's words and
                      recurses over the tree, a cross-entropy per node; the
                      batch's loss is the sum over its trees, then
                      ``loss.backward()`` and ``torch.optim.Adagrad.step()``
                      (``nn.Embedding(sparse=True)``).
3. ``torch-level``    PyTorch batched by hand by level: all nodes of one height
                      go through one matmul, children gathered by index from the
                      state of the levels below; same module, loss, optimizer.
4. ``jax-level``      JAX batched by hand by level, the whole step (forward,
                      ``jax.value_and_grad``, Adagrad) in ONE ``jax.jit``
                      program: every level is padded to the largest node count
                      of that height over all batches of an epoch, and the
                      number of levels to the largest depth, so one program
                      compiles.  The embedding update is row-sparse too (the
                      batch's distinct rows, padded to a fixed count).
5. ``numpy-level``    the hand-written level-batched numpy forward/backward of
                      ``examples/trees/reference.py`` plus the same numpy
                      Adagrad as vmapper (``--no-reference`` drops it).
6. ``vmapper-depth``  the same per-tree code without ``memo=True``: the plain
                      recursion, batched by depth from the roots.
7. ``vmapper-unfused`` the same model with each matrix product named before the
                      sum (``benchmarks/tree_variants.py``), so that no product and
                      sum are fused into one ``linear`` operation.
8. ``vmapper-slices`` vmapper on the same model with its Tree-LSTM cells called
                      on gate slices (``benchmarks/tree_variants.py``) instead
                      of the packed gates the example passes.
9. ``vmapper-unshared`` the example as it is, with the leaves' products computed
                      once per leaf, not once per distinct word
                      (``passes/gathered_rows.py`` off during its steps).

Each step's time includes everything the peer needs from a batch (a ``Forest``
subset) to updated parameters: level schedules, padding, host-device copies.
Not timed: reading the data, building the batches' ``Forest`` subsets and the
per-tree node objects of ``torch-recursive`` (a data loader would).  Steps are
interleaved across peers (step i of every peer, then step i+1), so that load
from other processes on a shared machine affects all peers alike, and the
order of the peers rotates from step to step, so that none always runs right
after the same other one.  ``--solo`` runs each peer's steps back to back
instead, as a real training loop would: no other peer's data passes through
the caches between two steps.  Interleaving slows JAX's padded step (its
arrays are large) much more than the others: compare both.  ``--solo
--rounds R`` repeats the peers' solo runs R times, the peers' order rotating
from round to round (a peer that runs later in a process finds its heap and
caches warmer), each round over the same batches, each peer training on from
where it stopped; the table takes the median over every round's timed steps,
and each ratio line adds the ratio of every round.

Reported per peer: trees/s = batch size / median step time over the timed
steps (warm-up steps excluded), the first step's time (compilation included),
and vmapper's ratio ``trees/s(vmapper) / trees/s(peer)`` (> 1: vmapper faster).
The first step's per-tree losses of every peer must agree with vmapper's
(rtol 1e-4 in float32, 1e-9 in float64); later steps' agreement is printed for
information (Adagrad's first update is lr * sign(gradient), so rounding
differences in near-zero gradient entries are amplified).

Usage::

    python benchmarks/trees.py                 # 2 warm-up + 20 timed batches (500 trees)
    python benchmarks/trees.py --quick         # 1 warm-up + 5 timed batches
    python benchmarks/trees.py --threads 2     # BLAS / numba / torch threads and CPUs (default 1)
    python benchmarks/trees.py --jax-threads 2 # XLA alone on 2 threads (the process on 2 CPUs)
    python benchmarks/trees.py --blas-core SkylakeX  # numpy's OpenBLAS kernels (default: auto)
    python benchmarks/trees.py --float64 --steps 10
    python benchmarks/trees.py --profile       # also cProfile one vmapper step
    python benchmarks/trees.py --solo          # each peer's steps back to back
    python benchmarks/trees.py --solo --rounds 3 --only jax-level   # 3 rotating rounds

Threads: ``--threads N`` sets the libraries' thread counts and also pins the process to
N CPUs (``max(--threads, --jax-threads)``), since XLA sizes its pool from the CPUs it may
use and ignores its thread flags (``benchmarks/_machine.py``).  BLAS: numpy's matrix
products run OpenBLAS's kernels for the core type it detects, or ``$OPENBLAS_CORETYPE``;
the header prints which.  ``--blas-core auto`` (the default) selects the AVX-512 SkylakeX
kernels on a CPU with AVX-512 unless ``$OPENBLAS_CORETYPE`` is set (this workplace's
machines set it to Haswell: pass ``--blas-core SkylakeX`` to override it).

Exit status 1 if a peer's first-step losses disagree with vmapper's, or
vmapper raises.
"""
from __future__ import annotations

import argparse
import os
import sys


#: the peers' names (``PEERS`` maps them to their classes, defined below)
PEER_NAMES = ('torch-recursive', 'torch-level', 'jax-level', 'numpy-level', 'vmapper-depth', 'vmapper-unfused', 'vmapper-slices', 'vmapper-unshared')


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None,
                   help="timed training steps (batches) per peer (default 20; --quick: 5)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps before them (default 2; --quick: 1); the first step is "
                        "also reported as first-call time")
    p.add_argument("--quick", action="store_true", help="5 timed batches after 1 warm-up batch")
    p.add_argument("--batch-size", type=int, default=25, help="trees per batch (default 25)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for BLAS (OMP/OPENBLAS/MKL_NUM_THREADS), numba, torch and XLA, "
                        "and CPUs the process may run on (default 1)")
    p.add_argument("--jax-threads", type=int, default=None,
                   help="XLA's threads if different from --threads (the process then runs on "
                        "max(--threads, --jax-threads) CPUs)")
    p.add_argument("--blas-core", default="auto",
                   help="numpy's OpenBLAS kernels: 'auto' (SkylakeX on an AVX-512 CPU unless "
                        "$OPENBLAS_CORETYPE is set), 'default' (OpenBLAS's own choice or "
                        "$OPENBLAS_CORETYPE), or a core type such as SkylakeX or Haswell")
    p.add_argument("--malloc", choices=("tuned", "default"), default="tuned",
                   help="glibc malloc for the whole process, every peer: 'tuned' raises its dynamic "
                        "mmap and trim thresholds at start (vmapper.tune_allocator(), as the example "
                        "trainer does), 'default' leaves them to rise when a peer frees a large block "
                        "(default: tuned)")
    p.add_argument("--float64", action="store_true", help="float64 instead of float32")
    p.add_argument("--data", default=None,
                   help="SST directory with train.txt (default: shared/data/sst beside the repo)")
    p.add_argument("--seed", type=int, default=0, help="parameter init and batch order (default 0)")
    p.add_argument("--only", default=None,
                   help="comma-separated peers to run (vmapper always runs): " + ",".join(PEER_NAMES))
    p.add_argument("--no-reference", action="store_true", help="skip the numpy-level peer")
    p.add_argument("--solo", action="store_true",
                   help="run each peer's steps back to back, one peer after another, instead of "
                        "interleaving them: as in a real training loop, no other peer's data passes "
                        "through the caches between two steps (JAX's padded step gains the most)")
    p.add_argument("--rounds", type=int, default=1,
                   help="with --solo: run every peer's steps this many times, the peers' order "
                        "rotating from round to round; medians over all rounds, and the ratio "
                        "of each round (default 1)")
    p.add_argument("--profile", action="store_true",
                   help="profile one more vmapper step: vmapper.profile() rows per line and operation, then cProfile")
    p.add_argument("--profile-top", type=int, default=30, help="entries shown by --profile")
    p.add_argument("--verbose", action="store_true", help="tracebacks of failing peers")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 5 if args.quick else 20
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.jax_threads is None:
        args.jax_threads = args.threads
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.jax_threads < 1 or args.batch_size < 1 \
            or args.seed < 0 or args.profile_top < 1:
        p.error("--steps, --threads, --batch-size and --profile-top must be >= 1, --warmup and --seed >= 0")
    if args.data is not None and not os.path.isfile(os.path.join(args.data, "train.txt")):
        p.error(f"--data {args.data}: no train.txt there (leave --data out to use shared/data/sst, or "
                f"generated SST-shaped trees where that is absent)")
    if args.rounds < 1 or (args.rounds > 1 and not args.solo):
        p.error("--rounds must be >= 1, and more than 1 only with --solo")
    return args


def _set_thread_env(n, n_xla, blas_core="auto"):
    """Thread counts, CPUs and BLAS kernels for the numeric libraries: must happen before
    they are imported.  Returns ``(cpus kept, BLAS note)``."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    flags = os.environ.get("XLA_FLAGS", "")
    extra = f"--xla_cpu_multi_thread_eigen={'false' if n_xla == 1 else 'true'}"
    os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()
    return _machine.pin_cpus(max(n, n_xla)), _machine.choose_blas_core(blas_core)


# Thread settings are read by numpy/torch/jax at import time, so they are applied
# from the command line before anything below imports them.
try:
    from . import _machine
except ImportError:
    import _machine
_EARLY_ARGS = _parse_args(sys.argv[1:]) if __name__ == "__main__" else None
_MACHINE = None
if _EARLY_ARGS is not None:
    _MACHINE = _set_thread_env(_EARLY_ARGS.threads, _EARLY_ARGS.jax_threads, _EARLY_ARGS.blas_core)

import gc  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

try:  # run as ``python -m benchmarks.trees``
    from ._harness import print_table
except ImportError:  # run as ``python benchmarks/trees.py``
    from _harness import print_table

# Benchmark the vmapper of this checkout, not some other installed copy.
_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(_REPO_ROOT))

import vmapper  # noqa: E402
from vmapper.autodiff.sparse import RowSparse  # noqa: E402
from vmapper.kernels.optim import adagrad_update  # noqa: E402

DEFAULT_DATA = _REPO_ROOT.parent / "shared/data/sst"
EMB, HIDDEN, CLASSES = 300, 150, 5
LR, EPS = 0.05, 1e-10  # torch.optim.Adagrad's defaults, except lr


def _load_module(name, path):
    """Import a file by path (examples/ is not a package on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


model = _load_module("_bench_trees_model", _REPO_ROOT / "examples/trees/model.py")
reference = _load_module("_bench_trees_reference", _REPO_ROOT / "examples/trees/reference.py")
variants = _load_module("_bench_tree_variants", _REPO_ROOT / "benchmarks/tree_variants.py")


# ---------------------------------------------------------------------------
# Data.
# ---------------------------------------------------------------------------

def _generated_ptb(n_trees, seed, vocab_size=16000):
    """SST-shaped random binary trees in PTB form: sentence lengths like SST's
    (lognormal, mean ~19 words, 1..56), random binarization with a U-shaped split
    point (mean depth ~10.5 and max ~27, SST's are 10.8 and 30), Zipf-distributed
    words, labels 0..4 (mostly 2)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_trees):
        n = int(np.clip(np.round(rng.lognormal(2.8, 0.55)), 1, 56))
        words = np.minimum(rng.zipf(1.2, size=n), vocab_size) - 1
        labels = iter(rng.choice(5, size=2 * n, p=[0.05, 0.15, 0.55, 0.17, 0.08]).tolist())

        def build(lo, hi):
            lab = next(labels)
            if hi - lo == 1:
                return f"({lab} w{words[lo]})"
            # Mostly lopsided splits, as in parses (rarely balanced, often chains).
            k = lo + 1 + int(rng.binomial(hi - lo - 2, rng.beta(0.25, 0.25))) if hi - lo > 2 else lo + 1
            return f"({lab} {build(lo, k)} {build(k, hi)})"

        lines.append(build(0, n))
    return lines


def load_trees(data_dir, seed):
    """``(forest, description)``: SST train trees, or generated ones if absent."""
    path = Path(data_dir) / "train.txt" if data_dir else DEFAULT_DATA / "train.txt"
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        forest = vmapper.Forest.from_ptb(lines)
        return forest, f"SST {path}"
    forest = vmapper.Forest.from_ptb(_generated_ptb(8544, seed))
    return forest, (f"GENERATED SST-shaped trees ({path} not found): timings are indicative "
                    "only, not SST figures")


def make_batches(forest, batch_size, seed):
    """One epoch's batches: a seeded permutation cut into ``batch_size`` trees."""
    order = np.random.default_rng(seed).permutation(len(forest))
    return [np.sort(order[s:s + batch_size]) for s in range(0, len(order), batch_size)]


def _levels(forest):
    """Node ids by height, bottom-up (leaves first), each level in id order."""
    h = forest.height_of
    order = np.argsort(h, kind="stable")
    counts = np.bincount(h, minlength=int(h.max()) + 1)[1:]
    return order, counts


def level_layout(forest):
    """Level-order positions: ``pos[node]`` in the concatenation of all levels
    (leaves first, then height 2, ...), the per-level counts, and the children's
    positions of every internal node, in level order."""
    order, counts = _levels(forest)
    n = forest.num_nodes
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    n_leaves = int(counts[0])
    internal = order[n_leaves:]
    start = forest.child_ptr[internal]
    left = pos[forest.child_idx[start]]
    right = pos[forest.child_idx[start + 1]]
    return order, counts, pos, left, right


def _per_level_children(counts, left, right):
    """Per internal level: its nodes' left children's positions, then their right
    children's (one gather per level fetches both)."""
    out = np.empty(2 * len(left), dtype=np.int64)
    s = 0
    for cnt in counts[1:]:
        out[2 * s:2 * s + cnt] = left[s:s + cnt]
        out[2 * s + cnt:2 * (s + cnt)] = right[s:s + cnt]
        s += cnt
    return out


# ---------------------------------------------------------------------------
# Adagrad for the numpy peers (vmapper and numpy-level): the library's fused step.
# ---------------------------------------------------------------------------

class NumpyAdagrad:
    """``acc += g*g; p -= lr * g / (sqrt(acc) + eps)``, in place, as one fused pass per
    parameter (``vmapper.kernels.optim.adagrad_update``, bitwise the numpy expression); a
    RowSparse gradient touches only its (coalesced) rows, as ``torch.optim.Adagrad``
    does with a sparse gradient."""

    def __init__(self, params, lr=LR, eps=EPS):
        self.lr, self.eps = lr, eps
        self.acc = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        for k, p in params.items():
            g = grads[k]
            if isinstance(g, tuple):  # (rows, values): the numpy-level peer's embedding gradient
                g = RowSparse(g[0], g[1], p.shape)
            adagrad_update(p, self.acc[k], g, self.lr, self.eps)


# ---------------------------------------------------------------------------
# Peers.  Each is an object with ``step(batch_index) -> per-tree losses``.
# ---------------------------------------------------------------------------

class VmapperPeer:
    name = "vmapper"

    def __init__(self, params0, ctx):
        self.params = {k: v.copy() for k, v in params0.items()}
        self.opt = NumpyAdagrad(self.params)
        self.vg = vmapper.value_and_grad(model.tree_loss, argnums=1)
        self.forests = ctx["forests"]

        self.split = []  # (value_and_grad seconds, update seconds) per step

    def step(self, b):
        t0 = time.perf_counter()
        losses, grads = self.vg(self.forests[b].roots, self.params)
        t1 = time.perf_counter()
        self.opt.step(self.params, grads)
        self.split.append((t1 - t0, time.perf_counter() - t1))
        return np.asarray(losses)

    def breakdown(self, steps):
        """Median ms of value_and_grad, of the update, and of a plain forward call."""
        fwd = []
        for b in steps:
            t0 = time.perf_counter()
            model.tree_loss(self.forests[b].roots, self.params)
            fwd.append(time.perf_counter() - t0)
        vg = statistics.median(self.split[k][0] for k in steps)
        up = statistics.median(self.split[k][1] for k in steps)
        return 1e3 * vg, 1e3 * up, 1e3 * statistics.median(fwd)

    def note(self):
        st = getattr(model.tree_loss, "last_stats", None) or {}
        keys = ("launches", "calls", "lane_utilization")
        return ", ".join(f"{k} {st[k]:.3g}" if isinstance(st[k], float) else f"{k} {st[k]}"
                         for k in keys if k in st)


class _VmapperVariantPeer(VmapperPeer):
    """vmapper on the example's per-tree code written another way: ``loss()`` is the
    batched loss it differentiates, ``description`` its note."""
    description = ""

    def __init__(self, params0, ctx):
        super().__init__(params0, ctx)
        self.vg = vmapper.value_and_grad(self.loss(), argnums=1)

    def note(self):
        return self.description


class VmapperDepthPeer(_VmapperVariantPeer):
    """Without ``memo=True``: the recursion batched by depth from the roots, leaves spread
    over all depths."""
    name = "vmapper-depth"
    description = "plain recursion (no memo=True): batched by depth, not by height"
    loss = staticmethod(lambda: vmapper.batched(model.tree_loss, in_axes=(0, None)))


class VmapperUnfusedPeer(_VmapperVariantPeer):
    """The products named before the sums (``tree_variants.tree_loss_unfused``): what
    ``passes/fuse_linear.py`` saves."""
    name = "vmapper-unfused"
    description = "products named before the sums: no fused linear operations"
    loss = staticmethod(lambda: variants.tree_loss_unfused)


class VmapperSlicesPeer(_VmapperVariantPeer):
    """The cells called on gate slices (``tree_variants.tree_loss_slices``): what the
    packed-gate cell saves."""
    name = "vmapper-slices"
    description = "cells on gate slices (tree_lstm_cell(g[0:H], ...)), not packed gates"
    loss = staticmethod(lambda: variants.tree_loss_slices)


class VmapperUnsharedPeer(VmapperPeer):
    """The leaves' ``W @ emb[word]`` once per leaf: what ``passes/gathered_rows.py`` saves."""
    name = "vmapper-unshared"

    def step(self, b):
        from vmapper.primitives import linear
        saved, linear._DEDUP_MAX_DISTINCT = linear._DEDUP_MAX_DISTINCT, 0.0
        try:
            return super().step(b)
        finally:
            linear._DEDUP_MAX_DISTINCT = saved

    def note(self):
        return "leaf products once per leaf, not once per distinct word"


class NumpyLevelPeer:
    name = "numpy-level"

    def __init__(self, params0, ctx):
        self.params = {k: v.copy() for k, v in params0.items()}
        self.opt = NumpyAdagrad(self.params)
        self.forests = ctx["forests"]

    def step(self, b):
        f = self.forests[b]
        losses, grads = reference.value_and_grad(f, self.params)
        # reference.py returns a dense embedding gradient: update only the
        # batch's rows (the same update as the row-sparse one).
        words = f["word"]
        rows = np.unique(words[words >= 0])  # internal nodes have word -1
        grads["emb"] = (rows, grads["emb"][rows])
        self.opt.step(self.params, grads)
        return losses

    def note(self):
        return "examples/trees/reference.py"


def _torch_module(torch, params0):
    """The Tree-LSTM's parameters as an nn.Module (shared by both torch peers)."""
    nn = torch.nn
    dtype = torch.float64 if params0["W"].dtype == np.float64 else torch.float32

    class TreeLSTMParams(nn.Module):
        def __init__(self):
            super().__init__()
            vocab, emb = params0["emb"].shape
            self.emb = nn.Embedding(vocab, emb, sparse=True)
            self.leaf = nn.Linear(emb, 3 * HIDDEN)                # W, b_leaf
            self.U_l = nn.Linear(HIDDEN, 5 * HIDDEN, bias=False)
            self.U_r = nn.Linear(HIDDEN, 5 * HIDDEN)              # U_r, b
            self.out = nn.Linear(HIDDEN, CLASSES)                 # W_out, b_out
            with torch.no_grad():
                for mod, attr, key in ((self.emb, "weight", "emb"), (self.leaf, "weight", "W"),
                                       (self.leaf, "bias", "b_leaf"), (self.U_l, "weight", "U_l"),
                                       (self.U_r, "weight", "U_r"), (self.U_r, "bias", "b"),
                                       (self.out, "weight", "W_out"),
                                       (self.out, "bias", "b_out")):
                    setattr(mod, attr, nn.Parameter(torch.tensor(params0[key], dtype=dtype)))

    return TreeLSTMParams, dtype


class _TNode:
    """A tree node as per-sample PyTorch code keeps it (built once, by the loader)."""
    __slots__ = ("leaf_pos", "label", "left", "right")


def _torch_trees(torch, forest):
    """Per-tree ``(root _TNode, word-id tensor)``: the usual dataset objects."""
    child_ptr, child_idx = forest.child_ptr, forest.child_idx
    labels, words = forest["label"], forest["word"]
    label_t = [torch.tensor([int(lab)]) for lab in range(CLASSES)]
    trees = []
    for t in range(len(forest)):
        lo, hi = int(forest.tree_ptr[t]), int(forest.tree_ptr[t + 1])
        nodes = {}
        tree_words = []
        for i in range(lo, hi):  # children have smaller ids than their parent
            nd = _TNode()
            nd.label = label_t[int(labels[i])]
            a, z = int(child_ptr[i]), int(child_ptr[i + 1])
            if a == z:
                nd.leaf_pos, nd.left, nd.right = len(tree_words), None, None
                tree_words.append(int(words[i]))
            else:
                nd.leaf_pos = -1
                nd.left, nd.right = nodes[int(child_idx[a])], nodes[int(child_idx[a + 1])]
            nodes[i] = nd
        trees.append((nodes[hi - 1], torch.tensor(tree_words, dtype=torch.long)))
    return trees


class TorchRecursivePeer:
    name = "torch-recursive"

    def __init__(self, params0, ctx):
        import torch
        import torch.nn.functional as F
        self.torch = torch
        Base, _ = _torch_module(torch, params0)
        H = HIDDEN

        class TreeLSTM(Base):
            def forward(self, tree):
                root, words = tree
                inputs = self.emb(words)  # the tree's word vectors, one lookup
                _, _, loss = self.encode(root, inputs)
                return loss

            def encode(self, node, inputs):
                if node.left is None:
                    g = self.leaf(inputs[node.leaf_pos])
                    i, o, u = torch.sigmoid(g[:H]), torch.sigmoid(g[H:2 * H]), torch.tanh(g[2 * H:])
                    c = i * u
                    loss = 0.0
                else:
                    hl, cl, loss_l = self.encode(node.left, inputs)
                    hr, cr, loss_r = self.encode(node.right, inputs)
                    g = self.U_l(hl) + self.U_r(hr)
                    i, fl, fr, o = (torch.sigmoid(g[k * H:(k + 1) * H]) for k in range(4))
                    u = torch.tanh(g[4 * H:])
                    c = i * u + fl * cl + fr * cr
                    loss = loss_l + loss_r
                h = o * torch.tanh(c)
                nll = F.cross_entropy(self.out(h).unsqueeze(0), node.label, reduction="sum")
                return h, c, loss + nll

        self.model = TreeLSTM()
        self.opt = torch.optim.Adagrad(self.model.parameters(), lr=LR, eps=EPS)
        self.trees = ctx["torch_trees"]

    def step(self, b):
        self.opt.zero_grad(set_to_none=True)
        losses = [self.model(t) for t in self.trees[b]]
        loss = self.torch.stack(losses).sum()  # summed over the batch
        loss.backward()
        self.opt.step()
        return self.torch.stack(losses).detach().numpy()

    def note(self):
        return f"torch {self.torch.__version__}, {self.torch.get_num_threads()} threads"


class TorchLevelPeer:
    name = "torch-level"

    def __init__(self, params0, ctx):
        import torch
        import torch.nn.functional as F
        self.torch = torch
        Base, _ = _torch_module(torch, params0)
        H = HIDDEN

        class LevelTreeLSTM(Base):
            def forward(self, words, counts, children, labels, tree_of, n_trees):
                """Nodes in level order (leaves, then height 2, ...); ``children``: per
                level, the positions (in that order) of its nodes' left children, then
                of their right children."""
                g = self.leaf(self.emb(words))
                i, o, u = torch.sigmoid(g[:, :H]), torch.sigmoid(g[:, H:2 * H]), torch.tanh(g[:, 2 * H:])
                c = i * u
                hc = torch.cat((o * torch.tanh(c), c), 1)  # [h | c] of every node so far
                s = 0
                for cnt in counts[1:]:
                    kids = hc.index_select(0, children[2 * s:2 * (s + cnt)])  # lefts, then rights
                    s += cnt
                    hl, cl, hr, cr = kids[:cnt, :H], kids[:cnt, H:], kids[cnt:, :H], kids[cnt:, H:]
                    g = self.U_l(hl) + self.U_r(hr)
                    i, fl, fr, o = (torch.sigmoid(g[:, k * H:(k + 1) * H]) for k in range(4))
                    u = torch.tanh(g[:, 4 * H:])
                    c = i * u + fl * cl + fr * cr
                    hc = torch.cat((hc, torch.cat((o * torch.tanh(c), c), 1)))
                nll = F.cross_entropy(self.out(hc[:, :H]), labels, reduction="none")
                return torch.zeros(n_trees, dtype=nll.dtype).index_add(0, tree_of, nll)

        self.model = LevelTreeLSTM()
        self.opt = torch.optim.Adagrad(self.model.parameters(), lr=LR, eps=EPS)
        self.forests = ctx["forests"]

    def step(self, b):
        torch = self.torch
        f = self.forests[b]
        order, counts, _, left, right = level_layout(f)
        n_leaves = int(counts[0])
        self.opt.zero_grad(set_to_none=True)
        children = _per_level_children(counts, left, right)
        losses = self.model(torch.from_numpy(f["word"][order[:n_leaves]]), counts.tolist(),
                            torch.from_numpy(children),
                            torch.from_numpy(f["label"][order]),
                            torch.from_numpy(f.tree_of[order]), len(f))
        losses.sum().backward()
        self.opt.step()
        return losses.detach().numpy()

    def note(self):
        return f"torch {self.torch.__version__}, {self.torch.get_num_threads()} threads"


class JaxLevelPeer:
    name = "jax-level"

    def __init__(self, params0, ctx):
        import jax
        if params0["W"].dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.forests = ctx["forests"]
        self.B = ctx["batch_size"]
        pad = ctx["jax_pad"]  # per-height node counts and distinct words, max over the epoch
        self.caps = pad["counts"]
        self.U = pad["unique_words"]
        self.T = int(self.caps.sum())
        self.offs = np.concatenate(([0], np.cumsum(self.caps)))
        self.vocab = params0["emb"].shape[0]
        # One extra all-zero embedding row for the padding entries of a batch's
        # distinct words (its gradient is always 0, so it never changes).
        emb = np.concatenate([params0["emb"], np.zeros((1, EMB), params0["emb"].dtype)])
        self.params = {k: jnp.asarray(emb if k == "emb" else v) for k, v in params0.items()}
        self.acc = {k: jnp.zeros_like(v) for k, v in self.params.items()}
        self._step = jax.jit(self._make_step(), donate_argnums=(0, 1))

    def _make_step(self):
        jax, jnp = self.jax, self.jnp
        caps, offs, T, B, H = self.caps, self.offs, self.T, self.B, HIDDEN
        sig = jax.nn.sigmoid

        def loss_fn(p, E, inv, children, labels, mask, tree_of):
            g = E[inv] @ p["W"].T + p["b_leaf"]
            i, o, u = sig(g[:, :H]), sig(g[:, H:2 * H]), jnp.tanh(g[:, 2 * H:])
            c = i * u
            # [h | c] of every (padded) node, level by level
            hc = jnp.zeros((T, 2 * H), c.dtype).at[:caps[0]].set(
                jnp.concatenate((o * jnp.tanh(c), c), 1))
            for k in range(1, len(caps)):  # unrolled: static sizes per level
                n, a = caps[k], 2 * (offs[k] - caps[0])
                kids = hc[children[a:a + 2 * n]]  # lefts, then rights
                hl, cl, hr, cr = kids[:n, :H], kids[:n, H:], kids[n:, :H], kids[n:, H:]
                g = hl @ p["U_l"].T + hr @ p["U_r"].T + p["b"]
                i, fl, fr, o = (sig(g[:, m * H:(m + 1) * H]) for m in range(4))
                u = jnp.tanh(g[:, 4 * H:])
                c = i * u + fl * cl + fr * cr
                hc = hc.at[offs[k]:offs[k + 1]].set(jnp.concatenate((o * jnp.tanh(c), c), 1))
            logp = jax.nn.log_softmax(hc[:, :H] @ p["W_out"].T + p["b_out"])
            nll = -jnp.take_along_axis(logp, labels[:, None], axis=1)[:, 0] * mask
            losses = jax.ops.segment_sum(nll, tree_of, num_segments=B + 1)[:B]
            return losses.sum(), losses

        def step(params, acc, rows, inv, children, labels, mask, tree_of):
            dense = {k: v for k, v in params.items() if k != "emb"}
            E = params["emb"][rows]  # the batch's distinct rows (padded with the zero row)
            (_, losses), (gd, gE) = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
                dense, E, inv, children, labels, mask, tree_of)
            new_p, new_acc = {}, {}
            for k, g in gd.items():
                a = acc[k] + g * g
                new_acc[k] = a
                new_p[k] = params[k] - LR * g / (jnp.sqrt(a) + EPS)
            a = acc["emb"][rows] + gE * gE
            new_acc["emb"] = acc["emb"].at[rows].set(a)
            new_p["emb"] = params["emb"].at[rows].add(-LR * gE / (jnp.sqrt(a) + EPS))
            return new_p, new_acc, losses

        return step

    def _host_batch(self, f):
        """Padded index arrays of one batch (positions in the padded level buffer)."""
        order, counts, pos, left, right = level_layout(f)
        if len(counts) > len(self.caps) or np.any(counts > self.caps[:len(counts)]):
            raise RuntimeError("a batch exceeds the padded level sizes")
        h = f.height_of[order]  # 1-based height of each node in level order
        start = np.concatenate(([0], np.cumsum(counts)))
        ppos = self.offs[h - 1] + (np.arange(f.num_nodes) - start[h - 1])  # padded position
        n_leaves = int(counts[0])
        rows_u, inv_u = np.unique(f["word"][order[:n_leaves]], return_inverse=True)
        if len(rows_u) > self.U:
            raise RuntimeError("a batch has more distinct words than padded for")
        rows = np.full(self.U, self.vocab, dtype=np.int32)
        rows[:len(rows_u)] = rows_u
        inv = np.full(self.caps[0], self.U - 1, dtype=np.int32)
        inv[:n_leaves] = inv_u
        # Per level k: the children of its caps[k] padded slots, lefts then rights.
        children = np.zeros(2 * (self.T - self.caps[0]), dtype=np.int32)
        hk = h[n_leaves:] - 1
        slot = ppos[n_leaves:] + self.offs[hk] - 2 * self.caps[0]
        children[slot] = ppos[left]
        children[slot + self.caps[hk]] = ppos[right]
        labels = np.zeros(self.T, dtype=np.int32)
        labels[ppos] = f["label"][order]
        mask = np.zeros(self.T, dtype=self.params["W"].dtype)
        mask[ppos] = 1
        tree_of = np.full(self.T, self.B, dtype=np.int32)
        tree_of[ppos] = f.tree_of[order]
        return rows, inv, children, labels, mask, tree_of, len(f)

    def step(self, b):
        *arrays, n = self._host_batch(self.forests[b])
        self.params, self.acc, losses = self._step(self.params, self.acc, *arrays)
        return np.asarray(losses)[:n]

    def note(self):
        used = np.mean([f.num_nodes for f in self.forests[:4]]) if self.forests else 0
        return (f"jax {self.jax.__version__}; levels padded to {len(self.caps)} x "
                f"{self.T} nodes (~{used / self.T:.0%} real), {self.U} rows")


PEERS = {"torch-recursive": TorchRecursivePeer, "torch-level": TorchLevelPeer,
         "jax-level": JaxLevelPeer, "numpy-level": NumpyLevelPeer, "vmapper-depth": VmapperDepthPeer,
         "vmapper-unfused": VmapperUnfusedPeer, "vmapper-slices": VmapperSlicesPeer,
         "vmapper-unshared": VmapperUnsharedPeer}
assert tuple(PEERS) == PEER_NAMES


def jax_padding(forest, batches):
    """Per-height node counts and distinct-word counts, each the max over ``batches``."""
    h = forest.height_of
    D = int(h.max())
    per_tree = np.zeros((len(forest), D), dtype=np.int64)
    np.add.at(per_tree, (forest.tree_of, h - 1), 1)
    counts = np.max([per_tree[b].sum(axis=0) for b in batches], axis=0)
    words = forest["word"]
    uniq = 0
    for b in batches:
        nodes = np.concatenate([np.arange(forest.tree_ptr[t], forest.tree_ptr[t + 1]) for t in b])
        w = words[nodes]
        uniq = max(uniq, len(np.unique(w[w >= 0])))
    return {"counts": counts, "unique_words": uniq + 1}  # + 1: always one padding row


# ---------------------------------------------------------------------------
# Runner.
# ---------------------------------------------------------------------------

def _rounds(times, n_steps):
    """A peer's step times split into its rounds (``--rounds``)."""
    return [times[k:k + n_steps] for k in range(0, len(times), n_steps)]


def _timed(times, n_steps, warmup):
    """The timed steps of every round: each round's first ``warmup`` steps left out."""
    return [t for rnd in _rounds(times, n_steps) for t in rnd[warmup:]]


def _rel_err(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    if a.shape != ref.shape:
        return np.inf
    return float(np.max(np.abs(a - ref) / np.maximum(np.abs(ref), 1e-30)))


def profile_vmapper(peer, b, top):
    """``vmapper.profile()`` of one step (per line and operation), then cProfile of another."""
    import cProfile
    import io
    import pstats
    with vmapper.profile() as prof:
        peer.step(b)
    print(prof.table(top))
    print("\nper line:")
    for phase, fn, line, sec, src in prof.by_line()[:top]:
        print(f"{1e3 * sec:9.3f} ms  {phase:<8} {fn}:{line}  {src}")
    print(f"\ncProfile of batch {b} again, top {top} by tottime, then by cumulative time:")
    pr = cProfile.Profile()
    pr.enable()
    peer.step(b)
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    st.sort_stats("tottime").print_stats(top)
    print(s.getvalue())
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(top)
    print(s.getvalue())


def main(argv=None) -> int:
    args = _EARLY_ARGS if (argv is None and _EARLY_ARGS is not None) else _parse_args(argv)
    machine = _MACHINE
    if _EARLY_ARGS is None or (args.threads, args.jax_threads, args.blas_core) != (
            _EARLY_ARGS.threads, _EARLY_ARGS.jax_threads, _EARLY_ARGS.blas_core):
        # too late for numpy's threads and kernels if it is already imported
        machine = _set_thread_env(args.threads, args.jax_threads, args.blas_core)
    malloc_note = "glibc's defaults"
    if args.malloc == "tuned":
        malloc_note = ("glibc's thresholds raised at start, for every peer (vmapper.tune_allocator())"
                       if vmapper.tune_allocator() else "the C library's defaults (not glibc)")
    dtype = np.float64 if args.float64 else np.float32
    rtol = 1e-9 if args.float64 else 1e-4
    names = list(PEERS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip() and n.strip() != "vmapper"]
        bad = [n for n in names if n not in PEERS]
        if bad:
            print(f"unknown peers {bad}; choose from {list(PEERS)}", file=sys.stderr)
            return 2
    if args.no_reference and "numpy-level" in names:
        names.remove("numpy-level")

    forest, data_desc = load_trees(args.data, args.seed)
    epoch = make_batches(forest, args.batch_size, args.seed)
    n_steps = args.warmup + args.steps
    if n_steps > len(epoch):
        print(f"{args.warmup} warm-up + {args.steps} timed steps asked for, but one epoch of {len(forest)} "
              f"trees in batches of {args.batch_size} has {len(epoch)}: lower --steps or --warmup",
              file=sys.stderr)
        return 2
    idx = epoch[:n_steps]
    forests = [forest.subset(b) for b in idx]
    ctx = {"forests": forests, "batch_size": args.batch_size}
    params0 = model.init_params(len(forest.vocab), EMB, HIDDEN, CLASSES, args.seed, dtype=dtype)

    torch_note = ""
    if any(n.startswith("torch") for n in names):
        try:
            import torch
            import warnings
            warnings.filterwarnings("ignore", message="Sparse invariant checks")  # Adagrad, sparse
            torch.set_num_threads(args.threads)
            torch.set_num_interop_threads(1)
            if "torch-recursive" in names:
                ctx["torch_trees"] = [_torch_trees(torch, f) for f in forests]
        except ImportError as exc:
            torch_note = f"torch not importable ({exc})"
            names = [n for n in names if not n.startswith("torch")]
    if "jax-level" in names:
        ctx["jax_pad"] = jax_padding(forest, epoch)

    nodes = [f.num_nodes for f in forests[args.warmup:]]
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    cpus, blas_note = machine
    print(f"threads: {args.threads} (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS, torch.set_num_threads); "
          f"XLA {args.jax_threads}; process pinned to CPUs {cpus}")
    print(f"numpy BLAS: OpenBLAS {_machine.blas_core() or '(core type unknown)'} kernels; {blas_note}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"malloc: {malloc_note} (--malloc)")
    print(f"data: {data_desc}: {len(forest)} trees, {forest.num_nodes} nodes, "
          f"vocab {len(forest.vocab)}, max depth {forest.max_depth}")
    print(f"model: emb {EMB}, hidden {HIDDEN}, {CLASSES} classes, {np.dtype(dtype).name}; "
          f"Adagrad lr {LR}, eps {EPS:g}, no L2")
    print(f"steps: {args.warmup} warm-up + {args.steps} timed batches of {args.batch_size} trees "
          f"(timed: {sum(nodes)} nodes, {np.mean(nodes):.0f} per batch; max depth "
          f"{max(f.max_depth for f in forests)}), "
          + ("each peer's steps back to back (--solo)" if args.solo else "interleaved across peers")
          + (f", {args.rounds} rounds in rotating order, medians over all" if args.rounds > 1 else ""))
    if torch_note:
        print(f"SKIPPED torch peers: {torch_note}")

    peers, status = [], 0
    for cls in [VmapperPeer] + [PEERS[n] for n in names]:
        try:
            peers.append(cls(params0, ctx))
        except Exception as exc:
            if cls is VmapperPeer:
                raise
            print(f"SKIPPED {cls.name}: {type(exc).__name__}: {exc}")
            if args.verbose:
                traceback.print_exc()
    times = {p.name: [] for p in peers}
    losses = {p.name: [] for p in peers}
    failed = {}
    def run_step(p, s):
        """Step ``s`` of peer ``p``, timed (the collector off); False if vmapper failed."""
        if p.name in failed:
            return True
        gc_on = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            out = p.step(s)
            times[p.name].append(time.perf_counter() - t0)
            losses[p.name].append(np.asarray(out))
        except Exception as exc:
            failed[p.name] = f"{type(exc).__name__}: {exc}"
            print(f"FAILED {p.name} at step {s}: {failed[p.name]}")
            if args.verbose:
                traceback.print_exc()
            if p.name == "vmapper":
                return False
        finally:
            if gc_on:
                gc.enable()
        return True

    if args.solo:  # each peer's steps back to back: its caches stay its own
        for r in range(args.rounds):
            for p in peers[r % len(peers):] + peers[:r % len(peers)]:
                for s in range(n_steps):
                    if not run_step(p, s):
                        return 1
    else:
        for s in range(n_steps):
            # the order rotates: a peer's step runs after a different peer's each time (the one
            # before leaves its data in the caches and its freed memory in the allocator)
            k = s % len(peers)
            for p in peers[k:] + peers[:k]:
                if not run_step(p, s):
                    return 1
            if s == 0:
                print("first step: " + ", ".join(f"{n} {t[0]:.2f} s" for n, t in times.items() if t),
                      flush=True)
    if args.solo:
        print("first step: " + ", ".join(f"{n} {t[0]:.2f} s" for n, t in times.items() if t), flush=True)

    ref = losses["vmapper"]
    rows = []
    for p in peers:
        if p.name in failed:
            continue
        t = times[p.name]
        med = statistics.median(_timed(t, n_steps, args.warmup))
        first = _rel_err(losses[p.name][0], ref[0])
        last = _rel_err(losses[p.name][-1], ref[-1])
        ok = p.name == "vmapper" or first <= rtol
        if not ok:
            status = 1
        rows.append({"peer": p.name, "trees/s": args.batch_size / med, "median_ms": 1e3 * med,
                     "first_step_s": t[0],
                     "first_loss_relerr": None if p.name == "vmapper" else first,
                     "last_loss_relerr": None if p.name == "vmapper" else last,
                     "check": "reference" if p.name == "vmapper" else
                     ("ok" if ok else f"MISMATCH (rtol {rtol:g})"),
                     "note": p.note()})
    print()
    print_table(rows)
    vm = next(r for r in rows if r["peer"] == "vmapper")
    print("\nvmapper / peer = trees/s(vmapper) / trees/s(peer); > 1 means vmapper is faster:")
    for r in rows:
        if r is not vm:
            per_round = ""
            if args.rounds > 1:
                ratios = [statistics.median(peer_t[args.warmup:]) / statistics.median(vm_t[args.warmup:])
                          for peer_t, vm_t in zip(_rounds(times[r["peer"]], n_steps),
                                                  _rounds(times["vmapper"], n_steps))]
                per_round = "  (rounds: " + ", ".join(f"{x:.3g}x" for x in ratios) + ")"
            print(f"  vmapper / {r['peer']:<16} = {vm['trees/s'] / r['trees/s']:.3g}x{per_round}")
    vg_ms, up_ms, fwd_ms = peers[0].breakdown(list(range(args.warmup, n_steps)))
    print(f"\nvmapper step, median ms: value_and_grad {vg_ms:.1f} (a plain forward call of "
          f"tree_loss, no tape: {fwd_ms:.1f}), Adagrad update {up_ms:.1f}")
    print("loss sums of the first step: " + ", ".join(
        f"{p.name} {float(np.sum(losses[p.name][0])):.6g}" for p in peers if losses[p.name]))
    if args.profile:
        vpeer = peers[0]
        print(f"\nvmapper.profile() of one more vmapper step (batch {args.warmup}; profiled steps are "
              f"slower: read the proportions), top {args.profile_top} rows:")
        profile_vmapper(vpeer, args.warmup, args.profile_top)
    if status:
        print("\nERROR: a peer's first-step losses disagree with vmapper's", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
