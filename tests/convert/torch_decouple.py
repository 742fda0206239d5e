"""PyTorch DecoupleSegNet references written from the published architecture (test-only).

Facts read from lxtGH/DecoupleSegNets ``network/deepv3_decouple.py`` (``DeepV3Plus``,
``DeepFCN``, ``PSPNet`` on ResNet-D, ``DeepWV3PlusDecoupleEdgeBody`` on WideResNet-38,
``SqueezeBodyEdge``), ``network/nn/operators.py`` (``_AtrousSpatialPyramidPoolingModule``,
``PSPModule``) and ``network/nn/mynn.py`` (``Upsample``: bilinear, align_corners=True).
Module names reproduce the checkpoints' state-dict keys (``layer0.0.0``, ``aspp.img_conv.0``,
``bot_aspp``, ``squeeze_body_edge.down.0``, ``edge_fusion``, ``final_seg.6`` ...). The head
widths (256 / 48 in the published models) are arguments so the fast tests stay small.
"""

import torch
import torch.nn.functional as F
from torch import nn

from tests.backbones import torch_resnets, torch_wider_resnet
from tests.convert.torch_models import run


def upsample(x, size):
    """The repository's ``Upsample``: bilinear with align_corners=True."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def conv_bn_relu(cin, cout, kernel=1, dilation=1):
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation,
                                   bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ASPP(nn.Module):
    """``_AtrousSpatialPyramidPoolingModule``: image pooling first, then 1x1 and 3 rates."""

    def __init__(self, in_dim, reduction_dim, rates=(12, 24, 36)):
        super().__init__()
        self.features = nn.ModuleList(
            [conv_bn_relu(in_dim, reduction_dim, 1)]
            + [conv_bn_relu(in_dim, reduction_dim, 3, r) for r in rates])
        self.img_pooling = nn.AdaptiveAvgPool2d(1)
        self.img_conv = conv_bn_relu(in_dim, reduction_dim, 1)

    def forward(self, x):
        out = upsample(self.img_conv(self.img_pooling(x)), x.shape[2:])
        return torch.cat([out] + [f(x) for f in self.features], 1)


class PSPModule(nn.Module):
    """``PSPModule``: pooled stages (pool, 1x1 conv, BN; no ReLU) first, then the input."""

    def __init__(self, features, out_features, sizes=(1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(features, out_features, 1,
                                                             bias=False),
                          nn.BatchNorm2d(out_features)) for s in sizes])
        self.bottleneck = nn.Sequential(
            nn.Conv2d(features + len(sizes) * out_features, out_features, 1, bias=False),
            nn.BatchNorm2d(out_features), nn.ReLU(), nn.Dropout2d(0.1))

    def forward(self, x):
        priors = [upsample(stage(x), x.shape[2:]) for stage in self.stages] + [x]
        return self.bottleneck(torch.cat(priors, 1))


class SqueezeBodyEdge(nn.Module):
    """Body generation: two depthwise 3x3/2 convs (with bias), flow, grid_sample warp."""

    def __init__(self, inplane, warp_align_corners):
        super().__init__()
        self.warp_align_corners = warp_align_corners
        self.down = nn.Sequential(
            nn.Conv2d(inplane, inplane, 3, groups=inplane, stride=2),
            nn.BatchNorm2d(inplane), nn.ReLU(),
            nn.Conv2d(inplane, inplane, 3, groups=inplane, stride=2),
            nn.BatchNorm2d(inplane), nn.ReLU())
        self.flow_make = nn.Conv2d(inplane * 2, 2, 3, padding=1, bias=False)

    def forward(self, x):
        h, w = x.shape[2:]
        down = upsample(self.down(x), (h, w))
        flow = self.flow_make(torch.cat([x, down], 1))
        norm = torch.tensor([[[[w, h]]]], dtype=x.dtype)
        rows = torch.linspace(-1.0, 1.0, h).view(-1, 1).repeat(1, w)
        cols = torch.linspace(-1.0, 1.0, w).repeat(h, 1)
        grid = torch.cat((cols.unsqueeze(2), rows.unsqueeze(2)), 2)
        grid = grid.repeat(x.shape[0], 1, 1, 1) + flow.permute(0, 2, 3, 1) / norm
        body = F.grid_sample(x, grid, align_corners=self.warp_align_corners)
        return body, x - body


class DecoupleNet(nn.Module):
    """One of the repository's decouple models.

    Args:
        num_classes: classes.
        context: "deeplabv3plus" (``DeepV3Plus`` / ``DeepWV3PlusDecoupleEdgeBody``), "fcn"
            (``DeepFCN``) or "pspnet" (``PSPNet``).
        trunk: "resnet_d" (``layer0..layer4``) or "wider_resnet38" (``mod1..mod7``).
        trunk_options: ``depths``/``widths`` (ResNet-D) or ``width_multiplier`` (WRN-38).
        width: the 256 of the head; fine: the 48 of ``bot_fine`` / ``edge_out``.
        warp_align_corners: grid_sample convention of the flow warp.
    """

    def __init__(self, num_classes, context="deeplabv3plus", trunk="resnet_d",
                 trunk_options=None, width=256, fine=48, warp_align_corners=True):
        super().__init__()
        self.context, self.trunk = context, trunk
        options = dict(trunk_options or {})
        if trunk == "resnet_d":
            resnet = torch_resnets.DecoupleResNetD(options["depths"], options["widths"])
            self.layer0 = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu,
                                        resnet.maxpool)
            for i in range(1, 5):
                setattr(self, f"layer{i}", getattr(resnet, f"layer{i}"))
            top, low = 4 * options["widths"][3], 4 * options["widths"][0]
        else:
            wrn = torch_wider_resnet.WiderResNet38A2(
                dilation=True, width_multiplier=options.get("width_multiplier", 1.0))
            for name in ("mod1", "mod2", "mod3", "mod4", "mod5", "mod6", "mod7", "pool2",
                         "pool3"):
                setattr(self, name, getattr(wrn, name))
            top = self.mod7.block1.convs.conv3.out_channels
            low = self.mod2.block3.convs.conv2.out_channels
        if context == "deeplabv3plus":
            self.aspp = ASPP(top, width)
            self.bot_aspp = nn.Conv2d(5 * width, width, 1, bias=False)
        elif context == "fcn":
            self.fcn_head = conv_bn_relu(top, width, 3)
        else:
            self.ppm = PSPModule(top, width)
        self.bot_fine = nn.Conv2d(low, fine, 1, bias=False)
        self.squeeze_body_edge = SqueezeBodyEdge(width, warp_align_corners)
        self.edge_fusion = nn.Conv2d(width + fine, width, 1, bias=False)
        self.sigmoid_edge = nn.Sigmoid()
        self.edge_out = nn.Sequential(
            nn.Conv2d(width, fine, 3, padding=1, bias=False), nn.BatchNorm2d(fine),
            nn.ReLU(), nn.Conv2d(fine, 1, 1, bias=False))
        self.dsn_seg_body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(), nn.Conv2d(width, num_classes, 1, bias=False))
        self.final_seg = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, num_classes, 1, bias=False))

    def _trunk(self, x):
        if self.trunk == "resnet_d":
            x1 = self.layer1(self.layer0(x))
            return x1, self.layer4(self.layer3(self.layer2(x1)))
        m2 = self.mod2(self.pool2(self.mod1(x)))
        x = self.mod5(self.mod4(self.mod3(self.pool3(m2))))
        return m2, self.mod7(self.mod6(x))

    def forward(self, x):
        """Returns logits, body logits, boundary logits (before the repo's sigmoid), the
        boundary probability the repository outputs, and the decoupled features."""
        size = x.shape[2:]
        low, top = self._trunk(x)
        if self.context == "deeplabv3plus":
            aspp = self.bot_aspp(self.aspp(top))
        elif self.context == "fcn":
            aspp = self.fcn_head(top)
        else:
            aspp = self.ppm(top)
        body, edge = self.squeeze_body_edge(aspp)
        fine_size = low.shape[2:]
        edge = self.edge_fusion(torch.cat([upsample(edge, fine_size), self.bot_fine(low)],
                                          1))
        edge_logits = upsample(self.edge_out(edge), size)
        out = torch.cat([upsample(aspp, fine_size), edge + upsample(body, fine_size)], 1)
        return {"logits": upsample(self.final_seg(out), size),
                "body_logits": upsample(self.dsn_seg_body(body), size),
                "boundary_logits": edge_logits,
                "boundary": self.sigmoid_edge(edge_logits),
                "body_features": body, "edge_features": edge}


def randomize(net, seed):
    """Random conv weights / biases and random BN statistics (inference mode)."""
    torch_resnets.randomize(net, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    return net.eval()


def calibrate_flow(net, image, std=3.0):
    """Scale ``flow_make`` so the flow on ``image`` has standard deviation ``std`` (grid
    units, ~std/2 pixels): random trunks give features of any scale, and a flow far outside
    the image would warp nothing but zeros and test nothing."""
    captured = {}
    handle = net.squeeze_body_edge.flow_make.register_forward_hook(
        lambda module, inputs, output: captured.setdefault("flow", output))
    run(net, image)
    handle.remove()
    with torch.no_grad():
        net.squeeze_body_edge.flow_make.weight.mul_(std / float(captured["flow"].std()))
    return net
