"""DecoupleSegNet losses: relaxed body loss, boundary-aware edge loss and final CE.

Paper eq. (3)-(5) (Li et al., "Improving Semantic Segmentation via Decoupled Body and Edge
Supervision", ECCV 2020)::

    L      = l1 * L_body(s_body, s^) + l2 * L_edge(b, s_final, b^, s^) + l3 * L_final
    L_edge = l4 * L_bce(b, b^) + l5 * L_ce(s_final, s^, b)                     (4)
    L_ce   = -1/K sum_i 1[s_i < t_K and sigmoid(b_i) > t_b] log s_i            (5)

with every lambda 1 except ``l4 = 25``, ``t_b = 0.8`` and ``K = 10%`` of the image's
pixels. All terms are computed in float32 with keras.ops; ignore pixels
(``labels == ignore_label``) never contribute.
"""

import math

from keras import ops

from kerasfuse.checks import AUX_LOSS_WEIGHT, check_int
from kerasfuse.losses.segmentation import (
    IGNORE_LABEL,
    cross_entropy,
    masked_mean,
    pixel_cross_entropy,
)

#: Paper eq. (4): lambda_4, the weight of the boundary BCE inside L_edge.
BCE_WEIGHT = 25.0
#: Paper Sec. 3.4: t_b, sigmoid(boundary) above which a pixel counts as an edge pixel.
EDGE_THRESHOLD = 0.8
#: Paper Sec. 3.4: K = 0.10 * N, the share of an image's pixels kept by the edge OHEM.
EDGE_TOP_FRACTION = 0.1
#: Boundary ground truth: pixels within this Euclidean distance of another class.
BOUNDARY_RADIUS = 2
BCE_BALANCE = ("batch", "image")
_NEG = -1e9


def _disk_max(x, radius):
    """Max of NHWC ``x`` over the Euclidean disk of ``radius`` (outside the image skipped).

    The disk is the union of the rectangles ``(2 dy + 1) x (2 dx + 1)`` with
    ``dx = isqrt(r^2 - dy^2)``; "same" max pooling ignores the padded border.
    """
    out = None
    for dy in range(radius + 1):
        dx = math.isqrt(radius * radius - dy * dy)
        pooled = ops.max_pool(x, (2 * dy + 1, 2 * dx + 1), strides=1, padding="same")
        out = pooled if out is None else ops.maximum(out, pooled)
    return out


def boundary_from_labels(labels, radius=BOUNDARY_RADIUS, ignore_label=IGNORE_LABEL):
    """Binary class-boundary map: the keras.ops twin of ``pipelines.edges.binary_boundary``.

    ``b(p) = 1`` iff ``p`` is valid and some valid pixel ``q`` with
    ``|q - p|_2 <= radius`` has a different label — the OR over classes of "distance to
    the class boundary <= radius" (docs/design.md §3). Ignore pixels neither create boundaries
    nor carry them; the image border is not a boundary.

    Args:
        labels: int [B, H, W] train ids.
        radius: Euclidean distance in pixels (2 in the paper's ground truth).
        ignore_label: the void id.

    Returns:
        float32 [B, H, W] of 0/1.
    """
    labels = ops.cast(labels, "int32")
    valid = ops.not_equal(labels, ignore_label)[..., None]
    segments = ops.cast(labels, "float32")[..., None]
    high = _disk_max(ops.where(valid, segments, -1.0), radius)
    low = -_disk_max(ops.where(valid, -segments, _NEG), radius)
    differs = ops.logical_or(high > segments, low < segments)
    return ops.cast(ops.logical_and(valid, differs), "float32")[..., 0]


def relaxed_body_loss(labels, logits, num_classes, relax_radius=1,
                      ignore_label=IGNORE_LABEL):
    """Boundary-relaxed softmax CE (Zhu et al. CVPR 2019, used for L_body).

    For a valid pixel ``p`` let ``S(p)`` be the classes of the valid pixels in its
    ``(2 r + 1) x (2 r + 1)`` window (``r = relax_radius``, 1 -> 3x3, border pixels see
    only the pixels inside the image). The pixel's probability is the summed softmax over
    ``S(p)``: ``loss(p) = -log sum_{c in S(p)} softmax(logits(p))_c``, averaged over the
    valid pixels of the batch (0 when there are none). Inside an object ``S(p)`` is the
    single true class and this is plain CE.

    Args:
        labels: int [B, H, W], ``ignore_label`` excluded.
        logits: float [B, H, W, K].
        num_classes: K.
        relax_radius: half window size (``0`` gives plain CE).
        ignore_label: the void id.
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    valid = ops.not_equal(labels, ignore_label)
    safe = ops.where(valid, labels, 0)
    one_hot = ops.one_hot(safe, num_classes) * ops.cast(valid, "float32")[..., None]
    size = 2 * relax_radius + 1
    present = ops.max_pool(one_hot, (size, size), strides=1, padding="same") > 0
    # Ignored pixels get every class (loss 0) so no log of an empty sum is ever formed.
    present = ops.logical_or(present, ops.logical_not(valid)[..., None])
    relaxed = ops.logsumexp(ops.where(present, logits, _NEG), axis=-1)
    loss = ops.logsumexp(logits, axis=-1) - relaxed
    return masked_mean(loss, ops.cast(valid, "float32"))


def balanced_boundary_bce(boundary_logits, boundary, valid, balance="batch"):
    """Class-balanced sigmoid BCE on boundary logits (reference-code ``bce2d`` weights).

    Positive pixels are weighted ``num_neg / (num_pos + num_neg)`` and negative pixels
    ``num_pos / (num_pos + num_neg)``; the counts run over the valid pixels of the whole
    batch (``balance="batch"``, the reference code) or of each image (``"image"``). The
    weighted BCE is averaged over all valid pixels of the batch. An image/batch with no
    boundary pixel (or only boundary pixels) therefore contributes 0. The BCE is taken on
    logits (numerically stable ``max(x, 0) - x t + log(1 + exp(-|x|))``), never on an
    already-sigmoided output.

    Args:
        boundary_logits: float [B, H, W] logits.
        boundary: float [B, H, W] 0/1 targets.
        valid: float [B, H, W] 0/1 mask of labelled pixels.
        balance: "batch" or "image".
    """
    x = ops.cast(boundary_logits, "float32")
    target = ops.cast(boundary, "float32")
    pos = target * valid
    neg = (1.0 - target) * valid
    axes = (0, 1, 2) if balance == "batch" else (1, 2)
    num_pos = ops.sum(pos, axis=axes, keepdims=True)
    num_neg = ops.sum(neg, axis=axes, keepdims=True)
    total = ops.maximum(num_pos + num_neg, 1.0)
    weights = (pos * num_neg + neg * num_pos) / total
    bce = ops.relu(x) - x * target + ops.log1p(ops.exp(-ops.abs(x)))
    return ops.sum(weights * bce) / ops.maximum(ops.sum(valid), 1.0)


def boundary_ohem_cross_entropy(labels, logits, boundary_logits, threshold=EDGE_THRESHOLD,
                                top_fraction=EDGE_TOP_FRACTION, ignore_label=IGNORE_LABEL):
    """Paper eq. (5): CE on the hardest predicted-boundary pixels of each image.

    Candidates are the valid pixels with ``sigmoid(boundary_logit) > threshold``. Per
    image, ``K = max(1, floor(top_fraction * H * W))`` (the paper's ``K = 0.1 N``, N the
    image's pixel count); the candidates whose CE is >= the K-th largest candidate CE are
    kept (ties at the K-th value are all kept; with fewer than K candidates all are kept).
    The term is the mean CE over the kept pixels of the batch — the paper's ``1/K`` when
    an image has at least K candidates — and exactly 0 (no NaN, zero gradient) when no
    pixel passes the threshold.

    Args:
        labels: int [B, H, W].
        logits: float [B, H, W, K] final class logits.
        boundary_logits: float [B, H, W] boundary logits.
        threshold: ``t_b`` on the sigmoid of the boundary logit.
        top_fraction: ``K / N``.
        ignore_label: the void id.
    """
    ce, valid = pixel_cross_entropy(labels, logits, ignore_label)
    on_edge = ops.logical_and(ops.sigmoid(ops.cast(boundary_logits, "float32")) > threshold,
                              valid > 0)
    batch = ops.shape(ce)[0]
    candidates = ops.reshape(ops.where(on_edge, ce, -1.0), (batch, -1))
    num_pixels = ops.shape(candidates)[1]
    k = ops.maximum(ops.cast(ops.floor(top_fraction * ops.cast(num_pixels, "float32")),
                             "int32"), 1)
    descending = -ops.sort(-candidates, axis=-1)
    kth = ops.take(descending, k - 1, axis=1)
    keep = ops.logical_and(on_edge, ce >= ops.reshape(kth, (-1, 1, 1)))
    return masked_mean(ce, ops.cast(keep, "float32"))


def _check_weight(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


class DecoupleLoss:
    """DecoupleSegNet's decoupled body / edge / final supervision (paper eq. 3-5).

    ``loss = body_weight * L_body + edge_weight * L_edge + final_weight * L_final
    (+ aux_weight * CE(aux_logits) when the model has an auxiliary head)`` where

    - ``L_body``: :func:`relaxed_body_loss` on ``body_logits`` (relaxed 3x3 boundaries);
    - ``L_edge = bce_weight * L_bce + edge_ce_weight * L_ce``:
      :func:`balanced_boundary_bce` on ``boundary_logits`` and
      :func:`boundary_ohem_cross_entropy` on ``logits`` restricted to pixels with
      ``sigmoid(boundary_logits) > edge_threshold``, keeping the hardest
      ``edge_top_fraction`` of each image's pixels;
    - ``L_final``: softmax CE on ``logits``; with ``ohem=True`` the reference code's OHEM
      (true-class probability <= ``ohem_thresh``, at least ``ohem_min_kept`` pixels).

    The boundary target is ``targets["boundary"]`` when present, otherwise it is computed
    from the labels with :func:`boundary_from_labels` (the same definition as
    ``pipelines.edges.binary_boundary``).

    The reference code applies BCE-with-logits to an already-sigmoided boundary map (a
    double sigmoid) and weights the body loss with image-wise class weights; neither is
    replicated.

    Args:
        num_classes: number of classes.
        body_weight: lambda_1 (1).
        edge_weight: lambda_2 (1).
        final_weight: lambda_3 (1).
        bce_weight: lambda_4 (25).
        edge_ce_weight: lambda_5 (1).
        edge_threshold: t_b (0.8).
        edge_top_fraction: K / N (0.1).
        bce_balance: "batch" (reference code) or "image": where the positive/negative
            counts of the balanced BCE are taken.
        relax_radius: half window of the body loss relaxation (1 -> 3x3).
        ohem: OHEM on the final CE (off in the paper, on in the reference code).
        ohem_thresh: OHEM probability threshold (0.7).
        ohem_min_kept: OHEM minimum kept pixels per batch (10000 in the reference code).
        aux_weight: weight of CE on ``aux_logits`` if the model outputs it (0.4).
        boundary_radius: radius of the boundary target computed from labels (2).
        ignore_label: void label (255).

    Call arguments:
        targets: dict with "labels" int [B, H, W] and optionally "boundary" float
            [B, H, W] (or [B, H, W, 1]).
        outputs: dict with float32 "logits" [B, H, W, K], "body_logits" [B, H, W, K],
            "boundary_logits" [B, H, W, 1] (and optionally "aux_logits").

    Returns:
        dict of scalars: "loss" (total), "body", "edge" (= 25 bce + 1 ce), "edge_bce",
        "edge_ce", "final" and, with an auxiliary head, "aux".
    """

    def __init__(self, num_classes, body_weight=1.0, edge_weight=1.0, final_weight=1.0,
                 bce_weight=BCE_WEIGHT, edge_ce_weight=1.0, edge_threshold=EDGE_THRESHOLD,
                 edge_top_fraction=EDGE_TOP_FRACTION, bce_balance="batch", relax_radius=1,
                 ohem=False, ohem_thresh=0.7, ohem_min_kept=10000, aux_weight=AUX_LOSS_WEIGHT,
                 boundary_radius=BOUNDARY_RADIUS, ignore_label=IGNORE_LABEL):
        check_int("num_classes", num_classes)
        if not 0.0 < float(edge_threshold) < 1.0:
            raise ValueError(f"edge_threshold must be in (0, 1), got {edge_threshold!r}")
        if not 0.0 < float(edge_top_fraction) <= 1.0:
            raise ValueError(f"edge_top_fraction must be in (0, 1], got {edge_top_fraction!r}")
        if bce_balance not in BCE_BALANCE:
            raise ValueError(f"bce_balance must be one of {BCE_BALANCE}, got {bce_balance!r}")
        for name, value, low in (("relax_radius", relax_radius, 0),
                                 ("boundary_radius", boundary_radius, 1),
                                 ("ohem_min_kept", ohem_min_kept, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not 0.0 < float(ohem_thresh) <= 1.0:
            raise ValueError(f"ohem_thresh must be in (0, 1], got {ohem_thresh!r}")
        self.num_classes = num_classes
        self.body_weight = _check_weight("body_weight", body_weight)
        self.edge_weight = _check_weight("edge_weight", edge_weight)
        self.final_weight = _check_weight("final_weight", final_weight)
        self.bce_weight = _check_weight("bce_weight", bce_weight)
        self.edge_ce_weight = _check_weight("edge_ce_weight", edge_ce_weight)
        self.aux_weight = _check_weight("aux_weight", aux_weight)
        self.edge_threshold = float(edge_threshold)
        self.edge_top_fraction = float(edge_top_fraction)
        self.bce_balance = bce_balance
        self.relax_radius = relax_radius
        self.ohem = bool(ohem)
        self.ohem_thresh = float(ohem_thresh)
        self.ohem_min_kept = ohem_min_kept
        self.boundary_radius = boundary_radius
        self.ignore_label = ignore_label

    def _check_outputs(self, outputs):
        missing = [k for k in ("logits", "body_logits", "boundary_logits") if k not in outputs]
        if missing:
            raise ValueError(f"DecoupleLoss needs model outputs {missing}; got {sorted(outputs)}")
        for key in ("logits", "body_logits"):
            channels = outputs[key].shape[-1]
            if channels is not None and channels != self.num_classes:
                raise ValueError(f"{key} have {channels} classes, loss expects "
                                 f"{self.num_classes}")
        if outputs["boundary_logits"].shape[-1] not in (None, 1):
            raise ValueError("boundary_logits must have 1 channel, got "
                             f"{outputs['boundary_logits'].shape[-1]}")

    def _boundary(self, targets, labels):
        if "boundary" not in targets:
            return boundary_from_labels(labels, self.boundary_radius, self.ignore_label)
        boundary = ops.cast(targets["boundary"], "float32")
        if len(boundary.shape) == 4:
            boundary = boundary[..., 0]
        return boundary

    def __call__(self, targets, outputs):
        self._check_outputs(outputs)
        labels = ops.cast(targets["labels"], "int32")
        boundary = self._boundary(targets, labels)
        boundary_logits = ops.cast(outputs["boundary_logits"], "float32")[..., 0]
        valid = ops.cast(ops.not_equal(labels, self.ignore_label), "float32")

        body = relaxed_body_loss(labels, outputs["body_logits"], self.num_classes,
                                 self.relax_radius, self.ignore_label)
        edge_bce = balanced_boundary_bce(boundary_logits, boundary, valid, self.bce_balance)
        edge_ce = boundary_ohem_cross_entropy(labels, outputs["logits"], boundary_logits,
                                              self.edge_threshold, self.edge_top_fraction,
                                              self.ignore_label)
        edge = self.bce_weight * edge_bce + self.edge_ce_weight * edge_ce
        final = cross_entropy(labels, outputs["logits"], self.ignore_label, self.ohem,
                              self.ohem_thresh, self.ohem_min_kept)
        result = {"body": body, "edge": edge, "edge_bce": edge_bce, "edge_ce": edge_ce,
                  "final": final}
        total = self.body_weight * body + self.edge_weight * edge + self.final_weight * final
        if "aux_logits" in outputs:
            result["aux"] = cross_entropy(labels, outputs["aux_logits"], self.ignore_label)
            total = total + self.aux_weight * result["aux"]
        result["loss"] = total
        return result
