"""Learning-curve study of training recipes: validation mIoU after N steps, per recipe.

This is how the recipe of the embedded demo (``python train.py``) was chosen. Each case is
a ``train.py``-style list of ``key=value`` overrides on top of a config (the defaults, or
``--config``); the script trains the configured network for ``--steps`` steps with the
configured optimizer and poly schedule (its length set to ``--steps``), and every
``--eval-every`` steps prints one JSON line with the wall time, the training loss, the
validation mIoU (whole validation split) and the per-class IoU, plus the mIoU of the first
200 *training* images seen without augmentation (train mIoU close to val mIoU means the
recipe underfits rather than overfits). No checkpoints, no TensorBoard: only the
learning curve.

    python bench/recipe.py --steps 600                                   # the defaults
    python bench/recipe.py --steps 600 optimizer.lr=0.1 "data.scale_range=[0.75,2.0]"
    python bench/recipe.py --threads 1 --steps 1200 model.backbone=resnet_small

Compare recipes at equal steps (``--threads 1`` lets two cases share a 2-core machine, one
core each, so run-to-run timing is comparable but each case runs ~1.6x slower than alone).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--config", default=None, help="config file or named config")
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--eval-every", type=int, default=300, help="steps between evals")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra/inter-op threads (0 = TensorFlow's choice)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.steps < 1 or args.eval_every < 1 or args.steps % args.eval_every:
        raise SystemExit("--steps must be a positive multiple of --eval-every")
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    from kerasfuse.cli import train
    from kerasfuse.config import ConfigError, load_config
    from kerasfuse.training import Trainer, evaluate
    from pipelines import make_dataset

    try:
        config = load_config(args.config, args.overrides)
        config.schedule.epochs, config.schedule.steps_per_epoch = 1, args.steps
        train._ensure_data(config)
        keras.utils.set_random_seed(config.run.seed)
        trainer = Trainer(config)
        trainer.build()
    except ConfigError as err:
        print(f"recipe.py: error: {err}", file=sys.stderr)
        return 2
    network, task, num_classes = trainer.network, trainer.spec.task, trainer.num_classes
    train_plain = make_dataset(trainer.train_files, training=False, crop_size=None,
                               batch_size=8, targets=("labels",), num_classes=num_classes)
    print(json.dumps({"case": args.overrides, "params": network.count_params()}), flush=True)
    start = time.time()

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metrics = evaluate(network, trainer.val_ds, task, num_classes)
            seen = evaluate(network, train_plain, task, num_classes, steps=25)
            print(json.dumps({
                "step": (epoch + 1) * args.eval_every,
                "seconds": round(time.time() - start),
                "loss": round(float(logs["loss"]), 3),
                "val_miou": round(metrics["mean_iou"], 4),
                "train_miou": round(seen["mean_iou"], 4),
                "iou": [None if v is None else round(v, 2) for v in metrics["iou"]],
            }), flush=True)

    trainer.model.fit(trainer.train_ds, steps_per_epoch=args.eval_every,
                      epochs=args.steps // args.eval_every, verbose=0, callbacks=[Report()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
