"""Edge GT: hand-built label maps with known answers, plus independent reference checks."""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from pipelines import binary_boundary, semantic_edges

IGNORE = 255


def _split_map(height=6, width=8, left=0, right=1, cut=4):
    labels = np.full((height, width), left, np.int32)
    labels[:, cut:] = right
    return labels


def _columns(width, cols, height=6):
    out = np.zeros((height, width), np.float32)
    out[:, cols] = 1
    return out


def _reference_edges(labels, num_classes, radius, instances=None):
    """Brute-force loop over the definition: E_k(p)=1 iff M_k(q) != M_k(p), q in D_r."""
    height, width = labels.shape
    instances = np.zeros_like(labels) if instances is None else instances
    out = np.zeros((height, width, num_classes), np.float32)
    offsets = [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy * dy + dx * dx <= radius * radius
    ]
    for k in range(num_classes):
        m = np.where(labels == k, 1 + instances, 0)
        for y in range(height):
            for x in range(width):
                if labels[y, x] == IGNORE:
                    continue
                for dy, dx in offsets:
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < height and 0 <= xx < width and labels[yy, xx] != IGNORE:
                        if m[yy, xx] != m[y, x]:
                            out[y, x, k] = 1
                            break
    return out


def _reference_boundary(labels, radius):
    """Brute force: b(p)=1 iff a valid q in D_r has another class than valid p."""
    height, width = labels.shape
    out = np.zeros((height, width), np.float32)
    for y in range(height):
        for x in range(width):
            if labels[y, x] == IGNORE:
                continue
            for yy in range(max(0, y - radius), min(height, y + radius + 1)):
                for xx in range(max(0, x - radius), min(width, x + radius + 1)):
                    near = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
                    if near and labels[yy, xx] not in (IGNORE, labels[y, x]):
                        out[y, x] = 1
    return out


def test_binary_boundary_vertical_split_radius_2_and_1():
    labels = _split_map()
    np.testing.assert_array_equal(binary_boundary(labels).numpy(), _columns(8, [2, 3, 4, 5]))
    np.testing.assert_array_equal(binary_boundary(labels, radius=1).numpy(), _columns(8, [3, 4]))


def test_binary_boundary_single_pixel_gives_euclidean_disk():
    labels = np.zeros((7, 7), np.int32)
    labels[3, 3] = 4
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0],
            [0, 0, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0, 0],
            [0, 0, 0, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        np.float32,
    )
    np.testing.assert_array_equal(binary_boundary(labels, radius=2).numpy(), expected)


def test_binary_boundary_ignore_creates_no_boundary():
    labels = np.zeros((4, 10), np.int32)
    labels[:, 4:6] = IGNORE
    labels[:, 6:] = 1
    # Classes 0 (cols 0-3) and 1 (cols 6-9) are 3 px apart across the void band.
    np.testing.assert_array_equal(binary_boundary(labels, radius=2).numpy(), np.zeros((4, 10)))
    np.testing.assert_array_equal(
        binary_boundary(labels, radius=3).numpy(), _columns(10, [3, 6], height=4)
    )


def test_binary_boundary_uniform_map_and_border_are_not_boundaries():
    np.testing.assert_array_equal(binary_boundary(np.full((5, 5), 2)).numpy(), np.zeros((5, 5)))


def test_binary_boundary_matches_decouplesegnet_distance_transform_rule():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.repeat(rng.integers(0, 4, (6, 6)), 4, 0), 4, 1)
    # DecoupleSegNet: per class, distance transform of the mask and of its complement,
    # kept where 0 < d <= radius, OR over classes (independent of the TF implementation).
    expected = np.zeros(labels.shape, bool)
    for k in range(4):
        mask = labels == k
        if mask.all() or not mask.any():
            continue
        dist = scipy.ndimage.distance_transform_edt(mask) + scipy.ndimage.distance_transform_edt(
            ~mask
        )
        expected |= (dist > 0) & (dist <= 2)
    np.testing.assert_array_equal(binary_boundary(labels, radius=2).numpy(), expected)


def test_semantic_edges_vertical_split_is_two_sided_multi_label():
    edges = semantic_edges(_split_map(), num_classes=3).numpy()
    assert edges.shape == (6, 8, 3)
    np.testing.assert_array_equal(edges[..., 0], _columns(8, [2, 3, 4, 5]))
    np.testing.assert_array_equal(edges[..., 1], _columns(8, [2, 3, 4, 5]))
    np.testing.assert_array_equal(edges[..., 2], np.zeros((6, 8)))


def test_semantic_edges_instance_sensitive():
    labels = np.ones((6, 8), np.int32)
    instances = _split_map(left=1, right=2)
    without = semantic_edges(labels, num_classes=2).numpy()
    with_instances = semantic_edges(labels, num_classes=2, instances=instances).numpy()
    np.testing.assert_array_equal(without, np.zeros((6, 8, 2)))
    np.testing.assert_array_equal(with_instances[..., 1], _columns(8, [2, 3, 4, 5]))
    np.testing.assert_array_equal(with_instances[..., 0], np.zeros((6, 8)))


def test_semantic_edges_ignore_region_masked():
    labels = _split_map(width=10, cut=5)
    labels[:, 5:7] = IGNORE
    # class 0 cols 0-4, void cols 5-6, class 1 cols 7-9: distance 3 > radius 2.
    edges = semantic_edges(labels, num_classes=2).numpy()
    np.testing.assert_array_equal(edges, np.zeros((6, 10, 2)))
    labels[:, 6] = 1  # now class 1 starts at col 6: distance 2 from col 4
    edges = semantic_edges(labels, num_classes=2).numpy()
    np.testing.assert_array_equal(edges[..., 0], _columns(10, [4, 6]))
    np.testing.assert_array_equal(edges[..., 1], _columns(10, [4, 6]))
    assert edges[:, 5].sum() == 0


def test_semantic_edges_match_bruteforce_reference_on_random_maps():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.repeat(rng.integers(0, 3, (5, 6)), 3, 0), 3, 1)
    labels[rng.uniform(size=labels.shape) < 0.05] = IGNORE
    instances = np.repeat(np.repeat(rng.integers(0, 2, (5, 6)), 3, 0), 3, 1)
    for radius in (1, 2, 3):
        got = semantic_edges(labels, 3, radius=radius, instances=instances).numpy()
        np.testing.assert_array_equal(got, _reference_edges(labels, 3, radius, instances))
        got = binary_boundary(labels, radius=radius).numpy()
        np.testing.assert_array_equal(got, _reference_boundary(labels, radius))


@pytest.mark.parametrize("num_classes", [31, 32, 40, 70])
def test_semantic_edges_many_classes_span_several_packed_words(num_classes):
    # 31 classes fill one packed word exactly; 32, 40 and 70 spill into the next ones.
    rng = np.random.default_rng(num_classes)
    labels = np.repeat(np.repeat(rng.integers(0, num_classes, (6, 7)), 2, 0), 2, 1)
    labels[0, :4] = num_classes - 1  # the last channel always has a segment
    labels[rng.uniform(size=labels.shape) < 0.05] = IGNORE
    got = semantic_edges(labels, num_classes, radius=2).numpy()
    expected = _reference_edges(labels, num_classes, 2)
    assert expected[..., num_classes - 1].any()
    np.testing.assert_array_equal(got, expected)


def test_semantic_edges_unnamed_ids_bound_regions_but_get_no_channel():
    labels = _split_map(left=1, right=5)  # id 5 >= num_classes 3: an unnamed class
    edges = semantic_edges(labels, num_classes=3).numpy()
    assert edges.shape == (6, 8, 3)
    np.testing.assert_array_equal(edges[..., 1], _columns(8, [2, 3, 4, 5]))
    np.testing.assert_array_equal(edges[..., 0] + edges[..., 2], np.zeros((6, 8)))


def test_semantic_edges_large_instance_ids_stay_distinct():
    labels = np.full((6, 8), 2, np.int32)
    instances = _split_map(left=65534, right=65535)  # 16-bit instance ids
    edges = semantic_edges(labels, num_classes=3, instances=instances).numpy()
    np.testing.assert_array_equal(edges[..., 2], _columns(8, [2, 3, 4, 5]))


def test_batched_input_and_tf_function_with_unknown_shape():
    labels = np.stack([_split_map(), _split_map(left=1, right=0)])
    fn = tf.function(
        lambda x: (semantic_edges(x, 2), binary_boundary(x)),
        input_signature=[tf.TensorSpec([None, None, None], tf.int32)],
    )
    edges, boundary = fn(labels)
    assert edges.shape == (2, 6, 8, 2) and boundary.shape == (2, 6, 8)
    np.testing.assert_array_equal(boundary[1].numpy(), _columns(8, [2, 3, 4, 5]))
    np.testing.assert_array_equal(edges[1, ..., 1].numpy(), _columns(8, [2, 3, 4, 5]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"radius": 0}, "radius"),
        ({"radius": 1.5}, "radius"),
        ({"num_classes": 0}, "num_classes"),
        ({"ignore_label": 300}, "ignore_label"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    call = {"num_classes": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        semantic_edges(_split_map(), **call)


def test_bad_label_rank_raises():
    with pytest.raises(ValueError, match="shape"):
        binary_boundary(np.zeros((1, 2, 3, 4), np.int32))
