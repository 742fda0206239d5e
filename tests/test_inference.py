"""Whole / sliding-window / multi-scale + flip inference (kerasfuse.inference)."""

import keras
import numpy as np
import pytest

from kerasfuse.inference import predict, predict_labels, window_starts


def conv_model(kernel_size, classes=3, seed=0):
    """A translation-equivariant dict-output model (conv with 'same' zero padding)."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, kernel_size, padding="same", activation="relu",
                            kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    logits = keras.layers.Conv2D(classes, 1, kernel_initializer=keras.initializers.GlorotUniform(
        seed + 1))(x)
    return keras.Model(inputs, {"logits": logits, "aux_logits": logits * 0.0})


def image(height=12, width=16, batch=2):
    return np.random.default_rng(3).uniform(0, 255, (batch, height, width, 3)).astype("float32")


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_whole_is_softmax_or_sigmoid_of_logits():
    model, x = conv_model(3), image()
    logits = keras.ops.convert_to_numpy(model(x)["logits"])
    np.testing.assert_allclose(predict(model, x), softmax(logits), atol=1e-6)
    np.testing.assert_allclose(predict(model, x, task="edge"), 1 / (1 + np.exp(-logits)),
                               atol=1e-6)
    assert predict(model, x[0]).shape == (12, 16, 3)  # unbatched image in, unbatched out
    np.testing.assert_array_equal(predict_labels(model, x), softmax(logits).argmax(-1))


def test_slide_equals_whole_when_crop_is_image():
    model, x = conv_model(3), image()
    np.testing.assert_allclose(
        predict(model, x, mode="slide", crop_size=(12, 16)), predict(model, x), atol=1e-6
    )


@pytest.mark.parametrize("crop, stride", [((5, 7), (3, 4)), (4, 4), ((20, 20), None)])
def test_slide_equals_whole_for_pointwise_model(crop, stride):
    # A 1x1-conv model sees each pixel alone, so overlapping windows and mean padding
    # (crop larger than the image) cannot change any pixel's prediction.
    model, x = conv_model(1), image()
    np.testing.assert_allclose(
        predict(model, x, mode="slide", crop_size=crop, stride=stride),
        predict(model, x), atol=1e-6,
    )


def test_slide_averages_overlapping_windows():
    # Window-mean "model": each window predicts its mean intensity everywhere.
    def window_mean(batch):
        mean = batch.mean(axis=(1, 2, 3), keepdims=True)
        return {"logits": mean * np.ones_like(batch[..., :1])}

    x = np.broadcast_to(np.array([0.0, 3.0, 6.0, 9.0])[None, None, :, None],
                        (1, 1, 4, 3)).astype("float32")
    got = predict(window_mean, x, mode="slide", crop_size=(1, 2), stride=1, task="edge")

    def sig(v):
        return 1 / (1 + np.exp(-v))

    # Windows cover columns [0,1], [1,2], [2,3] with means 1.5, 4.5, 7.5.
    expected = [sig(1.5), (sig(1.5) + sig(4.5)) / 2, (sig(4.5) + sig(7.5)) / 2, sig(7.5)]
    np.testing.assert_allclose(got[0, 0, :, 0], expected, atol=1e-6)


def test_window_starts_cover_and_end_at_border():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 2) == [0]


def test_multiscale_single_scale_no_flip_equals_whole():
    model, x = conv_model(3), image()
    np.testing.assert_allclose(
        predict(model, x, mode="multiscale", scales=(1.0,), flip=False), predict(model, x),
        atol=1e-6,
    )


def test_flip_averages_with_flipped_prediction():
    model, x = conv_model(3), image()
    plain = softmax(keras.ops.convert_to_numpy(model(x)["logits"]))
    flipped = softmax(keras.ops.convert_to_numpy(model(x[:, :, ::-1].copy())["logits"]))
    expected = (plain + flipped[:, :, ::-1]) / 2
    np.testing.assert_allclose(
        predict(model, x, mode="multiscale", scales=(1.0,), flip=True), expected, atol=1e-6
    )


def test_multiscale_constant_image_pointwise_model():
    # A constant image stays constant under bilinear resizing, so every scale agrees.
    model = conv_model(1)
    x = np.full((1, 8, 10, 3), 100.0, "float32")
    whole = predict(model, x)
    got = predict(model, x, mode="multiscale", scales=(0.5, 1.0, 1.5), flip=True)
    assert got.shape == whole.shape
    np.testing.assert_allclose(got, whole, atol=1e-5)
    got_slide = predict(model, x, mode="multiscale", scales=(0.75, 1.25), crop_size=6)
    np.testing.assert_allclose(got_slide, whole, atol=1e-5)


def test_bad_arguments():
    model, x = conv_model(1), image()
    with pytest.raises(ValueError, match="mode"):
        predict(model, x, mode="tiles")
    with pytest.raises(ValueError, match="crop_size"):
        predict(model, x, mode="slide")
    with pytest.raises(ValueError, match="stride"):
        predict(model, x, mode="slide", crop_size=4, stride=5)
    with pytest.raises(ValueError, match="task"):
        predict(model, x, task="depth")
    with pytest.raises(ValueError, match="shape"):
        predict(model, x[..., :2])
    with pytest.raises(ValueError, match="no key 'edges'"):
        predict(model, x, output_key="edges")
    with pytest.raises(ValueError, match="scales"):
        predict(model, x, mode="multiscale", scales=(0.0,))
