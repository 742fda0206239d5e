"""MeanIoU / PixelAccuracy / NumPy confusion helpers on hand-computed 3x3 cases."""

import keras
import numpy as np
import pytest

from kerasfuse.metrics import (
    MeanIoU,
    PixelAccuracy,
    confusion_matrix,
    iou_from_confusion,
    mean_iou_from_confusion,
)

# 3x3 case, K = 4. Two pixels are ignore (255); class 3 appears in neither map.
LABELS = np.array([[0, 0, 1], [1, 1, 255], [2, 2, 255]])
PREDS = np.array([[0, 1, 1], [1, 0, 2], [2, 1, 1]])
# Counted pixels (label, pred): (0,0) (0,1) (1,1) (1,1) (1,0) (2,2) (2,1).
EXPECTED_CM = np.array([[1, 1, 0, 0], [1, 2, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
# IoU_0 = 1/(1+1+1), IoU_1 = 2/(2+2+1), IoU_2 = 1/(1+0+1), IoU_3 undefined.
EXPECTED_IOU = [1 / 3, 2 / 5, 1 / 2]
EXPECTED_MIOU = (1 / 3 + 2 / 5 + 1 / 2) / 3  # = 37/90, class 3 excluded
EXPECTED_ACC = 4 / 7


def one_hot_logits(preds, k=4):
    return np.eye(k, dtype="float32")[preds] * 5.0


def test_numpy_confusion_hand_case():
    cm = confusion_matrix(LABELS, PREDS, num_classes=4)
    np.testing.assert_array_equal(cm, EXPECTED_CM)
    iou = iou_from_confusion(cm)
    np.testing.assert_allclose(iou[:3], EXPECTED_IOU)
    assert np.isnan(iou[3])
    assert mean_iou_from_confusion(cm) == pytest.approx(37 / 90)


def test_keras_metrics_hand_case():
    miou, acc = MeanIoU(num_classes=4), PixelAccuracy(num_classes=4)
    for m in (miou, acc):
        m.update_state(LABELS[None], one_hot_logits(PREDS)[None])
    np.testing.assert_array_equal(miou.confusion_matrix(), EXPECTED_CM)
    assert float(miou.result()) == pytest.approx(EXPECTED_MIOU, abs=1e-6)
    np.testing.assert_allclose(miou.per_class_iou()[:3], EXPECTED_IOU)
    assert np.isnan(miou.per_class_iou()[3])
    assert float(acc.result()) == pytest.approx(EXPECTED_ACC, abs=1e-6)


def test_streaming_accumulates_and_resets():
    m = MeanIoU(num_classes=4)
    # Same image twice in two batches: counts double, IoUs unchanged.
    m.update_state(LABELS[None], one_hot_logits(PREDS)[None])
    m.update_state(LABELS[None, ..., None], one_hot_logits(PREDS)[None])  # [B,H,W,1] labels
    np.testing.assert_array_equal(m.confusion_matrix(), 2 * EXPECTED_CM)
    assert float(m.result()) == pytest.approx(EXPECTED_MIOU, abs=1e-6)
    m.reset_state()
    assert m.confusion_matrix().sum() == 0
    assert float(m.result()) == 0.0


def test_all_ignored_and_perfect_prediction():
    m = MeanIoU(num_classes=2)
    m.update_state(np.full((1, 2, 2), 255), one_hot_logits(np.zeros((1, 2, 2), int), 2))
    assert m.confusion_matrix().sum() == 0
    m.update_state(np.array([[[0, 1], [1, 1]]]), one_hot_logits(np.array([[[0, 1], [1, 1]]]), 2))
    assert float(m.result()) == pytest.approx(1.0)


def test_out_of_range_labels_not_counted():
    m = PixelAccuracy(num_classes=2)
    m.update_state(np.array([[[0, 7], [1, 1]]]), one_hot_logits(np.array([[[0, 0], [0, 1]]]), 2))
    # Counted: (0,0) ok, (1,0) wrong, (1,1) ok -> 2/3; the label 7 is skipped.
    assert float(m.result()) == pytest.approx(2 / 3, abs=1e-6)


def test_dict_inputs_read_keys():
    m = MeanIoU(num_classes=4)
    m.update_state({"labels": LABELS[None], "edges": np.zeros((1, 3, 3, 4))},
                   {"logits": one_hot_logits(PREDS)[None], "aux_logits": np.zeros((1, 3, 3, 4))})
    assert float(m.result()) == pytest.approx(EXPECTED_MIOU, abs=1e-6)


def test_config_round_trip_and_bad_num_classes():
    m = MeanIoU(num_classes=5, ignore_label=0, output_key="out", label_key="lab", name="x")
    clone = MeanIoU.from_config(m.get_config())
    assert clone.get_config() == m.get_config()
    assert PixelAccuracy.from_config(PixelAccuracy(3).get_config()).num_classes == 3
    with pytest.raises(ValueError, match="num_classes"):
        MeanIoU(num_classes=0)


def _tiny_data(k=3):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, k, (4, 8, 8)).astype("int32")
    labels[:, 0, :] = 255
    return images, labels


def _expected_miou(model, images, labels, k=3):
    pred = model.predict(images, verbose=0)
    pred = pred["logits"] if isinstance(pred, dict) else pred
    return mean_iou_from_confusion(confusion_matrix(labels, pred.argmax(-1), k))


def test_in_fit_and_evaluate_single_output_model():
    images, labels = _tiny_data()
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(3, 1)(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
        metrics=[MeanIoU(3), PixelAccuracy(3)],
    )
    history = model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    assert "mean_iou" in history.history and "pixel_accuracy" in history.history
    result = model.evaluate(images, labels, batch_size=2, verbose=0, return_dict=True)
    assert result["mean_iou"] == pytest.approx(_expected_miou(model, images, labels), abs=1e-6)


class DictTrainer(keras.Model):
    """The attachment pattern documented for train.py: dict targets, dict outputs."""

    def __init__(self, net, num_classes):
        super().__init__()
        self.net = net
        self.seg_metrics = [MeanIoU(num_classes), PixelAccuracy(num_classes)]
        self.ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)

    def call(self, x, training=False):
        return self.net(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return self.ce(y["labels"], y_pred["logits"]) + 0.4 * self.ce(
            y["labels"], y_pred["aux_logits"]
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for metric in self.seg_metrics:
            metric.update_state(y, y_pred)
        return self.get_metrics_result()


def test_in_fit_with_dict_output_model():
    images, labels = _tiny_data()
    inputs = keras.Input((None, None, 3))
    feats = keras.layers.Rescaling(1 / 255)(inputs)
    net = keras.Model(inputs, {"logits": keras.layers.Conv2D(3, 1)(feats),
                               "aux_logits": keras.layers.Conv2D(3, 1)(feats)})
    trainer = DictTrainer(net, 3)
    trainer.compile(optimizer="sgd")
    targets = {"labels": labels}
    history = trainer.fit(images, targets, batch_size=2, epochs=1, verbose=0)
    assert "mean_iou" in history.history
    result = trainer.evaluate(images, targets, batch_size=2, verbose=0, return_dict=True)
    assert result["mean_iou"] == pytest.approx(_expected_miou(net, images, labels), abs=1e-6)
    assert 0.0 <= result["pixel_accuracy"] <= 1.0
