"""Edge ground truth computed with TF ops inside the tf.data graph.

Both targets use the Euclidean disk ``D_r = {(dy, dx): dy^2 + dx^2 <= r^2}`` (13 pixels
for r = 2) and treat ignore pixels (``labels == ignore_label``, which includes the
augmentation padding) as absent: they neither create edges nor carry any (their target
is 0, and the losses mask them through ``labels == 255``). The image border is not an
edge.

**Binary boundary (DecoupleSegNet, ``binary_boundary``).** ``b(p) = 1`` iff ``p`` is valid
and some valid ``q`` with ``q - p`` in ``D_r`` has ``label(q) != label(p)``: the pixels at
Euclidean distance <= r from a pixel of another class — the OR over classes of the
distance-transform rule of DecoupleSegNet's boundary GT (the distance transform of a
class mask and of its complement, thresholded at r), on both sides of every boundary.

**Multi-label semantic edges (CASENet / DFF, ``semantic_edges``).** Following the
CASENet/SEAL preprocessing that the DFF paper evaluates with (``seg2edge`` on the map
``M_k`` that holds segment ids inside class k and 0 elsewhere), ``E_k(p) = 1`` iff ``p``
is valid and some valid ``q`` with ``q - p`` in ``D_r`` has ``M_k(q) != M_k(p)``. So a
thick edge band of width ~2r straddles every contour of class k:

* inner side: ``p`` in class k within r of another segment (another class, or another
  instance of class k when instance ids are given: instance-sensitive edges);
* outer side: ``p`` not in class k within r of a class-k pixel.

A pixel close to a boundary between classes a and b is therefore an edge of both a and b
(the multi-label property CASENet introduced).
"""

import math

import tensorflow as tf

from pipelines.schema import IGNORE_LABEL

_SEGMENT_STRIDE = 65536  # segment id = class * 65536 + instance, exact in float32


def _check(radius, ignore_label, num_classes=None):
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
        raise ValueError(f"radius must be an integer >= 1, got {radius!r}")
    if not isinstance(ignore_label, int) or not 0 <= ignore_label <= 255:
        raise ValueError(f"ignore_label must be an integer in 0..255, got {ignore_label!r}")
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")


def disk_rectangles(radius):
    """Half-sizes (dy, dx) of rectangles whose union is the Euclidean disk of ``radius``."""
    return [(dy, int(math.isqrt(radius * radius - dy * dy))) for dy in range(radius + 1)]


def _disk_max(x, radius):
    """Max of NHWC ``x`` over the disk around each pixel; outside the image is skipped."""
    out = None
    for dy, dx in disk_rectangles(radius):
        pooled = tf.nn.max_pool2d(x, (2 * dy + 1, 2 * dx + 1), 1, "SAME")
        out = pooled if out is None else tf.maximum(out, pooled)
    return out


def _as_batch(labels):
    """labels [H,W] or [B,H,W] -> int32 [B,H,W,1] and whether a batch dim was added."""
    labels = tf.convert_to_tensor(labels)
    single = labels.shape.rank == 2
    if labels.shape.rank not in (2, 3):
        raise ValueError(f"labels must be [H,W] or [B,H,W], got shape {labels.shape}")
    labels = tf.cast(labels, tf.int32)
    if single:
        labels = labels[None]
    return labels[..., None], single


def _segment_boundary(segments, valid, radius):
    """1.0 where a valid pixel has a valid pixel of another segment within the disk."""
    big = float(2**24)
    segments = tf.cast(segments, tf.float32)
    high = _disk_max(tf.where(valid, segments, -1.0), radius)
    low = -_disk_max(tf.where(valid, -segments, -big), radius)
    differs = tf.logical_or(high > segments, low < segments)
    return tf.cast(tf.logical_and(valid, differs), tf.float32)


def binary_boundary(labels, radius=2, ignore_label=IGNORE_LABEL):
    """DecoupleSegNet boundary GT: float32 map, 1 within ``radius`` of another class.

    Args:
        labels: integer [H,W] or [B,H,W] train ids, ``ignore_label`` for void.
        radius: Euclidean distance threshold in pixels (paper: 2).
        ignore_label: void id; void pixels create no boundary and get 0.

    Returns:
        float32 [H,W] or [B,H,W] of 0/1 (see the module docstring for the definition).
    """
    _check(radius, ignore_label)
    labels, single = _as_batch(labels)
    valid = labels != ignore_label
    out = _segment_boundary(labels, valid, radius)[..., 0]
    return out[0] if single else out


def semantic_edges(labels, num_classes, radius=2, instances=None, ignore_label=IGNORE_LABEL):
    """CASENet/DFF multi-label semantic edge GT: float32 [..., H, W, K].

    Args:
        labels: integer [H,W] or [B,H,W] train ids, ``ignore_label`` for void.
        num_classes: K, the number of edge channels (ids >= K other than void are treated
            as an unnamed class: they bound class-k regions but get no channel).
        radius: edge half-thickness in pixels (CASENet/SEAL: 2).
        instances: optional integer instance ids of the same shape; when given, edges are
            instance-sensitive (two touching instances of class k make class-k edges).
        ignore_label: void id; void pixels create no edge and get 0 in every channel.

    Returns:
        float32 [H,W,K] or [B,H,W,K] of 0/1 (see the module docstring for the definition).
    """
    _check(radius, ignore_label, num_classes)
    labels, single = _as_batch(labels)
    valid = labels != ignore_label
    segments = labels * _SEGMENT_STRIDE
    if instances is not None:
        instances, _ = _as_batch(instances)
        segments = segments + tf.clip_by_value(instances, 0, _SEGMENT_STRIDE - 1)
    inner_boundary = _segment_boundary(segments, valid, radius)
    one_hot = tf.one_hot(labels[..., 0], num_classes, dtype=tf.float32)
    one_hot = one_hot * tf.cast(valid, tf.float32)
    near = _disk_max(one_hot, radius)
    inner = one_hot * inner_boundary
    outer = near * (1.0 - one_hot) * tf.cast(valid, tf.float32)
    out = tf.maximum(inner, outer)
    return out[0] if single else out
