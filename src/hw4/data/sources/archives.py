"""Safe extraction of zip and tar archives.

Every entry is checked before anything is written: an absolute path, a `..` component, a
path through a link, a link pointing outside the target, a special file, or a top-level name
another file of the target owns (a neighbouring archive, what another archive unpacked, a
marker) makes the whole archive refused; so does an archive whose entries would unpack to
more bytes, or more entries, than the limits allow (a zip bomb). Entries are unpacked into
a fresh temporary directory beside their final place and only then moved in (temporary
directories a killed run left are removed first), and a marker `.extracted-<sha256 of
archive>`, written atomically last, lets a re-run skip the work.
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
from typing import Iterable, Mapping

from hw4.io import atomic

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MARKER_PREFIX = ".extracted-"
TMP_PREFIX = ".extract-"
MAX_LINK_TEXT = 4096  # bytes: PATH_MAX on Linux


class ArchiveError(ValueError):
    """An archive that cannot be read or may not be extracted."""


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "other"
    link: str = ""  # where a link points (symlinks: relative to the entry; hardlinks: to the root)
    size: int = 0  # bytes it unpacks to, as the archive declares (zipfile and tarfile never write more)


@dataclass(frozen=True)
class Limits:
    """params.yaml `download.max_extract_bytes` and `download.max_extract_entries`."""

    max_bytes: int
    max_entries: int


def extract(
    archive: Path,
    target_dir: Path,
    archive_sha256: str,
    limits: Limits,
    owned: Mapping[str, str] | None = None,
) -> list[str]:
    """Unpack `archive` into `target_dir` (unless its marker says it already is there).

    `owned`: top-level names in `target_dir` that belong to something else (name -> what),
    which the archive may not write. Returns the archive's top-level names. Existing entries
    of the same names are replaced, so a re-extraction never mixes old and new files."""
    archive, target_dir = Path(archive), Path(target_dir)
    marker = target_dir / f"{MARKER_PREFIX}{archive_sha256}"
    done = _still_extracted(marker, target_dir)
    if done is not None:
        return done
    entries = list_entries(archive, limits)
    check_entries(archive.name, entries)
    check_owners(archive.name, entries, {**_extracted_by_others(target_dir, archive.name), **(owned or {})})

    target_dir.mkdir(parents=True, exist_ok=True)
    _clear_stale_tmp(target_dir)
    tmp = Path(tempfile.mkdtemp(dir=target_dir, prefix=TMP_PREFIX))
    try:
        _unpack(archive, tmp, entries)
        top = sorted(p.name for p in tmp.iterdir())
        for name in top:
            _replace(tmp / name, target_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic.write_text(marker, json.dumps({"archive": archive.name, "entries": top}, indent=2) + "\n")
    return top


def list_entries(archive: Path, limits: Limits) -> list[Entry]:
    """Every entry, refused (ArchiveError) as soon as the entries pass `limits`."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return _within(archive.name, (_zip_entry(zf, info) for info in zf.infolist()), limits)
        if archive.name.endswith(TAR_SUFFIXES):
            with tarfile.open(archive) as tf:
                # Lazily: listing a compressed tar decompresses it, so stop at the first entry past the limits.
                return _within(archive.name, (_tar_entry(member) for member in tf), limits)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
        raise ArchiveError(f"{archive}: cannot read the archive: {e}") from e
    raise ArchiveError(f"{archive}: neither a zip file nor a tar archive ({', '.join(TAR_SUFFIXES)})")


def _within(archive_name: str, entries: Iterable[Entry], limits: Limits) -> list[Entry]:
    listed: list[Entry] = []
    total = 0
    for entry in entries:
        listed.append(entry)
        total += entry.size
        if len(listed) > limits.max_entries:
            raise ArchiveError(
                f"{archive_name}: refusing to extract anything: it holds more than download.max_extract_entries = "
                f"{limits.max_entries} entries (an archive bomb?). If the archive is right, raise that limit in params"
            )
        if total > limits.max_bytes:
            raise ArchiveError(
                f"{archive_name}: refusing to extract anything: it would unpack to more than download.max_extract_bytes = "
                f"{limits.max_bytes} bytes (an archive bomb?). If the archive is right, raise that limit in params"
            )
    return listed


def check_owners(archive_name: str, entries: list[Entry], owned: Mapping[str, str]) -> None:
    """Raise one ArchiveError naming every top-level name the archive would take from its owner."""
    top = sorted({_parts(e.name)[0] for e in entries if _parts(e.name)})
    problems = [(name, owned[name]) for name in top if name in owned]
    problems += [(name, "a name the extraction itself uses") for name in top if name.startswith((MARKER_PREFIX, TMP_PREFIX))]
    if problems:
        listed = "\n".join(f"  - {name!r}: belongs to {owner}" for name, owner in problems)
        raise ArchiveError(
            f"{archive_name}: refusing to extract anything; entries would overwrite what is not the archive's:\n{listed}"
        )


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
        if info.file_size > MAX_LINK_TEXT:  # read into memory below: a bomb could hide here
            raise ArchiveError(f"{zf.filename}: symlink {info.filename!r} declares {info.file_size} bytes of link text")
        return Entry(info.filename, "symlink", zf.read(info).decode())
    if info.is_dir():
        return Entry(info.filename, "dir")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no file type stored (most archivers)
        return Entry(info.filename, "other")
    return Entry(info.filename, "file", size=info.file_size)


def _tar_entry(member: tarfile.TarInfo) -> Entry:
    if member.issym():
        return Entry(member.name, "symlink", member.linkname)
    if member.islnk():
        return Entry(member.name, "hardlink", member.linkname)
    if member.isdir():
        return Entry(member.name, "dir")
    return Entry(member.name, "file" if member.isfile() else "other", size=member.size)


def _unpack(archive: Path, dest: Path, entries: list[Entry]) -> None:
    try:
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
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:  # e.g. a CRC error: data unlike its header
        raise ArchiveError(f"{archive}: corrupt entry, nothing extracted: {e}") from e


def _replace(src: Path, dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()
    os.replace(src, dest)


def _read_marker(marker: Path) -> dict | None:
    """The marker's record, None if it is unreadable (cut short by a crash: extract again)."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(record, dict) and isinstance(record.get("entries"), list)
    return record if ok and all(isinstance(n, str) for n in record["entries"]) else None


def _still_extracted(marker: Path, target_dir: Path) -> list[str] | None:
    """The top-level names, if the marker is there and so is every entry it lists (nothing was deleted)."""
    record = _read_marker(marker) if marker.is_file() else None
    if record is None:
        return None
    entries = record["entries"]
    present = all((target_dir / name).exists() or (target_dir / name).is_symlink() for name in entries)
    return entries if present else None


def _extracted_by_others(target_dir: Path, archive_name: str) -> dict[str, str]:
    """Top-level name -> the other archive whose extraction (its marker says) wrote it."""
    owned: dict[str, str] = {}
    for marker in sorted(target_dir.glob(MARKER_PREFIX + "*")) if target_dir.is_dir() else []:
        record = _read_marker(marker)
        if record is not None and record.get("archive") != archive_name:
            owned.update({name: f"{record.get('archive')} (extracted here)" for name in record["entries"]})
    return owned


def _clear_stale_tmp(target_dir: Path) -> None:
    """What an extraction that was killed left: its directory, a marker's temporary file
    (one download runs at a time, so none of them is in use)."""
    for stale in target_dir.glob(TMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in target_dir.glob(atomic.part_prefix(Path(MARKER_PREFIX + "*")) + "*"):
        stale.unlink(missing_ok=True)
