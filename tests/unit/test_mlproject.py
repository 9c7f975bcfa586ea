"""MLproject mirrors dvc.yaml: an entry point per stage, same name, same command, the stage's
matrix keys as parameters (plus `params`, the params file), and `main` for the pipeline."""

import re

import yaml

from tests.conftest import REPO


def test_every_dvc_stage_is_an_entry_point_with_its_command_and_matrix_keys():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    entries = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
    assert set(entries) == set(stages) | {"main"}
    for name, stage in stages.items():
        entry = entries[name]
        assert list(entry["parameters"]) == [*stage.get("matrix", {}), "params"], name
        assert entry["parameters"]["params"]["default"] == "params.yaml"
        command = re.sub(r"\$\{item\.(\w+)\}", r"{\1}", stage["cmd"])
        assert entry["command"] == f"{command} --params {{params}}", name
