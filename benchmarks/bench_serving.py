"""The CNN served by `mlflow models serve` against the same model called in process: latency
of one image (p50, p99) and throughput in batches of 256, with where a served batch's time goes.

    .venv/bin/python benchmarks/bench_serving.py [--model models:/hw4-cnn-fashion-mnist@champion] [--requests 300] [--batches 20]

Without --model it logs the demo's CNN (2 blocks: 32 and 64 3x3 filters, fc 3136->100->10;
random weights: the speed is the same) into a temporary store. Images: the prepared test split
when data/prepared/mnist_family.pt exists, else random pixels, sent as PNG (base64 in JSON,
the model's input; 28x28). One persistent HTTP connection, one server worker. Compared:
- served: POST /invocations, the whole round trip;
- pyfunc: `model.predict(frame)` in this process (PNG decoding, normalisation, forward);
- network: normalisation and forward alone, on the uint8 tensor.
For a batch, the served time is split into request parsing (JSON, base64, the frame: MLflow's
own parser, timed here), PNG decoding, the forward, and the rest (HTTP, server, response JSON).
Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch


def demo_model(store: Path) -> str:
    """The demo CNN (random weights) logged as this project logs it; its runs:/ URI."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    from hw4.models.cnn import CNN, CNNConfig
    from hw4.models.nets import NetSpec
    from hw4.tracking.logged_models import ModelToLog, log_model
    from hw4.tracking.runs import client

    net = NetSpec(CNN, CNNConfig(channels=32, kernel=3, padding=1, hidden=100, extra_channels=[64]))
    weights = store / "weights.pt"
    torch.save(net.build().state_dict(), weights)
    spec = {"net": net.to_json(), "mean": 0.286, "std": 0.353, "classes": [str(k) for k in range(10)], "dataset": "bench"}
    experiment = client().create_experiment("bench", artifact_location=(store / "artifacts").as_uri())
    run = client().create_run(experiment).info.run_id
    return log_model(run, ModelToLog("hw4.serving.image_classifier", {"weights": weights}, {"spec": spec},
                                     np.zeros((1, 28, 28), np.uint8)))


def test_images(n: int) -> np.ndarray:
    path = Path("data/prepared/mnist_family.pt")
    if path.is_file():
        return torch.load(path, weights_only=True)["test_x"][:n].numpy()
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def body_of(pngs: list[bytes]) -> bytes:
    rows = [[base64.b64encode(p).decode()] for p in pngs]
    return json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode()


def times(call: Callable[[], object], n: int) -> list[float]:
    call()  # warm-up
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) * 1000


def serve(uri: str, port: int, log: Path) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})  # it runs `uvicorn`
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited {server.returncode}; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a model URI; default: the demo CNN logged into a temporary store")
    parser.add_argument("--requests", type=int, default=300, help="one-image requests timed")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_serving") as tmp:  # the logged model, the server's log
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    torch.set_num_threads(args.threads)
    import mlflow
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    from hw4.data.formats.images import encode_png
    from hw4.data.loaders.batches import normalise
    from hw4.serving.image_input import decoded

    uri = args.model or demo_model(tmp)
    model = mlflow.pyfunc.load_model(uri)
    inner = model.unwrap_python_model()
    schema = model.metadata.get_input_schema()
    images = test_images(args.batch)
    pngs = [encode_png(x) for x in images]
    frames = {1: pd.DataFrame({"image": pngs[:1]}), args.batch: pd.DataFrame({"image": pngs})}
    bodies = {n: body_of(pngs[:n]) for n in frames}
    tensors = {n: torch.from_numpy(images[:n]) for n in frames}

    def forward(n: int) -> None:
        with torch.inference_mode():
            inner.net(normalise(tensors[n], inner.mean, inner.std).unsqueeze(1)).softmax(-1)

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    port_number = port.getsockname()[1]
    port.close()
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server's torch threads
    server = serve(uri, port_number, tmp / "serve.log")
    if env_threads is None:
        del os.environ["OMP_NUM_THREADS"]
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port_number, timeout=120)

        def post(n: int) -> None:
            connection.request("POST", "/invocations", bodies[n], {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(payload[:500])

        one = {"served": times(lambda: post(1), args.requests),
               "pyfunc": times(lambda: model.predict(frames[1]), args.requests),
               "network": times(lambda: forward(1), args.requests)}
        n = args.batch
        batch = {"served": times(lambda: post(n), args.batches),
                 "pyfunc": times(lambda: model.predict(frames[n]), args.batches),
                 "network": times(lambda: forward(n), args.batches)}
        parts = {
            "request parsing (JSON, base64, frame)": times(lambda: infer_and_parse_data(json.loads(bodies[n]), schema), args.batches),
            "PNG decoding": times(lambda: decoded(frames[n], "L", (28, 28)), args.batches),
            "normalisation + forward": batch["network"],
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    print(f"model {uri}; {'prepared test images' if Path('data/prepared/mnist_family.pt').is_file() else 'random pixels'}; "
          f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs")
    print(f"\none 28x28 image, {args.requests} calls: p50 / p99 ms")
    for name, t in one.items():
        print(f"  {name:8s} {pct(t, 50):8.2f} {pct(t, 99):8.2f}")
    print(f"\nbatches of {n}, {args.batches} calls: images/s (median call), ratio to network")
    rate = {name: n / statistics.median(t) for name, t in batch.items()}
    for name, r in rate.items():
        print(f"  {name:8s} {r:10.0f}  {r / rate['network']:.3f}")
    print(f"  served / pyfunc in process: {rate['served'] / rate['pyfunc']:.3f}")
    print(f"\nwhere a served batch of {n} goes (median ms):")
    served_ms = statistics.median(batch["served"]) * 1000
    accounted = 0.0
    for name, t in parts.items():
        ms = statistics.median(t) * 1000
        accounted += ms
        print(f"  {name:40s} {ms:8.2f}  {ms / served_ms:6.1%}")
    print(f"  {'the rest (HTTP, server, response JSON)':40s} {served_ms - accounted:8.2f}  {(served_ms - accounted) / served_ms:6.1%}")
    print(f"  {'served, total':40s} {served_ms:8.2f}")


if __name__ == "__main__":
    main()
