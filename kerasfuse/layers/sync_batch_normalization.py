"""SyncBatchNormalization: cross-replica BN that uses TF's fused kernel on one replica."""

import keras
import tensorflow as tf


def _replicas_in_sync():
    """Replicas of the enclosing tf.distribute replica context (1 outside one)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


@keras.saving.register_keras_serializable(package="kerasfuse")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization synchronised across replicas, fused on a single replica.

    Training normalises with the batch moments ``mu_B = mean(x)``,
    ``sigma_B^2 = mean((x - mu_B)^2)`` over batch, height and width, and
    ``y = gamma * (x - mu_B) / sqrt(sigma_B^2 + eps) + beta`` (Ioffe & Szegedy, "Batch
    Normalization", ICML 2015, Algorithm 1); the moving statistics follow
    ``m <- momentum * m + (1 - momentum) * stat`` with the biased batch variance, exactly
    as ``keras.layers.BatchNormalization``. Inference uses the moving statistics.

    Under a tf.distribute strategy with several replicas the moments are all-reduced over
    the replicas (synchronised BN, docs/design.md §5) by Keras' ``synchronized=True`` path. With
    one replica there is nothing to synchronise, and a 4-D channels-last training call runs
    TensorFlow's ``FusedBatchNormV3`` kernel (forward and gradient) instead of Keras'
    composite ops: the same values, fewer kernels (see ``bench/primitives.py``). Every other
    case (masks, renorm, other ranks or axes) is Keras' implementation unchanged.
    """

    def __init__(self, **kwargs):
        kwargs["synchronized"] = True
        super().__init__(**kwargs)

    def _can_fuse(self, inputs, mask):
        return (mask is None and not self.renorm and len(inputs.shape) == 4
                and self.axis in (-1, 3) and _replicas_in_sync() == 1)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        y, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
            epsilon=self.epsilon, data_format="NHWC", is_training=True)[:3]
        # The kernel reports the Bessel-corrected variance n / (n - 1) * sigma_B^2 for the
        # moving average; Keras (and the normalisation itself) use sigma_B^2. A single
        # value per channel (n = 1) has sigma_B^2 = 0.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
        variance = tf.where(count > 1.0, variance * (count - 1.0) / count,
                            tf.zeros_like(variance))
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * self.momentum
                          + tf.cast(batch, moving.dtype) * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("synchronized", None)
        return config
