import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasfuse.blocks import BN_EPSILON
from kerasfuse.layers import SideFeatureNormalization
from kerasfuse.layers.side_feature_normalization import bilinear_upsampling_kernel
from tests.helpers import finite_difference_gradient, run_layer_test


def _numpy_side(x, conv_kernel, conv_bias, deconv_kernel, factor, out_size, bn_scale=1.0):
    """1x1 conv -> scale -> transposed conv (k=2f, s=f) -> drop f/2 border -> crop, by loops."""
    y = (np.einsum("bhwc,cf->bhwf", x, conv_kernel[0, 0]) + conv_bias) * bn_scale
    if factor == 1:
        return y[:, :out_size[0], :out_size[1]]
    b, h, w, _ = y.shape
    k = deconv_kernel.shape[0]
    full = np.zeros((b, (h - 1) * factor + k, (w - 1) * factor + k, deconv_kernel.shape[2]))
    for i in range(h):
        for j in range(w):
            for a in range(k):
                for c in range(k):
                    # Keras kernel layout [k, k, out, in].
                    full[:, i * factor + a, j * factor + c] += y[:, i, j] @ deconv_kernel[a, c].T
    off = factor // 2
    return full[:, off:off + out_size[0], off:off + out_size[1]]


def test_contract():
    rng = np.random.RandomState(0)
    feats = rng.randn(2, 4, 4, 6).astype("float32")
    # Only the reference's shape is used, so an integer image keeps it out of the helper's
    # input-gradient check.
    image = rng.randint(0, 255, (2, 16, 16, 3)).astype("int32")
    layer = run_layer_test(SideFeatureNormalization, {"filters": 2, "upsample_factor": 4},
                           [feats, image], expected_output_shape=(2, 16, 16, 2),
                           expected_num_trainable_weights=5,
                           expected_num_non_trainable_weights=2)
    assert layer.deconv.kernel.shape == (8, 8, 2, 2)


def test_factor_one_has_no_deconvolution():
    feats = np.random.RandomState(1).randn(1, 8, 8, 4).astype("float32")
    layer = run_layer_test(SideFeatureNormalization,
                           {"filters": 1, "upsample_factor": 1, "use_batch_norm": False},
                           [feats, np.zeros((1, 8, 8, 3), "int32")],
                           expected_output_shape=(1, 8, 8, 1),
                           expected_num_trainable_weights=2,
                           expected_num_non_trainable_weights=0)
    assert layer.deconv is None and layer.bn is None


@pytest.mark.parametrize("factor,feature_size,image_size", [
    (2, (4, 5), (8, 10)),    # exact multiple: k4 s2
    (4, (3, 3), (11, 12)),   # odd image size: crop of the x4 map (k8 s4)
    (8, (2, 3), (16, 17)),   # k16 s8
])
def test_matches_numpy_transposed_convolution_and_crop(factor, feature_size, image_size):
    rng = np.random.RandomState(factor)
    x = rng.randn(2, *feature_size, 3).astype("float32")
    ref = np.zeros((2, *image_size, 3), "float32")
    layer = SideFeatureNormalization(2, factor, use_batch_norm=False, bilinear_init=False)
    out = keras.ops.convert_to_numpy(layer(x, ref))
    conv_k, conv_b = (keras.ops.convert_to_numpy(w) for w in layer.conv.weights)
    deconv_k = keras.ops.convert_to_numpy(layer.deconv.kernel)
    expected = _numpy_side(x, conv_k, conv_b, deconv_k, factor, image_size)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_inference_scale():
    # Fresh BN in inference: (x - 0) / sqrt(1 + eps) * 1 + 0.
    rng = np.random.RandomState(3)
    x = rng.randn(1, 3, 3, 4).astype("float32")
    layer = SideFeatureNormalization(1, 2, bilinear_init=False)
    out = keras.ops.convert_to_numpy(layer(x, np.zeros((1, 6, 6, 1), "float32"),
                                           training=False))
    conv_k, conv_b = (keras.ops.convert_to_numpy(w) for w in layer.conv.weights)
    expected = _numpy_side(x, conv_k, conv_b, keras.ops.convert_to_numpy(layer.deconv.kernel),
                           2, (6, 6), bn_scale=1.0 / np.sqrt(1.0 + BN_EPSILON))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_bilinear_kernel_hand_values():
    taps = np.array([0.25, 0.75, 0.75, 0.25])  # 1 - |x - 1.5| / 2 for x = 0..3
    kernel = bilinear_upsampling_kernel(2, 2)
    np.testing.assert_allclose(kernel[:, :, 0, 0], np.outer(taps, taps))
    np.testing.assert_allclose(kernel[:, :, 1, 1], np.outer(taps, taps))
    np.testing.assert_array_equal(kernel[:, :, 0, 1], 0.0)


def test_bilinear_init_upsamples_a_constant_to_a_constant_interior():
    layer = SideFeatureNormalization(1, 4, use_batch_norm=False)
    x = np.ones((1, 4, 4, 1), "float32")
    out = keras.ops.convert_to_numpy(layer(x, np.zeros((1, 16, 16, 1), "float32")))
    w, b = (float(np.asarray(v).ravel()[0]) for v in layer.conv.weights)
    interior = out[0, 2:-2, 2:-2, 0]
    np.testing.assert_allclose(interior, np.full_like(interior, w + b), rtol=1e-5)


def test_dynamic_sizes_in_a_functional_model_equal_the_static_crop():
    feats = keras.Input((None, None, 5))
    image = keras.Input((None, None, 3))
    layer = SideFeatureNormalization(3, 8)
    model = keras.Model([feats, image], layer(feats, image))
    # A graph with unknown spatial sizes, as model.fit and SavedModel export trace it.
    graph = tf.function(lambda a, b: model([a, b]), input_signature=[
        tf.TensorSpec((None, None, None, 5)), tf.TensorSpec((None, None, None, 3))])
    rng = np.random.RandomState(7)
    for fh, fw, ih, iw in ((2, 3, 13, 20), (4, 4, 32, 29)):
        x = rng.randn(1, fh, fw, 5).astype("float32")
        ref = np.zeros((1, ih, iw, 3), "float32")
        out = graph(x, ref).numpy()
        assert out.shape == (1, ih, iw, 3)
        # Unknown static sizes take the crop + same-size resize path: still the exact crop.
        np.testing.assert_allclose(out, keras.ops.convert_to_numpy(layer(x, ref)), atol=1e-6)


def test_smaller_upsampled_map_is_resized_to_the_image():
    layer = SideFeatureNormalization(1, 4)
    out = layer(np.ones((1, 2, 2, 3), "float32"), np.zeros((1, 10, 9, 3), "float32"))
    assert tuple(out.shape) == (1, 10, 9, 1)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))


def test_gradient_matches_finite_differences():
    rng = np.random.RandomState(4)
    x = rng.randn(1, 2, 2, 2)
    weights = rng.randn(1, 7, 7, 1)
    layer = SideFeatureNormalization(1, 4, use_batch_norm=False, bilinear_init=False,
                                     dtype="float64")
    ref = np.zeros((1, 7, 7, 1))
    layer(x, ref)
    conv_k, conv_b = (keras.ops.convert_to_numpy(w) for w in layer.conv.weights)
    deconv_k = keras.ops.convert_to_numpy(layer.deconv.kernel)

    def numpy_loss(value):
        return float(np.sum(weights * _numpy_side(value, conv_k, conv_b, deconv_k, 4, (7, 7))))

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(weights * layer(xt, ref))
    np.testing.assert_allclose(tape.gradient(loss, xt).numpy(),
                               finite_difference_gradient(numpy_loss, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"filters": 0, "upsample_factor": 2}, "filters must be an integer >= 1, got 0"),
    ({"filters": 1, "upsample_factor": 3}, "upsample_factor must be 1 or a positive even"),
    ({"filters": 1, "upsample_factor": 0}, "got 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SideFeatureNormalization(**kwargs)
