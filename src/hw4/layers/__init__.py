"""Hand-derived layers (homework Problem 1): autograd Functions and nn.Module wrappers."""

from hw4.layers.functions import conv2d, linear, max_pool2d, relu
from hw4.layers.modules import ScratchConv2d, ScratchLinear, ScratchMaxPool2d, ScratchReLU

__all__ = [
    "ScratchConv2d",
    "ScratchLinear",
    "ScratchMaxPool2d",
    "ScratchReLU",
    "conv2d",
    "linear",
    "max_pool2d",
    "relu",
]
