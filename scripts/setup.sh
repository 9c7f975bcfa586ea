#!/usr/bin/env bash
# Set-up shared by the README's two commands; safe to run again (it does only what is missing):
# the virtual environment, the project and its pinned dependencies, and the Debian package
# dataset-fashion-mnist that the offline demo trains on.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi

# Reinstall only when the dependency pins change.
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing the project and its dependencies into .venv (a few minutes the first time)"
    .venv/bin/pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    # torch and torchvision come from this machine's local wheel cache when pip has one.
    # pip compiles every module to bytecode on one core, package by package (about 30 s of
    # the 17,000 files); compileall afterwards uses every core (18 s on two). Files that are
    # not valid Python 3 (some packages ship such tests) fail to compile either way.
    .venv/bin/pip install --quiet --no-compile -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
    .venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages >/dev/null 2>&1 || true
    .venv/bin/python -c "import hw4, torch, pytorch_lightning, mlflow, dvc" \
        || { echo "setup: the install failed; see pip's messages above" >&2; exit 1; }
    rm -f .venv/.installed-*
    touch "$stamp"
fi

fmnist=/usr/share/datasets/fashion-mnist
if [ ! -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "setup: installing the Debian package dataset-fashion-mnist (offline demo data)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n apt-get update -qq >/dev/null
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup: note: $fmnist is missing and apt-get is not usable here;" \
             "the demo needs Fashion-MNIST there (or in download.mirror_dirs)" >&2
    fi
fi
