"""``--model gffnet``: the GFFNet checkpoint of lxtGH/DecoupleSegNets.

Layout (``network/gffnets.py``, ``DeepWV3PlusGFFNet``): the WideResNet-38 trunk as
``mod1..mod7`` on the network, ``aspp``, ``bot_aspp`` (3x3) and ``gff_head``
(``WiderResNetGFFDFPHead``: ``d_in1..3``, ``gate1..3``, ``dense_3/6/9``, ``cls``);
DataParallel's ``module.`` is stripped. The model is rebuilt with
``build_model("gffnet", reference_head=True, ...)`` with every width read from the
tensor shapes.
"""

from kerasfuse.convert.families import Family, require
from kerasfuse.convert.mapping import ConversionError, default_layer_path

WRN38_STEM_CHANNELS = 64


def _mismatch(key, shape, expected):
    return ConversionError(f"first mismatching tensor: {key} has shape {list(shape)}, "
                           f"expected {expected}")


def infer(shapes, num_classes=None, backbone=None, class_names=None, palette=None,
          depths=None, widths=None):
    """Build arguments of the checkpoint's GFFNet, read from its tensor shapes."""
    if depths is not None or widths is not None:
        raise ConversionError("--model gffnet has a WideResNet-38 trunk: depths / widths "
                              "do not apply")
    stem = require(shapes, "mod1.conv1.weight", 4)
    options = {}
    if stem[0] != WRN38_STEM_CHANNELS:
        options["width_multiplier"] = stem[0] / WRN38_STEM_CHANNELS
    gate = require(shapes, "gff_head.gate1.0.weight", 4)
    reduce = require(shapes, "gff_head.d_in1.0.weight", 4)
    if gate[0] != reduce[0]:
        raise _mismatch("gff_head.gate1.0.weight", gate,
                        f"{reduce[0]} per-channel gates (gff_head.d_in1.0.weight)")
    bot_aspp = require(shapes, "bot_aspp.weight", 4)
    if bot_aspp[2:] != (3, 3):
        raise _mismatch("bot_aspp.weight", bot_aspp, "a 3x3 kernel")
    cls = require(shapes, "gff_head.cls.0.weight", 4)
    if cls[1] != 4 * reduce[0]:
        raise _mismatch("gff_head.cls.0.weight", cls, f"{4 * reduce[0]} input channels")
    classifier = require(shapes, "gff_head.cls.6.weight", 4)
    if num_classes is not None and classifier[0] != num_classes:
        raise _mismatch("gff_head.cls.6.weight", classifier, f"{num_classes} classes "
                        "(--num-classes)")
    kwargs = {"backbone": backbone or "wider_resnet38_a2", "num_classes": classifier[0],
              "reference_head": True, "head_channels": bot_aspp[0],
              "fusion_channels": reduce[0], "classifier_channels": cls[0], **options}
    if class_names is not None:
        kwargs["class_names"] = class_names
    if palette is not None:
        kwargs["palette"] = palette
    return kwargs


def build(backbone, num_classes, class_names=None, palette=None, **options):
    """The ``gffnet`` Segmenter with the reference head."""
    from kerasfuse.models import build_model

    return build_model("gffnet", num_classes, backbone=backbone, class_names=class_names,
                       palette=palette, **options)


def layer_path(module, kwargs):
    """``mod*`` -> the nested backbone; head modules by the naming convention."""
    if module.startswith("mod"):
        return default_layer_path(f"backbone.{module}")
    return default_layer_path(module)


FAMILY = Family(
    name="gffnet",
    model="gffnet",
    reference="lxtGH/DecoupleSegNets network/gffnets.py (DeepWV3PlusGFFNet, "
              "WiderResNetGFFDFPHead) on network/wider_resnet.py",
    infer=infer,
    build=build,
    layer_path=layer_path,
)
