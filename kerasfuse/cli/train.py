"""Train a kerasfuse model: ``python train.py [--config FILE] [section.key=value ...]``.

With no arguments it trains the embedded default: it builds the synthetic TFRecords in
``data/synthetic`` if they are missing, trains a small gated-fusion network (GFF on a
``resnet_tiny`` backbone, 128x128 crops) for a few minutes on a CPU, evaluates it, prints
the validation mIoU and writes ``runs/default/`` (resolved config, checkpoints,
TensorBoard logs, ``best.keras`` / ``final.keras``, prediction PNGs).

A killed run restarted with the same command resumes from its last checkpoint.
See docs/training.md for the config schema, named configs and distributed training.
Installed as the console script ``kerasfuse-train``; ``train.py`` in a checkout calls it.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



def _parser():
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train a kerasfuse segmentation / semantic-edge model.",
        epilog="Example: python train.py --config synthetic/dmnet model.backbone=resnet_small "
               "optimizer.lr=0.02",
    )
    parser.add_argument("--config", help="YAML/JSON config file or a named config shipped "
                        "in kerasfuse/configs/ (e.g. cityscapes/dmnet); default: the "
                        "embedded demo")
    parser.add_argument("--devices", type=int, default=None, metavar="N",
                        help="split the CPU into N logical devices and train with "
                        "MirroredStrategy over them (sets run.devices)")
    parser.add_argument("--force", action="store_true",
                        help="when the run directory holds a run with another config, move "
                        "it aside (<run dir>.replaced-<time>) and start afresh instead of "
                        "refusing")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback of an error as well as its one-line message")
    parser.add_argument("--list-models", action="store_true",
                        help="print the registered model names and exit")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="config overrides, e.g. model.name=dmnet optimizer.lr=0.01")
    return parser


def _ensure_data(config):
    """Build the synthetic dataset when the training shards are missing and it is allowed."""
    import glob

    data = config.data
    if glob.glob(data.train_pattern) or not data.synthetic_dir:
        return
    target = os.path.abspath(data.synthetic_dir)
    if os.path.abspath(os.path.dirname(data.train_pattern)) != target:
        return
    from pipelines import build_synthetic

    print(f"building the synthetic dataset in {data.synthetic_dir} "
          f"({data.synthetic_train} train / {data.synthetic_val} val images)", flush=True)
    build_synthetic(data.synthetic_dir, train=data.synthetic_train, val=data.synthetic_val,
                    workers=min(4, os.cpu_count() or 1))


def main(argv=None):
    """CLI entry point; returns the exit code (0 ok, 2 bad input, 1 a run that started and
    failed: diverged, disk full...), one ``train.py: error:`` line for expected failures."""
    args = _parser().parse_args(argv)
    from kerasfuse.checks import CommandLine

    cli = CommandLine("train.py", debug=args.debug, failures=(FloatingPointError,))
    return cli.run(_main, args, cli)


def _main(args, cli):
    from kerasfuse.config import load_config

    if args.list_models:
        from kerasfuse.models.registry import MODELS

        for name, spec in sorted(MODELS.items()):
            print(f"{name:24s} {spec.task:12s} {spec.description}")
        return 0
    overrides = list(args.overrides)
    if args.devices is not None:
        overrides.append(f"run.devices={args.devices}")
    config = load_config(args.config, overrides)
    _ensure_data(config)
    import keras

    from kerasfuse.training import Trainer

    keras.utils.set_random_seed(config.run.seed)
    trainer = Trainer(config, replace_run=args.force, on_start=cli.started)
    metrics = trainer.train()
    if trainer.chief:
        key = trainer.monitor
        name = "mIoU" if key == "mean_iou" else "MF-ODS"
        if key in metrics:
            print(f"val {name}: {metrics[key]:.4f}")
        print(f"run directory: {trainer.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
