"""The study's two embedding networks and a fast one, written out (no torchvision).

All three map a standardised crop ``(N, 1, 100, 120)`` to an embedding ``(N, embedding_dim)``.

- :class:`ResNet18` is the study's variant (ronghuaiyang/arcface-pytorch's ``resnet_face18`` as
  printed in the study): a 3x3 stride-1 stem without max-pool, four stages of two BasicBlocks
  (64, 128, 256, 512 channels) where **every** stage's first block has stride 2 and a 1x1
  downsample, then flatten (512 x 7 x 8 = 28672 for a 100 x 120 crop) and one fc to the embedding.
  torchvision's ResNet18 differs: 7x7 stride-2 stem, max-pool, stride 1 in the first stage, global
  average pooling.
- :class:`ShallowNet` is the study's small CNN: 5 x [conv3x3 (no padding), PReLU, maxpool 2] with
  32, 32, 64, 64, 64 channels, then fc 64-64-32 to the embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (He et al. 2016)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """The study's ResNet18 embedding network.

    Parameters
    ----------
    embedding_dim : int
        Size of the output (study: fc5 to 512).
    input_shape : (int, int)
        Crop size (frequency bins, frames); fixes the flattened size.
    """

    def __init__(self, embedding_dim: int = 512, input_shape: tuple[int, int] = (100, 120)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        stages, in_channels = [], 64
        for channels in (64, 128, 256, 512):
            stages.append(nn.Sequential(BasicBlock(in_channels, channels, stride=2),
                                        BasicBlock(channels, channels)))
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        h, w = input_shape
        for _ in range(4):  # 3x3, padding 1, stride 2: ceil(n / 2)
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        self.fc5 = nn.Linear(512 * h * w, embedding_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc5(torch.flatten(x, 1))


class ShallowNet(nn.Module):
    """The study's shallow CNN (adambielski/siamese-triplet's EmbeddingNet, deeper).

    Parameters
    ----------
    embedding_dim : int
        Study: 2, for plotting.
    input_shape : (int, int)
        Crop size; 100 x 120 shrinks to 64 x 1 x 1 after the five blocks.
    """

    def __init__(self, embedding_dim: int = 2, input_shape: tuple[int, int] = (100, 120)):
        super().__init__()
        layers, in_channels = [], 1
        h, w = input_shape
        for channels in (32, 32, 64, 64, 64):
            layers += [nn.Conv2d(in_channels, channels, 3), nn.PReLU(), nn.MaxPool2d(2)]
            in_channels = channels
            h, w = (h - 2) // 2, (w - 2) // 2
        if h < 1 or w < 1:
            raise ValueError(f"input {input_shape} is too small for five conv-pool blocks")
        self.convnet = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(64 * h * w, 64), nn.PReLU(), nn.Linear(64, 32), nn.PReLU(),
            nn.Linear(32, embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.convnet(x), 1))


class LiteResNet(nn.Module):
    """A narrow ResNet with a strided stem and global average pooling (the ``lite`` backbone).

    Parameters
    ----------
    embedding_dim : int
        Size of the output (the registry's default: 128).
    input_shape : (int, int)
        Crop size; any size works (global pooling), it is stored for the model file only.
    widths : tuple of int
        Channels of the four stages: half of ResNet18's 64-512 (He et al. 2016).
    """

    def __init__(self, embedding_dim: int = 128, input_shape: tuple[int, int] = (100, 120),
                 widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        # 3x3 stride 2: 100 x 120 -> 50 x 60 at once, the 4x cut of the arithmetic that
        # torchvision's ResNet stem makes with 7x7 stride 2 + max-pool, without the max-pool
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        blocks, in_channels = [], widths[0]
        for i, channels in enumerate(widths):  # stage 1 keeps 50 x 60; the others halve
            blocks.append(BasicBlock(in_channels, channels, stride=1 if i == 0 else 2))
            in_channels = channels
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, embedding_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))  # global average pooling (7 x 8 for 100 x 120)


BACKBONES = {"resnet18": ResNet18, "shallow": ShallowNet, "lite": LiteResNet}
