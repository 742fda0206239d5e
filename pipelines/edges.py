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

**Implementation.** Every disk operation is a reduction (max, min or bitwise OR) of shifted
slices of a padded copy: a running horizontal reduction for each half-width ``dx`` of the
disk's rows, then one vertical pass over the rows ``dy`` — about ``4r + 1`` element-wise
ops on an ``[H, W]`` map. The K channels of ``semantic_edges`` travel as the bits of int32
words (31 classes per word) through one bitwise-OR disk reduction and are unpacked once at
the end, so the cost barely grows with K.
"""

import math

import tensorflow as tf

from pipelines.schema import IGNORE_LABEL

_SEGMENT_STRIDE = 65536  # segment id = class * 65536 + instance, exact in int32
_MAX_SEGMENT_CLASS = 32767  # ids above this share one segment id (the schema's ids are 0..255)
_BITS = 31  # classes per int32 word of the packed one-hot (the sign bit stays unused)


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


def _disk_reduce(x, radius, combine, fill):
    """``combine`` of ``x`` [B,H,W,...] over the disk around each pixel (axes 1 and 2).

    Pixels outside the image read as ``fill``, which must be the identity of ``combine``
    (e.g. the dtype's minimum for a max), so they never change the result.
    """
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    paddings = [[0, 0], [radius, radius], [radius, radius]] + [[0, 0]] * (x.shape.rank - 3)
    padded = tf.pad(x, paddings, constant_values=tf.cast(fill, x.dtype))

    def columns(shift):
        return padded[:, :, radius + shift : radius + shift + width]

    rows = disk_rectangles(radius)
    running, reach, horizontal = columns(0), 0, {}
    for half_width in sorted({dx for _, dx in rows}):
        while reach < half_width:
            reach += 1
            running = combine(running, combine(columns(-reach), columns(reach)))
        horizontal[half_width] = running  # [B, H + 2r, W, ...]
    out = None
    for dy, dx in rows:
        for start in sorted({radius - dy, radius + dy}):
            piece = horizontal[dx][:, start : start + height]
            out = piece if out is None else combine(out, piece)
    return out


def _as_batch(labels):
    """labels [H,W] or [B,H,W] -> int32 [B,H,W] and whether a batch dim was added."""
    labels = tf.convert_to_tensor(labels)
    single = labels.shape.rank == 2
    if labels.shape.rank not in (2, 3):
        raise ValueError(f"labels must be [H,W] or [B,H,W], got shape {labels.shape}")
    labels = tf.cast(labels, tf.int32)
    if single:
        labels = labels[None]
    return labels, single


def _segment_boundary(segments, valid, radius):
    """bool: a valid pixel with a valid pixel of another segment within the disk."""
    lowest, highest = segments.dtype.min, segments.dtype.max
    high = _disk_reduce(tf.where(valid, segments, lowest), radius, tf.maximum, lowest)
    low = _disk_reduce(tf.where(valid, segments, highest), radius, tf.minimum, highest)
    return valid & ((high > segments) | (low < segments))


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
    out = tf.cast(_segment_boundary(labels, labels != ignore_label, radius), tf.float32)
    return out[0] if single else out


def _packed_one_hot(labels, named, num_classes):
    """int32 [B,H,W,ceil(K/31)]: bit ``k % 31`` of word ``k // 31`` set where label == k."""
    words = tf.range((num_classes + _BITS - 1) // _BITS, dtype=tf.int32)
    bit = tf.bitwise.left_shift(tf.ones_like(labels), labels % _BITS)
    in_word = named[..., None] & (labels[..., None] // _BITS == words)
    return tf.where(in_word, bit[..., None], 0)


def _unpack(words, num_classes):
    """int32 [..., ceil(K/31)] packed bits -> float32 [..., K] of 0/1.

    One broadcast shift per word (a gather over the word axis would cost ~3x more).
    """
    parts = []
    for word in range(words.shape[-1]):
        shifts = tf.range(min(_BITS, num_classes - word * _BITS), dtype=tf.int32)
        bits = tf.bitwise.right_shift(words[..., word : word + 1], shifts)
        parts.append(tf.bitwise.bitwise_and(bits, 1))
    return tf.cast(parts[0] if len(parts) == 1 else tf.concat(parts, -1), tf.float32)


def semantic_edges(labels, num_classes, radius=2, instances=None, ignore_label=IGNORE_LABEL):
    """CASENet/DFF multi-label semantic edge GT: float32 [..., H, W, K].

    Args:
        labels: integer [H,W] or [B,H,W] train ids, ``ignore_label`` for void.
        num_classes: K, the number of edge channels (ids >= K other than void are treated
            as an unnamed class: they bound class-k regions but get no channel).
        radius: edge half-thickness in pixels (CASENet/SEAL: 2).
        instances: optional integer instance ids of the same shape; when given, edges are
            instance-sensitive (two touching instances of class k make class-k edges).
            Ids are clipped to 0..65535 (the schema's instance PNGs are 16-bit).
        ignore_label: void id; void pixels create no edge and get 0 in every channel.

    Returns:
        float32 [H,W,K] or [B,H,W,K] of 0/1 (see the module docstring for the definition).
    """
    _check(radius, ignore_label, num_classes)
    labels, single = _as_batch(labels)
    valid = labels != ignore_label
    segments = labels
    if instances is not None:
        instances, _ = _as_batch(instances)
        instances = tf.clip_by_value(instances, 0, _SEGMENT_STRIDE - 1)
        classes = tf.clip_by_value(labels, -1, _MAX_SEGMENT_CLASS)
        segments = classes * _SEGMENT_STRIDE + instances
    # inner side: p's own class channel where another segment is within the disk.
    inner = _segment_boundary(segments, valid, radius)
    own = _packed_one_hot(labels, valid & (labels >= 0) & (labels < num_classes), num_classes)
    # outer side: every other class present within the disk of a valid p.
    near = _disk_reduce(own, radius, tf.bitwise.bitwise_or, 0)
    outer = tf.bitwise.bitwise_and(near, tf.bitwise.invert(own))
    words = tf.bitwise.bitwise_or(outer, tf.where(inner[..., None], own, 0))
    out = _unpack(tf.where(valid[..., None], words, 0), num_classes)
    return out[0] if single else out
