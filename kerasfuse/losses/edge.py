"""Reweighted multi-label sigmoid cross-entropy for semantic edges (CASENet / DFF)."""

from keras import ops

from kerasfuse.checks import check_int
from kerasfuse.losses.segmentation import IGNORE_LABEL


def positive_weight(edges, valid):
    """Per-image positive weight ``clip(num_neg / num_pos, 1, num_valid)``.

    ``num_pos`` counts positive (pixel, class) labels over all K classes of the valid
    pixels and ``num_valid`` counts valid pixels (once, not per class), as the DFF reference
    code does; ``num_neg = num_valid - num_pos`` can therefore be negative on edge-dense
    images, where the clip keeps the weight at 1. An image without edges gets
    ``num_valid`` (its positive term is zero anyway).

    Args:
        edges: float [B, H, W, K] in {0, 1}.
        valid: float [B, H, W] in {0, 1}.

    Returns:
        float32 [B].
    """
    num_pos = ops.sum(edges * valid[..., None], axis=(1, 2, 3))
    num_valid = ops.sum(valid, axis=(1, 2))
    ratio = ops.where(num_pos > 0, (num_valid - num_pos) / ops.where(num_pos > 0, num_pos, 1.0),
                      num_valid)
    return ops.minimum(ops.maximum(ratio, 1.0), ops.maximum(num_valid, 1.0))


def reweighted_edge_bce(edges, logits, valid):
    """Mean over images of the per-image reweighted sigmoid BCE (DFF reference reduction).

    Per element: ``pos_weight * t * softplus(-x) + (1 - t) * softplus(x)`` (only the
    positive term is scaled), zeroed at invalid pixels, then averaged over all
    H * W * K elements of the image (invalid ones count in the denominator, as in the
    reference code's ``(loss * pad_mask).mean()``), then averaged over the batch.

    Args:
        edges: float [B, H, W, K] multi-label edge targets.
        logits: float [B, H, W, K] edge logits.
        valid: float [B, H, W] in {0, 1}; 0 marks ignore/padding pixels.

    Returns:
        float32 scalar.
    """
    logits = ops.cast(logits, "float32")
    edges = ops.cast(edges, "float32")
    valid = ops.cast(valid, "float32")
    pos_weight = positive_weight(edges, valid)[:, None, None, None]
    elementwise = (pos_weight * edges * ops.softplus(-logits)
                   + (1.0 - edges) * ops.softplus(logits))
    per_image = ops.mean(elementwise * valid[..., None], axis=(1, 2, 3))
    return ops.mean(per_image)


class ReweightedEdgeLoss:
    """CASENet/DFF multi-label reweighted BCE on Side5 and the fused output.

    ``total = side5_weight * L(side5_logits) + fuse_weight * L(logits)``, where L is
    :func:`reweighted_edge_bce`: per image, positives are up-weighted by
    ``pos_weight = clip(num_neg / num_pos, 1, num_valid)`` (CASENet's reweighting as the
    DFF reference code computes it, see :func:`positive_weight`), only the positive term is
    scaled, ignore/padding pixels (``targets["labels"] == ignore_label``) are masked; each
    image's loss is the mean over its H*W*K elements and the batch loss the mean over
    images (the reference code's normalisation).

    Args:
        num_classes: K, checked against the logits and the edge targets.
        side5_weight: weight of the Side5 loss (1 in the papers).
        fuse_weight: weight of the fused-output loss (1 in the papers).
        ignore_label: label value marking ignore/padding pixels (255).

    Call arguments:
        targets: dict with "edges" float [B, H, W, K] (multi-label semantic edges from
            the pipeline) and "labels" int [B, H, W] (for the ignore mask).
        outputs: dict with float32 "side5_logits" and "logits" [B, H, W, K].

    Returns:
        dict with "loss" (total), "side5_logits" and "logits" (unweighted components).

    Example:
        >>> loss = ReweightedEdgeLoss(19)
        >>> loss({"labels": labels, "edges": edges}, model(images))["loss"]

    Reference:
        Yu et al., "CASENet: Deep Category-Aware Semantic Edge Detection", CVPR 2017,
        Eqn. (1)-(2) (reweighted multi-label loss); Hu et al., "Dynamic Feature Fusion for
        Semantic Edge Detection", IJCAI 2019, Fig. 2(a) (loss on Side5 and the fused
        output).
    """

    OUTPUTS = ("side5_logits", "logits")

    def __init__(self, num_classes, side5_weight=1.0, fuse_weight=1.0,
                 ignore_label=IGNORE_LABEL):
        check_int("num_classes", num_classes)
        for name, value in (("side5_weight", side5_weight), ("fuse_weight", fuse_weight)):
            if not float(value) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.num_classes = num_classes
        self.side5_weight = float(side5_weight)
        self.fuse_weight = float(fuse_weight)
        self.ignore_label = ignore_label

    def _check(self, targets, outputs):
        for key in ("edges", "labels"):
            if key not in targets:
                raise ValueError(f"ReweightedEdgeLoss needs targets[{key!r}] (edges: float "
                                 "[B, H, W, K] semantic edges, labels: int [B, H, W] for the "
                                 f"ignore mask); got targets {sorted(targets)}")
        missing = [key for key in self.OUTPUTS if key not in outputs]
        if missing:
            raise ValueError(f"ReweightedEdgeLoss needs outputs {missing}; got outputs "
                             f"{sorted(outputs)}")
        tensors = {"targets['edges']": targets["edges"],
                   **{f"outputs[{k!r}]": outputs[k] for k in self.OUTPUTS}}
        for name, tensor in tensors.items():
            channels = tensor.shape[-1]
            if channels is not None and channels != self.num_classes:
                raise ValueError(f"{name} has {channels} classes, ReweightedEdgeLoss expects "
                                 f"num_classes={self.num_classes}")

    def __call__(self, targets, outputs):
        self._check(targets, outputs)
        valid = ops.cast(ops.not_equal(ops.cast(targets["labels"], "int32"),
                                       self.ignore_label), "float32")
        edges = targets["edges"]
        side5 = reweighted_edge_bce(edges, outputs["side5_logits"], valid)
        fused = reweighted_edge_bce(edges, outputs["logits"], valid)
        total = self.side5_weight * side5 + self.fuse_weight * fused
        return {"loss": total, "side5_logits": side5, "logits": fused}
