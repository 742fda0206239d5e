"""Images for int8 calibration and the parity check: TFRecords, or synthetic scenes."""

import glob

import numpy as np
import tensorflow as tf

from kerasfuse.export.common import resize_images


def read_representative(pattern, num_samples, input_size):
    """Up to ``num_samples`` images from TFRecord shards, resized like the signatures.

    Returns float32 [N,H,W,3] RGB in [0, 255]; ValueError naming the pattern when no shard
    matches or no record can be read.
    """
    from pipelines import schema

    files = sorted(glob.glob(pattern))
    if not files:
        raise ValueError(f"representative pattern {pattern!r} matches no file")
    images = []
    try:
        for serialized in tf.data.TFRecordDataset(files).take(num_samples):
            decoded = schema.decode_example(schema.parse_example(serialized),
                                            with_instances=False)
            images.append(resize_images(decoded["image"][None], input_size)[0].numpy())
    except tf.errors.OpError as err:
        raise ValueError(f"representative data {pattern!r}: {err.message}") from err
    if not images:
        raise ValueError(f"representative pattern {pattern!r} holds no record")
    return np.stack(images)


def synthetic_images(num_samples, input_size, seed=0):
    """Deterministic procedural scenes (pipelines.synthetic) when no TFRecords are given."""
    from pipelines.synthetic import render_scene

    return np.stack([
        render_scene(seed, 1, i, input_size[0], input_size[1])[0].astype(np.float32)
        for i in range(num_samples)
    ])
