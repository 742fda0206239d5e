import numpy as np
import pytest

from kerasfuse.layers import DenselyAdjacentPrediction
from tests.helpers import run_layer_test
from tests.layers.test_global_convolution import check_input_gradient


def numpy_dap(x, k, border):
    """ExFuse eq. 1 by explicit loops: y[i,j,c] = mean_{l,m} x[i+l-k//2, j+m-k//2, c*k*k+l*k+m]."""
    b, h, w, channels = x.shape
    classes, half = channels // (k * k), k // 2
    out = np.zeros((b, h, w, classes))
    for i in range(h):
        for j in range(w):
            for c in range(classes):
                total, reads = np.zeros(b), 0
                for l in range(k):  # noqa: E741 — the paper's index names
                    for m in range(k):
                        ii, jj = i + l - half, j + m - half
                        if 0 <= ii < h and 0 <= jj < w:
                            total += x[:, ii, jj, c * k * k + l * k + m]
                            reads += 1
                out[:, i, j, c] = total / (reads if border == "exclude" else k * k)
    return out


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("border", ["exclude", "zero"])
def test_matches_numpy_loop(k, border):
    x = np.random.RandomState(k).randn(2, 6, 7, 2 * k * k).astype("float32")
    got = np.asarray(DenselyAdjacentPrediction(k, border=border)(x))
    np.testing.assert_allclose(got, numpy_dap(x, k, border), atol=1e-5)


@pytest.mark.parametrize("k", [3, 5])
def test_constant_input_equals_plain_channel_average(k):
    # Each channel spatially constant: away from the border every read exists, so the
    # output is the plain mean of the class's k*k channels (both border modes).
    values = np.random.RandomState(0).randn(3 * k * k)
    x = np.broadcast_to(values, (1, 9, 9, 3 * k * k)).astype("float32")
    plain = values.reshape(3, k * k).mean(axis=1)
    half = k // 2
    for border in ("exclude", "zero"):
        got = np.asarray(DenselyAdjacentPrediction(k, border=border)(x))
        np.testing.assert_allclose(got[0, half:9 - half, half:9 - half], np.broadcast_to(
            plain, (9 - 2 * half, 9 - 2 * half, 3)), atol=1e-5)


def test_border_modes_hand_computed():
    # All-ones input, k = 3: "exclude" averages only in-image reads -> 1 everywhere;
    # "zero" pads with 0 -> corner 4/9, edge 6/9, interior 1.
    x = np.ones((1, 4, 4, 9), "float32")
    excluded = np.asarray(DenselyAdjacentPrediction(3, border="exclude")(x))[0, :, :, 0]
    np.testing.assert_allclose(excluded, np.ones((4, 4)), atol=1e-6)
    zero = np.asarray(DenselyAdjacentPrediction(3, border="zero")(x))[0, :, :, 0]
    expected = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]]) / 9.0
    np.testing.assert_allclose(zero, expected, atol=1e-6)


def test_single_vote_lands_at_its_shifted_position():
    # Channel (c=0, l=0, m=2) at pixel (3, 1) votes for pixel (3 - 0 + 1, 1 - 2 + 1) = (4, 0).
    x = np.zeros((1, 6, 6, 9), "float32")
    x[0, 3, 1, 0 * 3 + 2] = 9.0
    got = np.asarray(DenselyAdjacentPrediction(3, border="zero")(x))[0, :, :, 0]
    expected = np.zeros((6, 6))
    expected[4, 0] = 1.0
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_input_gradient_matches_finite_differences():
    layer = DenselyAdjacentPrediction(3, dtype="float64")
    check_input_gradient(layer, [np.random.RandomState(1).randn(1, 3, 4, 9)])


def test_layer_contract():
    run_layer_test(DenselyAdjacentPrediction, {"kernel_size": 3},
                   np.random.RandomState(2).randn(2, 8, 8, 27).astype("float32"),
                   expected_output_shape=(2, 8, 8, 3), expected_num_trainable_weights=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        DenselyAdjacentPrediction(4)
    with pytest.raises(ValueError, match="border"):
        DenselyAdjacentPrediction(3, border="reflect")
    with pytest.raises(ValueError, match="divisible by 9, got 10"):
        DenselyAdjacentPrediction(3)(np.zeros((1, 4, 4, 10), "float32"))
