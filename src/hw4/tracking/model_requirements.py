"""A logged model's requirements, derived from the code it runs rather than listed by hand.

The model's code is its serving module and every hw4 module that one reaches by imports, read
from the source (nothing is imported): each `import` and `from ... import` counts, at module
level or inside a function (either may run at serving), but not those under `if TYPE_CHECKING:`.
A module that imports by name (`importlib.import_module`, as `hw4.models.nets` does) may reach
every module of its package, so all of them count. The third-party packages among the imports
become pinned distributions (`PIL` -> `pillow==...`): a new import in serving code is a new
requirement, and one of a training library is caught by the test that loads every model where
those cannot be imported.
"""

from __future__ import annotations

import ast
import sys
from importlib.metadata import PackageNotFoundError, distribution, distributions, packages_distributions, version
from pathlib import Path

ROOT = "hw4"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/hw4


def requirements(module: str) -> list[str]:
    """`distribution==version` for every third-party package `module`'s code imports, sorted."""
    names = sorted({top for m in reached(module) for top in third_party(imports(source(m)))})
    return sorted({f"{d}=={version(d)}" for name in names for d in providers(name, module)}, key=str.lower)


def providers(name: str, importer: str) -> list[str]:
    """The distributions that install the top-level package `name`: the one named so (torch;
    mlflow, though mlflow-skinny and mlflow-tracing add to it), else those whose top_level.txt
    lists it (PIL: pillow), else those whose file lists hold it. Cheapest first: the last
    reads every distribution's RECORD, about a second on two cores."""
    try:
        return [distribution(name).metadata["Name"]]
    except PackageNotFoundError:
        pass
    listed = [d.metadata["Name"] for d in distributions() if name in (d.read_text("top_level.txt") or "").split()]
    found = listed or packages_distributions().get(name, [])
    if not found:
        raise LookupError(f"{importer} imports {name!r}, which no installed distribution provides")
    return found


def reached(module: str) -> set[str]:
    """`module` and every hw4 module (packages' __init__ included) its imports reach."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = source(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        for imported in imports(tree):  # `from a import b` lists a.b too: b may be a module
            if is_hw4_module(imported):
                todo.append(imported)
        if "importlib" in imports(tree):
            todo += package_modules(name.rsplit(".", 1)[0])
    return seen


def imports(tree: ast.Module) -> set[str]:
    """The modules `tree` imports, with `from a import b` as both a and a.b (b may be a module)."""
    names: set[str] = set()
    for node in walk_runtime(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def walk_runtime(tree: ast.AST):
    """ast.walk, leaving out `if TYPE_CHECKING:` blocks (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *walk_runtime(child)])
            continue
        yield node
        yield from walk_runtime(node)


def third_party(modules: set[str]) -> set[str]:
    tops = {m.split(".")[0] for m in modules}
    return {t for t in tops if t != ROOT and t != "__future__" and t not in sys.stdlib_module_names}


def source(module: str) -> ast.Module:
    return ast.parse(module_path(module).read_text())


def module_path(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    file = PACKAGE_DIR / relative.with_suffix(".py") if relative.parts else PACKAGE_DIR / "__init__.py"
    return file if file.is_file() else PACKAGE_DIR / relative / "__init__.py"


def is_hw4_module(module: str) -> bool:
    return module.split(".")[0] == ROOT and module_path(module).is_file()


def package_modules(package: str) -> list[str]:
    folder = module_path(package).parent
    return [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]
