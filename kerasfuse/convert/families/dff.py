"""DFF and CASENet checkpoints of the DFF authors' repository (Lavender105/DFF).

Layout (``exps/models/dff.py`` ``DFF`` + ``LocationAdaptiveLearner``,
``exps/models/casenet.py`` ``CaseNet``, ``exps/models/base.py`` ``BaseNet`` over
PyTorch-Encoding's dilated ResNet ``pretrained``) and where each module goes in kerasfuse's
``dff`` / ``casenet``:

==============================  ===================  ===============================
reference module                DFF                  CASENet
==============================  ===================  ===============================
``pretrained.*``                ``backbone/*`` (``resnet{50,101}_dff``: stride-1 7x7
                                stem, layer2/3 stride 2, dilation 2, 2, 2, 4)
``pretrained.fc``               skipped (ImageNet classifier, unused)
``side1``                       (conv ``.0``, BN     ``side1/conv``
                                ``.1``) ``side1/conv``, ``side1/bn``
``side{2,3,5}`` / ``side5_w``   ``.0`` conv, ``.1``  ``.0`` conv, ``.1`` deconv
                                BN, ``.2`` deconv
``ada_learner.conv{i}.0 / .1``  ``fusion_weights/conv{i}``, ``bn{i}``
``fuse``                                             ``fuse`` (K-grouped 1x1 conv)
==============================  ===================  ===============================

Side deconvolutions: ``ConvTranspose2d(kernel 2f, stride f, padding f/2, no bias)`` for
f = 2, 4, 8 (side2, side3, side5/side5_w); kerasfuse's transposed convolution is "valid"
and crops the f/2 border, which is the same map when the image size is a multiple of 8
(the only sizes the reference forward accepts: at others its side maps differ in size and
``torch.cat`` fails); at other sizes kerasfuse keeps the top-left image-sized window of
each side map. The reference upsamples nothing else (PyTorch-Encoding's
``up_kwargs = {"mode": "bilinear", "align_corners": True}`` only serve its multi-scale
evaluation), so the converted outputs ``side5_logits`` and ``logits`` (fused) need no
resize option.
"""

from kerasfuse.convert.families import Family, require, resnet_backbone
from kerasfuse.convert.mapping import ConversionError

_BACKBONES = {50: "resnet50_dff", 101: "resnet101_dff"}
_SIDES = ("side1", "side2", "side3", "side5", "side5_w")
_SKIP = (("pretrained.fc.*", "ImageNet classifier of the backbone, unused by the edge "
                             "model"),)


def _infer(model, shapes, num_classes, backbone, depths, widths, class_names, palette):
    name, options = resnet_backbone(shapes, "pretrained.", _BACKBONES, backbone, depths,
                                    widths)
    classes = require(shapes, "side5.0.weight", 4)[0]
    if num_classes is not None and num_classes != classes:
        raise ConversionError(f"first mismatching tensor: side5.0.weight has {classes} "
                              f"classes, --num-classes says {num_classes}")
    # side2.1 is the normalizer BN in DFF ([1]) and the deconvolution in CASENet (4-D).
    side2_1 = require(shapes, "side2.1.weight")
    if (len(side2_1) == 1) != (model == "dff"):
        expected = "a BatchNorm (DFF)" if model == "dff" else "a deconvolution (CASENet)"
        raise ConversionError(f"first mismatching tensor: side2.1.weight {list(side2_1)} is "
                              f"not {expected}; is it the right --model?")
    kwargs = {"backbone": name, "num_classes": classes, **options}
    if class_names is not None:
        kwargs["class_names"] = list(class_names)
    if palette is not None:
        kwargs["palette"] = [list(c) for c in palette]
    return kwargs


def infer_dff(shapes, num_classes=None, backbone=None, depths=None, widths=None,
              class_names=None, palette=None):
    """Build arguments of ``dff`` (location-adaptive learner, side BN) from a DFF checkpoint."""
    return _infer("dff", shapes, num_classes, backbone, depths, widths, class_names, palette)


def infer_casenet(shapes, num_classes=None, backbone=None, depths=None, widths=None,
                  class_names=None, palette=None):
    """Build arguments of ``casenet`` (no side BN, grouped fuse) from a CASENet checkpoint."""
    return _infer("casenet", shapes, num_classes, backbone, depths, widths, class_names,
                  palette)


def _builder(model):
    def build(backbone, num_classes, class_names=None, palette=None, **options):
        from kerasfuse.models.registry import build_model

        return build_model(model, num_classes, backbone=backbone, class_names=class_names,
                           palette=palette, **options)

    build.__doc__ = f"The kerasfuse ``{model}`` Segmenter for infer's arguments."
    return build


def _backbone_path(module):
    head, _, rest = module.partition(".")
    return f"backbone/{rest.replace('.', '__')}" if head == "pretrained" else None


def dff_layer_path(module, kwargs):
    """DFF module path -> kerasfuse layer path (table in the module docstring)."""
    parts = module.split(".")
    if parts[0] == "pretrained":
        return _backbone_path(module)
    if len(parts) == 2 and parts[0] in _SIDES and parts[1] in ("0", "1", "2"):
        if parts[0] == "side1" and parts[1] == "2":
            return None
        return f"{parts[0]}/{('conv', 'bn', 'deconv')[int(parts[1])]}"
    if (len(parts) == 3 and parts[0] == "ada_learner" and parts[1] in ("conv1", "conv2", "conv3")
            and parts[2] in ("0", "1")):
        return f"fusion_weights/{'conv' if parts[2] == '0' else 'bn'}{parts[1][-1]}"
    return None


def casenet_layer_path(module, kwargs):
    """CASENet module path -> kerasfuse layer path (table in the module docstring)."""
    parts = module.split(".")
    if parts[0] == "pretrained":
        return _backbone_path(module)
    if module == "side1":
        return "side1/conv"
    if module == "fuse":
        return "fuse"
    if len(parts) == 2 and parts[0] in ("side2", "side3", "side5") and parts[1] in ("0", "1"):
        return f"{parts[0]}/{('conv', 'deconv')[int(parts[1])]}"
    return None


FAMILIES = (
    Family(name="dff", model="dff",
           reference="Lavender105/DFF exps/models/dff.py (DFF, LocationAdaptiveLearner), "
                     "exps/models/base.py (BaseNet), PyTorch-Encoding "
                     "encoding/dilated/resnet.py",
           infer=infer_dff, build=_builder("dff"), layer_path=dff_layer_path,
           skip_rules=_SKIP),
    Family(name="casenet", model="casenet",
           reference="Lavender105/DFF exps/models/casenet.py (CaseNet), "
                     "exps/models/base.py (BaseNet), PyTorch-Encoding "
                     "encoding/dilated/resnet.py",
           infer=infer_casenet, build=_builder("casenet"), layer_path=casenet_layer_path,
           skip_rules=_SKIP),
)
