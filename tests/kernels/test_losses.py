"""The fused softmax cross-entropy (``vmapper.kernels.losses``): values, gradient, labels, and
its use in per-sample code."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import vmapper
from vmapper.kernels.losses import (_cross_entropy_vjp_xp, _cross_entropy_xp, cross_entropy,
                                    cross_entropy_vjp)
from vmapper.testing import check_grads


def hand_written(logits, label):
    """The max-shifted log-softmax a user writes per sample (the module's formula)."""
    m = np.max(logits, axis=-1, keepdims=True)
    logp = logits - m - np.log(np.sum(np.exp(logits - m), axis=-1, keepdims=True))
    return -np.take_along_axis(logp, np.asarray(label)[..., None], axis=-1)[..., 0]


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 30), classes=st.integers(1, 9), seed=st.integers(0, 2 ** 32 - 1),
       dtype=st.sampled_from([np.float32, np.float64]), scale=st.sampled_from([0.1, 3.0, 80.0]))
def test_cross_entropy_matches_the_hand_written_formula(rows, classes, seed, dtype, scale):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, classes)) * scale).astype(dtype)
    lab = rng.integers(0, classes, size=rows)
    got = cross_entropy(x, lab)
    assert got.dtype == dtype and got.shape == (rows,)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, hand_written(x, lab), rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(_cross_entropy_xp(np, x, lab), hand_written(x, lab), rtol=tol, atol=tol * scale)


def test_cross_entropy_vjp_is_softmax_minus_onehot_and_matches_differences():
    rng = np.random.default_rng(0)
    x, lab, g = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6), rng.normal(size=6)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    expected = g[:, None] * (e / e.sum(axis=1, keepdims=True) - np.eye(4)[lab])
    np.testing.assert_allclose(cross_entropy_vjp(x, lab, g), expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(_cross_entropy_vjp_xp(np, x, lab, g), expected, rtol=1e-14, atol=1e-15)
    eps = 1e-6
    for i, k in [(0, 0), (3, 2), (5, 3)]:
        d = np.zeros_like(x)
        d[i, k] = eps
        numeric = g[i] * (cross_entropy(x + d, lab)[i] - cross_entropy(x - d, lab)[i]) / (2 * eps)
        assert abs(numeric - expected[i, k]) < 1e-8


def test_cross_entropy_broadcasts_labels_and_keeps_batch_shape():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 5))
    np.testing.assert_allclose(cross_entropy(x, 4), hand_written(x, np.full((2, 3), 4)), rtol=1e-14)
    assert np.ndim(cross_entropy(x[0, 0], 1)) == 0


def test_cross_entropy_nonfinite_rows_give_nan_like_the_formula():
    x = np.array([[np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0], [-np.inf, 0.0, 1.0]])
    got = cross_entropy(x, np.array([1, 1, 2]))
    assert np.isnan(got[0]) and np.isnan(got[1])
    np.testing.assert_allclose(got[2], hand_written(x[2:], np.array([2]))[0], rtol=1e-15)


@pytest.mark.parametrize("label", [-1, 3])
def test_cross_entropy_rejects_labels_out_of_range(label):
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        cross_entropy(np.zeros((2, 3)), np.array([0, label]))


def test_cross_entropy_rejects_float_labels():
    with pytest.raises(TypeError, match="integers"):
        cross_entropy(np.zeros(3), 1.0)


# ---- in per-sample code ---------------------------------------------------------------------------

@vmapper.batched(in_axes=(0, 0, None))
def classify(h, label, W):
    logits = W @ h
    return cross_entropy(logits, label) * 2.0, np.argmax(logits)


@vmapper.batched(in_axes=(0, 0, None))
def classify_positive(h, label, W):
    if h[0] > 0:  # only these lanes reach the loss: the others' labels are never checked
        return cross_entropy(W @ h, label)
    return 0.0


def test_batched_cross_entropy_equals_the_per_sample_calls():
    rng = np.random.default_rng(2)
    h, lab, W = rng.normal(size=(40, 6)), rng.integers(0, 5, size=40), rng.normal(size=(5, 6))
    loss, pred = classify(h, lab, W)
    ref = [classify.per_sample(h[k], lab[k], W) for k in range(40)]
    np.testing.assert_allclose(loss, [r[0] for r in ref], rtol=1e-13)
    np.testing.assert_array_equal(pred, [r[1] for r in ref])


def test_batched_cross_entropy_names_the_lane_with_a_bad_label():
    rng = np.random.default_rng(3)
    h, lab, W = rng.normal(size=(10, 6)), rng.integers(0, 5, size=10), rng.normal(size=(5, 6))
    lab[7] = 5
    with pytest.raises(vmapper.LaneError, match=r"IndexError.*out of range for 5 classes.*lane\(s\) \[7\]"):
        classify(h, lab, W)


def test_a_uint64_label_past_int64_is_named_with_its_own_value():
    rng = np.random.default_rng(4)
    h, W = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    lab = np.array([1, 2**63 + 5, 0, 2], dtype=np.uint64)
    with pytest.raises(vmapper.LaneError, match=r"\(value 9223372036854775813 on lane 1\) on lane\(s\) \[1\]"):
        classify(h, lab, W)


def constant_label(z):
    return cross_entropy(z, 7)


def shared_label_rows(z, lab):
    if z[0, 0] > 0:
        return cross_entropy(z, lab).sum()
    return 0.0


def test_a_shared_bad_label_is_named_with_its_value_on_the_lanes_that_use_it():
    z = np.random.default_rng(5).normal(size=(4, 5))
    with pytest.raises(vmapper.LaneError, match=r"out of range for 5 classes \(value 7 on lane 0\).*\[0, 1, 2, 3\]"):
        vmapper.batched(constant_label)(z)
    z = np.random.default_rng(6).normal(size=(6, 3, 5))
    z[:, 0, 0] = [-1, -1, -1, -1, -1, 1]
    with pytest.raises(vmapper.LaneError, match=r"\(value 9 on lane 5\) on lane\(s\) \[5\]"):
        vmapper.batched(shared_label_rows, in_axes=(0, None))(z, np.array([0, 9, 1]))


def test_inactive_lanes_bad_labels_never_raise():
    rng = np.random.default_rng(4)
    h, W = rng.normal(size=(12, 6)), rng.normal(size=(5, 6))
    lab = np.where(h[:, 0] > 0, rng.integers(0, 5, size=12), 99)
    out = classify_positive(h, lab, W)
    ref = [classify_positive.per_sample(h[k], lab[k], W) for k in range(12)]
    np.testing.assert_allclose(out, ref, rtol=1e-13)


def test_gradients_flow_through_batched_cross_entropy():
    rng = np.random.default_rng(5)
    h, lab, W = rng.normal(size=(9, 6)), rng.integers(0, 5, size=9), rng.normal(size=(5, 6))
    check_grads(classify_positive, (h, lab, W), argnums=(0, 2))


@vmapper.batched(in_axes=(0, None))
def shared_logits_rows(lab, W):
    return cross_entropy(W * 1.5, lab).sum()


def test_shared_logits_with_rows_per_sample_and_their_gradient():
    """Logits with a batch axis per sample ((3, 5) rows, broadcast over lanes) and a label
    vector per lane: the per-sample rows, and the shared logits' gradient summed over lanes."""
    rng = np.random.default_rng(6)
    lab, W = rng.integers(0, 5, size=(8, 3)), rng.normal(size=(3, 5))
    out = shared_logits_rows(lab, W)
    np.testing.assert_allclose(out, [shared_logits_rows.per_sample(lab[k], W) for k in range(8)], rtol=1e-13)
    check_grads(shared_logits_rows, (lab, W), argnums=1)


def test_bad_logits_labels_and_gradients_are_named():
    with pytest.raises(TypeError, match="logits must hold real numbers, not complex128"):
        cross_entropy(np.array([[1 + 5j, 2.0]]), [0])
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) do not broadcast to the logits' rows \(2,\)"):
        cross_entropy(np.zeros((2, 3)), [1, 0, 2])
    with pytest.raises(ValueError, match=r"g of shape \(2, 3\) does not broadcast"):
        cross_entropy_vjp(np.zeros((2, 3)), [1, 0], np.ones((2, 3)))
    with pytest.raises(TypeError, match="g must hold real numbers"):
        cross_entropy_vjp(np.zeros((2, 3)), [1, 0], None)
