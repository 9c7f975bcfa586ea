"""A learnable 10-class stand-in in the prepared MNIST-family format, for tests and the GPU check.

Class c is a bright horizontal stripe at rows 2c..2c+3 over noise: trivially separable by
a linear layer, so a few steps show whether training works at all.
"""

from __future__ import annotations

import torch


def generate(n_train: int = 600, n_val: int = 200, n_test: int = 200, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=g)
        images = (torch.rand(n, 28, 28, generator=g) * 80).to(torch.uint8)  # (n, 28, 28) noise
        for c in range(10):
            images[labels == c, 2 * c : 2 * c + 4, 4:24] = 230
        return images, labels.to(torch.uint8)

    data: dict = {}
    for name, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        data[f"{name}_x"], data[f"{name}_y"] = split(n)
    data["meta"] = {"dataset": "stripes", "standin": True, "classes": [str(c) for c in range(10)]}
    return data
