"""Several processes writing to one SQLite tracking store at once, as `dvc queue start -j N`
makes them: does any write fail ("database is locked", a table created twice), and how many
metric batches per second do they log together?

    .venv/bin/python benchmarks/bench_store_writers.py [--writers 4] [--batches 200]

Three ways to open the store, the writers started together:
- `mlflow`: MlflowClient on the sqlite URI as MLflow opens it, on a fresh file (the writers
  race to create its tables);
- `mlflow, tables made`: the same, with the tables created beforehand (rollback journal);
- `hw4`: through `hw4.tracking.runs.client()`, on a fresh file: it creates the tables under a
  file lock and switches the database to write-ahead logging (WAL).
Each writer opens a run, logs `--batches` batches of 20 metrics, and ends the run. The table
gives failed writers and the combined batches/s; a failure's message is printed once.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path


def writer(mode: str, uri: str, batches: int, start_at: float, out: mp.Queue) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from hw4.tracking import runs

    time.sleep(max(0.0, start_at - time.time()))  # start together: the creation race is part of it
    try:
        client = runs.client() if mode == "hw4" else MlflowClient(uri)
        exp = client.get_experiment_by_name("bench")
        exp_id = exp.experiment_id if exp else _create_experiment(client)
        run_id = client.create_run(exp_id).info.run_id
        for step in range(batches):
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(f"m{i}", float(step), now, step) for i in range(20)])
        client.set_terminated(run_id, "FINISHED")
        out.put(("ok", ""))
    except Exception as e:  # the point is to count them
        out.put(("failed", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))


def _create_experiment(client) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment("bench")
    except MlflowException:  # another writer made it first
        return client.get_experiment_by_name("bench").experiment_id


def trial(mode: str, writers: int, batches: int) -> tuple[int, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        if mode == "mlflow, tables made":
            from mlflow.tracking import MlflowClient

            MlflowClient(uri).search_experiments(max_results=1)
        out: mp.Queue = mp.Queue()
        start_at = time.time() + 8.0  # past every writer's imports
        procs = [mp.Process(target=writer, args=(mode, uri, batches, start_at, out)) for _ in range(writers)]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        elapsed = time.time() - start_at
        for p in procs:
            p.join()
    failures = [msg for status, msg in results if status == "failed"]
    return len(failures), writers * batches / elapsed, failures[0] if failures else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.writers} writers x {args.batches} batches of 20 metrics, {os.cpu_count()} CPUs, {args.trials} trials")
    print(f"{'store':20} {'failed writers':>15} {'batches/s (median)':>20}  first failure")
    for mode in ("mlflow", "mlflow, tables made", "hw4"):
        trials = [trial(mode, args.writers, args.batches) for _ in range(args.trials)]
        failed = sum(t[0] for t in trials)
        rate = sorted(t[1] for t in trials)[len(trials) // 2]
        first = next((t[2] for t in trials if t[2]), "")
        print(f"{mode:20} {f'{failed}/{args.writers * args.trials}':>15} {rate:20.0f}  {first}")


if __name__ == "__main__":
    main()
