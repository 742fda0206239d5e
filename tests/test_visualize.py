"""kerasfuse.visualize: OpenCV primitives (hand values) and per-method PNG figures."""

import cv2
import keras
import numpy as np
import pytest

import kerasfuse
from kerasfuse import visualize as viz
from pipelines.synthetic import SYNTHETIC_CLASSES, render_scene


def test_palette_follows_voc_bit_scheme():
    palette = viz.color_palette(9)
    np.testing.assert_array_equal(palette[:5], [[0, 0, 0], [128, 0, 0], [0, 128, 0],
                                                [128, 128, 0], [0, 0, 128]])
    np.testing.assert_array_equal(palette[8], [64, 0, 0])
    assert len({tuple(c) for c in viz.color_palette(64)}) == 64


def test_colorize_and_overlay_hand_values():
    labels = np.array([[1, 255]])
    np.testing.assert_array_equal(viz.colorize(labels, viz.color_palette(2)),
                                  [[[128, 0, 0], list(viz.IGNORE_COLOR)]])
    image = np.full((1, 2, 3), 100, "uint8")
    # 0.5 * 100 + 0.5 * (128, 0, 0) = (114, 50, 50); ignore pixels keep the image.
    np.testing.assert_array_equal(viz.overlay(image, labels, alpha=0.5,
                                              palette=viz.color_palette(2)),
                                  [[[114, 50, 50], [100, 100, 100]]])
    with pytest.raises(ValueError, match="sizes differ"):
        viz.overlay(image, np.zeros((2, 2), int))


def test_flow_colour_wheel_directions():
    flow = np.array([[[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]], "float32")
    rgb = viz.flow_to_color(flow)
    np.testing.assert_array_equal(rgb[0, 0], [255, 0, 0])  # +x: hue 0, red
    np.testing.assert_array_equal(rgb[0, 1], [0, 255, 255])  # -x: hue 180 deg, cyan
    np.testing.assert_array_equal(rgb[0, 2], [255, 255, 255])  # no motion: white
    wheel = viz.color_wheel(32)
    assert wheel.shape == (32, 32, 3)
    np.testing.assert_array_equal(wheel[0, 0], [255, 255, 255])  # outside the disk


def test_pca_to_rgb_first_component_along_varying_channel():
    features = np.zeros((4, 5, 3))
    features[..., 0] = np.arange(5)[None, :]  # only channel 0 varies, along x
    rgb = viz.pca_to_rgb(features)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 64, 128, 191, 255])
    assert rgb[..., 1:].max() == 0  # no variance left for the other components
    assert (rgb[:, :, 0] == rgb[0, :, 0]).all()


def test_heatmap_kernel_grid_edges_legend_sizes():
    hot = viz.heatmap(np.array([[0.0, 1.0]]), vmin=0, vmax=1)
    assert hot.shape == (1, 2, 3) and not np.array_equal(hot[0, 0], hot[0, 1])
    grid = viz.kernel_grid(np.random.default_rng(0).normal(size=(3, 3, 10)), cell=24,
                           columns=8, gap=2)
    assert grid.shape == (24 * 2 + 2, 24 * 8 + 2 * 7, 3)
    probs = np.zeros((1, 2, 2), "float32")
    probs[0, 1, 0] = 1.0
    np.testing.assert_array_equal(viz.edge_to_color(probs), [[[255, 255, 255],
                                                              [128, 0, 0]]])
    assert viz.legend(["a", "b", "c"]).shape == (3 * 18 + 4, 160, 3)


def test_save_png_round_trip(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3)).astype("uint8")
    path = viz.save_png(str(tmp_path / "sub" / "x.png"), rgb)
    back = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, rgb)


SIZE = 64


@pytest.fixture(scope="module")
def scene():
    image, labels, _ = render_scene(seed=0, split_index=1, index=0, height=SIZE, width=SIZE)
    return image.astype("float32"), labels


def read_png(path):
    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)


def check_image_sized(paths, names, height=SIZE, width=SIZE):
    for name in names:
        picture = read_png(paths[name])
        assert picture.shape == (height, width, 3), (name, picture.shape)
        assert picture.reshape(-1, 3).std(axis=0).max() > 0, f"{name} is a constant image"


def check_prediction_and_summary(paths, num_classes, with_gt):
    picture = read_png(paths["prediction"])
    if with_gt:
        # image | truth | prediction | errors, each enlarged x4 to 256 px under a 32-px
        # title, 4-px gaps, then 8 px and the legend.
        assert picture.shape[0] == 256 + 32
        assert picture.shape[1] > 4 * 256 + 3 * 4 + 8
    else:
        legend_h = 18 * num_classes + 4
        assert picture.shape == (max(SIZE, legend_h), SIZE + 4 + 160, 3)
    summary = read_png(paths["summary"])
    assert summary.shape[0] > SIZE and summary.reshape(-1, 3).std(axis=0).max() > 0


def build(name, **options):
    keras.utils.set_random_seed(0)
    return kerasfuse.build_model(name, len(SYNTHETIC_CLASSES), backbone="resnet_tiny",
                                 **options)


def test_segmentation_overlay_fcn(scene, tmp_path):
    image, labels = scene
    paths = viz.visualize_model(build("fcn"), image, str(tmp_path), labels=labels,
                                class_names=SYNTHETIC_CLASSES, prefix="img0_")
    assert set(paths) == {"prediction", "summary"}
    assert paths["prediction"].endswith("img0_prediction.png")
    check_prediction_and_summary(paths, len(SYNTHETIC_CLASSES), with_gt=True)


def test_decouple_segnet_figures(scene, tmp_path):
    image, _ = scene
    paths = viz.visualize_model(build("decouple_fcn"), image, str(tmp_path),
                                class_names=SYNTHETIC_CLASSES)
    check_image_sized(paths, ["flow", "body_pca", "edge_pca", "fused_pca", "boundary"])
    check_image_sized(paths, ["flow_wheel"], 64, 64)
    check_prediction_and_summary(paths, len(SYNTHETIC_CLASSES), with_gt=False)


def test_dff_figures(scene, tmp_path):
    image, _ = scene
    paths = viz.visualize_model(build("dff"), image, str(tmp_path),
                                class_names=SYNTHETIC_CLASSES)
    check_image_sized(paths, [f"fusion_weight_{s}" for s in viz.DFF_SIDES]
                      + ["fused_edges", "side5_edges"])
    check_prediction_and_summary(paths, len(SYNTHETIC_CLASSES), with_gt=False)


def test_dmnet_kernel_figures(scene, tmp_path):
    image, _ = scene
    model = build("dmnet", dcm_channels=16, head_channels=16, filter_sizes=(1, 3))
    paths = viz.visualize_model(model, image, str(tmp_path))
    for k in (1, 3):
        grid = read_png(paths[f"dcm{k}_kernels"])
        # 16 channels -> 2 rows x 8 columns of 24-px cells with 2-px gaps.
        assert grid.shape == (2 * 24 + 2, 8 * 24 + 7 * 2, 3)
        assert grid.reshape(-1, 3).std(axis=0).max() > 0
    check_prediction_and_summary(paths, len(SYNTHETIC_CLASSES), with_gt=False)


def test_class_name_count_mismatch(scene, tmp_path):
    with pytest.raises(ValueError, match="class names"):
        viz.visualize_model(build("fcn"), scene[0], str(tmp_path), class_names=["a"])


def test_exfuse_seb_and_ecre_figures(scene, tmp_path):
    image, _ = scene
    model = build("exfuse", head_channels=8, ss_channels=8, gcn_kernel_size=3)
    paths = viz.visualize_model(model, image, str(tmp_path), class_names=SYNTHETIC_CLASSES)
    check_image_sized(paths, ["seb_res2_pca", "seb_res3_pca", "seb_res4_pca",
                              "ecre_prediction"])
    check_prediction_and_summary(paths, len(SYNTHETIC_CLASSES), with_gt=False)


def test_gff_gate_figures(scene, tmp_path):
    image, _ = scene
    model = build("gffnet", head_channels=16, fusion_channels=16, aux_channels=8)
    paths = viz.visualize_model(model, image, str(tmp_path), class_names=SYNTHETIC_CLASSES)
    gates = [f"gate_{level}" for level in ("res2", "res3", "res4", "res5")]
    assert [name for name in paths if name.startswith("gate_")] == gates
    check_image_sized(paths, gates)
    check_prediction_and_summary(paths, len(SYNTHETIC_CLASSES), with_gt=False)


def test_gff_reference_head_gate_figures(scene, tmp_path):
    image, _ = scene
    model = build("gffnet", reference_head=True, head_channels=8, fusion_channels=8,
                  classifier_channels=8)
    paths = viz.visualize_model(model, image, str(tmp_path), class_names=SYNTHETIC_CLASSES)
    gates = [f"gff_head__gate{i}__0" for i in (1, 2, 3)]
    assert [name for name in paths if name.startswith("gff_head__gate")] == gates
    check_image_sized(paths, gates)
