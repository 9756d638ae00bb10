"""Binary constituency Tree-LSTM (Tai, Socher & Manning 2015), written per tree for vmapper.

The code below handles ONE tree, recursively, with plain numpy on per-sample vectors;
``@vmapper.batched(in_axes=(0, None), memo=True)`` runs it over a whole batch of trees
(a ``Forest``'s roots). ``params`` is broadcast (``in_axes=None``): the same weights
for every tree. ``memo=True`` evaluates each node once, bottom-up by height: every
leaf of the batch in one step, then every node of height 2, and so on, the schedule
of hand-batched Tree-LSTMs (without it, the recursion is batched by depth from the
roots: the same results, with the leaves spread over all depths).

Leaf (word vector ``x = emb[word]``)::

    i, o, u = split(W x + b_leaf)          c = sigmoid(i) * tanh(u)
                                           h = sigmoid(o) * tanh(c)

Internal node (children ``l``, ``r``; one forget gate per child)::

    i, fl, fr, o, u = split(U_l h_l + U_r h_r + b)
    c = sigmoid(i) * tanh(u) + sigmoid(fl) * c_l + sigmoid(fr) * c_r
    h = sigmoid(o) * tanh(c)

The gate nonlinearities and the cell update are one call of the library's fused
kernel ``vmapper.kernels.packed_cells.tree_lstm_cell_packed``, which takes the
gates as the matrix product made them (``[i | f_l | f_r | o | u]``, or a leaf's
``[i | o | u]``): batched, it is one launch over all lanes, and its gradient one
fused backward pass, instead of a dozen numpy operations each.

Every node gets a softmax classifier ``softmax(W_out h + b_out)``; the tree's loss is the
summed cross-entropy of all its nodes' labels (the library's fused
``vmapper.kernels.losses.cross_entropy``: one launch and one tape entry per level
for the max-shifted log-softmax that would otherwise take half a dozen).
"""
from __future__ import annotations

import numpy as np

import vmapper
from vmapper.kernels.packed_cells import tree_lstm_cell_packed
from vmapper.kernels.losses import cross_entropy

PARAM_NAMES = ("emb", "W", "b_leaf", "U_l", "U_r", "b", "W_out", "b_out")


def init_params(vocab_size, emb_dim=300, hidden=150, n_classes=5, seed=0, dtype=np.float64):
    """Parameters as a dict of float arrays (uniform init in +-1/sqrt(fan_in), zero biases)."""
    rng = np.random.default_rng(seed)

    def unif(shape, fan_in):
        s = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-s, s, size=shape).astype(dtype)

    H = hidden
    return {
        "emb": rng.normal(0.0, 0.1, size=(vocab_size, emb_dim)).astype(dtype),
        "W": unif((3 * H, emb_dim), emb_dim),        # leaf gates i, o, u
        "b_leaf": np.zeros(3 * H, dtype=dtype),
        "U_l": unif((5 * H, H), 2 * H),              # internal gates i, f_l, f_r, o, u
        "U_r": unif((5 * H, H), 2 * H),
        "b": np.zeros(5 * H, dtype=dtype),
        "W_out": unif((n_classes, H), H),
        "b_out": np.zeros(n_classes, dtype=dtype),
    }


def node_loss(h, label, p):
    """Cross-entropy of this node's label under softmax(W_out h + b_out), and the prediction."""
    logits = p["W_out"] @ h + p["b_out"]
    return cross_entropy(logits, label), np.argmax(logits)


def encode(node, p):
    """``(h, c, loss_sum, n_correct, pred)`` for the subtree at ``node``.

    ``loss_sum`` and ``n_correct`` are summed over the subtree's nodes; ``pred`` is this
    node's predicted class.
    """
    if node.is_leaf:
        x = p["emb"][node.word]
        g = p["W"] @ x + p["b_leaf"]
        # A leaf has no children: c = sigmoid(i) * tanh(u), h = sigmoid(o) * tanh(c).
        h, c = tree_lstm_cell_packed(g)
        loss = 0.0
        correct = 0
    else:
        hl, cl, loss_l, correct_l, _ = encode(node.left, p)
        hr, cr, loss_r, correct_r, _ = encode(node.right, p)
        g = p["U_l"] @ hl + p["U_r"] @ hr + p["b"]
        h, c = tree_lstm_cell_packed(g, cl, cr)
        loss = loss_l + loss_r
        correct = correct_l + correct_r
    nll, pred = node_loss(h, node.label, p)
    return h, c, loss + nll, correct + int(pred == node.label), pred


@vmapper.batched(in_axes=(0, None), memo=True)
def tree_loss(root, params):
    """The tree's loss: summed cross-entropy over all its nodes (a float scalar)."""
    _, _, loss, _, _ = encode(root, params)
    return loss


@vmapper.batched(in_axes=(0, None), memo=True)
def tree_predict(root, params):
    """``(root prediction, correctly classified nodes, root logits)`` for one tree.

    The root logits let the caller derive other decisions, e.g. SST's binary
    positive/negative prediction from the fine-grained classifier.
    """
    h, _, _, correct, pred = encode(root, params)
    logits = params["W_out"] @ h + params["b_out"]
    return pred, correct, logits
