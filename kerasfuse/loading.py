"""Loading what the command-line tools work on: models and the manifests of TFRecord shards.

Every CLI (train, evaluate, predict, export) loads through here, so a run directory, a
``.keras`` file and a SavedModel are found, checked and described the same way everywhere.
"""

import glob
import json
import os

from kerasfuse.checks import InputError

#: Model files of a run directory, in order of preference.
RUN_MODEL_FILES = ("best.keras", "final.keras")
#: Name of the SavedModel endpoint that returns the model's description (export).
METADATA_ENDPOINT = "metadata"


def find_keras_file(directory):
    """The model file of a run directory.

    ``best.keras``, else ``final.keras`` (``RUN_MODEL_FILES``); otherwise the only
    ``.keras`` file in the folder or one level below. InputError when there is none or
    several without a preferred name.
    """
    for name in RUN_MODEL_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    candidates = sorted(glob.glob(os.path.join(directory, "*.keras")) +
                        glob.glob(os.path.join(directory, "*", "*.keras")))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InputError(f"no .keras model in directory {directory}")
    raise InputError(f"several .keras models in {directory} and none named "
                     f"{' or '.join(RUN_MODEL_FILES)}: "
                     + ", ".join(os.path.relpath(p, directory) for p in candidates))


def load_keras_model(path):
    """A :class:`~kerasfuse.models.Segmenter` from a ``.keras`` file (``safe_mode=True``).

    InputError when the file cannot be read or holds another kind of model (for example
    a plain functional model written before kerasfuse models described themselves).
    """
    import keras

    from kerasfuse.models.segmenter import Segmenter

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # any failure to deserialize means a bad model file
        raise InputError(f"cannot load {path}: {type(error).__name__}: {error}") from None
    if not isinstance(model, Segmenter):
        raise InputError(f"{path} holds a {type(model).__name__}, not a kerasfuse Segmenter "
                         "(a file written before kerasfuse models described themselves: "
                         "rebuild the model with kerasfuse.build_model and load_weights "
                         "from it)")
    return model


def load_model(path, log=print):
    """A ``.keras`` file, a run directory or a SavedModel directory -> model.

    Returns a :class:`~kerasfuse.models.Segmenter`, or a :class:`SavedModelAdapter` for a
    SavedModel; both have ``name``, ``model_name``, ``task``, ``num_classes``,
    ``class_names`` and ``palette``.
    """
    if not os.path.exists(path):
        raise InputError(f"model path does not exist: {path}")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return SavedModelAdapter(path)
        path = find_keras_file(path)
        if log is not None:
            log(f"model file: {path}")
    elif not path.endswith(".keras"):
        raise InputError(f"model must be a .keras file, a run directory or a SavedModel: "
                         f"{path}")
    return load_keras_model(path)


def read_metadata(loaded):
    """The description dict an exported SavedModel carries (``metadata`` endpoint)."""
    if not hasattr(loaded, METADATA_ENDPOINT):
        return None
    values = getattr(loaded, METADATA_ENDPOINT)()
    return json.loads(values["description"].numpy().decode("utf-8"))


class SavedModelAdapter:
    """Calls an exported SavedModel like a kerasfuse model: images -> {"logits": ...}.

    Uses the ``image_tensor`` (``serving_default``) signature, which takes uint8 images
    and returns probabilities; they are mapped back to logits — ``log p`` for softmax
    models and ``log(p / (1 - p))`` for sigmoid models — which the softmax / sigmoid of
    kerasfuse.inference turn into exactly ``p`` again. The model's description (task,
    classes, palette) comes from the metadata the export wrote.
    """

    def __init__(self, path):
        import tensorflow as tf

        self._tf = tf
        self.loaded = tf.saved_model.load(path)
        signatures = dict(getattr(self.loaded, "signatures", {}))
        if "image_tensor" not in signatures:
            raise InputError(f"SavedModel {path} has no image_tensor signature (has "
                             f"{sorted(signatures)}); export it with kerasfuse-export")
        description = read_metadata(self.loaded)
        if description is None:
            raise InputError(f"SavedModel {path} carries no kerasfuse metadata; export it "
                             "again with kerasfuse-export")
        self._fn = signatures["image_tensor"]
        self.name = os.path.basename(os.path.dirname(os.path.normpath(path))) or "saved_model"
        self.model_name = description["model_name"]
        self.task = description["task"]
        self.num_classes = int(description["num_classes"])
        self.class_names = list(description["class_names"])
        self.palette = description.get("palette")

    def class_name_list(self):
        """The class names (an export always stores them)."""
        return list(self.class_names)

    def __call__(self, images, training=False):
        del training
        tf = self._tf
        x = tf.cast(tf.clip_by_value(tf.round(tf.convert_to_tensor(images)), 0, 255), tf.uint8)
        outputs = self._fn(images=x)
        key = "edge_probabilities" if self.task == "edge" else "probabilities"
        p = tf.clip_by_value(tf.cast(outputs[key], tf.float32), 1e-7, 1 - 1e-7)
        if self.task == "edge":
            return {"logits": tf.math.log(p / (1 - p))}
        return {"logits": tf.math.log(p)}


def dataset_manifest(pattern):
    """The manifest of the shards ``pattern`` names (class names, counts), or None.

    ``pattern`` is a TFRecord glob or a ``NAME.manifest.json``; InputError when nothing
    matches.
    """
    from pipelines import reader

    try:
        files = reader.resolve_files(pattern)
    except ValueError as error:
        raise InputError(str(error)) from None
    return reader.manifest_for(files)
