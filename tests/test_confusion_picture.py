"""Per-class accuracy / pixel share and the confusion-matrix picture, by hand."""

import cv2
import numpy as np
import pytest

from kerasfuse import visualize as viz
from kerasfuse.cli.evaluate import class_accuracy_and_share

CM = np.array([[8, 2, 0], [0, 5, 5], [0, 0, 0]])  # rows: true class; class 2 absent
NAMES = ["road", "sidewalk", "traffic light"]


def test_class_accuracy_and_pixel_share_by_hand():
    values = class_accuracy_and_share(CM)
    np.testing.assert_allclose(values["accuracy"][:2], [0.8, 0.5])
    assert np.isnan(values["accuracy"][2])
    np.testing.assert_allclose(values["pixel_share"], [0.5, 0.5, 0.0])


def test_confusion_picture_cells_are_row_normalised(tmp_path):
    cell = 30
    path = viz.save_png(str(tmp_path / "cm.png"),
                        viz.confusion_matrix_picture(CM, NAMES, cell_size=cell))
    picture = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    margin = viz.CONFUSION_MARGIN
    grid = picture[-(margin + 3 * cell):-margin, -(margin + 3 * cell):-margin]

    def blend(share):  # white -> (8, 48, 107), written out per channel
        return [round(255 + share * (8 - 255)), round(255 + share * (48 - 255)),
                round(255 + share * (107 - 255))]

    expected = {(0, 0): blend(0.8), (0, 1): blend(0.2), (0, 2): [255, 255, 255],
                (1, 0): [255, 255, 255], (1, 1): blend(0.5), (1, 2): blend(0.5),
                (2, 0): [210, 210, 210], (2, 1): [210, 210, 210], (2, 2): [210, 210, 210]}
    for (i, j), colour in expected.items():
        # a corner of the cell, away from the printed percentage
        np.testing.assert_array_equal(grid[i * cell + 3, j * cell + 3], colour, str((i, j)))
    # the names are on both axes: the left label strip and the top one hold dark text
    assert (picture[-(margin + 3 * cell):-margin, :picture.shape[1] - margin - 3 * cell]
            < 100).any()
    assert (picture[:picture.shape[0] - margin - 3 * cell, -(margin + 3 * cell):-margin]
            < 100).any()


def test_confusion_picture_rejects_mismatched_names():
    with pytest.raises(ValueError, match=r"\(3, 3\) and 2 class names"):
        viz.confusion_matrix_picture(CM, NAMES[:2])
