"""A logged model's requirements come from the code it runs: serving modules and what they reach."""

from __future__ import annotations

import ast

import pytest

from hw4.tracking.model_requirements import imports, reached, requirements

SERVING = ["hw4.serving.image_classifier", "hw4.serving.transfer_classifier", "hw4.serving.captioner"]
TRAINING_DISTRIBUTIONS = {"pytorch-lightning", "lightning", "lightning-fabric", "torchmetrics", "tqdm", "dvc",
                          "hydra-core", "omegaconf"}


@pytest.mark.parametrize("module", SERVING)
def test_every_model_requires_what_it_imports_and_nothing_that_trains(module: str):
    names = {line.split("==")[0].lower() for line in requirements(module)}
    assert {"mlflow", "torch", "numpy", "pandas", "pillow"} <= names
    assert not names & TRAINING_DISTRIBUTIONS


def test_imports_count_inside_functions_but_not_under_type_checking():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import numpy as np\n"
        "from hw4.io import checksums\n"
        "if TYPE_CHECKING:\n    import pytorch_lightning\nelse:\n    import yaml\n"
        "def late():\n    from PIL import Image\n"
    )
    assert imports(tree) == {"typing", "typing.TYPE_CHECKING", "numpy", "hw4.io", "hw4.io.checksums", "yaml",
                             "PIL", "PIL.Image"}


def test_a_network_built_by_name_counts_every_network_module():
    # hw4.models.nets imports the network's module by name (importlib): all of hw4.models count.
    assert {"hw4.models.cnn", "hw4.models.mlp", "hw4.layers.functions"} <= reached("hw4.serving.image_classifier")
