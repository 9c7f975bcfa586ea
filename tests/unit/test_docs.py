"""The README and docs/ stay true: the layout names every folder, and every command shown
resolves when pasted into a new shell after the README's two commands (its `--help` form runs:
the program exists, takes the subcommand, and a bare `dvc`/`python` is only shown on a page
that says to activate the venv)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
VENV_TOOLS = {"dvc", "mlflow", "python", "pytest", "torchrun"}
NESTED = {"dvc": {"exp", "queue", "remote", "metrics", "plots", "stage", "config"}, "mlflow": {"models", "runs", "experiments"}}
# set-up lines, what needs a desktop, and a batch script's shell tests and SLURM's own commands
NOT_RUN = {"export", "source", "pip", "git", "cd", "xdg-open", "#SBATCH", "[", "exit", "scontrol"}


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()


def blocks(page: Path, lang: str = "bash") -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(), flags=re.S)


def commands(block: str) -> list[list[str]]:
    """Each command line of a shell block as words: continuations joined, comments dropped."""
    text = block.replace("\\\n", " ")
    lines = []
    for line in text.splitlines():
        if line.startswith("#SBATCH") or line.startswith("#!"):
            continue
        words = shlex.split(line, comments=True)
        for part in _split_on(words, {"&&", ";", "|"}):
            if part:
                lines.append(part)
    return lines


def _split_on(words: list[str], separators: set[str]) -> list[list[str]]:
    parts, current = [], []
    for w in words:
        if w in separators:
            parts.append(current)
            current = []
        else:
            current.append(w)
    return [*parts, current]


def help_form(words: list[str], activated: bool, where: str) -> list[str] | None:
    """The `--help` command that shows `words` resolve; None for set-up lines."""
    program = words[0]
    if program in NOT_RUN or "=" in program:
        return None
    if program == "srun":
        return help_form(words[1:], activated, where)
    if program == "bash":
        assert (REPO / words[1]).is_file(), f"{where}: `{' '.join(words)}`: {words[1]} does not exist"
        return None
    tool = program.removeprefix(".venv/bin/")
    assert tool in VENV_TOOLS, f"{where}: `{' '.join(words)}`: {program} is not a command this project provides"
    assert program.startswith(".venv/bin/") or activated, (
        f"{where}: `{' '.join(words)}` needs the venv active: say `source .venv/bin/activate` on the page, "
        f"or write .venv/bin/{tool}")
    exe = [str(REPO / ".venv/bin" / tool)] if (REPO / ".venv/bin" / tool).exists() else [tool]
    args = words[1:]
    if tool == "python":
        if args[:2] == ["-m", "hw4"]:
            return [*exe, "-m", "hw4", args[2], "--help"]
        if args[:1] == ["-m"]:
            return [*exe, "-m", args[1], "--help"]
        assert (REPO / args[0]).is_file(), f"{where}: `{' '.join(words)}`: {args[0]} does not exist"
        return [*exe, args[0], "--help"]
    if tool == "torchrun":
        module = args.index("-m")
        return help_form(["python", *args[module:]], True, where)
    sub = args[:2] if args and args[0] in NESTED.get(tool, ()) else args[:1]
    return [*exe, *[w for w in sub if not w.startswith("-")], "--help"]


def shown_commands() -> dict[tuple[str, ...], str]:
    """Every distinct help form, with the first page and line that shows it."""
    forms: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        activated = "source .venv/bin/activate" in page.read_text()
        for block in blocks(page):
            for words in commands(block):
                where = f"{page.relative_to(REPO)}: {' '.join(words)[:60]}"
                form = help_form(words, activated, where)
                if form is not None:
                    forms.setdefault(tuple(form), where)
    return forms


def test_the_readme_is_a_guide_not_a_log():
    assert len((REPO / "README.md").read_bytes()) <= 15_000
    for page in PAGES:
        assert not re.search(r"\bissue \d+|\bthis session\b", page.read_text(), flags=re.I), page


def test_the_layout_names_every_folder():
    readme = (REPO / "README.md").read_text()
    layout = re.search(r"## Layout\n.*?```\n(.*?)```", readme, flags=re.S).group(1)
    named = set(re.findall(r"([\w.]+)/", layout))
    # The tracked folders, not the working tree's: the pipeline adds metrics/, plots/, mlartifacts/...
    folders = {Path(f).parent for f in tracked_files()}
    top = {d.parts[0] for d in folders if d.parts and not d.parts[0].startswith(".")}
    package = {d.name for d in folders if d.is_relative_to("src/hw4") and d != Path("src/hw4")}
    assert not (top - named - {"src"}) and "src" in named, f"README layout: name {sorted(top - named)}"
    assert not package - named, f"README layout: name the folders {sorted(package - named)} of src/hw4"


@pytest.mark.slow
def test_every_command_shown_parses_the_help_form():
    # Checked before anything runs: a bare tool on a page that does not activate the venv fails here.
    forms = shown_commands()
    assert forms
    failed = []
    for form, where in forms.items():
        result = subprocess.run(form, cwd=REPO, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            failed.append(f"{where}\n  {' '.join(form)}: exit {result.returncode}\n  {result.stderr[-500:]}")
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("line, message", [
    (".venv/bin/dvc exp run -S profile=demo", None),
    ("dvc exp run -S profile=demo", "needs the venv active"),
    ("bash scripts/nowhere.sh", "does not exist"),
    ("make all", "not a command this project provides"),
])
def test_the_checker_tells_a_pasteable_command_from_one_that_is_not(line: str, message: str | None):
    words = shlex.split(line)
    if message is None:
        assert help_form(words, activated=False, where="page")[-3:] == ["exp", "run", "--help"]
    else:
        with pytest.raises(AssertionError, match=message):
            help_form(words, activated=False, where="page")
