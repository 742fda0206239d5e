"""ExFuse and its GCN (Large Kernel Matters) baseline decoder.

The GCN decoder (Peng et al., CVPR 2017) runs a GlobalConvolution + BoundaryRefinement on
every backbone stage and fuses the score maps top-down (x2 deconvolution, addition,
BoundaryRefinement), then upsamples to the image with two more deconvolution + BR steps.
ExFuse (Zhang et al., ECCV 2018) changes that decoder in four separable places — each is a
builder switch, and switching it off restores the GCN path for that part:

- ``seb``: SemanticEmbeddingBranch gates res2..res4 by the higher levels;
- ``ecre``: the top-most deconvolution becomes supervised sub-pixel upsampling;
- ``dap``: the classifier predicts k*k*C channels, DenselyAdjacentPrediction averages
  them with spatial shifts;
- ``semantic_supervision``: a segmentation head on every encoder stage.

Layer rearrangement is a backbone change: pass ``depths=(8, 8, 9, 8)``.
"""

import keras

from kerasfuse.checks import check_int
from kerasfuse.layers.boundary_refinement import BoundaryRefinement
from kerasfuse.layers.densely_adjacent_prediction import BORDERS, DenselyAdjacentPrediction
from kerasfuse.layers.explicit_channel_resolution_embedding import (
    ExplicitChannelResolutionEmbedding,
)
from kerasfuse.layers.global_convolution import GlobalConvolution
from kerasfuse.layers.resize_like import ResizeLike
from kerasfuse.layers.semantic_embedding_branch import SemanticEmbeddingBranch
from kerasfuse.models.base import (
    assemble,
    backbone_features,
    fcn_head,
)

#: Encoder stages the decoder fuses, low to high.
STAGES = ("res2", "res3", "res4", "res5")
#: GCN kernel size of the Large Kernel Matters model (k = 15).
GCN_KERNEL_SIZE = 15
#: Loss weight of every ExFuse auxiliary output (ECRE and semantic supervision).
AUX_WEIGHT = 1.0
#: Kernel and stride of the decoder's x2 deconvolutions.
_DECONV_KERNEL = 4


def aux_loss_weights(ecre=True, semantic_supervision=True, weight=AUX_WEIGHT):
    """``aux_weights`` for :class:`~kerasfuse.losses.SegmentationLoss` matching a build.

    The registry's loss defaults assume the full model; for an ablation with ``ecre`` or
    ``semantic_supervision`` off, pass
    ``build_loss("exfuse", C, aux_weights=aux_loss_weights(ecre=False))``.
    """
    weights = {"ecre_logits": weight} if ecre else {}
    if semantic_supervision:
        weights.update({f"ss_logits_{stage}": weight for stage in STAGES})
    return weights


def _upsampling_factors(output_stride, stem_stride):
    """Static x2 / x1 steps res5->res4->res3->res2, and the number of x2 steps res2->image.

    Strides of the dilated ResNet: res2 = 2 * stem_stride, res3 = 2 * res2, res4 and res5
    double again only while the output stride allows it.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    factors = {
        "res4": 2 if output_stride == 32 else 1,
        "res3": 2 if output_stride >= 16 else 1,
        "res2": 2,
    }
    final_steps = 2 if stem_stride == 2 else 1
    return factors, final_steps


def _deconv(x, channels, name):
    return keras.layers.Conv2DTranspose(channels, _DECONV_KERNEL, strides=2, padding="same",
                                        name=name)(x)


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _check_options(num_classes, head_channels, gcn_kernel_size, seb, ecre, dap,
                   semantic_supervision, dap_kernel_size, dap_border, ss_channels):
    """Validate the shared ExFuse / GCN options; returns the decoder width."""
    check_int("num_classes", num_classes)
    for flag, value in (("seb", seb), ("ecre", ecre), ("dap", dap),
                        ("semantic_supervision", semantic_supervision)):
        _check_bool(flag, value)
    channels = num_classes if head_channels is None else head_channels
    check_int("head_channels", channels)
    check_int("ss_channels", ss_channels)
    for key, size in (("gcn_kernel_size", gcn_kernel_size),
                      ("dap_kernel_size", dap_kernel_size)):
        if not isinstance(size, int) or size < 1 or size % 2 == 0:
            raise ValueError(f"{key} must be a positive odd int, got {size!r}")
    if dap_border not in BORDERS:
        raise ValueError(f"dap_border must be one of {BORDERS}, got {dap_border!r}")
    return channels


def _top_down(scores, factors, channels, num_classes, ecre):
    """The GCN decoder's top-down path from res5 to res2 (ECRE replaces the first x2
    deconvolution when enabled); returns (feature, {"ecre_logits": ...} or {})."""
    x, extra = scores["res5"], {}
    for stage in ("res4", "res3", "res2"):
        if factors[stage] == 2:
            if ecre and not extra:
                x, extra["ecre_logits"] = ExplicitChannelResolutionEmbedding(
                    num_classes, name="ecre")(x)
            else:
                x = _deconv(x, channels, name=f"deconv_{stage}")
            # Identity for image sizes divisible by the output stride; otherwise the x2 map
            # is one pixel off the lower level's ceil-rounded size.
            x = ResizeLike(name=f"align_{stage}")([x, scores[stage]])
        x = keras.layers.Add(name=f"fuse_{stage}")([scores[stage], x])
        x = BoundaryRefinement(name=f"br_fuse_{stage}")(x)
    return x, extra


def _build(name, num_classes, backbone, input_shape, weights, output_stride, head_channels,
           gcn_kernel_size, seb, ecre, dap, semantic_supervision, dap_kernel_size,
           dap_border, ss_channels, backbone_options):
    channels = _check_options(num_classes, head_channels, gcn_kernel_size, seb, ecre, dap,
                              semantic_supervision, dap_kernel_size, dap_border, ss_channels)
    factors, final_steps = _upsampling_factors(output_stride,
                                               backbone_options.get("stem_stride", 2))
    image, features = backbone_features(backbone, input_shape, output_stride, weights,
                                        **backbone_options)
    inputs = dict(features)
    if seb:
        for i, stage in enumerate(STAGES[:-1]):
            higher = [features[h] for h in STAGES[i + 1:]]
            inputs[stage] = SemanticEmbeddingBranch(name=f"seb_{stage}")(features[stage],
                                                                         *higher)
    scores = {}
    for stage in STAGES:
        x = GlobalConvolution(channels, gcn_kernel_size, name=f"gcn_{stage}")(inputs[stage])
        scores[stage] = BoundaryRefinement(name=f"br_{stage}")(x)
    x, extra = _top_down(scores, factors, channels, num_classes, ecre)
    for step in range(1, final_steps + 1):
        x = _deconv(x, channels, name=f"deconv_out{step}")
        x = BoundaryRefinement(name=f"br_out{step}")(x)
    groups = dap_kernel_size * dap_kernel_size if dap else 1
    logits = keras.layers.Conv2D(groups * num_classes, 1, dtype="float32",
                                 name="classifier")(x)
    if dap:
        logits = DenselyAdjacentPrediction(dap_kernel_size, border=dap_border,
                                           dtype="float32", name="dap")(logits)
    outputs = {"logits": logits, **extra}
    if semantic_supervision:
        for stage in STAGES:
            outputs[f"ss_logits_{stage}"] = fcn_head(features[stage], num_classes,
                                                     ss_channels, name=f"ss_{stage}")
    return assemble(image, outputs, name=name)


def build_gcn(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
              output_stride=32, head_channels=None, gcn_kernel_size=GCN_KERNEL_SIZE,
              **backbone_options):
    """GCN (Large Kernel Matters) segmentation network: the ExFuse baseline.

    Per stage ``res2..res5``: GlobalConvolution -> BoundaryRefinement; top-down: x2
    deconvolution (where the stride doubles), addition, BoundaryRefinement; then two
    deconvolution + BR steps to full resolution and a 1x1 float32 classifier.

    Args:
        num_classes: number of classes.
        backbone: backbone name or built backbone Model (kerasfuse.backbones).
        input_shape: image shape, RGB in [0, 255]; spatial dims may be None.
        weights: backbone weights (None, "imagenet" or a local file).
        output_stride: 32 (default: the plain ResNet strides 4/8/16/32 the GCN decoder
            upsamples through), 16 or 8 (dilated; steps between equal strides add
            without upsampling).
        head_channels: decoder width; None -> ``num_classes`` (the paper's score maps).
        gcn_kernel_size: k of every GlobalConvolution (15 in the paper).
        **backbone_options: passed to ``build_backbone`` (``depths``, ``stem_stride``).

    Returns:
        Functional Model ``image -> {"logits"}``. Layer names for intermediates:
        ``gcn_<stage>``, ``br_<stage>``, ``deconv_<stage>``, ``fuse_<stage>``,
        ``br_fuse_<stage>``, ``deconv_out1/2``, ``br_out1/2``, ``classifier``.
    """
    return _build("gcn", num_classes, backbone, input_shape, weights, output_stride,
                  head_channels, gcn_kernel_size, seb=False, ecre=False, dap=False,
                  semantic_supervision=False, dap_kernel_size=3, dap_border="exclude",
                  ss_channels=1, backbone_options=backbone_options)


def build_exfuse(num_classes, backbone="resnet50", input_shape=(None, None, 3), weights=None,
                 output_stride=32, head_channels=None, gcn_kernel_size=GCN_KERNEL_SIZE,
                 seb=True, ecre=True, dap=True, semantic_supervision=True, dap_kernel_size=3,
                 dap_border="exclude", ss_channels=256, depths=None, **backbone_options):
    """ExFuse: the GCN decoder with SEB, ECRE, DAP and semantic supervision.

    Args:
        num_classes: number of classes.
        backbone: backbone name or built backbone Model (kerasfuse.backbones).
        input_shape: image shape, RGB in [0, 255]; spatial dims may be None.
        weights: backbone weights (None, "imagenet" or a local file; standard depths only).
        output_stride: 32 (default, the paper's plain encoder), 16 or 8.
        head_channels: decoder width; None -> ``num_classes`` (GCN score maps).
        gcn_kernel_size: k of every GlobalConvolution (15).
        seb: SemanticEmbeddingBranch on res2, res3, res4 (off: the raw stage feature).
        ecre: supervised sub-pixel upsampling at the top-most x2 step, output
            ``ecre_logits`` (off: deconvolution).
        dap: densely adjacent prediction on the classifier (off: plain 1x1 classifier).
        semantic_supervision: FCN heads on res2..res5, outputs ``ss_logits_<stage>``.
        dap_kernel_size: k of DAP (3 in the paper).
        dap_border: DAP's out-of-image reads, "exclude" (default) or "zero".
        ss_channels: width of the 3x3 conv-BN-ReLU in each semantic supervision head.
        depths: blocks per backbone stage; ``(8, 8, 9, 8)`` is the paper's layer
            rearrangement (on ResNet bottlenecks here, ResNeXt in the paper).
        **backbone_options: passed to ``build_backbone`` (e.g. ``stem_stride``).

    Returns:
        Functional Model ``image -> {"logits", "ecre_logits", "ss_logits_res2".."res5"}``
        (auxiliary outputs present when enabled), all float32 at image size. Layer names
        for intermediates: ``seb_res2/3/4``, ``gcn_<stage>``, ``br_<stage>``, ``ecre``
        (outputs upsampled features and logits), ``deconv_<stage>``, ``fuse_<stage>``,
        ``br_fuse_<stage>``, ``deconv_out1/2``, ``br_out1/2``, ``classifier``, ``dap``.
    """
    if depths is not None:
        backbone_options["depths"] = depths
    return _build("exfuse", num_classes, backbone, input_shape, weights, output_stride,
                  head_channels, gcn_kernel_size, seb, ecre, dap, semantic_supervision,
                  dap_kernel_size, dap_border, ss_channels, backbone_options)
