import keras
import numpy as np
import pytest

from kerasfuse.backbones import (
    BACKBONES,
    FEATURE_NAMES,
    build_backbone,
    copy_weights_by_name,
    dilated_resnet,
)


def _strides(model, size=64):
    out = model(np.zeros((1, size, size, 3), "float32"))
    return {k: size // out[k].shape[1] for k in FEATURE_NAMES}, out


@pytest.mark.parametrize("output_stride,expected", [
    (8, {"stem": 2, "res2": 4, "res3": 8, "res4": 8, "res5": 8}),
    (16, {"stem": 2, "res2": 4, "res3": 8, "res4": 16, "res5": 16}),
    (32, {"stem": 2, "res2": 4, "res3": 8, "res4": 16, "res5": 32}),
])
def test_feature_strides_follow_output_stride(output_stride, expected):
    model = build_backbone("resnet_tiny", output_stride=output_stride)
    strides, out = _strides(model)
    assert strides == expected
    assert [out[k].shape[-1] for k in FEATURE_NAMES] == [64, 32, 64, 128, 256]


def test_stride_one_stem_keeps_full_resolution():
    strides, _ = _strides(build_backbone("resnet_tiny", stem_stride=1))
    assert strides == {"stem": 1, "res2": 2, "res3": 4, "res4": 4, "res5": 4}


def test_dilation_replaces_stride_with_unchanged_weight_shapes():
    dilated = build_backbone("resnet_tiny", output_stride=8)
    plain = build_backbone("resnet_tiny", output_stride=32)
    assert [w.shape for w in dilated.weights] == [w.shape for w in plain.weights]
    assert dilated.get_layer("conv5_block1_2_conv").dilation_rate == (4, 4)
    assert dilated.get_layer("conv4_block1_2_conv").dilation_rate == (2, 2)
    assert plain.get_layer("conv5_block1_1_conv").strides == (2, 2)


def test_depths_override_for_layer_rearrangement():
    model = build_backbone("resnet_tiny", depths=(2, 1, 3, 1))
    names = {layer.name for layer in model.layers}
    assert "conv4_block3_out" in names and "conv4_block4_out" not in names
    assert "conv2_block2_out" in names


@pytest.mark.slow
@pytest.mark.parametrize("arch,reference", [("resnet50", keras.applications.ResNet50)])
def test_keras_applications_weights_map_by_name(arch, reference):
    """Copying weights from keras.applications gives identical stage outputs (stride 32)."""
    ref = reference(include_top=False, weights=None, input_shape=(64, 64, 3))
    ours = build_backbone(arch, input_shape=(64, 64, 3), output_stride=32)
    assert copy_weights_by_name(ref, ours) == sum(1 for layer in ref.layers if layer.weights)
    image = np.random.RandomState(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    preprocessed = keras.applications.resnet.preprocess_input(image.copy())
    probe = keras.Model(ref.inputs, [ref.get_layer(f"conv{i}_block{n}_out").output
                                     for i, n in ((2, 3), (3, 4), (4, 6), (5, 3))])
    expected = probe(preprocessed)
    got = ours(image)
    for key, want in zip(("res2", "res3", "res4", "res5"), expected):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want), rtol=1e-4,
                                   atol=1e-3)


@pytest.mark.slow
def test_resnet101_builds_with_keras_names():
    model = build_backbone("resnet101", input_shape=(512, 512, 3))
    ref = keras.applications.ResNet101(include_top=False, weights=None,
                                       input_shape=(512, 512, 3))
    assert model.count_params() == ref.count_params()
    assert {layer.name for layer in ref.layers if layer.weights} <= {
        layer.name for layer in model.layers}


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown backbone 'resnet7'"):
        build_backbone("resnet7")
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32, got 4"):
        build_backbone("resnet_tiny", output_stride=4)
    with pytest.raises(ValueError, match="stem_stride"):
        dilated_resnet(stem_stride=3)
    with pytest.raises(ValueError, match="depths"):
        build_backbone("resnet_tiny", depths=(1, 1, 0, 1))
    with pytest.raises(ValueError, match="standard depths"):
        build_backbone("resnet50", depths=(8, 8, 9, 8), weights="/nonexistent.h5")
    assert "resnet50" in BACKBONES and "resnet_tiny" in BACKBONES
