"""SavedModel signatures, TFLite precisions and parity of kerasfuse.export.

The per-method tests share one full export per method (``method_export``: SavedModel +
float32 / float16 / dynamic-range / int8 TFLite) and check it against the Keras model with
independent NumPy softmax / sigmoid and the LiteRT interpreter used directly.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from kerasfuse import export
from kerasfuse.loading import read_metadata
from tests.export.conftest import SIZE, build_tiny, keras_reference

pytestmark = pytest.mark.slow


def _task(name):
    return "edge" if name == "dff" else "segmentation"


def _main_output(task):
    return "edge_probabilities" if task == "edge" else "probabilities"


def _example(image):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[tf.io.encode_png(image).numpy()])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_layout_and_signature_specs(method_export):
    name, _, result = method_export
    assert result.saved_model_dir.endswith(os.path.join(name, "1"))
    assert os.path.isfile(os.path.join(result.saved_model_dir, "saved_model.pb"))
    loaded = tf.saved_model.load(result.saved_model_dir)
    assert set(loaded.signatures) == {"serving_default", "metadata", *export.SIGNATURES}
    description = read_metadata(loaded)
    assert description["model_name"] == name and description["task"] == _task(name)
    assert description["class_names"] == ["0", "1", "2"]
    tflite_description = export.read_metadata(result.tflite_files["int8"])
    assert tflite_description == description
    specs = {key: loaded.signatures[key].structured_input_signature[1]
             for key in loaded.signatures if key != "metadata"}
    assert specs["image_tensor"]["images"].dtype == tf.uint8
    assert specs["image_tensor"]["images"].shape.as_list() == [None, None, None, 3]
    assert specs["image_bytes"]["image_bytes"].dtype == tf.string
    assert specs["tf_example"]["tf_examples"].shape.as_list() == [None]
    assert specs["serving_default"] == specs["image_tensor"]
    outputs = set(loaded.signatures["image_tensor"].structured_outputs)
    expected = {"edge_probabilities"} if name == "dff" else {"class_map", "probabilities"}
    assert outputs == expected


def test_signatures_match_keras(method_export, test_images):
    name, model, result = method_export
    task = _task(name)
    probabilities, maps = keras_reference(model, test_images, task)
    sigs = tf.saved_model.load(result.saved_model_dir).signatures
    jpeg_free = [tf.io.encode_png(x).numpy() for x in test_images]
    runs = {
        "image_tensor": sigs["image_tensor"](images=tf.constant(test_images)),
        "serving_default": sigs["serving_default"](images=tf.constant(test_images)),
        "image_bytes": sigs["image_bytes"](image_bytes=tf.constant(jpeg_free)),
        "tf_example": sigs["tf_example"](
            tf_examples=tf.constant([_example(x) for x in test_images])),
    }
    for key, outputs in runs.items():
        got = outputs[_main_output(task)].numpy()
        assert got.shape == (2, *SIZE, 3), key
        np.testing.assert_allclose(got, probabilities, atol=1e-5, err_msg=key)
        if task == "segmentation":
            assert outputs["class_map"].dtype == tf.int32
            assert np.mean(outputs["class_map"].numpy() == maps) >= 0.999, key


def test_saved_model_cli(method_export, tmp_path):
    name, _, result = method_export
    inputs = tmp_path / "images.npy"
    np.save(inputs, np.full((1, *SIZE, 3), 120, dtype=np.uint8))
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    shown = subprocess.run([*cli, "show", "--dir", result.saved_model_dir, "--all"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert shown.returncode == 0, shown.stderr
    for signature in ("serving_default", *export.SIGNATURES):
        assert f"signature_def['{signature}']" in shown.stdout
    ran = subprocess.run(
        [*cli, "run", "--dir", result.saved_model_dir, "--tag_set", "serve",
         "--signature_def", "image_tensor",
         "--inputs", f"images={inputs}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert f"Result for output key {_main_output(_task(name))}" in ran.stdout


def test_tflite_precisions(method_export, test_images):
    name, model, result = method_export
    task = _task(name)
    probabilities, maps = keras_reference(model, test_images, task)
    assert sorted(result.tflite_files) == sorted(export.PRECISIONS)
    agreement = {}
    for precision, path in result.tflite_files.items():
        runner = Interpreter(model_path=path).get_signature_runner("serving_default")
        outs = [runner(images=x[None].astype(np.float32)) for x in test_images]
        got = np.concatenate([o[_main_output(task)] for o in outs])
        got_maps = got > 0.5 if task == "edge" else np.concatenate(
            [o["class_map"] for o in outs])
        assert got.shape == probabilities.shape, precision
        agreement[precision] = np.mean(got_maps == maps)
        if precision == "float32":
            np.testing.assert_allclose(got, probabilities, atol=1e-4)
    assert agreement["float16"] >= 0.99
    rows = {row.format: row for row in result.rows}
    assert set(rows) == {"keras", *(f"saved_model:{s}" for s in export.SIGNATURES),
                         *(f"tflite:{p}" for p in export.PRECISIONS)}
    assert 0.0 <= rows["tflite:int8"].agreement <= 1.0
    assert rows["tflite:float32"].max_abs_diff <= 1e-4
    assert os.path.getsize(result.tflite_files["int8"]) < os.path.getsize(
        result.tflite_files["float32"])
    assert os.path.isfile(result.report_path)
    print(f"{name}: int8 agreement {rows['tflite:int8'].agreement:.4f}, "
          f"float16 {agreement['float16']:.4f}")


def test_native_size_policy(tmp_path, test_images):
    model = build_tiny("dmnet")
    result = export.export_model(model, str(tmp_path), "native",
                                 precisions=(), parity_samples=1, log=None)
    sigs = tf.saved_model.load(result.saved_model_dir).signatures
    image = np.ascontiguousarray(test_images[0, :48, :40])
    outputs = sigs["image_tensor"](images=tf.constant(image[None]))
    assert outputs["class_map"].shape == (1, 48, 40)
    probabilities, _ = keras_reference(model, image[None], "segmentation")
    np.testing.assert_allclose(outputs["probabilities"].numpy(), probabilities, atol=1e-5)
    pngs = [tf.io.encode_png(test_images[0]).numpy(), tf.io.encode_png(image).numpy()]
    with pytest.raises(tf.errors.InvalidArgumentError, match="must share one size"):
        sigs["image_bytes"](image_bytes=tf.constant(pngs))


def test_bad_inputs_are_rejected(tmp_path, test_images):
    model = build_tiny("dmnet")
    result = export.export_model(model, str(tmp_path), "dmnet", input_size=SIZE,
                                 precisions=(), parity_samples=1, log=None)
    sigs = tf.saved_model.load(result.saved_model_dir).signatures
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8"):
        sigs["image_tensor"](images=tf.constant(test_images, tf.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be 4-dimensional"):
        sigs["image_tensor"](images=tf.constant(test_images[0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not PNG/JPEG"):
        sigs["image_bytes"](image_bytes=tf.constant([b"definitely not an image"]))
    png = tf.io.encode_png(test_images[0]).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError):
        sigs["image_bytes"](image_bytes=tf.constant([png[: len(png) // 2]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="not PNG/JPEG"):
        sigs["tf_example"](tf_examples=tf.constant([tf.train.Example().SerializeToString()]))
    jpeg = tf.io.encode_jpeg(test_images[0], quality=95).numpy()
    outputs = sigs["image_bytes"](image_bytes=tf.constant([jpeg, png]))
    assert outputs["class_map"].shape == (2, *SIZE)
    probabilities, _ = keras_reference(model, test_images[:1], "segmentation")
    np.testing.assert_allclose(outputs["probabilities"].numpy()[1], probabilities[0],
                               atol=1e-5)


def test_flex_op_fails_naming_the_op(tmp_path):
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(2, 1)(inputs)
    logits = keras.layers.Lambda(tf.math.digamma, output_shape=(8, 8, 2))(features)
    model = keras.Model(inputs, {"logits": logits})
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda x: model(x)["logits"],
                         input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32,
                                                        name="images")])
    archive.write_out(str(tmp_path / "flex"), verbose=False)
    with pytest.raises(export.ExportError, match=r"tf\.Digamma.*Flex"):
        export.convert_tflite(str(tmp_path / "flex"), "float32")
