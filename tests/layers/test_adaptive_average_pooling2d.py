import math

import numpy as np
import pytest

from kerasfuse.layers import AdaptiveAveragePooling2D
from tests.helpers import run_layer_test


def _numpy_adaptive_pool(x, rows, cols):
    b, h, w, c = x.shape
    out = np.zeros((b, rows, cols, c))
    for i in range(rows):
        for j in range(cols):
            r0, r1 = math.floor(i * h / rows), math.ceil((i + 1) * h / rows)
            c0, c1 = math.floor(j * w / cols), math.ceil((j + 1) * w / cols)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("size,hw", [(1, (6, 6)), (3, (7, 5)), ((2, 6), (5, 9)), (6, (6, 6))])
def test_matches_pytorch_bin_rule(size, hw):
    x = np.random.RandomState(0).randn(2, *hw, 3).astype("float32")
    rows, cols = (size, size) if isinstance(size, int) else size
    got = np.asarray(AdaptiveAveragePooling2D(size)(x))
    np.testing.assert_allclose(got, _numpy_adaptive_pool(x, rows, cols), atol=1e-5)


def test_hand_computed_overlapping_bins():
    # H = 3, k = 2: bins [0, 2) and [1, 3) overlap on row 1 (PyTorch rule).
    x = np.array([1.0, 2.0, 4.0], "float32").reshape(1, 3, 1, 1)
    got = np.asarray(AdaptiveAveragePooling2D((2, 1))(x)).ravel()
    np.testing.assert_allclose(got, [1.5, 3.0])


def test_layer_contract():
    run_layer_test(AdaptiveAveragePooling2D, {"output_size": 3},
                   np.random.RandomState(1).randn(2, 7, 8, 4).astype("float32"),
                   expected_output_shape=(2, 3, 3, 4), expected_num_trainable_weights=0)


def test_bad_output_size():
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveAveragePooling2D(0)
