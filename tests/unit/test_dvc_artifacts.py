"""dvc.yaml's `artifacts:` name files the pipeline makes: each is an output of a stage."""

from dvc.repo import Repo

from tests.conftest import REPO


def test_every_declared_model_is_a_stage_output():
    repo = Repo(str(REPO))
    outputs = {out.def_path for stage in repo.index.stages for out in stage.outs}
    artifacts = repo.artifacts.read()["dvc.yaml"]
    assert artifacts, "dvc.yaml declares no artifacts"
    for name, artifact in artifacts.items():
        assert artifact.type == "model", name
        assert artifact.path in outputs, f"artifact {name}: {artifact.path} is no stage's output"
