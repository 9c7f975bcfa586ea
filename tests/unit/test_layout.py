"""The package's imports go one way: stages on top; training, features and evaluation below
them; models, data and tracking below those; config and io at the bottom. Nothing imports a
stage module. A module named in a string (for importlib) counts as imported: a stage names the
serving module its logged model runs. (README "Layout" draws the same picture.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "src" / "hw4"
# folder -> the folders its modules may import from (itself included)
MAY_IMPORT = {
    "io": {"io"},
    "config": {"config", "io"},
    "tracking": {"tracking", "io"},
    "layers": {"layers"},
    "data": {"data", "io", "config"},
    "models": {"models", "layers", "io", "config"},
    "training": {"training", "tracking", "models", "layers", "data", "io", "config"},
    "features": {"features", "training", "tracking", "models", "data", "io", "config"},
    "evaluation": {"evaluation", "training", "models", "data", "io", "config"},
    "report": {"report", "io", "config"},
    "serving": {"serving", "features", "evaluation", "models", "layers", "data", "tracking", "io", "config"},
    # A stage names the serving module its logged model runs (a string: imported when the model is logged).
    "stages": {"serving", "training", "features", "evaluation", "report", "tracking", "models", "layers", "data", "io",
               "config"},
}


NAMED_MODULE = re.compile(r"hw4(\.\w+)+")  # a string that names a module, for importlib ("hw4.serving.captioner")


def hw4_imports(path: Path) -> set[str]:
    """The hw4 modules `path` imports (`from hw4.x import y` counts as hw4.x), and those it names
    in a string: importlib imports them by name (a logged model's flavor, a stand-in generator)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hw4."):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("hw4.")}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED_MODULE.fullmatch(node.value):
            names.add(node.value)
    return names


def folder_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


@pytest.mark.parametrize("path", folder_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_go_one_way(path: Path):
    folder = path.relative_to(PACKAGE).parts[0]
    assert folder in MAY_IMPORT, f"{folder}/ is a new folder: place it in MAY_IMPORT (and the README's layout)"
    wrong = sorted(m for m in hw4_imports(path) if m.split(".")[1] not in MAY_IMPORT[folder])
    assert not wrong, f"{path.relative_to(PACKAGE)} ({folder}/) may not import {wrong}"
    if folder == "stages":
        own = "hw4.stages." + path.stem
        others = sorted(m for m in hw4_imports(path) if m.startswith("hw4.stages") and m != own)
        assert not others, f"{path.relative_to(PACKAGE)} imports another stage: {others}; move what they share below"


def test_the_top_level_holds_only_the_entry_points():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py", "cli.py"]
