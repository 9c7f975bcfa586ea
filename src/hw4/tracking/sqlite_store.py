"""The default tracking store, a SQLite file, made safe for several writers at once.

`dvc queue start --jobs N` runs N stages at once against one store. MLflow waits up to 20 s
for SQLite's lock (its busy_timeout), but two processes that find no database both create the
tables, and one fails; with SQLite's default rollback journal every reader also holds off the
writer's commit. So the first client to open a store creates its tables under a file lock and
switches the file to write-ahead logging (WAL: readers never block the writer). The mode is
kept in the file itself; a store already in WAL mode is opened with no lock.
(benchmarks/bench_store_writers.py measures both ways; WAL needs a local file system, not NFS:
share a store between machines through `mlflow server` instead.)
"""

from __future__ import annotations

import fcntl
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Callable

# Bytes 18 and 19 of a SQLite file's header: the write and read format, 2 in WAL mode.
_FORMAT_BYTES = slice(18, 20)
_WAL = b"\x02\x02"
_prepared: set[Path] = set()  # stores this process has seen ready: every MLflow call opens a client


def is_wal(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(100)[_FORMAT_BYTES] == _WAL
    except FileNotFoundError:
        return False


def prepare(path: Path, create_tables: Callable[[], object]) -> None:
    """Make sure the store at `path` has its tables and is in WAL mode; `create_tables` opens
    it with MLflow, which creates (or migrates) the tables."""
    if path in _prepared:
        return
    if is_wal(path):
        _prepared.add(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not is_wal(path):  # another process may have finished it while this one waited
            create_tables()
            with closing(sqlite3.connect(path, timeout=60)) as db:
                db.execute("PRAGMA journal_mode=WAL")
    _prepared.add(path)
