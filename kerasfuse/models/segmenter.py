"""Segmenter: the self-describing model class every ``build_model`` call returns.

A saved ``.keras`` file of a plain functional model only knows its layers. A Segmenter also
knows what it is — registry name, task, classes, palette, backbone and builder options — so
evaluation, export, visualisation and prediction read these fields instead of guessing.
"""

import copy

import keras

from kerasfuse.layers.image_normalization import ImageNormalization

#: The input every kerasfuse model takes (normalisation happens inside the model).
INPUT_DESCRIPTION = "float32 RGB [B, H, W, 3] with values in [0, 255]"


def _normalization_of(network):
    """Mode of the ImageNormalization layer inside ``network`` (searched in sub-models)."""
    for layer in network._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, ImageNormalization):
            return layer.mode
    return None


def _check_class_names(class_names, num_classes):
    if class_names is None:
        return None
    names = list(class_names) if isinstance(class_names, (list, tuple)) else None
    if names is None or len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise ValueError(f"class_names must be a list of {num_classes} strings, got "
                         f"{class_names!r}")
    return names


def _check_palette(palette, num_classes):
    if palette is None:
        return None
    rows = [list(c) if isinstance(c, (list, tuple)) else None for c in palette] \
        if isinstance(palette, (list, tuple)) else None
    if (rows is None or len(rows) != num_classes
            or any(r is None or len(r) != 3 for r in rows)
            or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255
                   for r in rows for v in r)):
        raise ValueError(f"palette must be {num_classes} [r, g, b] rows of ints in [0, 255], "
                         f"got {palette!r}")
    return rows


@keras.saving.register_keras_serializable(package="kerasfuse")
class Segmenter(keras.Model):
    """A registered kerasfuse model: functional graph plus what it is.

    The graph is built in ``__init__`` by the registry builder of ``model_name``, and
    ``get_config`` returns exactly the constructor arguments, so a ``.keras`` file reloads
    (also with ``safe_mode=True``) into the same class with the same fields; the weights
    are loaded after the graph is rebuilt.

    Args:
        model_name: registry name ("dmnet", "gffnet", "dff", ...); it fixes the builder,
            the task and the method loss.
        num_classes: number of classes (edge models: number of edge categories).
        backbone: backbone name, or a built backbone ``keras.Model``. For a built
            backbone the config stores its serialized architecture
            (``keras.saving.serialize_keras_object``), not its weights — those are saved
            with the Segmenter's own weights.
        options: builder keyword arguments (head widths, ablation switches,
            ``output_stride``, ``input_shape``...). ``weights`` (the backbone's pretrained
            initialisation) is kept for the first build and stored as ``None`` in the
            config: a reloaded model gets its trained weights from the file.
        class_names: optional list of ``num_classes`` names.
        palette: optional ``num_classes`` [r, g, b] rows (ints in [0, 255]).
        input_normalization: the backbone's input normalisation ("caffe", "torch", "tf").
            None reads it from the built backbone; a value that differs from it raises.
        **kwargs: ``name`` and ``trainable`` (``name`` defaults to the builder's name).

    Call arguments:
        inputs: float32 RGB images [B, H, W, 3] in [0, 255].
        training: Python bool.

    Returns:
        Dict of named logits, each resized to the image size and float32: always
        ``logits``, plus the method's auxiliary outputs (docs/architecture.md).

    Example:
        >>> model = Segmenter("dmnet", 4, backbone="resnet_tiny",
        ...                   options={"head_channels": 16, "dcm_channels": 8})
        >>> model.task, model.num_classes
        ('segmentation', 4)
    """

    def __init__(self, model_name, num_classes, backbone="resnet50", options=None,
                 class_names=None, palette=None, input_normalization=None, **kwargs):
        from kerasfuse.models.registry import build_network, get_spec

        spec = get_spec(model_name)
        options = dict(options or {})
        built_backbone = backbone
        if isinstance(backbone, dict):
            # Deserializing consumes the dict it reads; keep the config's copy intact.
            built_backbone = keras.saving.deserialize_keras_object(copy.deepcopy(backbone))
        network = build_network(model_name, num_classes, backbone=built_backbone, **options)
        class_names = _check_class_names(class_names, num_classes)
        palette = _check_palette(palette, num_classes)
        found = _normalization_of(network)
        if input_normalization is not None and input_normalization != found:
            raise ValueError(f"input_normalization {input_normalization!r} differs from the "
                             f"backbone's {found!r}")
        kwargs.setdefault("name", network.name)
        super().__init__(inputs=network.input, outputs=network.output, **kwargs)
        self.model_name = model_name
        self.task = spec.task
        self.num_classes = num_classes
        self.class_names = class_names
        self.palette = palette
        self.input_normalization = found
        self._backbone_arg = (keras.saving.serialize_keras_object(backbone)
                              if isinstance(backbone, keras.Model) else backbone)
        self._options = options

    @property
    def options(self):
        """Builder options as given (a copy)."""
        return dict(self._options)

    @property
    def backbone_name(self):
        """The backbone's registry name, or "custom" for a built backbone."""
        return self._backbone_arg if isinstance(self._backbone_arg, str) else "custom"

    def class_name_list(self):
        """``class_names``, or "0", "1", ... when none were given."""
        return list(self.class_names or [str(i) for i in range(self.num_classes)])

    def describe(self):
        """The fields exports carry as metadata (JSON-compatible)."""
        return {"model_name": self.model_name, "task": self.task,
                "num_classes": self.num_classes, "class_names": self.class_name_list(),
                "palette": self.palette, "backbone": self.backbone_name,
                "input_normalization": self.input_normalization,
                "input": INPUT_DESCRIPTION}

    def get_config(self):
        # Not Functional.get_config: the graph is rebuilt from these arguments instead of
        # being serialized layer by layer (keras-hub's Task does the same).
        options = dict(self._options)
        if options.get("weights") is not None:
            options["weights"] = None
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model_name": self.model_name,
            "num_classes": self.num_classes,
            "backbone": self._backbone_arg,
            "options": options,
            "class_names": None if self.class_names is None else list(self.class_names),
            "palette": None if self.palette is None else [list(r) for r in self.palette],
            "input_normalization": self.input_normalization,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
