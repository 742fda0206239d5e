"""Old (absolute 1e-4 on probabilities) vs scale-aware parity verdicts on fresh models.

For each seed: build a random-weight model, convert it to float32 TFLite, and run the
parity check once with an effectively infinite tolerance (to read max |dp|, the logit scale
and the flipped pixels) and once with the default scale-aware tolerance. Then the same for
a deliberately broken conversion (BGR fed instead of RGB), which must fail.

    python bench/parity_scale.py --model dmnet --backbone resnet_tiny --size 64 96 --seeds 8
    python bench/parity_scale.py --model dmnet --backbone resnet_small --classes 19 \\
        --size 256 256 --seeds 1
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasfuse  # noqa: E402
from kerasfuse.export import ExportError, check_parity, convert_tflite  # noqa: E402
from kerasfuse.export.calibration import synthetic_images  # noqa: E402
from kerasfuse.export.common import postprocess  # noqa: E402
from kerasfuse.export.parity import DEFAULT_TOLERANCE  # noqa: E402

OLD_TOLERANCE = 1e-4


def fixed_model(model, path, size, swap_channels=False):
    def serve(images):
        images = images[..., ::-1] if swap_channels else images
        return postprocess(model(images, training=False)["logits"], model.task)

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([1, *size, 3], tf.float32, name="images")
    archive.add_endpoint("serving_default", serve, input_signature=[spec])
    archive.write_out(path, verbose=False)
    return path


def verdicts(model, images, tflite_path):
    row = check_parity(model, images, None, {"float32": tflite_path}, tolerance=1e9)[1]
    try:
        check_parity(model, images, None, {"float32": tflite_path})
        new = "pass"
    except ExportError:
        new = "FAIL"
    allowed = row.allowed / 1e9 * DEFAULT_TOLERANCE
    old = "pass" if row.max_abs_diff <= OLD_TOLERANCE else "FAIL"
    return row.max_abs_diff, allowed, old, new


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dmnet")
    parser.add_argument("--backbone", default="resnet_tiny")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=2, default=[64, 96])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    size = tuple(args.size)
    images = np.clip(np.round(synthetic_images(args.images, size, 0)), 0, 255).astype(np.uint8)
    print(f"{'seed':>4} {'case':>8} {'max|dp|':>9} {'allowed':>9} {'old 1e-4':>9} "
          f"{'new':>5}")
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        model = kerasfuse.build_model(args.model, args.classes, backbone=args.backbone)
        with tempfile.TemporaryDirectory() as tmp:
            for case, swap in (("correct", False), ("bgr", True)):
                saved = fixed_model(model, os.path.join(tmp, case), size, swap)
                path = os.path.join(tmp, f"{case}.tflite")
                with open(path, "wb") as f:
                    f.write(convert_tflite(saved, "float32"))
                diff, allowed, old, new = verdicts(model, images, path)
                print(f"{seed:>4} {case:>8} {diff:>9.2e} {allowed:>9.2e} {old:>9} {new:>5}",
                      flush=True)


if __name__ == "__main__":
    main()
