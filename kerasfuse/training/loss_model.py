"""LossModel: ``model.fit`` with a method loss that sees all outputs at once.

Method losses read several outputs together (DecoupleSegNet's boundary-restricted OHEM reads
the final logits *and* the boundary logit), which per-output Keras losses cannot express.
So training wraps the network in :class:`LossModel`, whose ``compute_loss`` calls the
method loss; ``model.fit`` then works unchanged, including under tf.distribute.
"""

import keras
import tensorflow as tf


class LossModel(keras.Model):
    """``keras.Model`` wrapper: ``call`` runs ``network``, ``compute_loss`` the method loss.

    Args:
        network: functional kerasfuse model with dict outputs.
        loss_fn: method loss, ``loss_fn(targets, outputs) -> {"loss": total, ...}``.
        **kwargs: standard Model arguments.

    The total loss is divided by the number of replicas in sync, as Keras does for its own
    losses, so gradients summed over replicas equal the global-batch gradient.
    Save ``network`` (not the wrapper) for inference and export.
    """

    def __init__(self, network, loss_fn, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.loss_fn = loss_fn

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        del x, sample_weight, training
        total = self.loss_fn(y, y_pred)["loss"]
        if self.losses:
            total = total + tf.add_n([tf.cast(loss, total.dtype) for loss in self.losses])
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            total = total / tf.cast(replicas, total.dtype)
        return total
