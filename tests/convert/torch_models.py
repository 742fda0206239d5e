"""PyTorch reference segmentation / edge models with the published checkpoints' key names.

Written for the tests from the reference architectures (facts read from the authors'
repositories; own code), on top of the reference backbones of
``tests/backbones/torch_resnets.py``:

- ``MMSegDMNet``: mmsegmentation ``EncoderDecoder`` with ``backbone`` (ResNetV1c),
  ``decode_head`` (``dm_head.py`` ``DMHead``: ``dcm_modules.{i}`` = ``DCM`` with
  ``filter_gen_conv``, ``input_redu_conv`` (ConvModule ``conv``/``bn``), ``norm``,
  optional ``fusion_conv``; ``bottleneck``; ``conv_seg``) and ``auxiliary_head``
  (``fcn_head.py`` ``FCNHead``: ``convs.0`` ConvModule, ``conv_seg``) on res4. Logits are
  resized to the image with ``align_corners=False`` (mmseg ``resize``).
- ``DFF`` / ``CaseNet``: Lavender105/DFF ``exps/models/dff.py`` / ``casenet.py`` over
  ``BaseNet.pretrained`` (PyTorch-Encoding's dilated ResNet with a stride-1 stem, plus its
  unused ``fc``). Side deconvolutions ``ConvTranspose2d(2f, stride f, padding f/2)``.
  The reference concatenates side maps that only agree in size when H and W are
  multiples of 8; ``crop=True`` keeps the top-left image-sized window of each side map
  first (what kerasfuse does at other sizes; identity at multiples of 8).
"""

import torch
import torch.nn.functional as F
from torch import nn

from tests.backbones import torch_resnets


class ConvModule(nn.Module):
    """mmcv ConvModule: conv (no bias) -> BN -> ReLU, keys ``conv.*`` / ``bn.*``."""

    def __init__(self, cin, cout, kernel_size, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU()

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class DCM(nn.Module):
    def __init__(self, filter_size, fusion, in_channels, channels):
        super().__init__()
        self.filter_size = filter_size
        self.filter_gen_conv = nn.Conv2d(in_channels, channels, 1)
        self.input_redu_conv = ConvModule(in_channels, channels, 1)
        self.norm = nn.BatchNorm2d(channels)
        self.activate = nn.ReLU()
        self.fusion_conv = ConvModule(channels, channels, 1) if fusion else None

    def forward(self, x):
        k = self.filter_size
        kernels = self.filter_gen_conv(F.adaptive_avg_pool2d(x, k))
        x = self.input_redu_conv(x)
        b, c, h, w = x.shape
        pad = (k - 1) // 2
        pads = (pad, pad, pad, pad) if (k - 1) % 2 == 0 else (pad + 1, pad, pad + 1, pad)
        out = F.conv2d(F.pad(x.reshape(1, b * c, h, w), pads), kernels.reshape(b * c, 1, k, k),
                       groups=b * c).reshape(b, c, h, w)
        out = self.activate(self.norm(out))
        return self.fusion_conv(out) if self.fusion_conv is not None else out


class DMHead(nn.Module):
    def __init__(self, in_channels, channels, num_classes, filter_sizes, fusion):
        super().__init__()
        self.dcm_modules = nn.ModuleList(DCM(k, fusion, in_channels, channels)
                                         for k in filter_sizes)
        self.bottleneck = ConvModule(in_channels + len(filter_sizes) * channels, channels, 3,
                                     padding=1)
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        x = torch.cat([x] + [dcm(x) for dcm in self.dcm_modules], dim=1)
        return self.conv_seg(self.dropout(self.bottleneck(x)))


class FCNHead(nn.Module):
    def __init__(self, in_channels, channels, num_classes):
        super().__init__()
        self.convs = nn.Sequential(ConvModule(in_channels, channels, 3, padding=1))
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        return self.conv_seg(self.dropout(self.convs(x)))


class MMSegDMNet(nn.Module):
    def __init__(self, num_classes, depths, widths, channels=512, aux_channels=256,
                 filter_sizes=(1, 3, 5, 7), fusion=False):
        super().__init__()
        self.backbone = torch_resnets.MMSegResNetV1c(depths, widths)
        self.decode_head = DMHead(widths[3] * 4, channels, num_classes, filter_sizes, fusion)
        self.auxiliary_head = FCNHead(widths[2] * 4, aux_channels, num_classes)

    def forward(self, x):
        features = self.backbone(x)
        size = x.shape[2:]
        return {"logits": F.interpolate(self.decode_head(features["res5"]), size,
                                        mode="bilinear", align_corners=False),
                "aux_logits": F.interpolate(self.auxiliary_head(features["res4"]), size,
                                            mode="bilinear", align_corners=False)}


def _deconv(channels, factor):
    return nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor,
                              padding=factor // 2, bias=False)


def _backbone(depths, widths):
    net = torch_resnets.DFFResNet(depths, widths)
    net.fc = nn.Linear(widths[3] * 4, 10)  # the ImageNet classifier a checkpoint keeps
    return net


def _shared_concat(side5, side1, side2, side3):
    """The reference's class-major [side5_i, side1, side2, side3] concatenation."""
    fuse = []
    for i in range(side5.shape[1]):
        fuse += [side5[:, i:i + 1], side1, side2, side3]
    return torch.cat(fuse, 1)


class _EdgeNet(nn.Module):
    crop = False

    def base_forward(self, x):
        net = self.pretrained
        c1 = net.relu(net.bn1(net.conv1(x)))
        c2 = net.layer1(net.maxpool(c1))
        c3 = net.layer2(c2)
        return c1, c2, c3, net.layer4(net.layer3(c3))

    def sides(self, x):
        c1, c2, c3, c5 = self.base_forward(x)
        h, w = x.shape[2:]
        out = {"side1": self.side1(c1), "side2": self.side2(c2), "side3": self.side3(c3),
               "side5": self.side5(c5)}
        if hasattr(self, "side5_w"):
            out["side5_w"] = self.side5_w(c5)
        if self.crop:
            out = {k: v[:, :, :h, :w] for k, v in out.items()}
        return out


class DFF(_EdgeNet):
    def __init__(self, nclass, depths, widths):
        super().__init__()
        self.pretrained = _backbone(depths, widths)
        c1, c2, c3, c5 = widths[0], widths[0] * 4, widths[1] * 4, widths[3] * 4
        self.ada_learner = LocationAdaptiveLearner(nclass, nclass * 4, nclass * 4)
        self.side1 = nn.Sequential(nn.Conv2d(c1, 1, 1), nn.BatchNorm2d(1))
        self.side2 = nn.Sequential(nn.Conv2d(c2, 1, 1), nn.BatchNorm2d(1), _deconv(1, 2))
        self.side3 = nn.Sequential(nn.Conv2d(c3, 1, 1), nn.BatchNorm2d(1), _deconv(1, 4))
        self.side5 = nn.Sequential(nn.Conv2d(c5, nclass, 1), nn.BatchNorm2d(nclass),
                                   _deconv(nclass, 8))
        self.side5_w = nn.Sequential(nn.Conv2d(c5, nclass * 4, 1), nn.BatchNorm2d(nclass * 4),
                                     _deconv(nclass * 4, 8))
        self.nclass = nclass

    def forward(self, x):
        s = self.sides(x)
        weights = self.ada_learner(s["side5_w"])
        fuse = _shared_concat(s["side5"], s["side1"], s["side2"], s["side3"])
        fuse = fuse.view(fuse.shape[0], self.nclass, -1, *fuse.shape[2:])
        return {**s, "side5_logits": s["side5"], "logits": (fuse * weights).sum(2)}


class LocationAdaptiveLearner(nn.Module):
    def __init__(self, nclass, in_channels, out_channels):
        super().__init__()
        self.nclass = nclass
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1),
                                   nn.BatchNorm2d(out_channels), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 1),
                                   nn.BatchNorm2d(out_channels), nn.ReLU())
        self.conv3 = nn.Sequential(nn.Conv2d(out_channels, out_channels, 1),
                                   nn.BatchNorm2d(out_channels))

    def forward(self, x):
        x = self.conv3(self.conv2(self.conv1(x)))
        return x.view(x.shape[0], self.nclass, -1, *x.shape[2:])


class CaseNet(_EdgeNet):
    def __init__(self, nclass, depths, widths):
        super().__init__()
        self.pretrained = _backbone(depths, widths)
        c1, c2, c3, c5 = widths[0], widths[0] * 4, widths[1] * 4, widths[3] * 4
        self.side1 = nn.Conv2d(c1, 1, 1)
        self.side2 = nn.Sequential(nn.Conv2d(c2, 1, 1), _deconv(1, 2))
        self.side3 = nn.Sequential(nn.Conv2d(c3, 1, 1), _deconv(1, 4))
        self.side5 = nn.Sequential(nn.Conv2d(c5, nclass, 1), _deconv(nclass, 8))
        self.fuse = nn.Conv2d(nclass * 4, nclass, 1, groups=nclass)

    def forward(self, x):
        s = self.sides(x)
        fuse = self.fuse(_shared_concat(s["side5"], s["side1"], s["side2"], s["side3"]))
        return {**s, "side5_logits": s["side5"], "logits": fuse}


def randomize(net, seed):
    """Random weights (also biases and deconvolutions) and BN statistics; eval mode."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    torch_resnets.randomize(net, seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            if isinstance(module, nn.ConvTranspose2d):
                fan_in = module.weight.shape[0] * module.weight[0, 0].numel() / module.stride[0]
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                    * (1.0 / fan_in) ** 0.5)
    return net.eval()


def run(net, image):
    """Run ``net`` on an RGB [0, 255] NHWC numpy image; dict of NHWC numpy outputs."""
    x = torch.from_numpy(image).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(torch_resnets.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(torch_resnets.STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = net((x - mean) / std)
    return {k: v.permute(0, 2, 3, 1).numpy() for k, v in out.items()}


def map_published(state, family, kwargs):
    """Build ``family`` with ``kwargs`` and map ``state`` (published shapes, no forward);
    every source tensor must be mapped or skipped and every weight set."""
    from kerasfuse.convert.mapping import map_state_dict

    model = family.build(**kwargs)
    report = map_state_dict(state, model, skip_rules=(("*.num_batches_tracked", "BN"),),
                            layer_path=lambda m: family.layer_path(m, kwargs))
    assert report["counts"]["mapped"] + report["counts"]["skipped"] == len(state)
    assert report["counts"]["target_weights"] == len(model.weights)
    return report
