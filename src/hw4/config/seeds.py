"""Seeds: every evaluation that reports a result runs once per seed of params `seeds`.

Each seed is its own DVC stage (a matrix dimension, e.g. `cnn@torch-1`), its own MLflow run
and its own files, one folder below where a single run's would be:

    results/cnn/torch.json          the evaluation: mean and std over seeds (stage cnn_seeds@torch)
    results/cnn/torch/seed1.json    one seed's run (stage cnn@torch-1)

so adding a seed runs only the new seed's stages, and `summarise` turns the seeds' records
into the one record the report and the README read.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Mapping

from hw4.config.settings import ConfigError
from hw4.io.outputs import is_number


def seeds_of(params: Mapping[str, Any]) -> list[int]:
    """params `seeds`: the evaluations' seeds, distinct integers, at least one."""
    seeds = params.get("seeds")
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"params 'seeds': list the evaluations' seeds as integers, e.g. [0, 1, 2]; got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"params 'seeds': duplicate seeds in {seeds}")
    return seeds


def chosen_seed(params: Mapping[str, Any], seed: int | None) -> int:
    """The seed a training run uses: `--seed`, which must be one of params `seeds`; else the first."""
    seeds = seeds_of(params)
    if seed is None:
        return seeds[0]
    if seed not in seeds:
        raise ConfigError(f"seed {seed} is not in params seeds {seeds}")
    return seed


def data_seed(params: dict[str, Any]) -> int:
    """The top-level `seed`: the data's (stand-in generators, drawn subsets), not the evaluations'."""
    if "seed" not in params:
        raise ConfigError("params: missing key 'seed' (the data's seed, e.g. 0)")
    seed = params["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"params 'seed': expected an integer, got {seed!r}")
    return seed


def summarise(records: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One record for the seeds' records (seed -> record), in the shape a single run's has.

    Each number all seeds have becomes their mean, with `<key>_std` beside it (the sample
    standard deviation; None for one seed) and `per_seed` holding every seed's value; an
    integer the same in every seed (hidden units, epochs) is a setting and stays as it is.
    Other entries (data set, stand-in flag, provenance, ...) are the first seed's; `run_ids`
    names every seed's MLflow run.
    """
    if not records:
        raise ValueError("no seeds to summarise")
    seeds = list(records)
    first = records[seeds[0]]
    numbers = [k for k, v in first.items() if k != "seed" and all(is_number(r.get(k)) for r in records.values())
               and not (isinstance(v, int) and all(r[k] == v for r in records.values()))]
    out: dict[str, Any] = {k: v for k, v in first.items() if k not in numbers and k not in ("seed", "run_id")}
    for key in numbers:
        values = [float(records[s][key]) for s in seeds]
        out[key] = statistics.fmean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
    out["seeds"] = seeds
    out["per_seed"] = {str(s): {k: records[s][k] for k in numbers} for s in seeds}
    out["run_ids"] = {str(s): records[s].get("run_id") for s in seeds}
    return out


def add_seed_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None,
                        help="one of params seeds (DVC runs one stage per seed); the first if not given")
