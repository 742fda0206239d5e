"""EdgePreservation: layer battery, NumPy reference of eq. (2) and gradient checks."""

import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.layers.edge_preservation import EdgePreservation
from tests.helpers import finite_difference_gradient, run_layer_test


def _bilinear(x, out_h, out_w):
    """Half-pixel bilinear resize of [B, h, w, c] (align_corners=False), a plain loop."""
    batch, in_h, in_w, channels = x.shape
    out = np.zeros((batch, out_h, out_w, channels))
    for i in range(out_h):
        sy = max((i + 0.5) * in_h / out_h - 0.5, 0.0)
        y0 = int(np.floor(sy))
        y1 = min(y0 + 1, in_h - 1)
        ly = sy - y0
        for j in range(out_w):
            sx = max((j + 0.5) * in_w / out_w - 0.5, 0.0)
            x0 = int(np.floor(sx))
            x1 = min(x0 + 1, in_w - 1)
            lx = sx - x0
            out[:, i, j] = ((1 - ly) * ((1 - lx) * x[:, y0, x0] + lx * x[:, y0, x1])
                            + ly * ((1 - lx) * x[:, y1, x0] + lx * x[:, y1, x1]))
    return out


def _reference(x, body, fine, kernel):
    """Eq. (2) with explicit loops: F_edge = gamma(up(F - F_body) || F_fine), gamma 1x1."""
    residual = _bilinear(x - body, fine.shape[1], fine.shape[2])
    stacked = np.concatenate([residual, fine], axis=-1)
    batch, height, width, _ = stacked.shape
    out = np.zeros((batch, height, width, kernel.shape[1]))
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                for o in range(kernel.shape[1]):
                    out[b, i, j, o] = sum(stacked[b, i, j, c] * kernel[c, o]
                                          for c in range(kernel.shape[0]))
    return out


def _inputs(seed, low=(4, 5), high=(8, 10), channels=6, fine_channels=3, batch=2):
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(batch,) + low + (channels,)).astype("float32")
    body = rng.normal(size=(batch,) + low + (channels,)).astype("float32")
    fine = rng.normal(size=(batch,) + high + (fine_channels,)).astype("float32")
    return x, body, fine


def test_layer_battery():
    x, body, fine = _inputs(0)
    run_layer_test(EdgePreservation, {}, [x, body, fine], (2, 8, 10, 6),
                   expected_num_trainable_weights=1, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("low,high", [((4, 5), (8, 10)), ((3, 3), (7, 5)), ((6, 6), (6, 6))])
def test_matches_equation_2(low, high):
    x, body, fine = _inputs(1, low, high)
    layer = EdgePreservation()
    out = np.asarray(layer(x, body, fine))
    kernel = np.asarray(layer.fusion.kernel)[0, 0]
    assert kernel.shape == (6 + 3, 6)
    np.testing.assert_allclose(out, _reference(x, body, fine, kernel), atol=1e-5)


def test_equal_body_leaves_only_fine_detail():
    """F_body = F: the residual is zero and F_edge is the 1x1 projection of F_fine alone."""
    x, _, fine = _inputs(2)
    layer = EdgePreservation()
    out = np.asarray(layer(x, x, fine))
    kernel = np.asarray(layer.fusion.kernel)[0, 0]
    np.testing.assert_allclose(out, np.einsum("bhwc,co->bhwo", fine, kernel[6:]), atol=1e-5)


def test_gradient_matches_finite_differences():
    x, body, fine = _inputs(3, (2, 3), (4, 6), channels=2, fine_channels=2, batch=1)
    layer = EdgePreservation()
    layer(x, body, fine)
    weights = np.random.RandomState(4).normal(size=(1, 4, 6, 2))
    arrays = [x, body, fine]
    tensors = [tf.constant(a) for a in arrays]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        total = tf.reduce_sum(layer(*tensors) * weights)
    analytic = tape.gradient(total, tensors)
    for index, array in enumerate(arrays):
        def objective(value, index=index):
            args = [a.copy() for a in arrays]
            args[index] = np.asarray(value, "float32")
            return float(np.sum(np.asarray(layer(*args)) * weights))

        numeric = finite_difference_gradient(objective, array, eps=1e-2)
        np.testing.assert_allclose(analytic[index].numpy(), numeric, rtol=1e-3, atol=1e-3)


def test_bad_inputs_raise():
    x, body, fine = _inputs(5)
    with pytest.raises(ValueError, match="body has 4 channels but x has 6"):
        EdgePreservation()(x, body[..., :4], fine)
    with pytest.raises(ValueError, match="fine must have rank 4"):
        EdgePreservation()(x, body, fine[0])
