"""MobileNetV2 (Sandler et al., 2018), written to load torchvision's ImageNet weights as they are.

The module tree mirrors ``torchvision.models.mobilenet_v2`` (width 1.0) exactly, so the
state_dict keys and shapes of torchvision's ``mobilenet_v2-b0353104.pth`` load with
``strict=True``; torchvision itself is not needed (its PyPI wheel is a CUDA build that does
not import on every machine).

    >>> net = MobileNetV2().eval()
    >>> feats = net.features_pooled(torch.zeros(2, 3, 224, 224))   # (2, 1280)
    >>> logits = net.classifier(feats)                               # (2, 1000)

Layout (``features.N``): 0 = stem conv 3->32 (stride 2); 1..17 = inverted residual blocks;
18 = 1x1 conv 320->1280; then global average pooling and ``classifier`` =
``Sequential(Dropout(0.2), Linear(1280, 1000))``.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), torchvision's setting.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
FEATURE_DIM = 1280
NUM_CLASSES = 1000


class ConvBNReLU6(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU6; keys ``0.weight``, ``1.*`` as torchvision's
    ``Conv2dNormActivation``."""

    def __init__(self, inp: int, oup: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(inp, oup, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when t == 1) -> 3x3 depthwise -> 1x1 linear projection (+ skip)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2, width multiplier 1.0, torchvision's module names."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.2):
        super().__init__()
        inp = 32
        layers: list[nn.Module] = [ConvBNReLU6(3, inp, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        layers.append(ConvBNReLU6(inp, FEATURE_DIM, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(FEATURE_DIM, num_classes))

        for m in self.modules():                      # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def features_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1280) globally average-pooled features."""
        x = self.features(x)                          # (B, 1280, H/32, W/32)
        return nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_classes) logits."""
        return self.classifier(self.features_pooled(x))
