"""The MLP's and the CNN's MLflow Model: PNG/JPEG images in, class, label and probabilities out.

Logged by `hw4.tracking.logged_models` with the network's spec and weights as artifacts and
the hw4 package as code, so `mlflow.pyfunc.load_model(uri)` rebuilds it anywhere torch is.
The input is one column, `image`: the bytes of an encoded image of any size (base64 in a JSON
request), as a user has them; a uint8 array (N, 28, 28) goes in as `png_column(array)`.
Pixels are resized to the data's size and normalised as in training (`normalise`, the
training split's mean and std), so the model predicts what the stage's network predicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from hw4.data.formats.images import encode_png
from hw4.data.loaders.batches import normalise
from hw4.models.nets import NetSpec
from hw4.serving.image_input import INPUT, SIGNATURE, classified, decoded

__all__ = ["PYTHON_MODEL", "SIGNATURE", "ImageClassifierModel", "example", "png_column"]


def png_column(images: np.ndarray) -> pd.DataFrame:
    """uint8 images (N, H, W) -> the model's input frame."""
    return pd.DataFrame({INPUT: [encode_png(image) for image in np.asarray(images)]})


example = png_column  # the input example logged with the model


class ImageClassifierModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        spec = json.loads(Path(context.artifacts["spec"]).read_text())
        net_spec = NetSpec.from_json(spec["net"])
        self.net = net_spec.build().eval()
        self.net.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True))
        self.mean, self.std, self.classes = spec["mean"], spec["std"], spec["classes"]
        side = getattr(net_spec.config, "image_size", 28)
        self.size = (side, side)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        images = torch.from_numpy(np.stack(decoded(model_input, "L", self.size)))  # (N, 28, 28) uint8
        with torch.inference_mode():
            logits = self.net(normalise(images, self.mean, self.std).unsqueeze(1))  # (N, classes)
        return classified(logits.softmax(-1), self.classes)


PYTHON_MODEL = ImageClassifierModel  # the class hw4.tracking.logged_models logs for this module
