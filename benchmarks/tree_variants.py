"""The Tree-LSTM of ``examples/trees/model.py`` written two other ways, for ``benchmarks/trees.py``.

* ``tree_loss_slices`` (the ``vmapper-slices`` peer): the example passes the gates
  packed (``tree_lstm_cell_packed(g, cl, cr)``); this variant writes the same cell as
  the slices a user would otherwise take (``tree_lstm_cell(g[0:H], g[H:2 * H], ...)``):
  the same values and gradients, bitwise, with five slice operations, five copies and
  five tape entries per node more.
* ``tree_loss_unfused`` (the ``vmapper-unfused`` peer): each matrix product assigned to
  a name of its own before the sum, so that ``passes/fuse_linear.py`` leaves the products
  and sums apart: the same values and gradients, bitwise, as separate operations.
"""
from __future__ import annotations

import numpy as np

import vmapper
from vmapper.kernels.activations import tree_lstm_cell
from vmapper.kernels.losses import cross_entropy
from vmapper.kernels.packed_cells import tree_lstm_cell_packed


def node_loss(h, label, p):
    """The example's ``node_loss``, as it is."""
    logits = p["W_out"] @ h + p["b_out"]
    return cross_entropy(logits, label), np.argmax(logits)


def encode_slices(node, p):
    H = p["U_l"].shape[1]
    if node.is_leaf:
        x = p["emb"][node.word]
        g = p["W"] @ x + p["b_leaf"]
        h, c = tree_lstm_cell(g[0:H], 0.0, 0.0, g[H:2 * H], g[2 * H:3 * H], 0.0, 0.0)
        loss = 0.0
        correct = 0
    else:
        hl, cl, loss_l, correct_l, _ = encode_slices(node.left, p)
        hr, cr, loss_r, correct_r, _ = encode_slices(node.right, p)
        g = p["U_l"] @ hl + p["U_r"] @ hr + p["b"]
        h, c = tree_lstm_cell(g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H], g[4 * H:5 * H], cl, cr)
        loss = loss_l + loss_r
        correct = correct_l + correct_r
    nll, pred = node_loss(h, node.label, p)
    return h, c, loss + nll, correct + int(pred == node.label), pred


@vmapper.batched(in_axes=(0, None), memo=True)
def tree_loss_slices(root, params):
    """``model.tree_loss`` with the cells on gate slices."""
    _, _, loss, _, _ = encode_slices(root, params)
    return loss


def node_loss_unfused(h, label, p):
    product = p["W_out"] @ h
    logits = product + p["b_out"]
    return cross_entropy(logits, label), np.argmax(logits)


def encode_unfused(node, p):
    """The example's ``encode`` with its products named before they are summed."""
    if node.is_leaf:
        x = p["emb"][node.word]
        product = p["W"] @ x
        g = product + p["b_leaf"]
        h, c = tree_lstm_cell_packed(g)
        loss = 0.0
        correct = 0
    else:
        hl, cl, loss_l, correct_l, _ = encode_unfused(node.left, p)
        hr, cr, loss_r, correct_r, _ = encode_unfused(node.right, p)
        from_left = p["U_l"] @ hl
        from_right = p["U_r"] @ hr
        g = from_left + from_right + p["b"]
        h, c = tree_lstm_cell_packed(g, cl, cr)
        loss = loss_l + loss_r
        correct = correct_l + correct_r
    nll, pred = node_loss_unfused(h, node.label, p)
    return h, c, loss + nll, correct + int(pred == node.label), pred


@vmapper.batched(in_axes=(0, None), memo=True)
def tree_loss_unfused(root, params):
    """``model.tree_loss`` with its matrix products and sums as separate operations."""
    _, _, loss, _, _ = encode_unfused(root, params)
    return loss


if __name__ == "__main__":
    raise SystemExit("tree_variants.py holds peers of benchmarks/trees.py; run them with "
                     "python benchmarks/trees.py --only vmapper-slices,vmapper-unfused")
