"""PyTorch reference ResNets written from the published architectures (test-only).

Each class rebuilds one reference network the way its repository constructs it, with the
repository's module names, so ``state_dict()`` has the reference key names:

- ``TorchvisionResNet``: torchvision ``resnet.py`` (v1.5: stride on the 3x3; dilation via
  ``replace_stride_with_dilation``, the first block of a dilated stage keeping the
  previous dilation).
- ``MMSegResNetV1c``: mmsegmentation ``ResNetV1c`` (deep stem ``stem.0..8`` with widths
  w/2, w/2, w; per-stage ``strides``/``dilations``; ``contract_dilation``).
- ``DecoupleResNetD``: DecoupleSegNet ``network/resnet_d.py`` (deep stem ``conv1.0..6``
  with widths w, w, 2w and a separate ``bn1``), dilated afterwards as ``deepv3.py`` does,
  by rewriting every ``conv2`` and ``downsample.0`` of layer3/layer4.
- ``DFFResNet``: DFF's copy of PyTorch-Encoding ``encoding/dilated/resnet.py`` (7x7 stem
  with stride 1; layer1 dilation 2, layer2/3 stride 2 dilation 2, layer4 dilation 4, the
  same dilation in every block).

``forward`` returns the multi-level features ``stem`` (last stem ReLU) and ``res2..res5``.
"""

import torch
from torch import nn

#: ImageNet mean / std of torchvision and mmsegmentation (RGB, [0, 1] scale).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def make_layer(inplanes, planes, blocks, stride, first_dilation, dilation):
    downsample = None
    if stride != 1 or inplanes != planes * 4:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride,
                                             bias=False),
                                   nn.BatchNorm2d(planes * 4))
    layers = [Bottleneck(inplanes, planes, stride, first_dilation, downsample)]
    layers += [Bottleneck(planes * 4, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class _Features(nn.Module):
    def stem_forward(self, x):
        raise NotImplementedError

    def forward(self, x):
        stem = self.stem_forward(x)
        res2 = self.layer1(self.maxpool(stem))
        res3 = self.layer2(res2)
        res4 = self.layer3(res3)
        return {"stem": stem, "res2": res2, "res3": res3, "res4": res4,
                "res5": self.layer4(res4)}


class TorchvisionResNet(_Features):
    def __init__(self, depths, widths, replace_stride_with_dilation=(False, True, True)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(widths[0], widths[0], depths[0], 1, 1, 1)
        dilation, inplanes = 1, widths[0] * 4
        for index, dilate in enumerate(replace_stride_with_dilation):
            stride, previous = 2, dilation
            if dilate:
                dilation, stride = dilation * 2, 1
            planes = widths[index + 1]
            setattr(self, f"layer{index + 2}",
                    make_layer(inplanes, planes, depths[index + 1], stride, previous,
                               dilation))
            inplanes = planes * 4

    def stem_forward(self, x):
        return self.relu(self.bn1(self.conv1(x)))


class MMSegResNetV1c(_Features):
    def __init__(self, depths, widths, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                 contract_dilation=True):
        super().__init__()
        half = widths[0] // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half),
            nn.ReLU(),
            nn.Conv2d(half, half, 3, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(),
            nn.Conv2d(half, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = widths[0]
        for index, (blocks, planes, stride, dilation) in enumerate(
                zip(depths, widths, strides, dilations)):
            first = dilation // 2 if dilation > 1 and contract_dilation else dilation
            setattr(self, f"layer{index + 1}",
                    make_layer(inplanes, planes, blocks, stride, first, dilation))
            inplanes = planes * 4

    def stem_forward(self, x):
        return self.stem(x)


class DecoupleResNetD(_Features):
    def __init__(self, depths, widths, variant="D"):
        super().__init__()
        w = widths[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False))
        self.bn1 = nn.BatchNorm2d(2 * w)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 2 * w
        for index, (blocks, planes) in enumerate(zip(depths, widths)):
            stride = 1 if index == 0 else 2
            setattr(self, f"layer{index + 1}", make_layer(inplanes, planes, blocks, stride, 1, 1))
            inplanes = planes * 4
        dilate = {"D": {"layer3": 2, "layer4": 4}, "D16": {"layer4": 2}, "plain": {}}[variant]
        for layer_name, dilation in dilate.items():
            for name, module in getattr(self, layer_name).named_modules():
                if "conv2" in name:
                    module.dilation, module.padding, module.stride = ((dilation, dilation),
                                                                      (dilation, dilation),
                                                                      (1, 1))
                elif "downsample.0" in name:
                    module.stride = (1, 1)

    def stem_forward(self, x):
        return self.relu(self.bn1(self.conv1(x)))


class DFFResNet(_Features):
    def __init__(self, depths, widths, layer4_stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=1, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        settings = ((1, 2), (2, 2), (2, 2), (layer4_stride, 4 if layer4_stride == 1 else 2))
        inplanes = widths[0]
        for index, (blocks, planes, (stride, dilation)) in enumerate(
                zip(depths, widths, settings)):
            setattr(self, f"layer{index + 1}",
                    make_layer(inplanes, planes, blocks, stride, dilation, dilation))
            inplanes = planes * 4

    def stem_forward(self, x):
        return self.relu(self.bn1(self.conv1(x)))


def reference(variant, output_stride, depths, widths):
    """The reference network of a kerasfuse variant at an output stride."""
    if variant == "torchvision":
        flags = {8: (False, True, True), 16: (False, False, True), 32: (False, False, False)}
        return TorchvisionResNet(depths, widths, flags[output_stride])
    if variant == "v1c":
        plans = {8: ((1, 2, 1, 1), (1, 1, 2, 4)), 16: ((1, 2, 2, 1), (1, 1, 1, 2)),
                 32: ((1, 2, 2, 2), (1, 1, 1, 1))}
        strides, dilations = plans[output_stride]
        return MMSegResNetV1c(depths, widths, strides, dilations)
    if variant == "d":
        return DecoupleResNetD(depths, widths, {8: "D", 16: "D16", 32: "plain"}[output_stride])
    return DFFResNet(depths, widths, layer4_stride={8: 1, 16: 2}[output_stride])


def randomize(net, seed):
    """Random weights and random BN statistics (inference mode), reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                    * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                shape = module.weight.shape
                module.weight.copy_(0.5 + torch.rand(shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.5 + 1.5 * torch.rand(shape, generator=generator))
    return net.eval()


def features(net, image):
    """Run ``net`` on an RGB [0, 255] NHWC numpy image; NHWC numpy features."""
    x = torch.from_numpy(image).permute(0, 3, 1, 2) / 255.0
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = net(x)
    return {k: v.permute(0, 2, 3, 1).numpy() for k, v in out.items()}
