"""Training: the method loss under ``model.fit``, optimization, distribution, callbacks,
validation, summaries and the :class:`Trainer` that puts them together.

========================  ===============================================================
``loss_model``            :class:`LossModel` (method losses that read all outputs)
``optimization``          :class:`PolyDecay`, :class:`SegmentationSGD`, ``build_optimizer``
``distribute``            strategy selection, chief election, input sharding policy
``callbacks``             progress bar, NaN guard, run monitor (``model.fit`` path)
``validation``            NumPy evaluation of a network during training
``summaries``             TensorBoard scalars / images and prediction panels
``trainer``               :class:`Trainer` (``fit`` and multi-worker custom loop)
========================  ===============================================================
"""

from kerasfuse.training.callbacks import ProgressBar, RunMonitor, TerminateOnNaN
from kerasfuse.training.distribute import (
    configure_logical_devices,
    is_chief,
    make_strategy,
    num_workers,
    shard_policy,
)
from kerasfuse.training.loss_model import LossModel
from kerasfuse.training.optimization import (
    PolyDecay,
    SegmentationSGD,
    build_optimizer,
    current_lr,
)
from kerasfuse.training.summaries import prediction_pictures, write_images, write_scalar
from kerasfuse.training.trainer import Trainer, shard_files
from kerasfuse.training.validation import evaluate, logits_function

__all__ = [
    "LossModel", "PolyDecay", "ProgressBar", "RunMonitor", "SegmentationSGD",
    "TerminateOnNaN", "Trainer", "build_optimizer", "configure_logical_devices",
    "current_lr", "evaluate", "is_chief", "logits_function", "make_strategy", "num_workers",
    "prediction_pictures", "shard_files", "shard_policy", "write_images", "write_scalar",
]
