"""nn.Module wrappers of the scratch layers, drop-in for nn.Linear, nn.ReLU, nn.Conv2d, nn.MaxPool2d
and nn.BatchNorm2d.

Parameters have torch's names, shapes and initialisation (`weight`, `bias`), so a
state_dict moves between a torch-built and a scratch-built network unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hw4.layers import functions


def _init_like_torch(weight: nn.Parameter, bias: nn.Parameter | None) -> None:
    """nn.Linear / nn.Conv2d's reset_parameters: U(±1/sqrt(fan_in)) for both weight and bias."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(weight[0].numel())  # fan_in = in (linear) or C*kh*kw (conv)
        nn.init.uniform_(bias, -bound, bound)


class ScratchLinear(nn.Module):
    """Y = X Wᵀ + b with weight (out_features, in_features), as nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        _init_like_torch(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return functions.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ScratchReLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return functions.relu(x)


class ScratchConv2d(nn.Module):
    """Cross-correlation with weight (out_channels, in_channels, kh, kw), as nn.Conv2d (no groups, no dilation)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = functions.as_pair(kernel_size, "kernel_size")
        self.stride, self.padding = functions.conv_geometry(stride, padding)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        _init_like_torch(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return functions.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class ScratchMaxPool2d(nn.Module):
    """k x k max-pooling with stride k (nn.MaxPool2d(k) with its default stride)."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None):
        super().__init__()
        if stride not in (None, kernel_size):
            raise ValueError(
                f"ScratchMaxPool2d pools non-overlapping windows: stride must equal kernel_size "
                f"({kernel_size}) or be left out, got {stride}"
            )
        self.kernel_size = kernel_size

    def forward(self, x: Tensor) -> Tensor:
        return functions.max_pool2d(x, self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.kernel_size}"


class ScratchBatchNorm2d(nn.Module):
    """nn.BatchNorm2d(num_features) with its parameters and buffers (`weight`, `bias`,
    `running_mean`, `running_var`, `num_batches_tracked`) and their initial values."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return functions.batch_norm2d(x, self.weight, self.bias, self.running_mean, self.running_var,
                                      self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
