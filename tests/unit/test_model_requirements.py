"""A logged model's requirements come from the code it runs: serving modules and what they reach."""

from __future__ import annotations

import ast
import subprocess
import sys

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


SAVE_A_MODEL = """
import sys, tempfile
import mlflow.pyfunc
from mlflow.utils import requirements_utils
from hw4.tracking.logged_models import pins_taken_as_checked
from hw4.tracking.model_requirements import requirements

class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input

def save():  # and load, as log_model does to try the input example
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(f"{tmp}/m", python_model=Echo(), pip_requirements=requirements("hw4.serving.image_classifier"))
        mlflow.pyfunc.load_model(f"{tmp}/m")

if sys.argv[1] == "skipped":
    with pins_taken_as_checked():
        save()
else:
    save()
print(requirements_utils._MODULES_TO_PACKAGES is not None)  # MLflow's map of every installed package
"""


@pytest.mark.parametrize("check, mapped", [("skipped", "False"), ("mlflow's", "True")])
def test_saving_a_model_skips_mlflows_check_of_our_own_pins(check: str, mapped: str):
    """The pins are the installed versions: MLflow's comparison on saving and loading (first
    mapping every installed distribution to its modules) is skipped, and only where hw4 asks."""
    out = subprocess.run([sys.executable, "-c", SAVE_A_MODEL, check], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [mapped], out.stderr[-2000:]
