"""Tests of examples/trees: ListOps data, the per-tree Tree-LSTM against the level-batched
reference (values and gradients), the trainer, and the DAG example."""
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import vmapper

ROOT = Path(__file__).resolve().parents[2]
SST = ROOT.parent / "shared" / "data" / "sst"
_PKG = "vmapper_examples_trees"


def _load(name):
    """Import examples/trees/<name>.py by path (``examples`` here would be tests/examples)."""
    if _PKG not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            _PKG, ROOT / "examples" / "trees" / "__init__.py",
            submodule_search_locations=[str(ROOT / "examples" / "trees")])
        pkg = importlib.util.module_from_spec(spec)
        sys.modules[_PKG] = pkg
        spec.loader.exec_module(pkg)
    return importlib.import_module(f"{_PKG}.{name}")


listops = _load("listops")
model = _load("model")
reference = _load("reference")


def _listops_forest(n=16, depth=3, seed=7):
    return vmapper.Forest.from_ptb(listops.make_listops(n, depth, seed), vocab=dict(listops.VOCAB))


def _sst_forest(n=16):
    dev = SST / "dev.txt"
    if not dev.exists():
        pytest.skip(f"SST not available at {SST}")
    lines = [ln for ln in dev.read_text().splitlines() if ln.strip()]
    # evenly spaced: the file is partly ordered by sentiment
    return vmapper.Forest.from_ptb([lines[i] for i in np.linspace(0, len(lines) - 1, n).astype(int)])


def _dense(g):
    return np.asarray(g)  # vmapper may return a row-sparse gradient for gathered tables


# -- ListOps data ------------------------------------------------------------------------

def test_listops_is_deterministic_in_the_seed():
    a = listops.make_listops(50, 4, seed=3)
    assert a == listops.make_listops(50, 4, seed=3)
    assert a != listops.make_listops(50, 4, seed=4)
    s = listops.make_splits(30, 10, 10, seed=1)
    assert s == listops.make_splits(30, 10, 10, seed=1)
    assert [len(s[k]) for k in ("train", "dev", "test")] == [30, 10, 10]
    assert s["train"][:10] != s["dev"] and s["dev"] != s["test"]  # independent seeds


def _node_value(forest, v):
    """Recompute node v's value from the structure alone (ignoring the stored labels)."""
    inv = {i: w for w, i in forest.vocab.items()}
    nch = forest.num_children_of([v])[0]
    if nch == 0:
        tok = inv[int(forest["word"][v])]
        return int(tok) if tok.isdigit() else listops.EMPTY_VALUE[tok]
    assert nch == 2
    # walk down the left spine to the operator, collecting the arguments (right children)
    args, u = [], v
    while forest.num_children_of([u])[0] == 2:
        start = forest.child_ptr[u]
        left, right = forest.child_idx[start], forest.child_idx[start + 1]
        args.append(_node_value(forest, right))
        u = left
    op = inv[int(forest["word"][u])]
    assert op in listops.OPS
    return listops.apply_op(op, args[::-1])


def test_listops_labels_are_every_nodes_value():
    forest = vmapper.Forest.from_ptb(listops.make_listops(200, 4, seed=11),
                                     vocab=dict(listops.VOCAB))
    assert forest.vocab == listops.VOCAB and len(forest.vocab) == 14
    labels = forest["label"]
    for v in range(forest.num_nodes):
        assert labels[v] == _node_value(forest, v), f"node {v}"
    assert set(np.unique(labels[forest.root_ids])) == set(range(10))
    assert forest.num_children_of(np.arange(forest.num_nodes)).max() == 2


def test_listops_semantics_and_encoding():
    e = ("MAX", [2, 9, ("MIN", [4, 7]), 0])
    assert listops.evaluate(e) == 9
    assert listops.to_ptb(e) == ("(9 (9 (9 (2 (0 MAX) (2 2)) (9 9)) (4 (4 (9 MIN) (4 4)) (7 7))) (0 0))")
    assert listops.apply_op("MED", [5, 1, 9, 7]) == 5
    assert listops.apply_op("SUM_MOD", [5, 8, 9]) == 2


# -- model vs reference ------------------------------------------------------------------

def _params(forest, n_classes, seed=0, emb=6, hidden=5):
    p = model.init_params(len(forest.vocab), emb, hidden, n_classes, seed)
    rng = np.random.default_rng(seed + 1)  # non-zero biases, so their gradients matter
    for k in ("b_leaf", "b", "b_out"):
        p[k] = rng.normal(0, 0.3, p[k].shape)
    return p


def _scheduled(fn, schedule):
    """The example's function (bottom-up by height, ``memo=True``), or the same per-tree
    code batched by depth from the roots (plain recursion)."""
    return fn if schedule == "height" else vmapper.batched(fn, in_axes=(0, None))


@pytest.mark.parametrize("schedule", ["height", "depth"])
@pytest.mark.parametrize("data", ["listops", "sst"])
def test_forward_equals_level_batched_reference(data, schedule):
    forest = _listops_forest() if data == "listops" else _sst_forest()
    p = _params(forest, 10 if data == "listops" else 5)
    got = _scheduled(model.tree_loss, schedule)(forest.roots, p)
    if schedule == "height":  # all leaves in one step: their repeated words share products
        assert model.tree_loss.last_stats["shared_row_products"] > 0
    want, _ = reference.forward(forest, p)
    assert got.dtype == np.float64 and got.shape == (16,)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    pred, correct, logits = _scheduled(model.tree_predict, schedule)(forest.roots, p)
    rpred, rcorrect = reference.predict(forest, p)
    np.testing.assert_array_equal(pred, rpred)
    np.testing.assert_array_equal(correct, rcorrect)
    assert logits.shape == (16, len(p["b_out"]))


@pytest.mark.parametrize("schedule", ["height", "depth"])
@pytest.mark.parametrize("data", ["listops", "sst"])
def test_value_and_grad_equals_reference(data, schedule):
    forest = _listops_forest() if data == "listops" else _sst_forest()
    p = _params(forest, 10 if data == "listops" else 5)
    values, grads = vmapper.value_and_grad(_scheduled(model.tree_loss, schedule), argnums=1)(forest.roots, p)
    want_values, want = reference.value_and_grad(forest, p)
    np.testing.assert_allclose(values, want_values, rtol=1e-10, atol=0)
    assert set(grads) == set(p)
    for k in p:
        g = _dense(grads[k])
        assert g.shape == p[k].shape and g.dtype == p[k].dtype, k
        scale = np.abs(want[k]).max()
        np.testing.assert_allclose(g, want[k], rtol=1e-10, atol=1e-10 * scale, err_msg=k)


@pytest.mark.parametrize("schedule", ["height", "depth"])
def test_batched_calls_and_launches_follow_the_height_not_the_batch(schedule):
    rng = np.random.default_rng(3)

    def tree(d):  # full binary trees cut at random: every height up to d somewhere
        return rng.integers(1, 9) if d == 0 or rng.random() < 0.3 else (tree(d - 1), tree(d - 1))
    chain = 1
    for k in range(7):  # a caterpillar of height 8: every height from 1 to 8 in every batch
        chain = (chain, k + 2)
    trees = [chain] + [tree(6) for _ in range(255)]
    f = _scheduled(model.tree_loss, schedule)
    p = model.init_params(9, emb_dim=6, hidden=5, n_classes=5)
    stats = []
    for b in (8, 64, 256):
        forest = vmapper.Forest.from_nested(trees[:b], leaf_attr="word")
        forest.attrs["label"] = rng.integers(0, 5, forest.num_nodes)
        f(forest.roots, p)
        stats.append(f.last_stats)
    depth = 8
    # (some 40 operations per height: the cell, the classifier and the loss of one node)
    assert stats[0]["launches"] == stats[1]["launches"] == stats[2]["launches"] <= 60 * depth
    assert all(st["calls"] <= 2 * depth + 2 for st in stats)


def test_reference_gradients_match_finite_differences():
    forest = _listops_forest(4, 2, seed=5)
    p = _params(forest, 10, seed=2, emb=3, hidden=3)
    _, grads = reference.value_and_grad(forest, p)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for k in p:
        d = rng.normal(size=p[k].shape)
        plus = {**p, k: p[k] + eps * d}
        minus = {**p, k: p[k] - eps * d}
        fd = (reference.forward(forest, plus)[0].sum() - reference.forward(forest, minus)[0].sum()) / (2 * eps)
        assert abs(fd - np.sum(grads[k] * d)) <= 1e-6 * max(1.0, abs(fd)), k


def test_float32_option_values():
    forest = _listops_forest(8)
    p = model.init_params(len(forest.vocab), 6, 5, 10, 0, dtype=np.float32)
    got = model.tree_loss(forest.roots, p)
    want, _ = reference.forward(forest, {k: v.astype(np.float64) for k, v in p.items()})
    np.testing.assert_allclose(got, want, rtol=1e-4)
    _, grads = vmapper.value_and_grad(model.tree_loss, argnums=1)(forest.roots, p)
    assert all(_dense(grads[k]).dtype == np.float32 for k in p)


def test_float32_loss_dtype_follows_per_sample():
    from vmapper.testing import check_batching
    forest = _listops_forest(8)
    p = model.init_params(len(forest.vocab), 6, 5, 10, 0, dtype=np.float32)
    check_batching(model.tree_loss, (forest.roots, p), in_axes=(0, None), exact=False, rtol=1e-5)


# -- trainer -----------------------------------------------------------------------------

TINY = ["--epochs", "1", "--batch-size", "25", "--limit", "50", "--hidden", "6", "--emb", "5",
        "--eval-limit", "20", "--no-progress"]


def _has_matplotlib():
    return importlib.util.find_spec("matplotlib") is not None


def test_trainer_smoke_listops(tmp_path, capsys):
    train = _load("train")
    out = train.main(TINY + ["--listops-train", "50", "--listops-eval", "20", "--out", str(tmp_path)])
    ck = np.load(tmp_path / "epoch01.npz")
    assert set(model.PARAM_NAMES) <= set(ck.files) and int(ck["epoch"]) == 1
    assert len(out["history"]["batch_loss"]) == 2  # 50 trees, batch 25
    assert {"root", "nodes"} == set(out["test"])
    assert out["grad_source"] == "vmapper.value_and_grad"
    assert (tmp_path / "curves.png").exists() == _has_matplotlib()
    assert "test accuracy" in capsys.readouterr().out


def test_trainer_smoke_sst(tmp_path):
    if not (SST / "train.txt").exists():
        pytest.skip(f"SST not available at {SST}")
    train = _load("train")
    out = train.main(TINY + ["--data", str(SST), "--out", str(tmp_path)])
    assert {"root", "nodes", "binary"} == set(out["test"])
    assert (tmp_path / "epoch01.npz").exists()


def test_trainer_vmapper_and_reference_paths_agree(tmp_path):
    train = _load("train")
    args = TINY + ["--listops-train", "50", "--listops-eval", "20"]
    a = train.main(args + ["--grad", "vmapper", "--out", str(tmp_path / "a")])["params"]
    b = train.main(args + ["--grad", "reference", "--out", str(tmp_path / "b")])["params"]
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-8, atol=1e-12, err_msg=k)


# -- DAG example -------------------------------------------------------------------------

def test_graph_model_equals_per_sample_loop():
    gm = _load("graph_model")
    forest, scores, depth, paths = gm.check(64, seed=2)
    assert not forest.is_tree  # shared nodes are present
    np.testing.assert_array_equal(depth, forest.depth)
    assert np.all(paths >= 1)


def test_graph_model_gradients_match_finite_differences():
    gm = _load("graph_model")
    from vmapper.testing import check_grads
    forest = vmapper.Forest.from_networkx(gm.random_dags(32, 3), attrs=["x"])
    check_grads(gm.dag_score, (forest.roots, gm.init_params(seed=3)), argnums=1)
