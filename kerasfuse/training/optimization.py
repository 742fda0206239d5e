"""The papers' optimizer and learning-rate schedule: poly decay with warmup, SGD with a head
LR multiplier and PyTorch-style weight decay.
"""

import keras

from kerasfuse.config import ConfigError


@keras.saving.register_keras_serializable(package="kerasfuse")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Poly learning-rate schedule with an optional linear warmup.

    ``lr(t) = end_lr + (lr - end_lr) * (1 - t / total_steps) ** power`` for
    ``t >= warmup_steps``; during warmup the rate rises linearly from
    ``warmup_factor * lr(warmup_steps)`` to ``lr(warmup_steps)``; after ``total_steps`` it
    stays at ``end_lr``. The "poly" policy of DeepLab / PSPNet used by all five papers
    (power 0.9).

    Args:
        lr: base learning rate.
        total_steps: steps of the whole run.
        power: poly exponent.
        warmup_steps: warmup length (0 = none).
        warmup_factor: starting fraction of the warmup.
        end_lr: final learning rate.
    """

    def __init__(self, lr, total_steps, power=0.9, warmup_steps=0, warmup_factor=0.1,
                 end_lr=0.0):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"warmup_steps must be in [0, {total_steps}), got "
                             f"{warmup_steps!r}")
        self.lr = float(lr)
        self.total_steps = int(total_steps)
        self.power = float(power)
        self.warmup_steps = int(warmup_steps)
        self.warmup_factor = float(warmup_factor)
        self.end_lr = float(end_lr)

    def _poly(self, step):
        fraction = keras.ops.minimum(step / self.total_steps, 1.0)
        return self.end_lr + (self.lr - self.end_lr) * (1.0 - fraction) ** self.power

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = self._poly(step)
        if self.warmup_steps:
            peak = self._poly(keras.ops.cast(self.warmup_steps, "float32"))
            ramp = step / self.warmup_steps
            warm = peak * (self.warmup_factor + (1.0 - self.warmup_factor) * ramp)
            rate = keras.ops.where(step < self.warmup_steps, warm, rate)
        return rate

    def get_config(self):
        return {"lr": self.lr, "total_steps": self.total_steps, "power": self.power,
                "warmup_steps": self.warmup_steps, "warmup_factor": self.warmup_factor,
                "end_lr": self.end_lr}


@keras.saving.register_keras_serializable(package="kerasfuse")
class SegmentationSGD(keras.optimizers.SGD):
    """SGD with a per-variable LR multiplier and PyTorch-style (coupled) weight decay.

    * Head LR multiplier: variables registered with :meth:`set_backbone_variables` train
      at the scheduled rate, every other variable at ``head_lr_multiplier`` times it (DFF
      trains its head at 10x). The multiplier scales the learning rate inside the update,
      so it is exact for momentum SGD and coupled weight decay alike.
    * ``coupled_weight_decay``: ``g <- g + wd * w`` before the momentum update, exactly
      ``torch.optim.SGD(weight_decay=wd)``, so the papers' values apply unchanged. Keras'
      own ``weight_decay`` argument (decoupled: ``w <- w - lr * wd * w``) is still
      available for the "keras" mode.

    Args:
        learning_rate: float or schedule.
        momentum: momentum (papers: 0.9).
        head_lr_multiplier: LR factor of non-backbone variables.
        coupled_weight_decay: PyTorch-style L2 coefficient (0 = off).
        **kwargs: ``keras.optimizers.SGD`` arguments (nesterov, weight_decay,
            global_clipnorm, ...).
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, head_lr_multiplier=1.0,
                 coupled_weight_decay=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        self.head_lr_multiplier = float(head_lr_multiplier)
        self.coupled_weight_decay = float(coupled_weight_decay)
        self._backbone_keys = set()
        self._lr_factors = []

    def set_backbone_variables(self, variables):
        """Variables that train at the base rate; call before the optimizer is built."""
        if self.built:
            raise ValueError("set_backbone_variables must be called before the optimizer "
                             "is built")
        self._backbone_keys = {self._var_key(v) for v in variables}

    def build(self, variables):
        super().build(variables)
        self._lr_factors = [
            1.0 if self._var_key(v) in self._backbone_keys else self.head_lr_multiplier
            for v in variables
        ]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._lr_factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, factor)
        if self.coupled_weight_decay:
            gradient = keras.ops.add(
                keras.ops.cast(gradient, variable.dtype),
                keras.ops.multiply(keras.ops.cast(self.coupled_weight_decay, variable.dtype),
                                   variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(head_lr_multiplier=self.head_lr_multiplier,
                      coupled_weight_decay=self.coupled_weight_decay)
        return config


def build_optimizer(opt_config, schedule_config, network=None):
    """The configured :class:`SegmentationSGD` with a :class:`PolyDecay` schedule.

    Args:
        opt_config: ``OptimizerConfig``.
        schedule_config: ``ScheduleConfig``.
        network: the functional model; its nested "backbone" sub-model's variables train
            at the base LR (required when ``head_lr_multiplier != 1``).
    """
    schedule = PolyDecay(
        opt_config.lr,
        schedule_config.epochs * schedule_config.steps_per_epoch,
        power=schedule_config.power,
        warmup_steps=schedule_config.warmup_steps,
        warmup_factor=schedule_config.warmup_factor,
        end_lr=schedule_config.end_lr,
    )
    pytorch = opt_config.weight_decay_mode == "pytorch"
    optimizer = SegmentationSGD(
        learning_rate=schedule,
        momentum=opt_config.momentum,
        nesterov=opt_config.nesterov,
        head_lr_multiplier=opt_config.head_lr_multiplier,
        coupled_weight_decay=opt_config.weight_decay if pytorch else 0.0,
        weight_decay=None if pytorch or not opt_config.weight_decay else opt_config.weight_decay,
        global_clipnorm=opt_config.clipnorm,
    )
    if opt_config.head_lr_multiplier != 1.0:
        names = [layer.name for layer in network.layers] if network is not None else []
        if "backbone" not in names:
            raise ConfigError("optimizer.head_lr_multiplier needs a network with a nested "
                              f"'backbone' sub-model; layers are {names[:8]}...")
        optimizer.set_backbone_variables(network.get_layer("backbone").trainable_variables)
    return optimizer


def current_lr(optimizer):
    """The learning rate the optimizer uses at its current step (float)."""
    rate = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(rate))
