import numpy as np
import pytest

from kerasfuse.layers import ImageNormalization
from tests.helpers import run_layer_test


def test_caffe_mode_is_bgr_mean_subtraction():
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], "float32")
    got = np.asarray(ImageNormalization("caffe")(pixel)).ravel()
    np.testing.assert_allclose(got, [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)


def test_tf_mode_scales_to_unit_range():
    pixels = np.array([0.0, 127.5, 255.0], "float32").reshape(1, 1, 1, 3)
    got = np.asarray(ImageNormalization("tf")(pixels)).ravel()
    np.testing.assert_allclose(got, [-1.0, 0.0, 1.0])


def test_layer_contract():
    run_layer_test(ImageNormalization, {"mode": "torch"},
                   np.random.RandomState(0).uniform(0, 255, (2, 5, 5, 3)).astype("float32"),
                   expected_output_shape=(2, 5, 5, 3), expected_num_trainable_weights=0)


def test_bad_mode():
    with pytest.raises(ValueError, match="'bgr'"):
        ImageNormalization("bgr")
