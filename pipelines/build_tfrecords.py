"""Convert a dataset to sharded TFRecords: ``python -m pipelines.build_tfrecords SOURCE ...``.

SOURCE is one of ``synthetic``, ``folders``, ``cityscapes``, ``voc``, ``ade20k``, ``tfds``
(``--help`` after a source lists its options). Options may also come from ``--config
FILE`` (YAML mapping of option names, e.g. ``num_shards: 8``) and trailing ``key=value``
overrides; precedence: defaults < config file < flags < overrides. Bad input ends with
one ``error:`` line and exit status 2.
"""

import argparse
import os
import sys

import yaml

from pipelines import converters, synthetic, writer
from pipelines.checks import CommandLine, add_debug_argument, read_option_file


def _common(parser, default_shards):
    parser.add_argument("--out", required=True, help="output folder for shards + manifests")
    parser.add_argument(
        "--num-shards", type=int, default=default_shards, help="shards per split"
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace shards of a different conversion"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--full-hash", action="store_true",
        help="fingerprint source files by a hash of their whole content (default: size, "
             "mtime and a hash of the first and last 64 KiB)")
    parser.add_argument("--config", help="YAML file of option values")
    add_debug_argument(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="option overrides")


def _split_list(text):
    return [s for s in text.split(",") if s]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.build_tfrecords",
        description="Convert a segmentation dataset to sharded TFRecords plus manifests.",
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")

    p = sub.add_parser("synthetic", help="procedural synthetic dataset (no download)")
    p.add_argument("--train", type=int, default=2000, help="train images")
    p.add_argument("--val", type=int, default=200, help="val images")
    p.add_argument("--image-size", type=int, nargs=2, default=[128, 128], metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=0)
    _common(p, 4)

    p = sub.add_parser("folders", help="generic folders of image/label pairs matched by stem")
    p.add_argument("--images", required=True, help="folder of images (png/jpg)")
    p.add_argument("--labels", required=True, help="folder of label PNGs (train ids)")
    p.add_argument("--split", default="train", help="split name of the output shards")
    p.add_argument(
        "--class-names", type=_split_list, help="comma-separated class names (sets K)"
    )
    p.add_argument("--num-classes", type=int, help="K when --class-names is not given")
    p.add_argument("--instances", help="optional folder of 16-bit instance-id PNGs")
    p.add_argument("--ignore-label", type=int, default=255)
    _common(p, 4)

    p = sub.add_parser("cityscapes", help="Cityscapes leftImg8bit/ + gtFine/ (19 train ids)")
    p.add_argument("root", help="folder holding leftImg8bit/ and gtFine/")
    p.add_argument("--splits", type=_split_list, default=["train", "val"])
    _common(p, 16)

    p = sub.add_parser("voc", help="Pascal VOC 2012 (+ SBD .mat files)")
    p.add_argument("root", help="VOC2012 folder (JPEGImages/, SegmentationClass/, ...)")
    p.add_argument("--sbd", help="SBD benchmark_RELEASE/dataset folder (img/, cls/, inst/)")
    p.add_argument("--splits", type=_split_list, default=["train", "val"])
    _common(p, 8)

    p = sub.add_parser("ade20k", help="ADE20K SceneParse150 (ADEChallengeData2016)")
    p.add_argument("root", help="folder holding images/ and annotations/")
    p.add_argument("--splits", type=_split_list, default=["train", "val"])
    _common(p, 16)

    p = sub.add_parser("tfds", help="a TFDS dataset with image + segmentation mask features")
    p.add_argument("name", help="TFDS builder name, e.g. oxford_iiit_pet")
    p.add_argument("--splits", type=_split_list, default=["train"])
    p.add_argument("--image-key", default="image")
    p.add_argument("--label-key", default="segmentation_mask")
    p.add_argument("--num-classes", type=int, required=True, help="K (ids 0..K-1)")
    p.add_argument("--label-offset", type=int, default=0, help="added to mask values")
    p.add_argument("--void-id", type=int, help="mask value (after offset) meaning ignore")
    p.add_argument("--data-dir", help="TFDS data_dir")
    _common(p, 4)
    return parser


def _apply_config(parser, argv):
    """Parse with config-file values as defaults and key=value overrides on top."""
    args = parser.parse_args(argv)
    subparser = parser._subparsers._group_actions[0].choices[args.source]
    if args.config:
        config = read_option_file(args.config)
        _check_keys(args, config, f"--config {args.config}")
        subparser.set_defaults(**config)
        args = parser.parse_args(argv)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        overrides[key] = yaml.safe_load(value)
    _check_keys(args, overrides, "override")
    for key, value in overrides.items():
        setattr(args, key.replace("-", "_"), value)
    return args


def _check_keys(args, mapping, where):
    known = set(vars(args)) - {"source", "overrides", "config"}
    for key in mapping:
        if key.replace("-", "_") not in known:
            raise ValueError(f"{where}: unknown option {key!r} for {args.source}")


def run(args):
    with writer.content_hash("full" if args.full_hash else "fast"):
        return _convert(args)


def _convert(args):
    common = dict(
        num_shards=args.num_shards,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    if args.source == "synthetic":
        synthetic.build_synthetic(
            args.out,
            train=args.train,
            val=args.val,
            image_size=tuple(args.image_size),
            seed=args.seed,
            **common,
        )
    elif args.source == "folders":
        converters.convert_folders(
            args.out,
            args.images,
            args.labels,
            split=args.split,
            class_names=args.class_names,
            num_classes=args.num_classes,
            instances_dir=args.instances,
            ignore_label=args.ignore_label,
            **common,
        )
    elif args.source == "cityscapes":
        converters.convert_cityscapes(args.out, args.root, splits=args.splits, **common)
    elif args.source == "voc":
        converters.convert_voc(args.out, args.root, sbd_root=args.sbd, splits=args.splits,
                               **common)
    elif args.source == "ade20k":
        converters.convert_ade20k(args.out, args.root, splits=args.splits, **common)
    else:
        converters.convert_tfds(
            args.out,
            args.name,
            splits=args.splits,
            image_key=args.image_key,
            label_key=args.label_key,
            num_classes=args.num_classes,
            label_offset=args.label_offset,
            void_id=args.void_id,
            data_dir=args.data_dir,
            **common,
        )
    return os.path.abspath(args.out)


def main(argv=None):
    parser = build_parser()
    cli = CommandLine("build_tfrecords",
                      debug="--debug" in (argv if argv is not None else sys.argv[1:]))

    def body():
        out = run(_apply_config(parser, argv))
        print(f"wrote TFRecords and manifests to {out}")

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
