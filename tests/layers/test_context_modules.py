import numpy as np
import pytest

from kerasfuse.layers import ASPP, PyramidPooling
from tests.helpers import run_layer_test


def test_pyramid_pooling_contract():
    x = np.random.RandomState(0).randn(2, 8, 8, 12).astype("float32")
    layer = run_layer_test(PyramidPooling, {"channels": 6}, x, expected_output_shape=(2, 8, 8, 6))
    # 4 branches (conv + BN gamma/beta) + bottleneck conv + BN gamma/beta.
    assert len(layer.trainable_weights) == 4 * 3 + 3
    assert layer.branch_convs[0].kernel.shape == (1, 1, 12, 3)  # 12 // 4 bins
    assert layer.bottleneck_conv.kernel.shape == (3, 3, 12 + 4 * 3, 6)


def test_pyramid_pooling_handles_sizes_not_divisible_by_bins():
    out = PyramidPooling(bins=(1, 2, 3, 6), channels=4, bottleneck_kernel=1)(
        np.ones((1, 7, 11, 8), "float32"))
    assert tuple(out.shape) == (1, 7, 11, 4)


def test_aspp_contract_and_rates():
    x = np.random.RandomState(0).randn(2, 8, 8, 6).astype("float32")
    layer = run_layer_test(ASPP, {"channels": 4, "output_stride": 16}, x,
                           expected_output_shape=(2, 8, 8, 4))
    assert layer.rates == (6, 12, 18)
    assert ASPP(output_stride=8).rates == (12, 24, 36)
    assert [c.dilation_rate for c in layer.convs[1:]] == [(6, 6), (12, 12), (18, 18)]


@pytest.mark.parametrize("cls,kwargs,match", [
    (PyramidPooling, {"bins": (1, 0)}, "bins"),
    (PyramidPooling, {"bottleneck_kernel": 5}, "bottleneck_kernel must be 1 or 3, got 5"),
    (ASPP, {"output_stride": 32}, "output_stride must be 8 or 16, got 32"),
    (ASPP, {"rates": (1, 2)}, "three positive"),
])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)
