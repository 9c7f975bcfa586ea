"""The champion CNN served over HTTP by `mlflow models serve`, and `python -m hw4 predict`."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from hw4.data.formats.images import encode_png
from hw4.stages import cnn
from tests.conftest import write_params
from tests.mlflow_servers import free_port
from tests.stages.test_cnn import tiny_cnn_params


def post(url: str, body: object) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def images_request(pngs: list[bytes]) -> dict:
    return {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(p).decode()] for p in pngs]}}


def wait_until_up(url: str, server: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow models serve exited with {server.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@pytest.fixture
def trained_cnn(tiny_prepared: Path, isolated_workdir: Path) -> dict:
    s = cnn.load_settings(write_params(isolated_workdir / "params.yaml", cnn=tiny_cnn_params(impls=["torch"], epochs=1)))
    return cnn.run(s, "torch")


@pytest.mark.slow
def test_served_champion_answers_like_the_model_in_process_and_refuses_bad_requests(trained_cnn: dict, tmp_path: Path):
    import mlflow

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    venv = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # it runs `uvicorn`
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/hw4-cnn-stripes-standin@champion", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=venv, start_new_session=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/ping", server)
        url = f"http://127.0.0.1:{port}/invocations"
        test_x = torch.load("data/prepared/mnist_family.pt", weights_only=True)["test_x"][:64].numpy()
        pngs = [encode_png(x) for x in test_x]
        status, body = post(url, images_request(pngs))
        assert status == 200, body
        served = body["predictions"]
        local = mlflow.pyfunc.load_model("models:/hw4-cnn-stripes-standin@champion").predict(
            __import__("pandas").DataFrame({"image": pngs}))
        assert [r["class"] for r in served] == local["class"].tolist()
        assert np.allclose([r["probabilities"] for r in served], np.stack(local["probabilities"]), atol=1e-12)

        not_base64 = {"dataframe_split": {"columns": ["image"], "data": [[12345]]}}
        for bad, expected in [
            (images_request([]), "empty batch"),
            (images_request([b"GIF89a but not really"]), "no readable image"),
            ({"dataframe_split": {"columns": ["pixels"], "data": [[1]]}}, "image"),  # the wrong column
            ({"inputs": test_x[:2].tolist()}, "expected the bytes of a PNG or JPEG file"),  # raw pixels
            (not_base64, "Failed to convert column image"),
            (b"{not json", "valid JSON"),
        ]:
            status, body = post(url, bad)
            assert status == 400, (bad if isinstance(bad, bytes) else str(bad)[:200], status, body)
            assert expected in body.get("message", ""), body.get("message", "")[-500:]
        status, body = post(url, images_request(pngs[:1]))  # still answering
        assert status == 200 and body["predictions"][0]["class"] == served[0]["class"]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


@pytest.mark.slow
def test_predict_answers_every_readable_file_and_names_the_others(trained_cnn: dict, tmp_path: Path):
    data = torch.load("data/prepared/mnist_family.pt", weights_only=True)
    files = []
    for i in range(2):
        files.append(tmp_path / f"test{i}.png")
        files[-1].write_bytes(encode_png(np.kron(data["test_x"][i].numpy(), np.ones((2, 2), np.uint8))))  # 56x56
    (tmp_path / "notes.png").write_text("not an image")
    args = [str(files[0]), str(tmp_path / "notes.png"), str(tmp_path / "missing.png"), str(files[1])]
    done = subprocess.run([sys.executable, "-m", "hw4", "predict", "models:/hw4-cnn-stripes-standin@champion", *args],
                          capture_output=True, text=True, env=os.environ, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    answered = [line.split("\t") for line in done.stdout.splitlines()]
    assert [a[0] for a in answered] == [str(files[0]), str(files[1])]
    classes = data["meta"]["classes"]
    for line in answered:
        assert line[1] in classes and line[2].startswith("class ") and line[3].startswith("p=")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "notes.png" in errors[0] and "no readable image" in errors[0]
    assert "missing.png" in errors[1] and "No such file" in errors[1]

    # The same model from a local folder (as `mlflow artifacts download` leaves it) and by its run.
    import mlflow

    folder = mlflow.artifacts.download_artifacts("models:/hw4-cnn-stripes-standin@champion", dst_path=str(tmp_path / "model"))
    for uri in (folder, f"runs:/{trained_cnn['run_id']}/model"):
        again = subprocess.run([sys.executable, "-m", "hw4", "predict", uri, str(files[0])],
                               capture_output=True, text=True, env=os.environ, timeout=300)
        assert again.returncode == 0 and again.stdout.split("\t")[:2] == answered[0][:2], again.stderr[-2000:]
