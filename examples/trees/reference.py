"""Hand-written LEVEL-BATCHED numpy Tree-LSTM: forward and backward, the test oracle.

The same model as :mod:`model` (binary constituency Tree-LSTM, per-node softmax, summed
cross-entropy per tree), written the way one would by hand without vmapper: all nodes of
one height go through one matmul, children gathered by index from the Forest's CSR
arrays. Works for any binary Forest (every node a leaf or exactly two children), in the
parameters' dtype (float64 for the oracle). ``train.py --grad reference`` trains with it.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _levels(forest):
    """Node ids grouped by height, bottom-up: ``[leaves, height-2 nodes, ...]``."""
    h = forest.height_of
    order = np.argsort(h, kind="stable")
    bounds = np.searchsorted(h[order], np.arange(1, int(h.max()) + 2))
    return [order[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]


def _children(forest, ids):
    nch = forest.num_children_of(ids)
    if np.any(nch != 2):
        bad = ids[nch != 2][0]
        raise ValueError(f"node {bad} has {forest.num_children_of([bad])[0]} children; "
                         "the binary Tree-LSTM needs 0 or 2")
    start = forest.child_ptr[ids]
    return forest.child_idx[start], forest.child_idx[start + 1]


def forward(forest, params):
    """Per-tree losses and the activations the backward pass needs."""
    p = params
    H = p["U_l"].shape[1]
    n = forest.num_nodes
    dt = p["W"].dtype
    h = np.zeros((n, H), dtype=dt)
    c = np.zeros((n, H), dtype=dt)
    levels = _levels(forest)
    acts = []
    leaves = levels[0]
    x = p["emb"][forest["word"][leaves]]
    g = x @ p["W"].T + p["b_leaf"]
    i, o, u = _sigmoid(g[:, :H]), _sigmoid(g[:, H:2 * H]), np.tanh(g[:, 2 * H:])
    c[leaves] = i * u
    h[leaves] = o * np.tanh(c[leaves])
    acts.append((leaves, x, i, o, u))
    for ids in levels[1:]:
        left, right = _children(forest, ids)
        g = h[left] @ p["U_l"].T + h[right] @ p["U_r"].T + p["b"]
        i, fl, fr, o = (_sigmoid(g[:, k * H:(k + 1) * H]) for k in range(4))
        u = np.tanh(g[:, 4 * H:])
        c[ids] = i * u + fl * c[left] + fr * c[right]
        h[ids] = o * np.tanh(c[ids])
        acts.append((ids, left, right, i, fl, fr, o, u))
    logits = h @ p["W_out"].T + p["b_out"]
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    labels = forest["label"]
    nll = -logp[np.arange(n), labels]
    losses = np.bincount(forest.tree_of, weights=nll, minlength=len(forest)).astype(dt)
    cache = dict(h=h, c=c, acts=acts, logp=logp, logits=logits, labels=labels,
                 words=forest["word"])
    return losses, cache


def backward(cache, params):
    """Gradients of ``losses.sum()`` w.r.t. every parameter (same dict structure)."""
    p = params
    h, c, acts = cache["h"], cache["c"], cache["acts"]
    n = len(h)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dlogits = np.exp(cache["logp"])
    dlogits[np.arange(n), cache["labels"]] -= 1.0
    grads["W_out"] = dlogits.T @ h
    grads["b_out"] = dlogits.sum(axis=0)
    dh = dlogits @ p["W_out"]
    dc = np.zeros_like(c)
    for ids, left, right, i, fl, fr, o, u in reversed(acts[1:]):
        tc = np.tanh(c[ids])
        dhs = dh[ids]
        dcs = dc[ids] + dhs * o * (1.0 - tc * tc)
        dg = np.concatenate([
            dcs * u * i * (1.0 - i),                  # i
            dcs * c[left] * fl * (1.0 - fl),          # f_l
            dcs * c[right] * fr * (1.0 - fr),         # f_r
            dhs * tc * o * (1.0 - o),                 # o
            dcs * i * (1.0 - u * u),                  # u
        ], axis=1)
        grads["U_l"] += dg.T @ h[left]
        grads["U_r"] += dg.T @ h[right]
        grads["b"] += dg.sum(axis=0)
        # np.add.at: correct even if a node were shared (DAG); for trees a plain += works.
        np.add.at(dh, left, dg @ p["U_l"])
        np.add.at(dh, right, dg @ p["U_r"])
        np.add.at(dc, left, dcs * fl)
        np.add.at(dc, right, dcs * fr)
    leaves, x, i, o, u = acts[0]
    tc = np.tanh(c[leaves])
    dhs = dh[leaves]
    dcs = dc[leaves] + dhs * o * (1.0 - tc * tc)
    dg = np.concatenate([dcs * u * i * (1.0 - i),
                         dhs * tc * o * (1.0 - o),
                         dcs * i * (1.0 - u * u)], axis=1)
    grads["W"] = dg.T @ x
    grads["b_leaf"] = dg.sum(axis=0)
    np.add.at(grads["emb"], cache["words"][leaves], dg @ p["W"])
    return grads


def value_and_grad(forest, params):
    """``(per-tree losses, grads of losses.sum())``: the reference for ``vmapper.value_and_grad``."""
    losses, cache = forward(forest, params)
    return losses, backward(cache, params)


def predict(forest, params):
    """``(root predictions, correctly classified nodes per tree)``, like ``model.tree_predict``."""
    _, cache = forward(forest, params)
    pred = cache["logits"].argmax(axis=1)
    correct = np.bincount(forest.tree_of, weights=pred == cache["labels"],
                          minlength=len(forest)).astype(np.int64)
    return pred[forest.root_ids], correct
