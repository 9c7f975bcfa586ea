"""Problem 3's convolutional network, built from torch.nn layers or from the scratch ones.

The homework's (conf/config.yaml `cnn.arch`): conv 32 filters 7x7, stride 1, no padding - ReLU
- 2x2 max-pool stride 2 - fc 3872->100 - ReLU - fc 100->10. `extra_channels` appends further
conv-ReLU-pool blocks (same kernel and padding) for a stronger variant, e.g.
`CNNConfig(32, kernel=5, padding=2, hidden=100, extra_channels=[64])`: 28 -> 14 -> 7, fc 3136->100.

`batch_norm` makes each block conv (no bias) - 2x2 max-pool - BatchNorm - ReLU: normalised
activations train well at several times the learning rate, in a few epochs. Pooling first
normalises and rectifies a quarter of the values; without BatchNorm it would change nothing
(max and ReLU commute), so the homework's blocks keep their order.

Both implementations have the same module tree, hence the same state_dict keys
(`features.conv1.weight`, ..., `classifier.fc2.bias`): weights trained with one load into the other.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from hw4.models.layer_choice import Impl, layer_classes


@dataclass
class CNNConfig:
    """params.yaml `cnn.arch` (the first five), and the images' shape and classes."""

    channels: int  # filters of the first conv block
    kernel: int
    padding: int
    hidden: int
    extra_channels: list[int]  # filters of further conv blocks
    batch_norm: bool = False  # the homework's net has none
    # In evaluation, the mean of the logits of each image and its mirror image (test-time
    # augmentation: for clothes, which a net trained with mirroring sees both ways; not digits).
    flip_average: bool = False
    num_classes: int = 10  # the data's, not settings
    in_channels: int = 1
    image_size: int = 28

    def block_channels(self) -> list[int]:
        return [self.channels, *self.extra_channels]

    def feature_size(self) -> int:
        """Side of the feature map after all conv-ReLU-pool blocks (0 if the image is too small)."""
        size = self.image_size
        for _ in self.block_channels():
            conv = size + 2 * self.padding - self.kernel + 1  # stride 1
            if conv < 2:  # nothing left for the 2x2 pool
                return 0
            size = conv // 2  # the pool floors odd sizes
        return size

    def flat_features(self) -> int:
        """Inputs of the first fully connected layer: 32 * 11 * 11 = 3872 for the default."""
        return self.block_channels()[-1] * self.feature_size() ** 2

    def validate(self, where: str) -> None:
        from hw4.config.settings import ConfigError

        sizes = {"channels": self.channels, "kernel": self.kernel, "hidden": self.hidden,
                 "num_classes": self.num_classes, "in_channels": self.in_channels,
                 "image_size": self.image_size, "extra_channels": min(self.extra_channels, default=1)}
        bad = sorted(k for k, v in sizes.items() if v < 1)
        if bad or self.padding < 0:
            raise ConfigError(f"params '{where}': sizes must be >= 1 and padding >= 0; wrong: {bad or ['padding']} in {self}")
        if self.feature_size() < 1:
            raise ConfigError(
                f"params '{where}': a {self.image_size}x{self.image_size} image leaves no pixels after "
                f"{len(self.block_channels())} block(s) of {self.kernel}x{self.kernel} conv (padding "
                f"{self.padding}) and 2x2 pooling; use fewer blocks, a smaller kernel or more padding"
            )


class CNN(nn.Module):
    config_class = CNNConfig  # hw4.models.nets.NetSpec builds it from JSON

    def __init__(self, config: CNNConfig, impl: Impl = "torch"):
        super().__init__()
        self.config = config
        layers = layer_classes(impl)
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        in_ch = config.in_channels
        for i, out_ch in enumerate(config.block_channels(), start=1):
            conv = layers.conv(in_ch, out_ch, config.kernel, stride=1, padding=config.padding, bias=not config.batch_norm)
            if config.batch_norm:  # BatchNorm's shift replaces the conv's bias
                blocks.update({f"conv{i}": conv, f"pool{i}": layers.pool(2), f"bn{i}": layers.batch_norm(out_ch), f"relu{i}": layers.relu()})
            else:
                blocks.update({f"conv{i}": conv, f"relu{i}": layers.relu(), f"pool{i}": layers.pool(2)})
            in_ch = out_ch
        self.features = nn.Sequential(blocks)
        self.classifier = nn.Sequential(
            OrderedDict(
                fc1=layers.linear(config.flat_features(), config.hidden),
                relu=layers.relu(),
                fc2=layers.linear(config.hidden, config.num_classes),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) images -> (B, num_classes) logits."""
        c, s = self.config.in_channels, self.config.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"CNN expects input of shape (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        logits = self._logits(x)
        if self.config.flip_average and not self.training:
            logits = (logits + self._logits(x.flip(-1))) / 2
        return logits

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(channels_last(x)).flatten(1))  # (B, F, s', s') -> (B, F*s'*s')


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) with C the fastest axis, where the convolutions are oneDNN's (CPUs, the
    `fast` numerics) or cuDNN's (GPUs): they then keep that layout, and the demo's CNN trains
    twice as fast as (B, C, H, W)-contiguous. ATen's own CPU kernels (oneDNN off: the portable
    numerics) are faster contiguous: left alone. The scratch layers read any strides. For
    C = 1 the memory is the same, but torch would take the tensor as contiguous: the strides
    say it here."""
    if x.device.type == "cpu" and not torch.backends.mkldnn.enabled:
        return x
    b, c, h, w = x.shape
    if c == 1:
        return x.contiguous().as_strided(x.shape, (h * w, 1, w, 1))
    return x.contiguous(memory_format=torch.channels_last)
