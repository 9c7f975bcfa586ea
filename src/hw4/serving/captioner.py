"""The captioning stage's MLflow Model: an image (PNG/JPEG bytes, any size) in, its caption out.

The image goes the way `preprocess_coco` took the training images: resized to the backbone's
square, normalised for it, through the backbone it used (its trained weights), then the PCA
and standardisation it fitted on the training split (`extractor`, saved by preprocess_coco as
data/prepared/coco/extractor.pt); then the captioner decodes with the stage's settings
(greedy or beam, at most `max_length` words; a blind model sees zeroed features, as trained).
Only the raw-image source has an extractor: CS231n's features came from a VGG-16 and a PCA
that are not part of them, so a captioner trained on those is not logged as a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, DataType, Schema

from hw4.data.formats.coco_text import Vocabulary
from hw4.features.extractor import BACKBONES, Reduction, build_backbone, imagenet_normalise
from hw4.models.nets import NetSpec
from hw4.serving.image_input import INPUT, decoded

SIGNATURE = ModelSignature(inputs=Schema([ColSpec(DataType.binary, INPUT)]), outputs=Schema([ColSpec(DataType.string, "caption")]))


def example(files: list[Path]) -> pd.DataFrame:
    """Image files -> the model's input frame (their bytes as they are)."""
    return pd.DataFrame({INPUT: [Path(f).read_bytes() for f in files]})


class CaptionerModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        spec = json.loads(Path(context.artifacts["spec"]).read_text())
        extractor = torch.load(context.artifacts["extractor"], map_location="cpu", weights_only=True)
        if extractor["backbone"] not in BACKBONES:
            raise ValueError(f"unknown backbone {extractor['backbone']!r}")
        with torch.random.fork_rng():  # build_backbone seeds its random start, replaced by the saved weights
            self.backbone, _ = build_backbone(extractor["backbone"], "random", None, seed=0)
        self.backbone.load_state_dict(extractor["state_dict"])
        self.size = (extractor["image_size"], extractor["image_size"])
        self.reduction = Reduction.from_tensors(extractor["reduction"])
        self.net = NetSpec.from_json(spec["net"]).build().eval()
        self.net.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True))
        self.vocab = Vocabulary(spec["idx_to_word"])
        self.blind, self.max_length, self.beam_width = spec["blind"], spec["max_length"], spec["beam_width"]

    def features(self, model_input: pd.DataFrame) -> torch.Tensor:
        """(N, D) features, as preprocess_coco made them for its images."""
        images = torch.from_numpy(np.stack(decoded(model_input, "RGB", self.size))).permute(0, 3, 1, 2)  # (N, 3, S, S)
        with torch.inference_mode():
            raw = self.backbone(imagenet_normalise(images)).float().numpy()
        return torch.from_numpy(self.reduction.apply(raw))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        features = self.features(model_input)
        if self.blind:
            features = torch.zeros_like(features)
        with torch.inference_mode():
            tokens = self.net.decode(features, self.max_length, self.beam_width)  # (N, max_length)
        return pd.DataFrame({"caption": [self.vocab.decode(row) for row in tokens.tolist()]})


PYTHON_MODEL = CaptionerModel  # the class hw4.tracking.logged_models logs for this module
