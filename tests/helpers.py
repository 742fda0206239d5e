"""The one shared layer-test helper (plus ``run_model_test``, its model-level counterpart).

``run_layer_test`` checks, for any kerasfuse layer: every ``__init__`` argument appears in
``get_config`` and the config round-trips; eager and symbolic output shapes (and
``compute_output_shape``) agree with the expected shape; optional trainable/non-trainable
weight counts; gradients of a scalar loss are non-None and finite for every trainable
weight; a functional model holding the layer saves to ``.keras`` and reloads to identical
outputs; one ``fit`` step gives a finite loss; and the layer runs under the
``mixed_float16`` policy with finite outputs.
"""

import inspect
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


def _as_list(inputs):
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def _symbolic_inputs(arrays):
    return [keras.Input(shape=a.shape[1:], batch_size=None, dtype=a.dtype.name) for a in arrays]


def _shapes(structure):
    return [tuple(t.shape) for t in keras.tree.flatten(structure)]


def check_config_round_trip(layer):
    """Every named ``__init__`` argument is in get_config and from_config rebuilds it."""
    config = layer.get_config()
    params = inspect.signature(type(layer).__init__).parameters
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        assert name in config, f"__init__ argument {name!r} missing from get_config()"
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    expected_output_shape,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    call_kwargs=None,
    run_training=True,
    run_mixed_precision=True,
    atol=1e-6,
):
    """Run the standard battery of checks on ``layer_cls(**init_kwargs)``.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        inputs: one NumPy array, or a list of arrays passed as separate positional call
            arguments (``layer(a, b)``).
        expected_output_shape: a shape tuple, or a flat list of shape tuples for layers
            with several outputs (flattened with ``keras.tree.flatten``).
        expected_num_trainable_weights: optional exact count.
        expected_num_non_trainable_weights: optional exact count.
        call_kwargs: extra keyword arguments for ``call``.
        run_training: run the gradient and ``fit`` checks (False for weightless layers is
            still fine: gradients are then taken w.r.t. float inputs only).
        run_mixed_precision: run the ``mixed_float16`` check.
        atol: tolerance for the save/reload comparison.
    """
    call_kwargs = call_kwargs or {}
    arrays = [np.asarray(a) for a in _as_list(inputs)]
    if isinstance(expected_output_shape, tuple):
        expected_shapes = [expected_output_shape]
    else:
        expected_shapes = [tuple(s) for s in expected_output_shape]

    layer = layer_cls(**init_kwargs)
    check_config_round_trip(layer)

    eager_out = layer(*arrays, **call_kwargs)
    assert _shapes(eager_out) == expected_shapes, (_shapes(eager_out), expected_shapes)
    for t in keras.tree.flatten(eager_out):
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(t))), "non-finite output"

    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    sym_layer = layer_cls(**init_kwargs)
    sym_inputs = _symbolic_inputs(arrays)
    sym_out = sym_layer(*sym_inputs, **call_kwargs)
    for got, want in zip(_shapes(sym_out), expected_shapes):
        assert len(got) == len(want)
        for g, w in zip(got[1:], want[1:]):
            assert g is None or g == w, (got, want)
    model = keras.Model(sym_inputs, sym_out)
    ref = keras.tree.map_structure(keras.ops.convert_to_numpy, model(arrays))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layer.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
    again = keras.tree.map_structure(keras.ops.convert_to_numpy, reloaded(arrays))
    for a, b in zip(keras.tree.flatten(ref), keras.tree.flatten(again)):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)

    if run_training:
        _check_gradients(layer, arrays, call_kwargs)
        if model.trainable_weights:
            _check_fit_step(model, arrays)

    if run_mixed_precision:
        _check_mixed_precision(layer_cls, init_kwargs, arrays, call_kwargs, expected_shapes)
    return layer


def _check_gradients(layer, arrays, call_kwargs):
    tensors = [tf.constant(a) for a in arrays]
    float_inputs = [t for t in tensors if t.dtype.is_floating]
    with tf.GradientTape() as tape:
        tape.watch(float_inputs)
        out = layer(*tensors, training=True, **call_kwargs)
        loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(t, "float32"))) for t in
                         keras.tree.flatten(out)])
    sources = list(layer.trainable_weights) + float_inputs
    grads = tape.gradient(loss, sources)
    for var, grad in zip(sources, grads):
        name = getattr(var, "path", None) or getattr(var, "name", "input")
        assert grad is not None, f"no gradient for {name}"
        assert np.all(np.isfinite(np.asarray(grad))), f"non-finite gradient for {name}"


def _check_fit_step(model, arrays):
    outputs = keras.tree.flatten(model.outputs)
    targets = [np.zeros([arrays[0].shape[0]] + list(o.shape[1:]), "float32")
               for o in outputs]
    if any(None in t.shape for t in targets):
        eager = keras.tree.flatten(model(arrays))
        targets = [np.zeros(tuple(e.shape), "float32") for e in eager]
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=["mse"] * len(outputs))
    history = model.fit(arrays, targets if len(targets) > 1 else targets[0], epochs=1,
                        batch_size=arrays[0].shape[0], verbose=0)
    assert np.isfinite(history.history["loss"][0])


def _check_mixed_precision(layer_cls, init_kwargs, arrays, call_kwargs, expected_shapes):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        layer = layer_cls(**init_kwargs)
        cast = [a.astype("float16") if a.dtype.kind == "f" else a for a in arrays]
        out = layer(*cast, **call_kwargs)
        assert _shapes(out) == expected_shapes
        for t in keras.tree.flatten(out):
            assert np.all(np.isfinite(keras.ops.convert_to_numpy(t).astype("float32")))
    finally:
        keras.config.set_dtype_policy(previous)


def finite_difference_gradient(fn, x, eps=1e-3):
    """Central finite-difference gradient of scalar ``fn`` (NumPy float64 in/out) at ``x``."""
    x = np.array(x, dtype="float64")
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    g = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = fn(x)
        flat[i] = old - eps
        minus = fn(x)
        flat[i] = old
        g[i] = (plus - minus) / (2 * eps)
    return grad


def model_targets(spec, labels, num_classes):
    """The dataset targets the loss of registry model ``spec`` reads, from ``labels``."""
    from pipelines.edges import binary_boundary, semantic_edges

    targets = {"labels": labels}
    if "edges" in spec.targets:
        targets["edges"] = np.asarray(semantic_edges(labels, num_classes))
    if "boundary" in spec.targets:
        targets["boundary"] = np.asarray(binary_boundary(labels))
    return targets


def run_model_test(name, num_classes=3, size=64, export_dir=None):
    """Model-level checks of registered model ``name`` (keras-hub's run_task_test and
    run_model_saving_test in one), on ``resnet_tiny`` with the "tiny" preset:

    * ``build_model`` returns a Segmenter whose fields describe it;
    * one ``fit`` step with the method loss gives a finite loss;
    * ``.keras`` save and reload with ``safe_mode=True`` gives the same class, config and
      outputs;
    * ``export_model`` (SavedModel only) passes its parity check and the SavedModel carries
      the class names.

    Returns the reloaded model.
    """
    import kerasfuse
    from kerasfuse.export import export_model
    from kerasfuse.loading import SavedModelAdapter
    from kerasfuse.models import Segmenter, get_spec, preset
    from kerasfuse.training import LossModel

    spec = get_spec(name)
    names = [f"class_{i}" for i in range(num_classes)]
    keras.utils.set_random_seed(1)
    model = kerasfuse.build_model(name, num_classes, backbone="resnet_tiny", class_names=names,
                                  **preset(name, "tiny"))
    assert isinstance(model, Segmenter)
    assert (model.model_name, model.task, model.class_names) == (name, spec.task, names)
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, (2, size, size, 3)).astype("float32")
    labels = np.zeros((2, size, size), "int32")
    labels[:, size // 4: size // 2, size // 8:] = 1
    labels[1, size // 2:, : size // 2] = num_classes - 1
    wrapper = LossModel(model, kerasfuse.build_loss(name, num_classes))
    wrapper.compile(optimizer=keras.optimizers.SGD(0.001), jit_compile=False)
    history = wrapper.fit(images, model_targets(spec, labels, num_classes), batch_size=2,
                          epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    path = os.path.join(tempfile.mkdtemp(), f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert type(reloaded) is Segmenter
    assert reloaded.get_config() == model.get_config()
    expected, actual = model(images[:1]), reloaded(images[:1])
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(np.asarray(actual[key]), np.asarray(expected[key]),
                                   atol=1e-5, rtol=1e-5)

    if export_dir is not None:
        result = export_model(reloaded, export_dir, precisions=(), parity_samples=1,
                              input_size=(size, size), log=None)
        assert all(row.max_abs_diff <= 1e-4 for row in result.rows)
        served = SavedModelAdapter(result.saved_model_dir)
        assert (served.model_name, served.task, served.class_names) == (name, spec.task, names)
    return reloaded
