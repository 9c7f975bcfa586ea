"""The transfer stage's MLflow Model: RGB images of any size in, ants or bees and probabilities out.

The input and output of every image model (hw4.serving.image_input): one column `image`
of PNG/JPEG bytes in; class, label and probabilities out. Each image goes through the stage's evaluation
transform (resize, centre crop, ImageNet normalisation) into the fine-tuned or frozen-backbone
ResNet18, whose best epoch's weights the stage saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import torch
from PIL import Image

from hw4.data.loaders.image_transforms import eval_transform
from hw4.models.nets import NetSpec
from hw4.serving.image_input import INPUT, SIGNATURE, classified, decoded

__all__ = ["PYTHON_MODEL", "SIGNATURE", "TransferClassifierModel", "example"]


def example(files: list[Path]) -> pd.DataFrame:
    """Image files -> the model's input frame (their bytes as they are)."""
    return pd.DataFrame({INPUT: [Path(f).read_bytes() for f in files]})


class TransferClassifierModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        spec = json.loads(Path(context.artifacts["spec"]).read_text())
        self.classes = spec["classes"]
        self.net = NetSpec.from_json(spec["net"]).build().eval()
        saved = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        self.net.load_state_dict(saved["state_dict"])
        self.transform = eval_transform(spec["image_size"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        images = torch.stack([self.transform(Image.fromarray(p)) for p in decoded(model_input, "RGB", None)])  # (N, 3, S, S)
        with torch.inference_mode():
            return classified(self.net(images).softmax(-1), self.classes)


PYTHON_MODEL = TransferClassifierModel  # the class hw4.tracking.logged_models logs for this module
