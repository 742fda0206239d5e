"""PyTorch GFFNet reference written from the published architecture (test-only).

Facts read from lxtGH/DecoupleSegNets ``network/gffnets.py`` (``DeepWV3PlusGFFNet``,
``WiderResNetGFFDFPHead``) and ``network/nn/operators.py`` (``conv_bn_relu``,
``conv_sigmoid``, ``DenseBlock``): WideResNet-38 trunk, ASPP on mod7, ``bot_aspp`` a 3x3
conv (no BN), the head fusing mod2, mod5 and the ASPP feature with per-channel gates
computed from the raw features, updated sequentially, a DenseASPP-style pyramid
(dilations 3, 6, 9) and a two-conv classifier; every resize bilinear with
align_corners=True. Module names reproduce the checkpoint keys (``gff_head.gate1.0``,
``gff_head.dense_6.norm1``, ``gff_head.cls.6`` ...). Widths are arguments (published: ASPP
256, head 128, classifier 256) so the fast tests stay small.
"""

import torch
from torch import nn

from tests.backbones import torch_wider_resnet
from tests.convert.torch_decouple import ASPP, upsample


def _conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


def _conv_sigmoid(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.Sigmoid())


class DenseBlock(nn.Sequential):
    """BN-ReLU-1x1 conv (bias)-BN-ReLU-3x3 dilated conv (bias); dropout 0 in the head."""

    def __init__(self, input_num, num1, num2, dilation):
        super().__init__()
        self.add_module("norm1", nn.BatchNorm2d(input_num))
        self.add_module("relu1", nn.ReLU())
        self.add_module("conv1", nn.Conv2d(input_num, num1, 1))
        self.add_module("norm2", nn.BatchNorm2d(num1))
        self.add_module("relu2", nn.ReLU())
        self.add_module("conv2", nn.Conv2d(num1, num2, 3, dilation=dilation,
                                           padding=dilation))


class GFFDFPHead(nn.Module):
    """``WiderResNetGFFDFPHead`` with its widths as arguments."""

    def __init__(self, num_classes, in_channels, width=128, cls_width=256):
        super().__init__()
        c1, c2, c3 = in_channels
        self.d_in1, self.d_in2, self.d_in3 = (_conv_bn_relu(c, width) for c in in_channels)
        self.gate1, self.gate2, self.gate3 = (_conv_sigmoid(c, width) for c in (c1, c2, c3))
        self.dense_3 = DenseBlock(width, width, width, 3)
        self.dense_6 = DenseBlock(2 * width, width, width, 6)
        self.dense_9 = DenseBlock(3 * width, width, width, 9)
        self.cls = nn.Sequential(
            nn.Conv2d(4 * width, cls_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(cls_width), nn.ReLU(),
            nn.Conv2d(cls_width, cls_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(cls_width), nn.ReLU(),
            nn.Conv2d(cls_width, num_classes, 1, bias=False))

    def forward(self, m2, m5, aspp):
        s2, s5, sa = m2.shape[2:], m5.shape[2:], aspp.shape[2:]
        g2, g5, ga = self.gate1(m2), self.gate2(m5), self.gate3(aspp)
        m2, m5, aspp = self.d_in1(m2), self.d_in2(m5), self.d_in3(aspp)
        # The sequential update: each level reads the already updated ones.
        m2 = m2 + g2 * m2 + (1 - g2) * (upsample(g5 * m5, s2) + upsample(ga * aspp, s2))
        m5 = m5 + g5 * m5 + (1 - g5) * (upsample(g2 * m2, s5) + upsample(ga * aspp, s5))
        aspp_f = aspp + aspp * ga + (1 - ga) * (upsample(g5 * m5, sa) + upsample(g2 * m2, sa))
        aspp_f, aspp, m5 = (upsample(t, s2) for t in (aspp_f, aspp, m5))
        aspp_f = self.dense_3(aspp_f)
        m5 = self.dense_6(torch.cat([aspp_f, m5], 1))
        m2 = self.dense_9(torch.cat([aspp_f, m5, m2], 1))
        return self.cls(torch.cat([aspp_f, aspp, m5, m2], 1))


class GFFNet(nn.Module):
    """``DeepWV3PlusGFFNet``: WRN-38, ASPP, 3x3 ``bot_aspp``, the GFF/DFP head."""

    def __init__(self, num_classes, width_multiplier=1.0, aspp_width=256, width=128,
                 cls_width=256):
        super().__init__()
        wrn = torch_wider_resnet.WiderResNet38A2(dilation=True,
                                                 width_multiplier=width_multiplier)
        for name in ("mod1", "mod2", "mod3", "mod4", "mod5", "mod6", "mod7", "pool2",
                     "pool3"):
            setattr(self, name, getattr(wrn, name))
        top = self.mod7.block1.convs.conv3.out_channels
        self.aspp = ASPP(top, aspp_width)
        self.bot_aspp = nn.Conv2d(5 * aspp_width, aspp_width, 3, padding=1, bias=False)
        in_channels = (self.mod2.block3.convs.conv2.out_channels,
                       self.mod5.block3.convs.conv2.out_channels, aspp_width)
        self.gff_head = GFFDFPHead(num_classes, in_channels, width, cls_width)

    def forward(self, x):
        size = x.shape[2:]
        m2 = self.mod2(self.pool2(self.mod1(x)))
        m5 = self.mod5(self.mod4(self.mod3(self.pool3(m2))))
        aspp = self.bot_aspp(self.aspp(self.mod7(self.mod6(m5))))
        return {"logits": upsample(self.gff_head(m2, m5, aspp), size)}
