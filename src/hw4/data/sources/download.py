"""Fetch one registry file into place, verified, from wherever a good copy can be found.

Order: the file already in place, then local mirror directories, then every HTTP mirror.
A copy is accepted only if its checksum matches: the container's (md5/sha256/prefix) or,
for a .gz, the decompressed content's (recompressed copies such as Debian's are fine; the
decompression stops at the registry's `content_size`, so a gzip bomb costs no more).
Bytes always go to a temporary file in the target directory and are moved into place with
`os.replace` only after verification, so an interrupted or corrupt transfer never leaves a
file that looks valid; temporary files a killed run left are removed before the next fetch.
A file in place that fails verification is moved aside to `<name>.rejected`, so nothing
later reads it. Each HTTP attempt has a deadline and a minimum rate, so a trickling mirror
is given up ("stalled"). When every source fails, one `DownloadError` says what was tried,
why each failed, and how to put the file in place by hand.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import requests
import urllib3
from tqdm import tqdm

from hw4.data.sources.archives import ArchiveError
from hw4.data.sources.registry import Dataset, FileSpec
from hw4.io import atomic
from hw4.io.paths import PINNED_CHECKSUMS

CHUNK = 1 << 20
REJECTED_SUFFIX = ".rejected"


class DownloadError(RuntimeError):
    """No source gave a verified copy of a file."""


class _Rejected(Exception):
    """One source failed; the message says why (collected into the DownloadError)."""


class _Stalled(Exception):
    """An attempt ran past its deadline or below the minimum rate (retried like a timeout)."""


@dataclass(frozen=True)
class HttpOptions:
    """params.yaml `download`'s network settings (`DownloadSettings.http`), and the backoff."""

    retries: int  # extra attempts per mirror after the first, for transient failures only
    timeout_s: float  # per socket read; also the window the minimum rate is measured over
    attempt_deadline_s: float  # one attempt at one file, start to end
    min_bytes_per_s: float  # below this over a timeout_s window, the mirror has stalled
    backoff_s: float = 0.5  # wait before the first retry, doubled for each later one (not a setting)


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    source: str  # "in place", a local path or a URL
    newly_pinned: bool = False


class Hashes:
    """md5 and sha256 of a byte stream, computed in the one pass that writes it."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        self.sha256.update(chunk)


@dataclass(frozen=True)
class Expected:
    """What a right copy must match; all None for a pinned file not yet in the lock."""

    md5: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    content_sha256: str | None = None

    @classmethod
    def of(cls, spec: FileSpec, pinned: str | None) -> Expected:
        return cls(spec.md5, spec.sha256 or pinned, spec.sha256_prefix, spec.content_sha256)

    @property
    def unknown(self) -> bool:
        return not (self.md5 or self.sha256 or self.sha256_prefix or self.content_sha256)

    def describe(self) -> str:
        parts = []
        if self.md5:
            parts.append(f"md5 {self.md5}")
        if self.sha256:
            parts.append(f"sha256 {self.sha256}")
        if self.sha256_prefix:
            parts.append(f"a sha256 starting with {self.sha256_prefix}")
        text = " and ".join(parts)
        if self.content_sha256:
            text += f" (or, decompressed, sha256 {self.content_sha256})"
        return text


class PinLock:
    """`data/pinned-checksums.json`: {"<dataset>/<file>": sha256} for files with no published
    checksum. Committed to git, so every later download must match the first one."""

    def __init__(self, path: Path = PINNED_CHECKSUMS) -> None:
        self.path = Path(path)

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def record(self, key: str, sha256: str) -> None:
        entries = self._load()
        entries[key] = sha256
        self._write(entries)

    def ensure_exists(self) -> None:
        """An empty lock is still the stage's output: DVC checks it exists."""
        if not self.path.is_file():
            self._write({})

    def _write(self, entries: dict[str, str]) -> None:
        atomic.write_text(self.path, json.dumps(entries, indent=2, sort_keys=True) + "\n")

    def _load(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        entries = json.loads(self.path.read_text())
        bad = [k for k, v in entries.items() if not re.fullmatch(r"[0-9a-f]{64}", str(v))]
        if bad:
            raise DownloadError(f"{self.path}: entries {bad} are not sha256 digests; fix or delete them")
        return entries


def lock_key(dataset: Dataset, spec: FileSpec) -> str:
    return f"{dataset.key}/{spec.name}"


def local_candidates(dataset: Dataset, spec: FileSpec, mirror_dirs: Sequence[Path]) -> list[Path]:
    """<dir>/<dataset key>/<name> and <dir>/<name> for params dirs, then the registry's."""
    paths: list[Path] = []
    for d in [*mirror_dirs, *dataset.local_dirs]:
        for path in (Path(d) / dataset.key / spec.name, Path(d) / spec.name):
            if path not in paths:
                paths.append(path)
    return paths


def fetch(
    dataset: Dataset,
    spec: FileSpec,
    target_dir: Path,
    lock: PinLock,
    http: HttpOptions,
    mirror_dirs: Sequence[Path] = (),
    accept: Callable[[Fetched], None] | None = None,
) -> Fetched:
    """Put a verified `target_dir/spec.name` in place; pin its sha256 if it is pinned and new.

    `accept` (e.g. unpacking the archive) runs on the verified file before anything is
    pinned: when it raises ArchiveError the file is moved aside and nothing is pinned, so a
    refused copy cannot make every later good one a "checksum mismatch"."""
    target = Path(target_dir) / spec.name
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.clear_parts(target)
    expected = Expected.of(spec, lock.get(lock_key(dataset, spec)) if spec.pin else None)
    tried: list[tuple[str, str]] = []

    fetched = _first_good(dataset, spec, target, expected, mirror_dirs, http, tried)
    if fetched is None:
        raise DownloadError(_failure_message(dataset, spec, target, expected, lock, tried))
    if accept is not None:
        try:
            accept(fetched)
        except ArchiveError as e:
            aside = set_aside(target)
            raise DownloadError(
                f"{lock_key(dataset, spec)} from {fetched.source} was refused: {e}\n"
                f"It was moved aside to {aside} and its sha256 was not pinned. Get a good copy "
                f"(another mirror, or one you trust) and save it as {target.resolve()}, then run the stage again."
            ) from None
    if spec.pin and expected.unknown:
        lock.record(lock_key(dataset, spec), fetched.sha256)
        return Fetched(fetched.path, fetched.sha256, fetched.source, newly_pinned=True)
    return fetched


def verify_file(path: Path, spec: FileSpec, pinned: str | None) -> str | None:
    """None when the file at `path` matches what the registry (or the lock) records, else why not."""
    expected = Expected.of(spec, pinned)
    if expected.unknown:
        return f"no checksum recorded for {spec.name} (it is pinned on its first download)"
    return _mismatch(path, spec, expected, _hash_file(path))


def set_aside(path: Path) -> Path:
    """Move a refused file to `<name>.rejected` (replacing an older one), out of every reader's way."""
    aside = path.with_name(path.name + REJECTED_SUFFIX)
    os.replace(path, aside)
    return aside


def _first_good(
    dataset: Dataset,
    spec: FileSpec,
    target: Path,
    expected: Expected,
    mirror_dirs: Sequence[Path],
    http: HttpOptions,
    tried: list[tuple[str, str]],
) -> Fetched | None:
    """Try each source in order; record why each failed in `tried`."""
    if target.is_file():
        hashes = _hash_file(target)
        reason = _mismatch(target, spec, expected, hashes)
        if reason is None:
            return Fetched(target, hashes.sha256.hexdigest(), "in place")
        tried.append((f"{target} (already there)", f"{reason}; moved aside to {set_aside(target)}"))

    for path in local_candidates(dataset, spec, mirror_dirs):
        if not path.is_file():
            tried.append((str(path), "not found"))
            continue
        try:
            sha256 = _install(_read_chunks(path), target, spec, expected, path.stat().st_size)
            return Fetched(target, sha256, str(path))
        except _Rejected as e:
            tried.append((str(path), str(e)))

    with requests.Session() as session:
        for url in dataset.urls(spec):
            try:
                return Fetched(target, _download(session, url, target, spec, expected, http), url)
            except _Rejected as e:
                tried.append((url, str(e)))
    return None


def _download(
    session: requests.Session, url: str, target: Path, spec: FileSpec, expected: Expected, http: HttpOptions
) -> str:
    """One mirror: retry transient failures (5xx, 408, 429, network, stalls), give up on the rest."""
    attempts, last = 1 + http.retries, ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(http.backoff_s * 2 ** (attempt - 1))
        started = time.monotonic()
        try:
            with session.get(url, stream=True, timeout=http.timeout_s) as response:
                if response.status_code != 200:
                    last = f"HTTP {response.status_code} {response.reason}"
                    if response.status_code < 500 and response.status_code not in (408, 429):
                        raise _Rejected(last)
                    continue
                total = int(response.headers.get("Content-Length", 0)) or None
                chunks = _paced(response.raw, started, total, http)
                return _install(chunks, target, spec, expected, total)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
            last = _describe(e)
        except _Stalled as e:
            last = f"stalled: {e}"
    raise _Rejected(f"{last} (after {attempts} attempts)" if attempts > 1 else last)


def _paced(raw: urllib3.HTTPResponse, started: float, total: int | None, http: HttpOptions) -> Iterator[bytes]:
    """The body's raw bytes, raising _Stalled past the attempt's deadline or below the minimum rate.

    `timeout_s` bounds each socket read only: a server sending a byte a second would never
    trip it. read1 returns whatever one read brings, so the clock is checked at least once
    per timeout_s however slowly the bytes come."""
    received, window_start, window_bytes = 0, started, 0
    while True:
        # Raw bytes: a server's Content-Encoding must not turn a .gz into its content.
        chunk = raw.read1(CHUNK, decode_content=False)
        if not chunk:
            return
        now = time.monotonic()
        received += len(chunk)
        window_bytes += len(chunk)
        if now - started > http.attempt_deadline_s:
            of = f" of {total}" if total else ""
            raise _Stalled(f"not done within download.attempt_deadline_s = {http.attempt_deadline_s:g} s "
                           f"({received}{of} bytes received)")
        if now - window_start >= http.timeout_s:
            rate = window_bytes / (now - window_start)
            if rate < http.min_bytes_per_s:
                raise _Stalled(f"{rate:.0f} bytes/s over the last {now - window_start:.1f} s, below "
                               f"download.min_bytes_per_s = {http.min_bytes_per_s:g} ({received} bytes received)")
            window_start, window_bytes = now, 0
        yield chunk


def _install(chunks: Iterable[bytes], target: Path, spec: FileSpec, expected: Expected, total: int | None) -> str:
    """Stream into a temporary file beside `target`, verify, move into place; return sha256.

    The temporary file is removed on any failure, interruptions included."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=atomic.part_prefix(target))
    try:
        hashes = Hashes()
        with os.fdopen(fd, "wb") as f, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name, leave=False, disable=None
        ) as bar:
            for chunk in chunks:
                f.write(chunk)
                hashes.update(chunk)
                bar.update(len(chunk))
        reason = _mismatch(Path(tmp), spec, expected, hashes)
        if reason is not None:
            raise _Rejected(reason)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
        return hashes.sha256.hexdigest()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _mismatch(path: Path, spec: FileSpec, expected: Expected, hashes: Hashes) -> str | None:
    """None when the copy at `path` is right, else what is wrong with it."""
    if expected.unknown:
        # Nothing to compare with yet: at least refuse to pin an error page as an archive.
        if spec.extract and not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
            return "not a zip or tar archive (an HTML error page?); not pinned"
        return None
    md5, sha256 = hashes.md5.hexdigest(), hashes.sha256.hexdigest()
    problems = []
    if expected.md5 and md5 != expected.md5:
        problems.append(f"md5 expected {expected.md5}, got {md5}")
    if expected.sha256 and sha256 != expected.sha256:
        problems.append(f"sha256 expected {expected.sha256}, got {sha256}")
    if expected.sha256_prefix and not sha256.startswith(expected.sha256_prefix):
        problems.append(f"sha256 expected to start with {expected.sha256_prefix}, got {sha256}")
    container_checked = expected.md5 or expected.sha256 or expected.sha256_prefix
    if container_checked and not problems:
        return None
    if expected.content_sha256:
        content = _gz_content_sha256(path, spec.content_size)
        if content == expected.content_sha256:
            return None
        problems.append(f"decompressed sha256 expected {expected.content_sha256}, got {content}")
    return "checksum mismatch: " + "; ".join(problems)


def _gz_content_sha256(path: Path, limit: int | None) -> str:
    """The decompressed content's sha256, or why there is none; stops past `limit` bytes."""
    digest, size = hashlib.sha256(), 0
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                size += len(chunk)
                if limit is not None and size > limit:
                    return f"nothing (decompresses to more than the registry's content_size, {limit} bytes)"
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        return f"nothing (not a valid gzip file: {e})"
    return digest.hexdigest()


def _default_mode() -> int:
    """The mode `open()` would give a new file (mkstemp's files are private, 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _hash_file(path: Path) -> Hashes:
    hashes = Hashes()
    for chunk in _read_chunks(path):
        hashes.update(chunk)
    return hashes


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(CHUNK), b"")


def _describe(error: Exception) -> str:
    """The useful part of a requests/urllib3 error ("Connection refused", "timed out", ...)."""
    if isinstance(error, requests.Timeout):
        return "timed out"
    text = str(error)
    cut = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", text)
    if cut:
        return f"transfer cut short: {cut.group(1)} bytes read, {cut.group(2)} more expected"
    errno = re.search(r"\[Errno -?\d+\] ([^'\"\])]+)", text)
    if errno:
        return errno.group(1).strip()
    return f"{type(error).__name__}: {text[:200]}"


def _failure_message(
    dataset: Dataset, spec: FileSpec, target: Path, expected: Expected, lock: PinLock, tried: list[tuple[str, str]]
) -> str:
    lines = [f"could not get a verified copy of {lock_key(dataset, spec)}. Tried:"]
    lines += [f"  - {where}: {why}" for where, why in tried]
    lines.append("To put it in place by hand, get it from one of the URLs above (or a copy you trust) and save it as")
    lines.append(f"  {target.resolve()}")
    if expected.unknown:
        lines.append(f"Its sha256 will then be recorded in {lock.path} (no checksum is published for it).")
    else:
        lines.append(f"It must have {expected.describe()}.")
    if spec.pin and not expected.unknown:
        lines.append(
            f"That sha256 was pinned in {lock.path} on the first download; if the upstream file changed "
            f"on purpose, delete the entry '{lock_key(dataset, spec)}' there to pin the new one."
        )
    return "\n".join(lines)
