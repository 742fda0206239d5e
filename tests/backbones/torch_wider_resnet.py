"""A PyTorch WideResNet-38 A2 trunk written from the published architecture, for tests.

Module names reproduce the state-dict keys of the authors' checkpoints (``mod1.conv1``,
``mod2.block1.bn1.0``, ``mod6.block1.convs.bn3.0``, ``mod2.block1.proj_conv``, ...), so a
state dict saved from it goes through the same conversion as a real checkpoint.
"""

from collections import OrderedDict

import torch
from torch import nn

STRUCTURE = (3, 3, 6, 3, 1, 1)
CHANNELS = ((128, 128), (256, 256), (512, 512), (512, 1024), (512, 1024, 2048),
            (1024, 2048, 4096))
STEM_CHANNELS = 64


def _bn_relu(channels):
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())


class PreActivationBlock(nn.Module):
    """``convs(bn1(x)) + shortcut``; shortcut = ``proj_conv(bn1(x))`` or ``x``."""

    def __init__(self, in_channels, channels, stride, dilation, dropout):
        super().__init__()
        self.bn1 = _bn_relu(in_channels)
        if len(channels) == 2:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 3, stride, dilation,
                                    dilation, bias=False)),
                ("bn2", _bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, 1, dilation, dilation,
                                    bias=False)),
            ]
        else:
            layers = [
                ("conv1", nn.Conv2d(in_channels, channels[0], 1, stride, 0, bias=False)),
                ("bn2", _bn_relu(channels[0])),
                ("conv2", nn.Conv2d(channels[0], channels[1], 3, 1, dilation, dilation,
                                    bias=False)),
                ("bn3", _bn_relu(channels[1])),
                ("dropout", nn.Dropout2d(dropout)),
                ("conv3", nn.Conv2d(channels[1], channels[2], 1, 1, 0, bias=False)),
            ]
        self.convs = nn.Sequential(OrderedDict(layers))
        if stride != 1 or in_channels != channels[-1]:
            self.proj_conv = nn.Conv2d(in_channels, channels[-1], 1, stride, 0, bias=False)

    def forward(self, x):
        activated = self.bn1(x)
        shortcut = self.proj_conv(activated) if hasattr(self, "proj_conv") else x
        return self.convs(activated) + shortcut


class WiderResNet38A2(nn.Module):
    """The trunk as the authors' segmentation networks run it; returns every module output.

    ``dilation=True`` is the authors' output stride 8 (mod5 dilation 2, mod6/mod7
    dilation 4, only mod4 strided); ``False`` halves in mod4, mod5 and mod6 (stride 32).
    ``classes`` adds the ImageNet head (``bn_out``, ``classifier.fc``) so the state dict
    has the keys of the ImageNet checkpoint; the forward pass does not use it, as the
    segmentation networks do not.
    """

    def __init__(self, dilation=True, width_multiplier=1.0, classes=0):
        super().__init__()

        def width(c):
            return max(1, round(c * width_multiplier))

        self.mod1 = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, width(STEM_CHANNELS), 3, 1, 1, bias=False))]))
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.pool3 = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = width(STEM_CHANNELS)
        for mod_id, (blocks, channels) in enumerate(zip(STRUCTURE, CHANNELS)):
            channels = tuple(width(c) for c in channels)
            if dilation:
                stride, dil = (2 if mod_id == 2 else 1), (1, 1, 1, 2, 4, 4)[mod_id]
            else:
                stride, dil = (2 if 2 <= mod_id <= 4 else 1), 1
            dropout = (0.0, 0.0, 0.0, 0.0, 0.3, 0.5)[mod_id]
            module = []
            for block in range(blocks):
                module.append((f"block{block + 1}", PreActivationBlock(
                    in_channels, channels, stride if block == 0 else 1, dil, dropout)))
                in_channels = channels[-1]
            self.add_module(f"mod{mod_id + 2}", nn.Sequential(OrderedDict(module)))
        if classes:
            self.bn_out = _bn_relu(in_channels)
            self.classifier = nn.Sequential(OrderedDict([
                ("avg_pool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("fc", nn.Linear(in_channels, classes)),
            ]))

    def forward(self, x):
        out = {}
        out["mod2"] = self.mod2(self.pool2(self.mod1(x)))
        out["mod3"] = self.mod3(self.pool3(out["mod2"]))
        out["mod4"] = self.mod4(out["mod3"])
        out["mod5"] = self.mod5(out["mod4"])
        out["mod6"] = self.mod6(out["mod5"])
        out["mod7"] = self.mod7(out["mod6"])
        return out


def randomize(net, seed):
    """Random conv weights and random BN weight, bias, running mean and running variance.

    Conv weights are He-scaled so activations stay O(1) through 38 layers; BN statistics are
    drawn away from (0, 1) so a wrong mapping of mean / variance / gamma / beta shows up.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator)
                                    * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) * 1.0 + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
    return net
