"""Train the per-tree Tree-LSTM (``model.py``) with vmapper, on ListOps (default) or SST.

    python -m examples.trees.train                  # built-in ListOps, under a minute on 2 cores
    python examples/trees/train.py --epochs 5       # run as a script, 5 epochs
    python -m examples.trees.train --data /work/shared/data/sst --paper

``--data DIR`` reads SST's ``train.txt``, ``dev.txt`` and ``test.txt`` (PTB form). Each
epoch reports dev accuracy: fine-grained root, all nodes and, for SST, binary root
accuracy (neutral roots dropped; classes {0,1} negative, {3,4} positive; the binary
decision compares the probability mass of {3,4} with that of {0,1}). Parameters are
saved per epoch to ``OUT/epochNN.npz`` (with ``vocab``, the words in id order); curves go
to ``OUT/curves.png``.

Gradients come from ``vmapper.value_and_grad(model.tree_loss, argnums=1)``;
``--grad reference`` uses the hand-written level-batched gradients of ``reference.py``
instead (to compare the two).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread unless the user chose: a batch's matrix products have tens of rows per
# height, and a second thread costs more to hand the work to than it saves (on 2 cores,
# ``benchmarks/trees.py --threads 2`` is slower for vmapper). Read when numpy loads its BLAS.
if not any(v in os.environ for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")):
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

if __package__ in (None, ""):  # run as a script: python examples/trees/train.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import listops, model, reference  # noqa: E401
else:
    from . import listops, model, reference

import vmapper
from vmapper.kernels.optim import adagrad_update

DEFAULTS = dict(epochs=3, batch_size=25, lr=0.05, l2=1e-4, hidden=64, emb=32)
PAPER = dict(epochs=10, batch_size=25, lr=0.05, l2=1e-4, hidden=150, emb=300)
EVAL_CHUNK = 500  # trees per batched prediction call


def _at_least(lo, kind=int):
    """An argparse type: a number of ``kind`` no smaller than ``lo``."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if not v >= lo:
            raise argparse.ArgumentTypeError(f"{text} is below the smallest allowed value, {lo}")
        return v
    return parse


POSITIVE = _at_least(1)


def _directory(text):
    """An argparse type: a path, not empty (``Path("")`` would quietly be the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (use . for the current directory)")
    return Path(text)
LISTOPS_DEFAULTS = dict(listops_train=2000, listops_eval=500, listops_depth=4)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None,
                    help="directory with SST train.txt/dev.txt/test.txt (default: built-in ListOps)")
    ap.add_argument("--paper", action="store_true",
                    help="Tai et al.'s setting: emb 300, hidden 150, Adagrad lr 0.05, L2 1e-4, "
                         "batch 25, 10 epochs (explicit flags still override)")
    def default(k):
        return f"(default {DEFAULTS[k]}; with --paper {PAPER[k]})" if DEFAULTS[k] != PAPER[k] \
            else f"(default {DEFAULTS[k]})"
    ap.add_argument("--epochs", type=POSITIVE, help=f"training epochs {default('epochs')}")
    ap.add_argument("--batch-size", type=POSITIVE, help=f"trees per training step {default('batch_size')}")
    ap.add_argument("--lr", type=_at_least(0.0, float), help=f"Adagrad learning rate {default('lr')}")
    ap.add_argument("--l2", type=_at_least(0.0, float), help=f"L2 regularization strength {default('l2')}")
    ap.add_argument("--hidden", type=POSITIVE, help=f"Tree-LSTM memory size {default('hidden')}")
    ap.add_argument("--emb", type=POSITIVE, help=f"word embedding size {default('emb')}")
    ap.add_argument("--limit", type=POSITIVE, default=None,
                    help="use the first N training trees (SST's files are partly ordered by "
                         "sentiment, so a small N is skewed)")
    ap.add_argument("--eval-limit", type=POSITIVE, default=None,
                    help="use N evenly spaced dev and test trees (quick runs)")
    ap.add_argument("--seed", type=_at_least(0), default=0,
                    help="seed of the initial parameters, the batch order and ListOps (default 0)")
    ap.add_argument("--out", type=_directory, default=Path("runs/treelstm"),
                    help="checkpoint and plot directory (default runs/treelstm)")
    ap.add_argument("--float32", action="store_true", help="float32 parameters (default float64)")
    ap.add_argument("--grad", choices=("vmapper", "reference"), default="vmapper",
                    help="gradient path: vmapper.value_and_grad of the per-tree loss (default) or "
                         "the hand-written level-batched reference.py")
    ap.add_argument("--listops-train", type=POSITIVE, help="ListOps training trees (default 2000)")
    ap.add_argument("--listops-eval", type=POSITIVE, help="ListOps dev and test trees each (default 500)")
    ap.add_argument("--listops-depth", type=POSITIVE, help="ListOps max operator nesting (default 4)")
    ap.add_argument("--no-progress", action="store_true",
                    help="no progress bar")
    args = ap.parse_args(argv)
    base = PAPER if args.paper else DEFAULTS
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    given = [k for k in LISTOPS_DEFAULTS if getattr(args, k) is not None]
    if args.data is not None:
        if given:
            ap.error(f"--{given[0].replace('_', '-')} applies to the built-in ListOps data, not to --data")
        if not args.data.is_dir():
            ap.error(f"--data {args.data}: {'not a directory' if args.data.exists() else 'no such directory'}")
    for k, v in LISTOPS_DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.out.exists() and not args.out.is_dir():
        ap.error(f"--out {args.out}: a file, not a directory")
    problem = _unwritable(args.out)
    if problem:
        ap.error(f"--out {args.out}: {problem}")
    return args


def _unwritable(out):
    """Why checkpoints cannot be written under ``out`` (created here if missing), or None:
    found before the data loads and an epoch trains, not when the first checkpoint is saved."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


# -- data -----------------------------------------------------------------------------

def load_data(args):
    """``(splits, n_classes, is_sst)``; splits maps train/dev/test to Forests with one vocab."""
    if args.data is None:
        splits = listops.load_splits(args.listops_train, args.listops_eval, args.listops_eval,
                                     args.listops_depth, args.seed)
        n_classes, is_sst = listops.N_CLASSES, False
    else:
        files = {k: args.data / f"{k}.txt" for k in ("train", "dev", "test")}
        for k, f in files.items():
            if not f.is_file():
                raise SystemExit(f"--data {args.data}: {f.name} {'is not a file' if f.exists() else 'is missing'}")
        read = {k: _read_lines(f) for k, f in files.items()}
        if args.limit is not None:
            read["train"] = _first_trees(read["train"], args.limit)
        train = _parse(files["train"], read["train"])
        vocab = dict(train.vocab)
        vocab.setdefault("<unk>", len(vocab))
        train.vocab = vocab
        splits = {"train": train,
                  "dev": _parse(files["dev"], read["dev"], vocab),
                  "test": _parse(files["test"], read["test"], vocab)}
        n_classes, is_sst = 5, True
        for k, forest in splits.items():
            _check_for_model(forest, files[k], read[k], n_classes)
    if args.limit is not None:
        splits["train"] = splits["train"].subset(slice(0, args.limit))
    if args.eval_limit is not None:
        # Evenly spaced, not the first N: SST's files are partly ordered by sentiment.
        for k in ("dev", "test"):
            n = len(splits[k])
            splits[k] = splits[k].subset(np.unique(np.linspace(0, n - 1, min(n, args.eval_limit))
                                                   .astype(np.int64)))
    return splits, n_classes, is_sst


def _read_lines(path):
    """The lines of a UTF-8 text file; an error that names the file and line otherwise."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SystemExit(f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); convert the "
                         f"file to UTF-8, e.g. iconv -f latin1 -t utf-8") from None


def _first_trees(lines, n):
    """The lines up to the ``n``-th that holds a tree (blank lines kept: errors name file lines)."""
    seen = 0
    for k, line in enumerate(lines):
        seen += bool(line.strip())
        if seen == n:
            return lines[:k + 1]
    return lines


def _parse(path, lines, vocab=None):
    try:
        forest = vmapper.Forest.from_ptb(lines, vocab=vocab) if any(ln.strip() for ln in lines) else None
    except vmapper.ForestError as exc:
        raise SystemExit(f"{path}: {exc}") from None
    if forest is None:
        raise SystemExit(f"{path}: no trees")
    return forest


def _check_for_model(forest, path, lines, n_classes):
    """The binary Tree-LSTM reads ``node.left`` and ``node.right`` and classifies every node
    into ``n_classes``: a node with one child or three, or a label out of range, would fail
    mid-training (or, for three children, quietly drop a subtree)."""
    counts = np.diff(forest.child_ptr)
    labels = forest["label"]
    bad_arity = np.flatnonzero((counts != 0) & (counts != 2))
    bad_label = np.flatnonzero((labels < 0) | (labels >= n_classes))
    for nodes, what in ((bad_arity, lambda v: f"a node with {counts[v]} child{'ren' if counts[v] != 1 else ''} "
                                             "(the binary Tree-LSTM needs 0 or 2)"),
                        (bad_label, lambda v: f"label {labels[v]} (classes are 0-{n_classes - 1})")):
        if len(nodes):
            v = int(nodes[0])
            tree = int(np.searchsorted(forest.tree_ptr, v, side="right")) - 1
            line = [k for k, ln in enumerate(lines, 1) if ln.strip()][tree]
            raise SystemExit(f"{path}: tree {tree} (line {line}): {what(v)}")


# -- gradients --------------------------------------------------------------------------

class Gradients:
    """``(losses, grads) = self(forest, params)``: vmapper's value_and_grad of the per-tree
    loss, or (``mode="reference"``) the hand-written level-batched gradients."""

    def __init__(self, mode="vmapper"):
        if mode not in ("vmapper", "reference"):
            raise ValueError(f"gradient path {mode!r}: choose 'vmapper' or 'reference'")
        self.vg = vmapper.value_and_grad(model.tree_loss, argnums=1) if mode == "vmapper" else None
        self.source = "vmapper.value_and_grad" if self.vg is not None else "reference.py"

    def __call__(self, forest, params):
        if self.vg is not None:
            return self.vg(forest.roots, params)
        return reference.value_and_grad(forest, params)


class Adagrad:
    """Adagrad with L2 regularization (Duchi et al. 2011), as in Tai et al. 2015.

    A row-sparse gradient (vmapper returns one for a table the code only gathers rows
    from, e.g. the embeddings: ``.coalesce()``, ``.indices``, ``.values``) updates only
    the rows it touches, with the L2 term applied lazily to those rows; any other
    gradient is used as a dense array.
    """

    def __init__(self, params, lr, l2, eps=1e-8):
        self.lr, self.l2, self.eps = lr, l2, eps
        self.acc = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads, scale):
        # d = g * scale + l2 * p; acc += d * d; p -= lr * (d / (sqrt(acc) + eps)), one fused
        # pass per parameter (a row-sparse gradient: over its rows only)
        for k, p in params.items():
            adagrad_update(p, self.acc[k], grads[k], self.lr, self.eps, self.l2, scale)


# -- evaluation -------------------------------------------------------------------------

def evaluate(forest, params, is_sst):
    """Accuracies on a Forest: root (fine-grained), all nodes and, for SST, binary root."""
    preds, correct, logits = [], [], []
    for s in range(0, len(forest), EVAL_CHUNK):
        part = forest.subset(slice(s, s + EVAL_CHUNK))
        p, c, lg = model.tree_predict(part.roots, params)
        preds.append(p), correct.append(c), logits.append(lg)
    pred, correct, logits = (np.concatenate(a) for a in (preds, correct, logits))
    gold = forest["label"][forest.root_ids]
    out = {"root": float(np.mean(pred == gold)),
           "nodes": float(correct.sum() / forest.num_nodes)}
    if is_sst:
        keep = gold != 2
        lse = lambda z: np.logaddexp.reduce(z, axis=1)  # noqa: E731
        pos = lse(logits[:, 3:5]) > lse(logits[:, 0:2])
        # (no positive or negative root among these trees: no binary accuracy, NaN)
        out["binary"] = float(np.mean(pos[keep] == (gold[keep] > 2))) if keep.any() else math.nan
    return out


def fmt(acc):
    return ", ".join(f"{k} {v:.3f}" if math.isfinite(v) else f"{k} n/a" for k, v in acc.items())


# -- plot -------------------------------------------------------------------------------

def plot(history, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot")
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, len(history["batch_loss"]) + 1)
    a1.plot(steps, history["batch_loss"], lw=0.6, alpha=0.6, label="batch")
    per = max(1, len(steps) // max(1, len(history["dev"])))
    ep_x = [per * (e + 1) for e in range(len(history["epoch_loss"]))]
    a1.plot(ep_x, history["epoch_loss"], "o-", label="epoch mean")
    a1.set_xlabel("batch"), a1.set_ylabel("loss per node"), a1.set_title("training loss")
    a1.legend()
    epochs = np.arange(1, len(history["dev"]) + 1)
    for key in history["dev"][0]:
        a2.plot(epochs, [d[key] for d in history["dev"]], "o-", label=f"dev {key}")
    a2.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy"), a2.set_title("dev accuracy")
    a2.set_ylim(0, 1), a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- main -------------------------------------------------------------------------------

def _progress(iterable, total, desc, disable):
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(iterable)
    # (to a log rather than a terminal: a line every few seconds, not a flood of redraws)
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=True,
                mininterval=0.1 if sys.stderr.isatty() else 5.0,
                dynamic_ncols=True)


class _NoBar:
    """Stands in for tqdm when it is not installed."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _write_history(args, history, grad_fn):
    """``history.json``, replaced whole (a run stopped while writing keeps the previous one);
    strict JSON: an accuracy that is not a number (no positive or negative dev roots) is null."""
    text = json.dumps(_json_numbers({**history, "grad_source": grad_fn.source,
                                     "args": {k: str(v) if isinstance(v, Path) else v
                                              for k, v in vars(args).items()}}), indent=1, allow_nan=False)
    tmp = args.out / "history.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, args.out / "history.json")


def _json_numbers(v):
    if isinstance(v, dict):
        return {k: _json_numbers(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_numbers(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _remove_old_checkpoints(out):
    """An earlier run's ``epochNN.npz`` files in ``out``: removed, so that every checkpoint
    there is this run's (a later epoch of another model would pass for this one's)."""
    old = sorted(out.glob("epoch[0-9][0-9]*.npz"))
    for f in old:
        f.unlink()
    if old:
        print(f"removed {len(old)} checkpoint(s) of an earlier run from {out}")


def main(argv=None):
    args = parse_args(argv)
    vmapper.tune_allocator()  # steps reuse a mapped heap: no page faults for every array, every step
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    splits, n_classes, is_sst = load_data(args)
    train, dev, test = splits["train"], splits["dev"], splits["test"]
    dtype = np.float32 if args.float32 else np.float64
    params = model.init_params(len(train.vocab), args.emb, args.hidden, n_classes,
                               args.seed, dtype=dtype)
    grad_fn = Gradients(args.grad)
    opt = Adagrad(params, args.lr, args.l2)
    print(f"data: {'SST ' + str(args.data) if is_sst else 'ListOps (built-in)'}; "
          f"train {len(train)} trees / {train.num_nodes} nodes, dev {len(dev)}, test {len(test)}; "
          f"vocab {len(train.vocab)}, {n_classes} classes, max depth {train.max_depth}")
    print(f"model: emb {args.emb}, hidden {args.hidden}, {np.dtype(dtype).name}; Adagrad lr "
          f"{args.lr}, L2 {args.l2}, batch {args.batch_size}, {args.epochs} epoch{'s' if args.epochs != 1 else ''}; "
          f"gradients: {grad_fn.source}")
    _remove_old_checkpoints(args.out)
    history = {"batch_loss": [], "epoch_loss": [], "dev": [], "epoch_time": []}
    try:
        _train(args, rng, train, dev, params, opt, grad_fn, history, is_sst)
    except KeyboardInterrupt:
        done = len(history["dev"])
        print(f"\ninterrupted during epoch {done + 1}: {done} finished epoch(s) kept in {args.out}")
        if done:
            _finish_plot(history, args.out)
        raise SystemExit(130) from None
    test_acc = evaluate(test, params, is_sst)
    history["test"] = test_acc
    _write_history(args, history, grad_fn)
    _finish_plot(history, args.out)
    print(f"test accuracy: {fmt(test_acc)}  (total {time.perf_counter() - t0:.1f}s)")
    return {"test": test_acc, "history": history, "params": params, "grad_source": grad_fn.source}


def _finish_plot(history, out):
    png = plot(history, out / "curves.png")
    if png:
        print(f"curves: {png}")


def _train(args, rng, train, dev, params, opt, grad_fn, history, is_sst):
    """The epochs: a checkpoint, ``history.json`` and a line of dev accuracy after each."""
    vocab_words = np.array(sorted(train.vocab, key=train.vocab.get))  # (word of id i at i)
    for epoch in range(1, args.epochs + 1):
        te = time.perf_counter()
        order = rng.permutation(len(train))
        batches = [order[s:s + args.batch_size] for s in range(0, len(order), args.batch_size)]
        bar = _progress(batches, len(batches), f"epoch {epoch}/{args.epochs}", args.no_progress)
        tot_loss = tot_nodes = 0.0
        for idx in bar:
            batch = train.subset(np.sort(idx))
            losses, grads = grad_fn(batch, params)
            opt.step(params, grads, 1.0 / len(idx))
            per_node = float(np.sum(losses)) / batch.num_nodes
            if not math.isfinite(per_node):
                bar.close()
                raise SystemExit(f"epoch {epoch}: the training loss is {per_node} (diverged); "
                                 f"try a smaller --lr (now {args.lr})")
            history["batch_loss"].append(per_node)
            tot_loss += float(np.sum(losses))
            tot_nodes += batch.num_nodes
            bar.set_postfix(loss=f"{per_node:.3f}", avg=f"{tot_loss / tot_nodes:.3f}", refresh=False)
        bar.close()
        acc = evaluate(dev, params, is_sst)
        history["epoch_loss"].append(tot_loss / tot_nodes)
        history["dev"].append(acc)
        history["epoch_time"].append(time.perf_counter() - te)
        ckpt = args.out / f"epoch{epoch:02d}.npz"
        with open(ckpt.with_suffix(".tmp"), "wb") as f:  # (replaced whole: never half a checkpoint)
            np.savez(f, **params, vocab=vocab_words, epoch=epoch, **{f"dev_{k}": v for k, v in acc.items()})
        os.replace(ckpt.with_suffix(".tmp"), ckpt)
        loss = tot_loss / tot_nodes
        print(f"epoch {epoch}: train loss/node {loss:{'.4f' if abs(loss) < 1e6 else '.4g'}}, dev {fmt(acc)} "
              f"({history['epoch_time'][-1]:.1f}s) -> {ckpt}", flush=True)
        _write_history(args, history, grad_fn)  # (each epoch: a stopped run keeps its curves)


if __name__ == "__main__":
    main()
