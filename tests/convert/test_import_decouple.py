"""``kerasfuse-convert --model decouple``: DecoupleSegNet checkpoints -> equal Keras models.

PyTorch references (tests/convert/torch_decouple.py, the checkpoints' key names) with
random weights and BN statistics are saved, converted with the CLI, reloaded, and their
logits, body logits, boundary logits and decoupled body / edge features compared in
inference mode: max |keras - torch| <= 1e-4 * max |torch|, at an odd and an even size.
"""

import json

import keras
import numpy as np
import pytest
import torch

import kerasfuse
from kerasfuse.convert.cli import main
from kerasfuse.convert.families import get_family
from kerasfuse.export import export_model
from kerasfuse.loading import load_keras_model
from kerasfuse.models.decouple import decouple_intermediates
from kerasfuse.training import LossModel
from pipelines.edges import binary_boundary
from tests.convert import torch_decouple, torch_models

TINY_RESNET = {"depths": (1, 1, 1, 1), "widths": (4, 8, 16, 32)}
TINY_WRN = {"width_multiplier": 0.0625}
#: An odd and an even size; F (stride 8) must survive two valid stride-2 3x3 convs.
SIZES = ((57, 75), (64, 96))
OUTPUTS = ("logits", "body_logits", "boundary_logits")
FEATURES = ("body_features", "edge_features")
CASES = {
    "deeplabv3plus-resnet_d": ("deeplabv3plus", "resnet_d", TINY_RESNET),
    "fcn-resnet_d": ("fcn", "resnet_d", TINY_RESNET),
    "pspnet-resnet_d": ("pspnet", "resnet_d", TINY_RESNET),
    "deeplabv3plus-wider_resnet38": ("deeplabv3plus", "wider_resnet38", TINY_WRN),
}


def _image(size, seed=1):
    return np.random.RandomState(seed).uniform(0, 255, (1,) + size + (3,)).astype("float32")


def reference(case, warp_align_corners=True, seed=0):
    context, trunk, options = CASES[case]
    net = torch_decouple.DecoupleNet(5, context, trunk, options, width=16, fine=8,
                                     warp_align_corners=warp_align_corners)
    net = torch_decouple.randomize(net, seed)
    return torch_decouple.calibrate_flow(net, _image(SIZES[1]))


def save(tmp_path, state_dict, name="decouple.pth", data_parallel=True):
    """Save as the repository does: ``{"state_dict": ...}`` with DataParallel keys."""
    if data_parallel:
        state_dict = {f"module.{k}": v for k, v in state_dict.items()}
    path = tmp_path / name
    torch.save({"state_dict": state_dict, "epoch": 1}, path)
    return str(path)


def convert(tmp_path, source, *extra, name="decouple.keras"):
    output = tmp_path / name
    code = main([source, "--model", "decouple", "--output", str(output), *extra])
    return code, output


def assert_close(actual, expected, what):
    scale = float(np.abs(expected).max())
    assert scale > 0, f"{what}: the reference output is all zeros"
    error = float(np.abs(np.asarray(actual) - expected).max())
    assert error <= 1e-4 * scale, f"{what}: max abs diff {error} > 1e-4 * {scale}"


def assert_equal_outputs(model, net, sizes=SIZES):
    intermediates = decouple_intermediates(model)
    for size in sizes:
        image = _image(size)
        expected = torch_decouple.run(net, image)
        actual = model(image)
        features = intermediates(image)
        for key in OUTPUTS:
            assert actual[key].shape == expected[key].shape
            assert_close(actual[key], expected[key], f"{key} at {size}")
        # The repository's output is sigmoid(boundary logits); the sigmoid is 1/4-Lipschitz,
        # so the logits' tolerance bounds it.
        probability = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(actual["boundary_logits"])))
        bound = 0.25 * 1e-4 * float(np.abs(expected["boundary_logits"]).max())
        assert float(np.abs(probability - expected["boundary"]).max()) <= bound
        for key in FEATURES:
            assert_close(features[key], expected[key], f"{key} at {size}")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """``converted(case) -> (torch net, .keras path, report)``, each case converted once
    with the CLI and shared by the tests of this module."""
    cache = {}

    def get(case):
        if case not in cache:
            tmp_path = tmp_path_factory.mktemp(case)
            net = reference(case)
            code, output = convert(tmp_path, save(tmp_path, net.state_dict()))
            assert code == 0
            report = json.loads((tmp_path / "decouple.report.json").read_text())
            cache[case] = net, str(output), report
        return cache[case]

    return get


@pytest.mark.parametrize("case", sorted(CASES))
def test_converted_checkpoint_equals_torch(case, converted):
    net, output, report = converted(case)
    assert report["status"] == "ok"
    assert report["build"]["context"] == CASES[case][0]
    # Every tensor is mapped; only BN update counters are skipped.
    keys = {f"module.{k}" for k in net.state_dict()}
    assert set(report["mapped"]) | set(report["skipped"]) == keys
    assert all(k.endswith("num_batches_tracked") for k in report["skipped"])
    if CASES[case][1] == "resnet_d":  # the deep stem's keys go into the backbone
        assert report["mapped"]["module.layer0.0.3.weight"] == "backbone/conv1__3/kernel"
        assert report["mapped"]["module.layer0.1.running_var"] == (
            "backbone/bn1/moving_variance")
    model = load_keras_model(output)
    assert model.model_name == f"decouple_{CASES[case][0]}"
    assert_equal_outputs(model, net)


def test_warp_align_corners_flag(tmp_path):
    """``--set warp_align_corners=false`` follows grid_sample's PyTorch >= 1.3 default; the
    two conventions give different body features, so the flag is not a no-op."""
    net = reference("fcn-resnet_d", warp_align_corners=False)
    source = save(tmp_path, net.state_dict())
    assert convert(tmp_path, source, "--set", "warp_align_corners=false")[0] == 0
    model = load_keras_model(str(tmp_path / "decouple.keras"))
    assert_equal_outputs(model, net, sizes=SIZES[:1])
    image = _image(SIZES[0])
    body = np.asarray(decouple_intermediates(model)(image)["body_features"])
    net.squeeze_body_edge.warp_align_corners = True
    aligned = torch_decouple.run(net, image)["body_features"]
    assert float(np.abs(body - aligned).max()) > 1e-2 * np.abs(aligned).max()


def _error(tmp_path, state_dict, capsys, *extra):
    code, _ = convert(tmp_path, save(tmp_path, state_dict), *extra)
    assert code == 2
    return capsys.readouterr().err


def test_every_tensor_must_be_mapped(tmp_path, capsys):
    """An extra tensor (not mapped) and a missing one (a weight left unset) both fail."""
    state = dict(reference("fcn-resnet_d").state_dict())
    state["edge_out.9.weight"] = torch.zeros(1, 8, 1, 1)
    del state["dsn_seg_body.1.running_mean"]
    err = _error(tmp_path, state, capsys)
    assert "1 source tensor(s) not mapped to any layer: [module.edge_out.9.weight]" in err
    assert "1 target weight(s) left unset: [dsn_seg_body__1/moving_mean]" in err


def test_head_mismatch_names_first_tensor(tmp_path, capsys):
    state = dict(reference("fcn-resnet_d").state_dict())
    # A two-channel boundary classifier: not the published edge head.
    state["edge_out.3.weight"] = torch.zeros(2, 8, 1, 1)
    err = _error(tmp_path, state, capsys)
    assert "first mismatching tensor: module.edge_out.3.weight [2, 8, 1, 1]" in err
    # A plain DeepLabv3+ / FCN checkpoint (no body generation) is not a DecoupleSegNet.
    plain = {k: v for k, v in state.items() if not k.startswith("squeeze_body_edge.")}
    err = _error(tmp_path, plain, capsys)
    assert ("first mismatching tensor: squeeze_body_edge.flow_make.weight is missing"
            in err)
    err = _error(tmp_path, dict(reference("fcn-resnet_d").state_dict()), capsys,
                 "--num-classes", "19")
    assert "first mismatching tensor: final_seg.6.weight has shape [5, 16, 1, 1]" in err


def _published_state_dict(context, trunk):
    """Zero tensors with the published checkpoint's keys and shapes (meta device)."""
    options = ({"depths": (3, 4, 23, 3), "widths": (64, 128, 256, 512)}
               if trunk == "resnet_d" else {})
    with torch.device("meta"):
        net = torch_decouple.DecoupleNet(19, context, trunk, options)
    return {k: np.broadcast_to(np.float32(0), tuple(v.shape))
            for k, v in net.state_dict().items()}


@pytest.mark.slow
@pytest.mark.parametrize("context,trunk", [("deeplabv3plus", "resnet_d"),
                                           ("deeplabv3plus", "wider_resnet38")])
def test_published_shapes_build_and_map(context, trunk):
    """The published models (DeepR101V3PlusD_m1_deeply, DeepWV3PlusDecoupleEdgeBody):
    every key and shape maps (no forward pass)."""
    family = get_family("decouple")
    state = _published_state_dict(context, trunk)
    kwargs = family.infer({k: v.shape for k, v in state.items()})
    assert kwargs["backbone"] == ("resnet101_d" if trunk == "resnet_d"
                                  else "wider_resnet38_a2")
    assert (kwargs["context_channels"], kwargs["fine_channels"]) == (256, 48)
    torch_models.map_published(state, family, kwargs)


@pytest.mark.slow
def test_large_input_equals_torch(converted):
    """512 x 1024 (Cityscapes crops) and an odd 257 x 513, on the narrow reference."""
    net, output, _ = converted("deeplabv3plus-resnet_d")
    model = load_keras_model(output)
    assert_equal_outputs(model, net, sizes=((512, 1024), (257, 513)))


@pytest.mark.slow
def test_converted_model_fits_one_step_and_exports(tmp_path, converted):
    """The converted file trains with fit (method loss) and exports (SavedModel) with the
    parity check passing."""
    model = load_keras_model(converted("fcn-resnet_d")[1])
    images = _image((64, 64))
    labels = np.zeros((1, 64, 64), "int32")
    labels[:, 16:40, 8:] = 3
    targets = {"labels": labels, "boundary": np.asarray(binary_boundary(labels))}
    wrapper = LossModel(model, kerasfuse.build_loss("decouple_fcn", 5))
    wrapper.compile(optimizer=keras.optimizers.SGD(1e-3), jit_compile=False)
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = wrapper.fit(images, targets, batch_size=1, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, w.numpy())
               for b, w in zip(before, model.trainable_weights))
    result = export_model(model, str(tmp_path / "export"), precisions=(),
                          parity_samples=1, input_size=(64, 64), log=None)
    checked = [row for row in result.rows if row.format != "keras"]
    assert checked and all(row.checked and row.max_abs_diff <= 1e-4 for row in checked)
