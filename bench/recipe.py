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
import glob
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

    from kerasfuse.config import load_config
    from kerasfuse.models.registry import build_loss, build_model
    from kerasfuse.training import LossModel, build_optimizer, evaluate, manifest_for, shard_files
    from pipelines import build_synthetic, make_dataset
    from pipelines.writer import read_manifest

    config = load_config(args.config, args.overrides)
    config.schedule.epochs, config.schedule.steps_per_epoch = 1, args.steps
    data, model_cfg = config.data, config.model
    if not glob.glob(data.train_pattern) and data.synthetic_dir:
        build_synthetic(data.synthetic_dir, train=data.synthetic_train,
                        val=data.synthetic_val, progress=False)
    train_files = shard_files(data.train_pattern)
    num_classes = data.num_classes or int(read_manifest(manifest_for(train_files[0]))[
        "num_classes"])
    keras.utils.set_random_seed(config.run.seed)
    network = build_model(model_cfg.name, num_classes, backbone=model_cfg.backbone,
                          output_stride=model_cfg.output_stride, weights=model_cfg.weights,
                          **model_cfg.builder_options())
    model = LossModel(network, build_loss(model_cfg.name, num_classes, **config.loss.options))
    model.compile(optimizer=build_optimizer(config.optimizer, config.schedule, network),
                  jit_compile=False)
    train = make_dataset(train_files, training=True, crop_size=tuple(data.crop_size),
                         batch_size=data.batch_size, targets=("labels",),
                         num_classes=num_classes, seed=config.run.seed,
                         scale_range=data.scale_range, flip=data.flip,
                         color_jitter=data.color_jitter, shuffle_buffer=data.shuffle_buffer)
    val = make_dataset(shard_files(data.val_pattern), training=False, crop_size=None,
                       batch_size=8, targets=("labels",), num_classes=num_classes)
    train_plain = make_dataset(train_files, training=False, crop_size=None, batch_size=8,
                               targets=("labels",), num_classes=num_classes)
    print(json.dumps({"case": args.overrides, "params": network.count_params()}), flush=True)
    start = time.time()

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metrics = evaluate(network, val, "segmentation", num_classes)
            seen = evaluate(network, train_plain, "segmentation", num_classes, steps=25)
            print(json.dumps({
                "step": (epoch + 1) * args.eval_every,
                "seconds": round(time.time() - start),
                "loss": round(float(logs["loss"]), 3),
                "val_miou": round(metrics["miou"], 4),
                "train_miou": round(seen["miou"], 4),
                "iou": [None if v is None else round(v, 2) for v in metrics["iou"]],
            }), flush=True)

    model.fit(train, steps_per_epoch=args.eval_every, epochs=args.steps // args.eval_every,
              verbose=0, callbacks=[Report()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
