"""Scratch convolution (hw4.layers) against torch's, on the homework CNN's shapes.

    .venv/bin/python benchmarks/bench_conv.py [--repeats 30] [--threads N]

Three tables, each with torch as the baseline measured in the same run:
1. one conv layer, forward + backward, batch 100: the homework's (1x28x28 input, 32 filters
   7x7) and the demo CNN's second (32x14x14, 64 filters 3x3, padding 1); with the weight
   gradient only (a first layer: images need no gradient) and with the input gradient too;
2. the input gradient alone, two ways: the implementation's col2im of Wᵀ dY
   and the homework's formula taken literally (full convolution: unfold the zero-padded
   dY, multiply by the 180°-rotated, channel-transposed kernel);
3. the whole CNN (default config), forward + cross-entropy + backward, in samples/s.

Candidates are timed in alternation, round after round, and the median is reported, so
load from other processes hits them alike. Nothing about time is asserted. On a shared
machine pass --threads 1: with two OpenMP threads and another busy process, each parallel
region waits for a descheduled thread and every timing grows tens of times.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from hw4.config.compose import default_params
from hw4.layers import conv2d
from hw4.layers.functions import col2im
from hw4.models.cnn import CNN, CNNConfig

BATCH = 100


def median_ms(candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 5) -> dict[str, float]:
    """Median wall time of each candidate in ms, timed in alternation."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def full_convolution_input_grad(dy: torch.Tensor, weight: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """dX of a stride-1, unpadded conv as the write-up states it: dY padded by k-1 on every
    side, cross-correlated with K rotated by 180° and with its f and c axes swapped.

    dy (B, F, Ho, Wo), weight (F, C, kh, kw) -> (B, C, H, W).
    """
    f, c, kh, kw = weight.shape
    padded = F.pad(dy, (kw - 1, kw - 1, kh - 1, kh - 1))
    cols = F.unfold(padded, (kh, kw))  # (B, F*kh*kw, H*W): kh*kw copies of dY
    rotated = weight.flip(2, 3).transpose(0, 1).reshape(c, f * kh * kw)  # (C, F*kh*kw)
    return (rotated @ cols).view(dy.shape[0], c, *input_size)


def fold_input_grad(dy: torch.Tensor, weight: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """dX as Conv2dFunction.backward computes it (stride 1, no padding): col2im of Wᵀ dY."""
    f, _, kh, kw = weight.shape
    w_t = weight.reshape(f, -1).t().contiguous().expand(dy.shape[0], -1, -1)  # (B, C*kh*kw, F)
    dcols = torch.bmm(w_t, dy.flatten(2))  # (B, C*kh*kw, L)
    return col2im(dcols, input_size, (kh, kw), (1, 1), (0, 0), dy.shape[2:])


def conv_layer_table(repeats: int) -> None:
    print("\n1. conv layer forward + backward, batch 100")
    print(f"{'layer':32s} {'gradients':20s} {'torch ms':>9s} {'scratch ms':>11s} {'ratio':>6s}")
    # (label, input shape, weight shape, padding): the homework's layer, the demo CNN's second.
    layers = [("homework: 1->32, 7x7, 28 px", (BATCH, 1, 28, 28), (32, 1, 7, 7), 0),
              ("demo block 2: 32->64, 3x3, 14 px", (BATCH, 32, 14, 14), (64, 32, 3, 3), 1)]
    for label, x_shape, w_shape, pad in layers:
        x = torch.randn(x_shape)
        w = torch.randn(w_shape, requires_grad=True)
        b = torch.randn(w_shape[0], requires_grad=True)
        dy = torch.randn_like(F.conv2d(x, w, b, padding=pad))
        # The first layer's input (the images) needs no gradient; a later layer's does.
        for grads, x_in in (("weight, bias", x), ("input, weight, bias", x.clone().requires_grad_())):
            ms = median_ms(
                {
                    "torch": lambda: F.conv2d(x_in, w, b, padding=pad).backward(dy),
                    "scratch": lambda: conv2d(x_in, w, b, padding=pad).backward(dy),
                },
                repeats,
            )
            print(f"{label:32s} {grads:20s} {ms['torch']:9.2f} {ms['scratch']:11.2f} {ms['scratch'] / ms['torch']:6.2f}")


def input_grad_table(repeats: int) -> None:
    print("\n2. input gradient alone: col2im (implemented) vs full convolution (write-up's formula)")
    print(f"{'shape':40s} {'col2im ms':>9s} {'full conv ms':>13s} {'max|diff|/max|dX|':>18s}")
    shapes = [((BATCH, 1, 28, 28), (32, 1, 7, 7)), ((BATCH, 32, 14, 14), (64, 32, 5, 5))]
    for (n, c, h, wd), (f, _, kh, kw) in shapes:
        weight = torch.randn(f, c, kh, kw)
        dy = torch.randn(n, f, h - kh + 1, wd - kw + 1)
        a, b = fold_input_grad(dy, weight, (h, wd)), full_convolution_input_grad(dy, weight, (h, wd))
        ms = median_ms(
            {
                "fold": lambda: fold_input_grad(dy, weight, (h, wd)),
                "full": lambda: full_convolution_input_grad(dy, weight, (h, wd)),
            },
            max(3, repeats // 3),
            warmup=2,
        )
        label = f"x ({n}, {c}, {h}, {wd}), w ({f}, {c}, {kh}, {kw})"
        rel = ((a - b).abs().max() / b.abs().max()).item()
        print(f"{label:40s} {ms['fold']:9.2f} {ms['full']:13.2f} {rel:18.1e}")


def cnn_table(repeats: int) -> None:
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))
    arch = CNNConfig(**default_params()["cnn"]["arch"])  # the homework's
    nets = {impl: CNN(arch, impl=impl) for impl in ("torch", "scratch")}
    nets["scratch"].load_state_dict(nets["torch"].state_dict())

    def step(net: CNN) -> Callable[[], None]:
        return lambda: F.cross_entropy(net(x), y).backward()

    ms = median_ms({impl: step(net) for impl, net in nets.items()}, repeats)
    rate = {impl: BATCH / (t / 1e3) for impl, t in ms.items()}
    print(f"\n3. homework CNN forward + loss + backward, batch {BATCH}")
    print(f"{'impl':10s} {'ms/batch':>9s} {'samples/s':>10s}")
    for impl in nets:
        print(f"{impl:10s} {ms[impl]:9.2f} {rate[impl]:10.0f}")
    print(f"scratch / torch time: {ms['scratch'] / ms['torch']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.2f}, median of {args.repeats}"
    )
    conv_layer_table(args.repeats)
    input_grad_table(args.repeats)
    cnn_table(args.repeats)


if __name__ == "__main__":
    main()
