"""The homework's two-layer perceptron: fc - ReLU - fc."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hw4.models.layer_choice import Impl, layer_classes


@dataclass
class MLPConfig:
    in_features: int = 784
    hidden: int = 100
    num_classes: int = 10


class MLP(nn.Module):
    config_class = MLPConfig  # hw4.models.nets.NetSpec builds it from JSON

    def __init__(self, config: MLPConfig, impl: Impl = "torch"):
        super().__init__()
        layers = layer_classes(impl)
        self.config = config
        self.fc1 = layers.linear(config.in_features, config.hidden)
        self.relu = layers.relu()
        self.fc2 = layers.linear(config.hidden, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, 1, 28, 28) -> (B, 784)
        if x.shape[1] != self.config.in_features:
            raise ValueError(
                f"MLP expects {self.config.in_features} features per sample, got input of shape {tuple(x.shape)}"
            )
        return self.fc2(self.relu(self.fc1(x)))
