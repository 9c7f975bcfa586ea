"""Safe extraction of zip and tar archives.

Every entry is checked before anything is written: an absolute path, a `..` component, a
path through a link, a link pointing outside the target or a special file makes the whole
archive refused. Entries are unpacked into a fresh temporary directory beside their final
place and only then moved in, and a marker `.extracted-<sha256 of archive>` lets a re-run
skip the work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class ArchiveError(ValueError):
    """An archive that cannot be read or may not be extracted."""


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "other"
    link: str = ""  # where a link points (symlinks: relative to the entry; hardlinks: to the root)


def extract(archive: Path, target_dir: Path, archive_sha256: str) -> list[str]:
    """Unpack `archive` into `target_dir` (unless its marker says it already is there).

    Returns the archive's top-level names. Existing entries of the same names are replaced,
    so a re-extraction never mixes old and new files."""
    archive, target_dir = Path(archive), Path(target_dir)
    marker = target_dir / f".extracted-{archive_sha256}"
    if _still_extracted(marker, target_dir):
        return json.loads(marker.read_text())["entries"]
    entries = list_entries(archive)
    check_entries(archive.name, entries)

    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target_dir, prefix=".extract-"))
    try:
        _unpack(archive, tmp, entries)
        top = sorted(p.name for p in tmp.iterdir())
        for name in top:
            _replace(tmp / name, target_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(json.dumps({"archive": archive.name, "entries": top}, indent=2) + "\n")
    return top


def list_entries(archive: Path) -> list[Entry]:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return [_zip_entry(zf, info) for info in zf.infolist()]
        if archive.name.endswith(TAR_SUFFIXES):
            with tarfile.open(archive) as tf:
                return [_tar_entry(member) for member in tf.getmembers()]
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        raise ArchiveError(f"{archive}: cannot read the archive: {e}") from e
    raise ArchiveError(f"{archive}: neither a zip file nor a tar archive ({', '.join(TAR_SUFFIXES)})")


def check_entries(archive_name: str, entries: list[Entry]) -> None:
    """Raise one ArchiveError naming every unsafe entry; return quietly if all are safe."""
    links = {"/".join(_parts(e.name)) for e in entries if e.kind in ("symlink", "hardlink")}
    problems = [(e.name, why) for e in entries if (why := _problem(e, links))]
    if problems:
        listed = "\n".join(f"  - {name!r}: {why}" for name, why in problems)
        raise ArchiveError(f"{archive_name}: refusing to extract anything; unsafe entries:\n{listed}")


def _problem(entry: Entry, links: set[str]) -> str | None:
    parts = _parts(entry.name)
    if _is_absolute(entry.name):
        return "absolute path"
    if not parts:
        return "empty name"
    if ".." in parts:
        return "'..' in its path"
    # Writing through a link made by the archive could land anywhere the link points.
    if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
        return "its path goes through a link in the archive"
    if entry.kind == "other":
        return "a device, fifo or other special file"
    if entry.kind in ("symlink", "hardlink"):
        return _link_problem(entry, parts, links)
    return None


def _link_problem(entry: Entry, parts: list[str], links: set[str]) -> str | None:
    """Resolve the link by its text alone; that is exact because no step may pass through
    another link (the temporary directory holds nothing but the archive's entries)."""
    if _is_absolute(entry.link):
        return f"{entry.kind} to the absolute path {entry.link!r}"
    walk = parts[:-1] if entry.kind == "symlink" else []
    for part in _parts(entry.link):
        if walk and "/".join(walk) in links:
            return f"{entry.kind} to {entry.link!r} passes through another link"
        if part != "..":
            walk.append(part)
        elif walk:
            walk.pop()
        else:
            return f"{entry.kind} to {entry.link!r} points outside the target"
    return None


def _parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", name))


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Entry:
    mode = info.external_attr >> 16  # Unix mode bits, where the archiver stored them
    if stat.S_ISLNK(mode):
        return Entry(info.filename, "symlink", zf.read(info).decode())
    if info.is_dir():
        return Entry(info.filename, "dir")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no file type stored (most archivers)
        return Entry(info.filename, "other")
    return Entry(info.filename, "file")


def _tar_entry(member: tarfile.TarInfo) -> Entry:
    if member.issym():
        return Entry(member.name, "symlink", member.linkname)
    if member.islnk():
        return Entry(member.name, "hardlink", member.linkname)
    if member.isdir():
        return Entry(member.name, "dir")
    return Entry(member.name, "file" if member.isfile() else "other")


def _unpack(archive: Path, dest: Path, entries: list[Entry]) -> None:
    if not zipfile.is_zipfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")  # the stdlib's own checks, as a second line
        return
    with zipfile.ZipFile(archive) as zf:
        for info, entry in zip(zf.infolist(), entries):
            if entry.kind == "symlink":  # zipfile would write the link text as a file
                path = dest / "/".join(_parts(entry.name))
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(entry.link, path)
            else:
                zf.extract(info, dest)


def _replace(src: Path, dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()
    os.replace(src, dest)


def _still_extracted(marker: Path, target_dir: Path) -> bool:
    """The marker is there and so is every top-level entry it lists (nothing was deleted)."""
    if not marker.is_file():
        return False
    entries = json.loads(marker.read_text()).get("entries", [])
    return all((target_dir / name).exists() or (target_dir / name).is_symlink() for name in entries)
