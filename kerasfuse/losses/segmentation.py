"""Cross-entropy segmentation losses with ignore label, auxiliary heads and OHEM."""


from keras import ops

from kerasfuse.checks import AUX_LOSS_WEIGHT, IGNORE_LABEL


def pixel_cross_entropy(labels, logits, ignore_label=IGNORE_LABEL):
    """Per-pixel softmax cross-entropy and the valid-pixel mask.

    Args:
        labels: int [B, H, W] train ids; ``ignore_label`` marks pixels without a label.
        logits: float [B, H, W, K].

    Returns:
        (ce [B, H, W] float32, zero at ignored pixels; valid [B, H, W] float32 in {0, 1}).
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    valid = ops.not_equal(labels, ignore_label)
    safe = ops.where(valid, labels, ops.zeros_like(labels))
    log_probs = ops.log_softmax(logits, axis=-1)
    picked = ops.take_along_axis(log_probs, ops.expand_dims(safe, -1), axis=-1)[..., 0]
    valid = ops.cast(valid, "float32")
    return -picked * valid, valid


def masked_mean(values, mask):
    """Mean of ``values`` over ``mask`` (0 when the mask is empty)."""
    return ops.sum(values * mask) / ops.maximum(ops.sum(mask), 1.0)


def ohem_mask(labels, logits, valid, thresh=0.7, min_kept=100000):
    """Online hard example mining mask (reference-code OhemCrossEntropy rule).

    Keeps valid pixels whose probability of the true class is <= max(thresh, p_k), where
    p_k is the ``min_kept``-th smallest true-class probability among valid pixels — so at
    least ``min_kept`` pixels (or all valid ones) always contribute.
    """
    probs = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    safe = ops.where(valid > 0, ops.cast(labels, "int32"), 0)
    true_prob = ops.take_along_axis(probs, ops.expand_dims(safe, -1), axis=-1)[..., 0]
    # Invalid pixels sort last so they never set the threshold.
    flat = ops.reshape(ops.where(valid > 0, true_prob, 2.0), (-1,))
    ordered = ops.sort(flat)
    num_valid = ops.cast(ops.sum(valid), "int32")
    kth = ops.clip(ops.minimum(num_valid, min_kept) - 1, 0, ops.shape(flat)[0] - 1)
    threshold = ops.maximum(ops.take(ordered, kth), thresh)
    keep = ops.logical_and(valid > 0, true_prob <= threshold)
    return ops.cast(keep, "float32")


def cross_entropy(labels, logits, ignore_label=IGNORE_LABEL, ohem=False, ohem_thresh=0.7,
                  ohem_min_kept=100000):
    """Mean CE over valid pixels, optionally restricted to OHEM-selected hard pixels."""
    ce, valid = pixel_cross_entropy(labels, logits, ignore_label)
    if ohem:
        valid = ohem_mask(labels, logits, valid, ohem_thresh, ohem_min_kept)
    return masked_mean(ce, valid)


class SegmentationLoss:
    """Softmax CE on ``logits`` plus weighted CE on auxiliary outputs (deep supervision).

    ``total = CE(logits) + sum_k w_k * CE(outputs[k])``. With ``aux_weights=None`` the
    FCN auxiliary head ``aux_logits`` gets 0.4 (PSPNet / GFF / DMNet) when the model has it.

    Args:
        num_classes: number of classes (checked against the logits).
        aux_weights: dict output key -> weight; None for the default described above.
        ignore_label: label value excluded from the loss (255).
        ohem: use online hard example mining on the main output.
        ohem_thresh: OHEM probability threshold (0.7 in the reference code).
        ohem_min_kept: minimum number of pixels OHEM keeps per batch.

    Call arguments:
        targets: dict with "labels" int [B, H, W].
        outputs: dict of float32 logits [B, H, W, K] (the model's outputs).

    Returns:
        dict with "loss" (total) and one entry per supervised output.
    """

    def __init__(self, num_classes, aux_weights=None, ignore_label=IGNORE_LABEL, ohem=False,
                 ohem_thresh=0.7, ohem_min_kept=100000):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes!r}")
        if not 0.0 < float(ohem_thresh) <= 1.0:
            raise ValueError(f"ohem_thresh must be in (0, 1], got {ohem_thresh!r}")
        if int(ohem_min_kept) < 1:
            raise ValueError(f"ohem_min_kept must be positive, got {ohem_min_kept!r}")
        self.num_classes = int(num_classes)
        self.aux_weights = None if aux_weights is None else dict(aux_weights)
        self.ignore_label = ignore_label
        self.ohem = bool(ohem)
        self.ohem_thresh = float(ohem_thresh)
        self.ohem_min_kept = int(ohem_min_kept)

    def _weights(self, outputs):
        if self.aux_weights is None:
            return {"aux_logits": AUX_LOSS_WEIGHT} if "aux_logits" in outputs else {}
        missing = [k for k in self.aux_weights if k not in outputs]
        if missing:
            raise ValueError(f"aux_weights name outputs {missing} the model does not have; "
                             f"outputs are {sorted(outputs)}")
        return self.aux_weights

    def __call__(self, targets, outputs):
        labels = targets["labels"]
        logits = outputs["logits"]
        if logits.shape[-1] is not None and logits.shape[-1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[-1]} classes, loss expects "
                             f"{self.num_classes}")
        main = cross_entropy(labels, logits, self.ignore_label, self.ohem, self.ohem_thresh,
                             self.ohem_min_kept)
        result = {"logits": main}
        total = main
        for key, weight in self._weights(outputs).items():
            aux = cross_entropy(labels, outputs[key], self.ignore_label)
            result[key] = aux
            total = total + weight * aux
        result["loss"] = total
        return result


