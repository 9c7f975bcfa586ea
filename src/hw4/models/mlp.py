"""The homework's two-layer perceptron: fc - ReLU - fc."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Impl = Literal["torch", "scratch"]


@dataclass
class MLPConfig:
    in_features: int = 784
    hidden: int = 100
    num_classes: int = 10


def linear_relu_layers(impl: Impl) -> tuple[type[nn.Module], type[nn.Module]]:
    """(Linear, ReLU) classes of the chosen implementation; both take nn.Linear's arguments."""
    if impl == "torch":
        return nn.Linear, nn.ReLU
    if impl == "scratch":
        from hw4.layers.modules import ScratchLinear, ScratchReLU

        return ScratchLinear, ScratchReLU
    raise ValueError(f"impl must be 'torch' or 'scratch', got {impl!r}")


class MLP(nn.Module):
    def __init__(self, config: MLPConfig, impl: Impl = "torch"):
        super().__init__()
        linear, relu = linear_relu_layers(impl)
        self.config = config
        self.fc1 = linear(config.in_features, config.hidden)
        self.relu = relu()
        self.fc2 = linear(config.hidden, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, 1, 28, 28) -> (B, 784)
        if x.shape[1] != self.config.in_features:
            raise ValueError(
                f"MLP expects {self.config.in_features} features per sample, got input of shape {tuple(x.shape)}"
            )
        return self.fc2(self.relu(self.fc1(x)))
