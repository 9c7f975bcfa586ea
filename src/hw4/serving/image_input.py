"""What every image model of the project takes and gives: one column `image` of encoded
PNG/JPEG bytes (base64 in a JSON request), and per image its class, label and probabilities.
Bad input raises MlflowException(INVALID_PARAMETER_VALUE): HTTP 400 when served."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from hw4.data.formats.images import ImageDecodeError, decode

INPUT = "image"
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.binary, INPUT)]),
    outputs=Schema([
        ColSpec(DataType.long, "class"),
        ColSpec(DataType.string, "label"),
        ColSpec(DataType.double, "probability"),
        ColSpec(Array(DataType.double), "probabilities"),
    ]),
)  # fmt: skip


def decoded(frame: Any, mode: str, size: tuple[int, int] | None) -> list[np.ndarray]:
    """The `image` column decoded to uint8 pixels, (H, W) for "L" or (H, W, 3) for "RGB",
    resized to `size` if given. An error names the row and says what was expected, for the
    caller (HTTP 400 when served)."""
    if not isinstance(frame, pd.DataFrame) or INPUT not in frame.columns:
        raise MlflowException.invalid_parameter_value(
            f"expected a frame with one column {INPUT!r} of PNG/JPEG bytes (base64 in JSON), got {type(frame).__name__}")
    if len(frame) == 0:
        raise MlflowException.invalid_parameter_value(f"empty batch: send at least one image in column {INPUT!r}")
    pixels = []
    for row, data in enumerate(frame[INPUT]):
        try:
            pixels.append(decode(data, mode, size))
        except ImageDecodeError as e:
            raise MlflowException.invalid_parameter_value(f"row {row} of column {INPUT!r}: {e}") from None
    return pixels


def classified(probs: torch.Tensor, classes: list[str]) -> pd.DataFrame:
    """Probabilities (N, C) -> the output frame: class, label, its probability, all of them."""
    probs = probs.double()
    best = probs.argmax(-1)
    return pd.DataFrame({
        "class": best.numpy(),
        "label": [classes[i] for i in best.tolist()],
        "probability": probs.gather(1, best[:, None])[:, 0].numpy(),
        "probabilities": list(probs.numpy()),
    })  # fmt: skip
