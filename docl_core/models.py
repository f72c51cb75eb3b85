"""Models: an MLP, a small CNN for small images and 1-D signals, a small ResNet for 32×32 images,
and WideResNets (WRN-16-4, and WRN-28-10: the DoCL authors' CIFAR model).

`build_model(name, dataset)` sizes a model to a `Dataset` (input shape, number of outputs);
name None picks the dataset's default (`default_model`). Every model maps x (B, *input_shape)
to outputs (B, C) and exposes `features(x)` (B, D), the penultimate embedding that the
diversity term F(S) compares, D = `model.feature_dim`. Models hold no device: move them
with `.to(device)`.

Activations are not in-place, so torch.func (vmap, jvp, jacrev) can trace every model.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ("mlp", "cnn", "resnet", "wrn-16-4", "wrn-28-10")
MODEL_DESCRIPTIONS = {
    "mlp": "flatten, 2 hidden ReLU layers of width 128; any input",
    "cnn": "3 conv-BatchNorm-ReLU blocks and global pooling; small images (8×8, 28×28), "
           "or 1-D convolutions on signals (MNIST-1D)",
    "resnet": "ResNet with 3 stages (32, 64, 128 channels), BatchNorm; 32×32 images",
    "wrn-16-4": "WideResNet, depth 16, widen factor 4 (2.7M parameters), pre-activation blocks; images",
    "wrn-28-10": "WideResNet, depth 28, widen factor 10, dropout 0.3 (36.5M parameters): the DoCL "
                 "authors' CIFAR model; images",
}


class MLP(nn.Module):
    """Flatten → [Linear → ReLU] × depth → Linear."""

    def __init__(self, in_features: int, num_outputs: int, width: int = 128, depth: int = 2):
        super().__init__()
        layers, d = [], in_features
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_outputs)
        self.feature_dim = d

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))  # (B, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C)


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class _BodyHead(nn.Module):
    """A feature body (B, ...) → (B, D) and a linear head (B, D) → (B, C)."""

    body: nn.Module
    head: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C)


class SmallCNN(_BodyHead):
    """conv(w) → conv(2w) → max-pool → conv(4w) → global average pool → Linear.

    About 24k parameters at width 16 on 8×8 digits; the global pool makes it work for any
    image size (the max-pool is skipped for images under 2×2).
    """

    def __init__(self, in_channels: int, num_outputs: int, image_size: tuple[int, int], width: int = 16):
        super().__init__()
        pool = nn.MaxPool2d(2) if min(image_size) >= 2 else nn.Identity()
        self.body = nn.Sequential(conv_bn(in_channels, width), conv_bn(width, 2 * width), pool,
                                  conv_bn(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, num_outputs)
        self.feature_dim = 4 * width


def conv_bn_1d(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm1d(c_out), nn.ReLU())


class SignalCNN(_BodyHead):
    """SmallCNN in one dimension, for signals (B, c, L): conv(w) → conv(2w) → max-pool → conv(4w)
    → global average pool → Linear.

    Kernel size 5 (receptive field 17 samples, about half an MNIST-1D digit); the global pool
    makes it indifferent to where along the sequence a pattern sits, which is what MNIST-1D's
    random translations ask for. About 14k parameters at width 16 (the max-pool is skipped for
    signals shorter than 2).
    """

    def __init__(self, in_channels: int, num_outputs: int, length: int, width: int = 16, kernel_size: int = 5):
        super().__init__()
        pool = nn.MaxPool1d(2) if length >= 2 else nn.Identity()
        self.body = nn.Sequential(conv_bn_1d(in_channels, width, kernel_size),
                                  conv_bn_1d(width, 2 * width, kernel_size), pool,
                                  conv_bn_1d(2 * width, 4 * width, kernel_size),
                                  nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, num_outputs)
        self.feature_dim = 4 * width


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv → 3 stages of BasicBlocks (stride 1, 2, 2) → global average pool → Linear.

    Widths (32, 64, 128) and one block per stage give about 0.31M parameters (a ResNet-8);
    on 32×32 inputs the stages see 32×32, 16×16 and 8×8 maps.
    """

    def __init__(self, in_channels: int, num_outputs: int, widths: tuple[int, ...] = (32, 64, 128),
                 blocks_per_stage: int = 1):
        super().__init__()
        self.stem = conv_bn(in_channels, widths[0])
        stages, c = [], widths[0]
        for i, w in enumerate(widths):
            for b in range(blocks_per_stage):
                stages.append(BasicBlock(c, w, stride=2 if (i > 0 and b == 0) else 1))
                c = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, num_outputs)
        self.feature_dim = c

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))  # (B, widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C)


class PreActBlock(nn.Module):
    """BN → ReLU → 3×3 conv (stride) → BN → ReLU → dropout → 3×3 conv, plus the input: the
    identity, or a strided 1×1 convolution of the pre-activated input when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.project = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(a)))))
        return out + (x if self.project is None else self.project(a))


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko & Komodakis): a 3×3 stem of 16 channels, then 3 stages of
    n = (depth − 4) / 6 pre-activation blocks of 16k, 32k and 64k channels (strides 1, 2, 2),
    then BN → ReLU → global average pool → Linear. WRN-28-10 (n = 4, 36.5M parameters, dropout
    0.3 between each block's convolutions) is the DoCL authors' CIFAR model; features (B, 64k).
    """

    def __init__(self, in_channels: int, num_outputs: int, depth: int = 28, widen: int = 10,
                 dropout: float = 0.3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4 (16, 22, 28, 40), got {depth}")
        n, widths = (depth - 4) // 6, (16 * widen, 32 * widen, 64 * widen)
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks, c = [], 16
        for i, w in enumerate(widths):
            for b in range(n):
                blocks.append(PreActBlock(c, w, 2 if (i > 0 and b == 0) else 1, dropout))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.head = nn.Linear(c, num_outputs)
        self.feature_dim = c
        for m in self.modules():  # He init for convolutions, as WideResNets are usually trained
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.stem(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)  # (B, 64k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, C)


WRN_SIZES = {"wrn-16-4": (16, 4, 0.0), "wrn-28-10": (28, 10, 0.3)}  # depth, widen factor, dropout


def default_model(dataset) -> str:
    """The model a dataset gets when none is named: resnet for 32×32 images, cnn for other
    images (8×8 digits, 28×28 Fashion-MNIST) and for signals (MNIST-1D, a 1-D CNN), mlp for
    points, curves and tables."""
    if dataset.kind == "signal":
        return "cnn"
    if dataset.kind != "image":
        return "mlp"
    return "resnet" if tuple(dataset.input_shape[-2:]) == (32, 32) else "cnn"


_OPTIONS = {"mlp": ("width", "depth"), "cnn": ("width",), "resnet": ("widths", "blocks_per_stage"),
            "wrn-16-4": ("depth", "widen", "dropout"), "wrn-28-10": ("depth", "widen", "dropout")}
_SIGNAL_OPTIONS = {"cnn": ("width", "kernel_size")}  # the 1-D CNN also takes a kernel size


def build_model(name: str | None, dataset, **options) -> nn.Module:
    """A freshly initialised model for `dataset` (deterministic under torch.manual_seed).

    name: "mlp" | "cnn" | "resnet", or None for `default_model(dataset)`.
    dataset: anything with kind, input_shape and num_outputs (a `docl_core.data.Dataset`).
    options: width, depth (mlp); width (cnn; and kernel_size on signals); widths,
        blocks_per_stage (resnet); depth, widen, dropout (wrn-16-4, wrn-28-10).
    """
    name = default_model(dataset) if name is None else (name.lower() if isinstance(name, str) else name)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(MODELS)} (or none for the default)")
    signal = dataset.kind == "signal"
    allowed = (_SIGNAL_OPTIONS if signal else _OPTIONS).get(name, _OPTIONS[name])
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"model {name!r} does not take option(s) {', '.join(unknown)}: "
                         f"use {', '.join(allowed)}")
    shape, outputs = tuple(int(s) for s in dataset.input_shape), int(dataset.num_outputs)
    if name == "mlp":
        model = MLP(math.prod(shape), outputs, **options)
    elif signal and name == "cnn" and len(shape) == 2:
        model = SignalCNN(shape[0], outputs, shape[1], **options)
    elif signal:
        raise ValueError(f"model {name!r} needs images (c, H, W) but {dataset.name!r} is a 1-D signal "
                         f"of shape {shape}: use 'cnn' (a 1-D CNN) or 'mlp'")
    elif dataset.kind != "image" or len(shape) != 3:
        raise ValueError(f"model {name!r} needs images (c, H, W) but {dataset.name!r} is {dataset.kind} "
                         f"data of shape {shape}: use 'mlp'")
    elif name == "cnn":
        model = SmallCNN(shape[0], outputs, shape[1:], **options)
    elif name in WRN_SIZES:
        depth, widen, dropout = WRN_SIZES[name]  # options override (tests build small ones)
        model = WideResNet(shape[0], outputs, options.get("depth", depth), options.get("widen", widen),
                           options.get("dropout", dropout))
    else:
        model = ResNet(shape[0], outputs, **options)
    model.name = name  # recorded so a checkpoint can say what it holds
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
