"""Each DVC stage's deps cover exactly the project code its command runs.

From a stage's `cmd` (`python -m hw4 <command>`) the test follows every `import` of the
package (at any depth, inside functions too; not those only for type checkers), every module a
string names (`"hw4.data.standins.coco"`: imported by `importlib`, as the download stage's
stand-in generators are) and the package data files those modules name (`registry.yaml`,
`homework_figures.yaml`), and compares them with the stage's deps: a module missing means an
edit DVC would not rerun the stage for; one listed but never imported means a rerun for
nothing. The shared core (CORE) may be listed as whole folders, of which a stage uses part.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from hw4.cli import commands
from tests.conftest import REPO

SRC = REPO / "src"


def module_file(name: str) -> Path | None:
    """hw4.data.formats.idx -> src/hw4/data/formats/idx.py (a package: its __init__.py); None outside hw4."""
    if name != "hw4" and not name.startswith("hw4."):
        return None
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of the imports under `if TYPE_CHECKING:` (never run)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            lines |= {n.lineno for child in node.body for n in ast.walk(child) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def imports_of(path: Path) -> set[Path]:
    """The project files one module needs: the modules it imports, the data files it names."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and node.lineno not in skip:
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.lineno not in skip:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    names |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}  # dynamic imports
    files = {f for f in map(module_file, names) if f is not None}
    return files | {f for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                     and n.value.endswith((".yaml", ".json")) for f in _package_file(path, n.value)}


def _package_file(module: Path, name: str) -> list[Path]:
    """A data file a module names, beside it or in a package folder above it (hw4/registry.yaml)."""
    folders = [module.parent, *(p for p in module.parent.parents if p.is_relative_to(SRC / "hw4"))]
    return [f for f in (d / name for d in folders) if f.is_file()][:1]


def closure(start: set[Path]) -> set[Path]:
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix == ".py":
            todo += imports_of(path)
    # Empty __init__.py files carry no code: an edit there changes nothing a stage computes.
    return {p for p in seen if not (p.name == "__init__.py" and not p.read_text().strip())}


def code_of(cmd: str) -> set[Path]:
    """What `python -m hw4 <command> ...` runs: hw4/__main__, the cli, and the stage module."""
    words = cmd.split()
    assert words[:3] == ["python", "-m", "hw4"], cmd
    module = commands()[words[3]].split(":")[0]
    return closure({module_file("hw4.__main__"), module_file("hw4.cli"), module_file(module)})


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


CORE = ("src/hw4/config", "src/hw4/io", "src/hw4/tracking")  # nearly every stage imports them


def code_files(folder: Path) -> set[Path]:
    """The modules and data files of a folder of the package that carry something."""
    return {p for p in folder.rglob("*") if p.suffix in (".py", ".yaml", ".json") and "__pycache__" not in p.parts
            and not (p.name == "__init__.py" and not p.read_text().strip())}


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", list(stages()))
def test_a_stage_depends_on_exactly_the_code_it_runs(name: str):
    stage = stages()[name]
    deps = [str(d) for d in stage.get("deps", [])]
    code = code_of(stage["cmd"])
    missing = sorted(p.relative_to(REPO).as_posix() for p in code if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {name}: add to deps (its command imports or reads them): {missing}"
    listed = [d for d in deps if d.startswith("src/")]
    unused = [d for d in listed if not any(covered(p, [d]) for p in code)]
    assert not unused, f"dvc.yaml stage {name}: remove from deps (its command never imports them): {unused}"
    partial = {d: sorted(p.relative_to(REPO).as_posix() for p in code_files(REPO / d) - code)
               for d in listed if (REPO / d).is_dir() and d not in CORE}
    partial = {d: rest for d, rest in partial.items() if rest}
    assert not partial, f"dvc.yaml stage {name}: list the modules it imports, not the folder (it never imports {partial})"


def test_modules_imported_by_name_are_followed():
    """The download stage imports its stand-in generators by name, through importlib."""
    code = code_of("python -m hw4 download")
    assert {SRC / "hw4/data/standins/coco.py", SRC / "hw4/data/standins/hymenoptera.py"} <= code


def training_stages() -> dict[str, tuple[str, type, set[str]]]:
    """Every stage that trains (its params list `trainer`), found in dvc.yaml: (its settings
    section, that section's dataclass, as its command's `TrainingStage` declares them, the
    section's fields a DVC matrix iterates: they decide which stages exist, and are no stage's param)."""
    import importlib
    import re

    from hw4.training.stage import TrainingStage

    all_stages = stages()
    iterated = {m.group(1) for st in all_stages.values() for v in (st.get("matrix") or {}).values()
                if (m := re.fullmatch(r"\$\{(\w+\.\w+)\}", str(v)))}
    found = {}
    for name, stage in all_stages.items():
        params = [str(p) for p in stage.get("params", [])]
        if "trainer" not in params:
            continue
        module, func = commands()[stage["cmd"].split()[3]].split(":")
        declared = getattr(getattr(importlib.import_module(module), func), "__self__", None)  # TrainingStage.main
        assert isinstance(declared, TrainingStage), f"dvc.yaml stage {name} trains: its command is a TrainingStage's main"
        section = declared.section
        assert {p.split(".")[0] for p in params if p != "trainer"} == {section}, f"dvc.yaml stage {name}: params of {section}"
        found[name] = (section, declared.settings, {f.split(".")[1] for f in iterated if f.startswith(f"{section}.")})
    return found


TRAINING = training_stages()


def test_the_training_stages_are_found():
    assert {"mlp", "mlp_final", "cnn", "transfer", "captioning"} <= set(TRAINING)


@pytest.mark.parametrize("name", list(TRAINING))
def test_a_training_stage_reruns_for_every_setting_it_reads(name: str):
    """Each field of the stage's section is a DVC param of the stage (the matrix's lists aside:
    they decide which stages exist), so a changed setting reruns the stage."""
    import dataclasses

    section, cls, matrix_lists = TRAINING[name]
    fields = {f.name for f in dataclasses.fields(cls)} - matrix_lists
    params = [str(p) for p in stages()[name]["params"]]
    missing = sorted(f for f in fields if section not in params and f"{section}.{f}" not in params)
    assert not missing, f"dvc.yaml stage {name}: add to params: {[f'{section}.{f}' for f in missing]}"
