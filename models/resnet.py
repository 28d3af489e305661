"""ResNet-18 (He et al. 2016) written out, because torchvision does not import on this machine.

The layout, parameter names and initialisation follow torchvision's ``resnet18``
(conv1 7x7/2, max-pool, four stages of two BasicBlocks, global average pool,
``fc``), so a torchvision state dict converted to safetensors loads into
``ResNet18(in_channels=3, width=64, num_outputs=1000)`` unchanged. Two knobs
make lighter variants for real-time use: ``width`` (channels of the first
stage; later stages double it) and ``in_channels`` (2 for per-polarity event
counts, 1 for grayscale frames).
"""

from __future__ import annotations

import torch
from torch import nn

#: blocks per stage of ResNet-18
STAGE_BLOCKS: tuple[int, ...] = (2, 2, 2, 2)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual; a 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """Image ``(N, in_channels, H, W)`` -> ``(N, num_outputs)`` (or pooled features if 0).

    ``num_outputs=1000`` keeps the ImageNet-sized head that MCO-E Net's released
    code feeds into its fusion (it never replaces the fc layer).
    """

    def __init__(self, in_channels: int = 3, width: int = 64, num_outputs: int = 1000) -> None:
        super().__init__()
        if in_channels < 1 or width < 1 or num_outputs < 0:
            raise ValueError("in_channels and width must be positive, num_outputs >= 0")
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = width
        stages = []
        for i, n in enumerate(STAGE_BLOCKS):
            cout = width * 2**i
            blocks = [BasicBlock(cin, cout, 1 if i == 0 else 2)]
            blocks += [BasicBlock(cout, cout) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = cin
        self.fc: nn.Module = nn.Linear(cin, num_outputs) if num_outputs else nn.Identity()
        self.out_features = num_outputs or cin
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's choice: He init (fan_out) for convolutions, BN as identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18_parameters(in_channels: int = 3, width: int = 64, num_outputs: int = 1000) -> int:
    """Parameter count of ``ResNet18(in_channels, width, num_outputs)`` in closed form.

    Lets callers size a configuration without allocating it; the tests check it
    against the module itself.
    """
    total = in_channels * width * 49 + 2 * width  # conv1 + bn1
    cin = width
    for i, n in enumerate(STAGE_BLOCKS):
        cout = width * 2**i
        for b in range(n):
            c_in = cin if b == 0 else cout
            total += 9 * c_in * cout + 2 * cout + 9 * cout * cout + 2 * cout
            if b == 0 and (i > 0 or cin != cout):
                total += c_in * cout + 2 * cout
        cin = cout
    if num_outputs:
        total += cin * num_outputs + num_outputs
    return total
