"""torch.nn's layers or the hand-derived ones of hw4.layers (Problem 1): one switch for the
MLP and the CNN. The scratch classes take torch's constructor arguments."""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

from torch import nn

Impl = Literal["torch", "scratch"]
IMPLS: tuple[Impl, ...] = get_args(Impl)


class Layers(NamedTuple):
    conv: type[nn.Module]
    relu: type[nn.Module]
    pool: type[nn.Module]
    linear: type[nn.Module]
    batch_norm: type[nn.Module]


def layer_classes(impl: Impl) -> Layers:
    if impl == "torch":
        return Layers(nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Linear, nn.BatchNorm2d)
    if impl == "scratch":
        from hw4.layers import ScratchBatchNorm2d, ScratchConv2d, ScratchLinear, ScratchMaxPool2d, ScratchReLU

        return Layers(ScratchConv2d, ScratchReLU, ScratchMaxPool2d, ScratchLinear, ScratchBatchNorm2d)
    raise ValueError(f"impl must be 'torch' or 'scratch', got {impl!r}")
