import os
import tempfile

import keras
import numpy as np
import pytest

import kerasfuse
from kerasfuse.layers import LocationInvariantWeightLearner
from kerasfuse.models import intermediates
from kerasfuse.models.dff import build_casenet, build_dff, feature_strides
from tests.models.fit_utils import fit_steps

K = 3


def _edge_batch(size=64):
    """Two images with rectangles of classes 0..2, hand-made edges and ignore rows."""
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    labels = np.zeros((2, size, size), "int32")
    labels[:, 16:40, 8:48] = 1
    labels[1, 40:, :24] = 2
    edges = np.zeros((2, size, size, K), "float32")
    # A pixel is a class-k edge when it or a 4-neighbour differs and one side is class k.
    for axis in (1, 2):
        diff = np.diff(labels, axis=axis) != 0
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis] = slice(None, -1)
        b[axis] = slice(1, None)
        for k in range(K):
            touches = diff & ((labels[tuple(a)] == k) | (labels[tuple(b)] == k))
            edges[tuple(a) + (k,)] = np.maximum(edges[tuple(a) + (k,)], touches)
            edges[tuple(b) + (k,)] = np.maximum(edges[tuple(b) + (k,)], touches)
    labels[0, :3] = 255
    images[0, :3] = 0.0
    return images, {"labels": labels, "edges": edges}


@pytest.mark.parametrize("builder", [build_dff, build_casenet])
def test_outputs_at_image_size_float32(builder):
    model = builder(K, backbone="resnet_tiny")
    out = model(np.zeros((2, 64, 64, 3), "float32"))
    assert sorted(out) == ["logits", "side5_logits"]
    for value in out.values():
        assert tuple(value.shape) == (2, 64, 64, K)
        assert value.dtype == "float32"
    odd = model(np.zeros((1, 45, 61, 3), "float32"))
    assert {tuple(v.shape) for v in odd.values()} == {(1, 45, 61, K)}


def test_reference_deconvolutions_and_stride_one_stem():
    model = build_dff(K, backbone="resnet_tiny", input_shape=(64, 64, 3))
    kernels = {name: model.get_layer(name).deconv.kernel.shape[:2]
               for name in ("side1", "side2", "side3", "side5", "side5_w")}
    assert kernels == {"side1": (4, 4), "side2": (8, 8), "side3": (16, 16),
                       "side5": (16, 16), "side5_w": (16, 16)}
    assert model.get_layer("side5_w").deconv.filters == 4 * K
    # The reference network: stride-1 stem, res4 strided, res5 dilated (res5 at stride 8).
    ref = build_dff(K, backbone="resnet_tiny", input_shape=(64, 64, 3), stem_stride=1,
                    output_stride=16)
    assert ref.get_layer("side1").deconv is None  # reference Side1: full resolution
    kernels = {name: ref.get_layer(name).deconv.kernel.shape[:2]
               for name in ("side2", "side3", "side5", "side5_w")}
    assert kernels == {"side2": (4, 4), "side3": (8, 8), "side5": (16, 16),
                       "side5_w": (16, 16)}
    out = ref(np.zeros((1, 64, 64, 3), "float32"))
    assert tuple(out["logits"].shape) == (1, 64, 64, K)


def test_strides_from_fixed_odd_input_and_prebuilt_backbones():
    model = build_dff(K, backbone="resnet_tiny", input_shape=(65, 47, 3))
    assert model.get_layer("side5").upsample_factor == 8
    assert tuple(model.outputs[0].shape) == (None, 65, 47, K)
    net = kerasfuse.build_backbone("resnet_tiny", input_shape=(33, 40, 3), stem_stride=1,
                                   output_stride=16)
    assert feature_strides(net) == {"stem": 1, "res2": 2, "res3": 4, "res4": 8, "res5": 8}
    casenet = build_casenet(K, backbone=net, input_shape=(33, 40, 3))
    assert casenet.get_layer("side1").deconv is None
    assert casenet.get_layer("side5").upsample_factor == 8


def test_dff_fusion_equals_numpy_weighted_sum():
    model = build_dff(K, backbone="resnet_tiny")
    images, _ = _edge_batch(32)
    probe = intermediates(model, ["shared_concat", "fusion_weights", "fuse", "side1",
                                  "side5"])
    parts = {k: keras.ops.convert_to_numpy(v) for k, v in probe([images]).items()}
    a_cat, weights = parts["shared_concat"], parts["fusion_weights"]
    assert a_cat.shape == weights.shape == (2, 32, 32, 4 * K)
    expected = np.zeros((2, 32, 32, K))
    for i in range(K):
        for j in range(4):
            expected[..., i] += weights[..., 4 * i + j] * a_cat[..., 4 * i + j]
    np.testing.assert_allclose(parts["fuse"], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(a_cat[..., 0], parts["side5"][..., 0])
    np.testing.assert_array_equal(a_cat[..., 5], parts["side1"][..., 0])
    out = model(images)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["logits"]), parts["fuse"])


def test_casenet_fusion_is_a_fixed_grouped_conv():
    model = build_casenet(K, backbone="resnet_tiny")
    assert all(model.get_layer(n).bn is None for n in ("side1", "side2", "side3", "side5"))
    images, _ = _edge_batch(32)
    probe = intermediates(model, ["shared_concat", "fuse"])
    parts = {k: keras.ops.convert_to_numpy(v) for k, v in probe([images]).items()}
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in model.get_layer("fuse").weights)
    assert kernel.shape == (1, 1, 4, K)
    expected = np.stack([parts["shared_concat"][..., 4 * i:4 * i + 4] @ kernel[0, 0, :, i]
                         + bias[i] for i in range(K)], axis=-1)
    np.testing.assert_allclose(parts["fuse"], expected, rtol=1e-4, atol=1e-4)


def test_location_invariant_learner_and_softmax():
    model = build_dff(K, backbone="resnet_tiny", weight_learner="invariant",
                      softmax_weights=True)
    assert isinstance(model.get_layer("fusion_weights"), LocationInvariantWeightLearner)
    images, _ = _edge_batch(32)
    weights = keras.ops.convert_to_numpy(
        intermediates(model, ["fusion_weights"])([images])["fusion_weights"])
    assert weights.shape == (2, 1, 1, 4 * K)
    np.testing.assert_allclose(weights.reshape(2, K, 4).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dff", "casenet"])
def test_fit_steps_decrease_loss(name):
    images, targets = _edge_batch()
    model = kerasfuse.build_model(name, K, backbone="resnet_tiny")
    losses = fit_steps(model, kerasfuse.build_loss(name, K), images, targets, steps=6,
                       lr=0.01)
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_save_and_reload_same_outputs():
    model = build_dff(K, backbone="resnet_tiny", input_shape=(None, None, 3))
    images, _ = _edge_batch(32)
    before = model(images)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dff.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    after = reloaded(images)
    for key in before:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(before[key]),
                                   keras.ops.convert_to_numpy(after[key]), atol=1e-5)


def test_mixed_precision_outputs_stay_float32():
    keras.config.set_dtype_policy("mixed_float16")
    model = build_dff(K, backbone="resnet_tiny")
    out = model(np.zeros((1, 32, 32, 3), "float32"))
    assert all(v.dtype == "float32" for v in out.values())
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(v))) for v in out.values())
    assert model.get_layer("side1").compute_dtype == "float16"
    assert model.get_layer("side5").compute_dtype == "float32"


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 0}, "num_classes must be an integer >= 1, got 0"),
    ({"num_classes": 2, "weight_learner": "fixed"}, "weight_learner must be one of"),
    ({"num_classes": 2, "stem_stride": 4}, "stem_stride must be 1 or 2, got 4"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_dff(backbone="resnet_tiny", **kwargs)


def _head_params(k, c_stem, c2, c3, c5, dff):
    """Hand count of the DFF / CASENet head parameters (stride-2 stem, output stride 8)."""
    def side(c_in, filters, factor, bn):
        return c_in * filters + filters + (4 * filters if bn else 0) + \
            (2 * factor) ** 2 * filters * filters

    total = (side(c_stem, 1, 2, dff) + side(c2, 1, 4, dff) + side(c3, 1, 8, dff)
             + side(c5, k, 8, dff))
    if dff:
        w = 4 * k
        total += side(c5, w, 8, True) + 3 * (w * w + w) + 3 * 4 * w
    else:
        total += 4 * k + k  # K-grouped 1x1 conv
    return total


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "resnet101"])
def test_build_at_512_with_resnets(backbone):
    for builder, dff in ((build_dff, True), (build_casenet, False)):
        model = builder(19, backbone=backbone, input_shape=(512, 512, 3))
        assert {tuple(o.shape) for o in model.outputs} == {(None, 512, 512, 19)}
        head = model.count_params() - model.get_layer("backbone").count_params()
        assert head == _head_params(19, 64, 256, 512, 2048, dff)
        assert model.get_layer("backbone").count_params() > (4e7 if backbone == "resnet101"
                                                             else 2e7)
