"""Hand-derived layers (homework Problem 1): autograd Functions and nn.Module wrappers."""

from hw4.layers.functions import batch_norm2d, conv2d, linear, max_pool2d, relu
from hw4.layers.modules import ScratchBatchNorm2d, ScratchConv2d, ScratchLinear, ScratchMaxPool2d, ScratchReLU

__all__ = [
    "ScratchBatchNorm2d",
    "ScratchConv2d",
    "ScratchLinear",
    "ScratchMaxPool2d",
    "ScratchReLU",
    "batch_norm2d",
    "conv2d",
    "linear",
    "max_pool2d",
    "relu",
]
