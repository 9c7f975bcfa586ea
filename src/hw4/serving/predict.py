"""`python -m hw4 predict MODEL_URI FILE...`: what a logged classifier says about image files.

    python -m hw4 predict models:/hw4-cnn-fashion-mnist@champion shirt.png boot.jpg
    python -m hw4 predict runs:/<run id>/model digit.png
    python -m hw4 predict mlartifacts/.../artifacts digit.png   # a model's local folder

One line per file: the file, the label, the class index and its probability. A file that
cannot be read, or is no image, gets an `error:` line on stderr naming it; the others are
still answered, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from hw4.serving.image_input import INPUT
from hw4.tracking.runs import client, fluent_tracking


def load(uri: str, download_to: str) -> Any:
    """The pyfunc model at `uri` (models:/, runs:/, or a local folder), from this project's
    store. A store's model is copied into `download_to`: MLflow's own choice, a new temporary
    folder, would stay behind after every call against a tracking server."""
    import mlflow

    from mlflow.exceptions import MlflowException

    local = Path(uri)
    if not local.is_dir():  # only a models:/ or runs:/ URI needs the tracking store
        with fluent_tracking():
            try:
                local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=download_to))
            except MlflowException as e:
                raise SystemExit(f"error: {uri}: {e.message}{registered_like(uri)}") from None
    warn_other_versions(local / "requirements.txt")
    # MLflow's own check of the requirements maps every installed package to its modules
    # first (0.9 s on two cores); the pins are compared above instead.
    return mlflow.pyfunc.load_model(str(local.resolve()), suppress_warnings=True)


def registered_like(uri: str) -> str:
    """For a models:/ URI whose name is not registered: the registered models whose names
    begin with it (`hw4-cnn` -> `hw4-cnn-fashion-mnist`, `hw4-cnn-mnist`), as a hint."""
    if not uri.startswith("models:/"):
        return ""
    name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
    names = sorted(m.name for m in client().search_registered_models(f"name LIKE '{name}%'") if m.name != name)
    if not names:
        return ""
    return f"\nregistered models named so (one per task and dataset): {', '.join(names)}; name the one you want"


def warn_other_versions(requirements: Path) -> None:
    """One line per library pinned in a model's requirements.txt that this Python has in
    another version, or lacks (the model may still load: the line says where to look)."""
    from importlib.metadata import PackageNotFoundError, version

    if not requirements.is_file():
        return
    for line in requirements.read_text().splitlines():
        name, sep, pinned = line.strip().partition("==")
        if not sep:
            continue
        try:
            here = f"has {version(name)}"
        except PackageNotFoundError:
            here = "lacks it"
        if here != f"has {pinned}":
            print(f"warning: the model was logged with {name}=={pinned}; this environment {here}", file=sys.stderr)


def answer_each(model: Any, files: list[Path], line: Callable[[Any], str]) -> int:
    """Predict every file on its own, so that one bad file does not cost the others; the
    number that failed."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    failed = 0
    for path in files:
        try:
            out = model.predict(pd.DataFrame({INPUT: [path.read_bytes()]}))
            print(f"{path}\t{line(out.iloc[0])}", flush=True)
        except (OSError, MlflowException) as e:
            failed += 1
            message = e.message if isinstance(e, MlflowException) else f"{type(e).__name__}: {e.strerror or e}"
            print(f"error: {path}: {message}", file=sys.stderr, flush=True)
    return failed


def classification(row: Any) -> str:
    return f"{row['label']}\tclass {int(row['class'])}\tp={float(row['probability']):.3f}"


def main(argv: list[str] | None = None, caption: bool = False) -> None:
    what = "caption" if caption else "predict"
    parser = argparse.ArgumentParser(prog=f"python -m hw4 {what}", description=__doc__ if not caption else (
        "`python -m hw4 caption MODEL_URI IMAGE...`: a caption per image, from a logged captioner "
        "(models:/hw4-captioner-coco2014-standin@champion, runs:/<id>/model or a local model folder)."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="models:/hw4-cnn-fashion-mnist@champion, runs:/<run id>/model, or a model's folder")
    parser.add_argument("files", nargs="+", type=Path, help="PNG or JPEG files, any size")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hw4-model-") as download_to:  # kept until the answers: the model's code is there
        model = load(args.model, download_to)
        failed = answer_each(model, args.files, (lambda row: str(row["caption"])) if caption else classification)
    if failed:
        raise SystemExit(1)


def main_caption(argv: list[str] | None = None) -> None:
    main(argv, caption=True)
