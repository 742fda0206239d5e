"""Class-aware prediction pictures: sizes, legend colours and exact error maps, read back
from the PNG files."""

import cv2
import numpy as np
import pytest

from kerasfuse import visualize as viz

NAMES = ["road", "car", "person"]
PALETTE = [[128, 64, 128], [0, 0, 142], [220, 20, 60]]
H, W = 16, 24
FACTOR = 11      # ceil(256 / 24): the longer side becomes >= 256 px
BAR = 88         # title bar: max(16, 8 * FACTOR)
PANEL_W = W * FACTOR
LEGEND_X = 4 * PANEL_W + 3 * 4 + 8
RED, GREY = (255, 0, 0), (160, 160, 160)


def read_png(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def constructed_case():
    """A 16x24 gradient image; the truth is three vertical bands with an ignore corner;
    the prediction is the truth with a 3x4 block and two single pixels changed."""
    x = np.arange(W)[None, :].repeat(H, 0)
    image = np.stack([x * 10, 255 - x * 10, np.full((H, W), 90)], -1).astype("uint8")
    labels = np.where(x < 8, 0, np.where(x < 16, 1, 2)).astype("int32")
    labels[:2, :3] = 255
    prediction = labels.copy()
    prediction[prediction == 255] = 1   # ignore pixels: never counted as errors
    prediction[5:8, 2:6] = 2            # 12 wrong pixels
    prediction[0, 20] = 0
    prediction[15, 23] = 1
    wrong = np.zeros((H, W), bool)
    wrong[5:8, 2:6] = True
    wrong[0, 20] = wrong[15, 23] = True
    ignore = np.zeros((H, W), bool)
    ignore[:2, :3] = True
    return image, labels, prediction, wrong, ignore


def panel(picture, index):
    """Panel ``index`` of a picture, sampled back to 16x24 at the cell centres."""
    left = index * (PANEL_W + 4)
    body = picture[BAR:BAR + H * FACTOR, left:left + PANEL_W]
    return body[FACTOR // 2::FACTOR, FACTOR // 2::FACTOR]


def test_error_map_marks_exactly_the_wrong_pixels():
    image, labels, prediction, wrong, ignore = constructed_case()
    errors = viz.error_map(image, labels, prediction)
    is_red = (errors == RED).all(-1)
    is_grey = (errors == GREY).all(-1)
    np.testing.assert_array_equal(is_red, wrong)
    np.testing.assert_array_equal(is_grey, ignore)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) // 2
    right = ~wrong & ~ignore
    np.testing.assert_array_equal(errors[right], np.repeat(gray[right][:, None], 3, 1))


def test_prediction_picture_png_size_panels_error_map_and_legend(tmp_path):
    image, labels, prediction, wrong, ignore = constructed_case()
    path = viz.save_png(str(tmp_path / "p.png"),
                        viz.prediction_picture(image, labels, prediction, NAMES, PALETTE))
    picture = read_png(path)
    assert picture.shape[0] == BAR + H * FACTOR
    assert picture.shape[1] > LEGEND_X >= 512
    np.testing.assert_array_equal(panel(picture, 0), image)
    truth = panel(picture, 1)
    np.testing.assert_array_equal(truth[8, 12], PALETTE[1])
    np.testing.assert_array_equal(truth[0, 0], viz.IGNORE_COLOR)
    np.testing.assert_array_equal(panel(picture, 2)[6, 3], PALETTE[2])
    errors = panel(picture, 3)
    np.testing.assert_array_equal((errors == RED).all(-1), wrong)
    np.testing.assert_array_equal((errors == GREY).all(-1), ignore)
    legend = picture[:, LEGEND_X:]
    swatch = (max(22, 6 * FACTOR) - 6) ** 2
    for colour in PALETTE:
        assert (legend == colour).all(-1).sum() >= swatch, colour
    # the class colours are in the legend and nowhere else outside the colour panels
    titles = picture[:BAR, :LEGEND_X]
    assert not any((titles == colour).all(-1).any() for colour in PALETTE)


def test_edge_picture_draws_each_class_in_its_colour_and_marks_edge_errors(tmp_path):
    image = np.full((H, W, 3), 200, "uint8")
    edges = np.zeros((H, W, 3), "float32")
    edges[:, 4, 0] = 1.0          # a "road" edge column
    edges[10, :, 2] = 1.0         # a "person" edge row
    probabilities = np.zeros_like(edges)
    probabilities[:, 4, 0] = 0.9  # found
    probabilities[3, :, 1] = 1.0  # a false "car" edge row; the person row is missed
    ignore = np.zeros((H, W), bool)
    ignore[:, 0] = True
    picture = read_png(viz.save_png(str(tmp_path / "e.png"), viz.edge_picture(
        image, edges, probabilities, NAMES, PALETTE, ignore=ignore)))
    assert picture.shape[0] == BAR + H * FACTOR and picture.shape[1] > LEGEND_X
    truth, predicted, errors = panel(picture, 1), panel(picture, 2), panel(picture, 3)
    np.testing.assert_array_equal(truth[7, 4], PALETTE[0])
    np.testing.assert_array_equal(truth[10, 9], PALETTE[2])
    np.testing.assert_array_equal(truth[10, 4], PALETTE[2])   # a tie: the higher class id
    np.testing.assert_array_equal(predicted[3, 9], PALETTE[1])
    # away from edges: the image faded towards white, 0.4 * 200 + 0.6 * 255 = 233
    np.testing.assert_array_equal(truth[1, 12], [233, 233, 233])
    expected = np.zeros((H, W), bool)
    expected[3, :] = True         # false edges
    expected[10, :] = True        # missed edges
    expected[10, 4] = False       # the road column is an edge in both there
    expected[3, 4] = False
    expected[:, 0] = False        # ignored
    np.testing.assert_array_equal((errors == RED).all(-1), expected)
    np.testing.assert_array_equal((errors == GREY).all(-1), ignore)
    legend = picture[:, LEGEND_X:]
    for colour in PALETTE:
        assert (legend == colour).all(-1).sum() >= (6 * FACTOR - 6) ** 2, colour


def test_prediction_picture_rejects_names_of_the_wrong_count():
    image, labels, prediction, _, _ = constructed_case()
    with pytest.raises(ValueError, match="2 class names given for 3 classes"):
        viz.prediction_picture(image, labels, prediction, NAMES[:2], PALETTE)
