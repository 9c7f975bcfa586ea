"""Fetching against a real HTTP server on 127.0.0.1 with good, failing and lying mirrors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hw4.config.seeds import data_seed
from hw4.config.settings import ConfigError, section
from hw4.data.sources.download import DownloadError, HttpOptions, PinLock, fetch
from hw4.data.sources.registry import Dataset, FileSpec, RegistryError, load_registry
from hw4.data.standins.install import STANDIN_MANIFEST
from hw4.data.standins.marker import STANDIN_MARKER
from hw4.stages import download as stage
from tests.conftest import conf_values

CONTENT = b"IDX content " * 100
PUBLISHED = gzip.compress(CONTENT, compresslevel=9, mtime=0)  # the mirrors' .gz
RECOMPRESSED = gzip.compress(CONTENT, compresslevel=1, mtime=1)  # e.g. Debian's copy
FAST = HttpOptions(retries=1, timeout_s=5, attempt_deadline_s=60, min_bytes_per_s=0, backoff_s=0.01)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Mirrors:
    """Routes (path -> (status, body)) and a log of every request made."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.claimed_length: dict[str, int] = {}  # a Content-Length that lies (a cut transfer)
        self.requests: list[str] = []
        self.base = ""

    def count(self, prefix: str) -> int:
        return sum(r.startswith(prefix) for r in self.requests)


@pytest.fixture
def mirrors(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    state = Mirrors()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            status, body = state.routes.get(self.path, (404, b"no such file"))
            self.send_response(status)
            self.send_header("Content-Length", str(state.claimed_length.get(self.path, len(body))))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()


def refused_url() -> str:
    """A port nobody listens on: bound, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def gz_spec() -> FileSpec:
    return FileSpec(name="toy.gz", path="toy.gz", md5=md5(PUBLISHED), content_sha256=sha256(CONTENT))


def toy(mirrors: list[str], spec: FileSpec | None = None) -> Dataset:
    return Dataset(key="toy", target="toy", mirrors=tuple(mirrors), local_dirs=(), files=(spec or gz_spec(),))


def four_mirrors(m: Mirrors) -> list[str]:
    m.routes["/m500/toy.gz"] = (500, b"oops")
    m.routes["/bad/toy.gz"] = (200, PUBLISHED[:-5] + b"xxxxx")
    m.routes["/good/toy.gz"] = (200, PUBLISHED)
    return [f"{m.base}/{name}/" for name in ("m404", "m500", "bad", "good")]


def test_falls_through_bad_mirrors_to_the_good_one(mirrors, tmp_path):
    dataset = toy(four_mirrors(mirrors))
    target = tmp_path / "raw"
    fetched = fetch(dataset, dataset.files[0], target, PinLock(tmp_path / "lock.json"), FAST)

    assert fetched.source == f"{mirrors.base}/good/toy.gz"
    assert (target / "toy.gz").read_bytes() == PUBLISHED
    assert [p.name for p in target.iterdir()] == ["toy.gz"]  # no temporary files
    assert not (tmp_path / "lock.json").exists()  # checksummed files are not pinned
    # 404 and a wrong checksum are final; a 500 is retried.
    assert [mirrors.count(f"/{m}/") for m in ("m404", "m500", "bad", "good")] == [1, 2, 1, 1]


def test_all_mirrors_failing_is_one_error_listing_each(mirrors, tmp_path):
    mirrors.routes["/short/toy.gz"] = (200, PUBLISHED[:10])
    mirrors.claimed_length["/short/toy.gz"] = len(PUBLISHED)
    urls = four_mirrors(mirrors)[:3] + [f"{mirrors.base}/short/", refused_url()]
    dataset = toy(urls)
    target = tmp_path / "raw"
    with pytest.raises(DownloadError) as caught:
        fetch(dataset, dataset.files[0], target, PinLock(tmp_path / "lock.json"), FAST)

    message = str(caught.value)
    assert f"{urls[0]}toy.gz: HTTP 404 Not Found" in message
    assert f"{urls[1]}toy.gz: HTTP 500 Internal Server Error (after 2 attempts)" in message
    assert f"{urls[2]}toy.gz: checksum mismatch: md5 expected {md5(PUBLISHED)}, got" in message
    cut = f"transfer cut short: 10 bytes read, {len(PUBLISHED) - 10} more expected (after 2 attempts)"
    assert f"{urls[3]}toy.gz: {cut}" in message
    assert f"{urls[4]}toy.gz: Connection refused (after 2 attempts)" in message
    assert str((target / "toy.gz").resolve()) in message and md5(PUBLISHED) in message
    assert list(target.iterdir()) == []


def test_recompressed_local_copy_is_accepted_by_content(mirrors, tmp_path):
    local = tmp_path / "mirror" / "toy"  # <mirror dir>/<dataset key>/<name>
    local.mkdir(parents=True)
    (local / "toy.gz").write_bytes(RECOMPRESSED)
    assert md5(RECOMPRESSED) != md5(PUBLISHED)
    target = tmp_path / "raw"
    dataset = toy([f"{mirrors.base}/good/"])

    fetched = fetch(dataset, dataset.files[0], target, PinLock(tmp_path / "lock.json"), FAST, [tmp_path / "mirror"])

    assert fetched.source == str(local / "toy.gz")
    assert (target / "toy.gz").read_bytes() == RECOMPRESSED
    assert mirrors.requests == []


def test_local_copy_with_wrong_content_is_rejected(mirrors, tmp_path):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "toy.gz").write_bytes(gzip.compress(b"something else"))
    target = tmp_path / "raw"
    dataset = toy([])

    with pytest.raises(DownloadError) as caught:
        fetch(dataset, dataset.files[0], target, PinLock(tmp_path / "lock.json"), FAST, [tmp_path / "mirror"])
    assert f"{tmp_path / 'mirror' / 'toy.gz'}: checksum mismatch" in str(caught.value)
    assert f"decompressed sha256 expected {sha256(CONTENT)}, got {sha256(b'something else')}" in str(caught.value)
    assert list(target.iterdir()) == []

    mirrors.routes["/good/toy.gz"] = (200, PUBLISHED)
    dataset = toy([f"{mirrors.base}/good/"])
    fetched = fetch(dataset, dataset.files[0], target, PinLock(tmp_path / "lock.json"), FAST, [tmp_path / "mirror"])
    assert fetched.source.startswith(mirrors.base) and (target / "toy.gz").read_bytes() == PUBLISHED


def test_present_good_file_is_reused_without_a_request(mirrors, tmp_path):
    (tmp_path / "toy.gz").write_bytes(RECOMPRESSED)
    dataset = toy(four_mirrors(mirrors))
    fetched = fetch(dataset, dataset.files[0], tmp_path, PinLock(tmp_path / "lock.json"), FAST)
    assert fetched.source == "in place" and mirrors.requests == []


def test_present_corrupt_file_is_replaced(mirrors, tmp_path):
    (tmp_path / "toy.gz").write_bytes(b"garbage")
    mirrors.routes["/good/toy.gz"] = (200, PUBLISHED)
    dataset = toy([f"{mirrors.base}/good/"])
    fetch(dataset, dataset.files[0], tmp_path, PinLock(tmp_path / "lock.json"), FAST)
    assert (tmp_path / "toy.gz").read_bytes() == PUBLISHED


def test_pin_on_first_download_then_refuse_a_change(mirrors, tmp_path):
    spec = FileSpec(name="weights.bin", path="weights.bin", pin=True)
    dataset = toy([f"{mirrors.base}/m/"], spec)
    lock = PinLock(tmp_path / "data" / "pinned-checksums.json")
    mirrors.routes["/m/weights.bin"] = (200, b"version 1")

    first = fetch(dataset, spec, tmp_path / "raw", lock, http=FAST)
    assert first.newly_pinned
    assert json.loads(lock.path.read_text()) == {"toy/weights.bin": sha256(b"version 1")}
    assert not fetch(dataset, spec, tmp_path / "raw", lock, http=FAST).newly_pinned

    (tmp_path / "raw" / "weights.bin").unlink()
    mirrors.routes["/m/weights.bin"] = (200, b"version 2")
    with pytest.raises(DownloadError, match="delete the entry 'toy/weights.bin'") as caught:
        fetch(dataset, spec, tmp_path / "raw", lock, http=FAST)
    assert f"sha256 expected {sha256(b'version 1')}, got {sha256(b'version 2')}" in str(caught.value)
    assert list((tmp_path / "raw").iterdir()) == []


def test_error_page_is_not_pinned_as_an_archive(mirrors, tmp_path):
    spec = FileSpec(name="data.zip", path="data.zip", pin=True, extract=True)
    mirrors.routes["/m/data.zip"] = (200, b"<html>moved</html>")
    lock = PinLock(tmp_path / "lock.json")
    with pytest.raises(DownloadError, match="not a zip or tar archive"):
        fetch(toy([f"{mirrors.base}/m/"], spec), spec, tmp_path / "raw", lock, http=FAST)
    assert not lock.path.exists()


def test_registry_has_every_source():
    registry = load_registry()
    assert {"mnist", "fashion_mnist", "kmnist", "hymenoptera", "coco_captioning", "coco2014_annotations",
            "coco2014_train_images", "coco2014_val_images", "resnet18_imagenet"} <= set(registry)  # fmt: skip
    assert all(f.pin and f.extract for f in registry["hymenoptera"].files)
    assert registry["resnet18_imagenet"].files[0].sha256_prefix == "f37072fd"
    assert Path("/usr/share/datasets/fashion-mnist") in registry["fashion_mnist"].local_dirs


def test_registry_refuses_a_file_with_no_way_to_verify_it(tmp_path):
    (tmp_path / "r.yaml").write_text("x:\n  mirrors: ['https://e.org/']\n  files: [{name: a.gz}]\n")
    with pytest.raises(RegistryError, match=r"x\.files\[0\]: give a checksum or `pin: true`"):
        load_registry(tmp_path / "r.yaml")


def test_stage_settings_name_the_known_datasets():
    params = {"download": conf_values("download", datasets=["mnist", "imagenet"])}
    with pytest.raises(ConfigError, match=r"unknown dataset\(s\) \['imagenet'\]; known: \[.*'mnist'"):
        section(params, "download", stage.DownloadSettings)
    params = {"download": conf_values("download", datasets=["hymenoptera"], generate=["hymenoptera"])}
    with pytest.raises(ConfigError, match="both downloaded and generated"):
        section(params, "download", stage.DownloadSettings)


def test_stage_generates_stand_ins_in_place(tmp_path, monkeypatch):
    def generate(target_dir: Path, seed: int) -> None:
        (target_dir / "hymenoptera_data" / "train").mkdir(parents=True)
        (target_dir / "hymenoptera_data" / "train" / "seed.txt").write_text(str(seed))

    monkeypatch.setitem(sys.modules, "fake_standin", types.SimpleNamespace(generate=generate))
    monkeypatch.setitem(stage.GENERATORS, "hymenoptera", ("fake_standin", "hymenoptera"))
    settings = stage.DownloadSettings(**conf_values("download", datasets=[], generate=["hymenoptera"]))

    summary = stage.run(settings, seed=7, raw_dir=tmp_path / "raw", lock_path=tmp_path / "lock.json")

    target = tmp_path / "raw" / "hymenoptera"
    assert summary["generated"] == {"hymenoptera": str(target)}
    assert (target / "hymenoptera_data" / "train" / "seed.txt").read_text() == "7"
    assert (target / STANDIN_MARKER).exists()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["hymenoptera"]  # no temporary directory
    manifest = json.loads((tmp_path / "work/data/manifests/hymenoptera.json").read_text())
    assert manifest["standin"] is True and set(manifest["files"]) == {"STANDIN", ".standin-entries.json", "hymenoptera_data/train/seed.txt"}

    (target / STANDIN_MARKER).unlink()  # now it looks like real, downloaded data
    with pytest.raises(stage.StandinError, match="holds downloaded data"):
        stage.run(settings, raw_dir=tmp_path / "raw", lock_path=tmp_path / "lock.json")


def test_the_stages_read_the_top_level_seed():
    assert data_seed({"seed": 3}) == 3
    with pytest.raises(ConfigError, match="'seed': expected an integer"):
        data_seed({"seed": "3"})
    with pytest.raises(ConfigError, match="missing key 'seed'"):  # conf/ has it: no second default here
        data_seed({})


def test_stage_downloads_pins_and_unpacks_over_a_stand_in(mirrors, tmp_path):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bundle/train/a.txt", "real")
    mirrors.routes["/m/bundle.zip"] = (200, archive.read_bytes())
    spec = FileSpec(name="bundle.zip", path="bundle.zip", pin=True, extract=True)
    registry = {"toy": toy([f"{mirrors.base}/m/"], spec)}
    raw = tmp_path / "raw"
    (raw / "toy" / "bundle").mkdir(parents=True)
    (raw / "toy" / STANDIN_MARKER).write_text("generated\n")
    settings = stage.DownloadSettings(**conf_values("download", datasets=["toy"], retries=0))

    manifests = tmp_path / "manifests"
    summary = stage.run(settings, raw_dir=raw, lock_path=tmp_path / "lock.json", registry=registry, manifest_dir=manifests)

    assert summary["downloaded"]["toy"]["bundle.zip"].startswith(f"{mirrors.base}/m/bundle.zip (sha256 pinned")
    assert (raw / "toy" / "bundle" / "train" / "a.txt").read_text() == "real"
    assert not (raw / "toy" / STANDIN_MARKER).exists()
    digest = sha256(archive.read_bytes())
    assert json.loads((tmp_path / "lock.json").read_text()) == {"toy/bundle.zip": digest}
    assert sorted(p.name for p in (raw / "toy").iterdir()) == [f".extracted-{digest}", "bundle", "bundle.zip"]
    # The stage's DVC output: what the target holds, by content (what the stages reading it depend on).
    manifest = (manifests / "toy.json").read_text()
    assert json.loads(manifest)["standin"] is False
    assert json.loads(manifest)["files"]["bundle.zip"] == {"bytes": archive.stat().st_size, "sha256": digest}
    assert json.loads(manifest)["files"]["bundle/train/a.txt"]["sha256"] == sha256(b"real")

    mirrors.requests.clear()
    assert stage.run(settings, raw_dir=raw, lock_path=tmp_path / "lock.json", registry=registry, manifest_dir=manifests)["downloaded"] == {
        "toy": {"bundle.zip": "in place"}
    }
    assert mirrors.requests == []
    assert (manifests / "toy.json").read_text() == manifest  # the same data: the same bytes, nothing downstream reruns


# --- hostile files, stalled mirrors, kills and hand-placed files (issue 15) --------------


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def pinned_zip_registry(mirrors: Mirrors, name: str = "bundle.zip", target: str = "toy") -> dict[str, Dataset]:
    spec = FileSpec(name=name, path=name, pin=True, extract=True)
    return {"toy": Dataset("toy", target, (f"{mirrors.base}/m/",), (), (spec,))}


def test_a_refused_archive_is_moved_aside_unpinned_and_a_good_one_is_then_accepted(mirrors, tmp_path):
    registry = pinned_zip_registry(mirrors)
    raw, lock = tmp_path / "raw", tmp_path / "lock.json"
    settings = stage.DownloadSettings(**conf_values("download", datasets=["toy"], retries=0))
    hostile = zip_bytes({"bundle/ok.txt": b"fine", "../escape.txt": b"evil"})
    mirrors.routes["/m/bundle.zip"] = (200, hostile)

    with pytest.raises(DownloadError) as caught:
        stage.run(settings, raw_dir=raw, lock_path=lock, registry=registry)
    message = str(caught.value)
    aside = raw / "toy" / "bundle.zip.rejected"
    assert "refusing to extract anything" in message and "'../escape.txt'" in message
    assert f"moved aside to {aside} and its sha256 was not pinned" in message
    assert aside.read_bytes() == hostile and not (raw / "toy" / "bundle.zip").exists()
    assert json.loads(lock.read_text()) == {}  # the pin is not poisoned
    assert not (tmp_path / "escape.txt").exists() and not (raw / "escape.txt").exists()

    good = zip_bytes({"bundle/ok.txt": b"fine"})
    mirrors.routes["/m/bundle.zip"] = (200, good)
    summary = stage.run(settings, raw_dir=raw, lock_path=lock, registry=registry)
    assert "sha256 pinned" in summary["downloaded"]["toy"]["bundle.zip"]
    assert json.loads(lock.read_text()) == {"toy/bundle.zip": sha256(good)}
    assert (raw / "toy" / "bundle" / "ok.txt").read_bytes() == b"fine"


def test_replacing_a_stand_in_keeps_what_the_user_put_there(mirrors, tmp_path, monkeypatch):
    def generate(target_dir: Path, seed: int) -> None:
        (target_dir / "bundle" / "train").mkdir(parents=True)
        (target_dir / "bundle" / "train" / "fake.jpg").write_bytes(b"generated")

    monkeypatch.setitem(sys.modules, "fake_standin", types.SimpleNamespace(generate=generate))
    monkeypatch.setitem(stage.GENERATORS, "toy", ("fake_standin", "toy"))
    registry = {"toy": Dataset("toy", "toy", (), (), (FileSpec(name="bundle.zip", path="bundle.zip", pin=True, extract=True),))}
    raw, lock = tmp_path / "raw", tmp_path / "lock.json"
    stage.run(stage.DownloadSettings(**conf_values("download", datasets=[], generate=["toy"])), raw_dir=raw, lock_path=lock, registry=registry)
    assert (raw / "toy" / STANDIN_MARKER).exists()

    real = zip_bytes({"bundle/train/real.jpg": b"real"})
    (raw / "toy" / "bundle.zip").write_bytes(real)  # the user copies the real archive in by hand
    (raw / "toy" / "notes.txt").write_text("mine")  # and keeps a note beside it
    summary = stage.run(stage.DownloadSettings(**conf_values("download", datasets=["toy"], retries=0)), raw_dir=raw, lock_path=lock, registry=registry)

    assert summary["downloaded"]["toy"]["bundle.zip"].startswith("in place")
    assert (raw / "toy" / "bundle.zip").read_bytes() == real
    assert (raw / "toy" / "notes.txt").read_text() == "mine"
    assert (raw / "toy" / "bundle" / "train" / "real.jpg").read_bytes() == b"real"
    assert not (raw / "toy" / "bundle" / "train" / "fake.jpg").exists()  # generated: removed
    assert not (raw / "toy" / STANDIN_MARKER).exists() and not (raw / "toy" / STANDIN_MANIFEST).exists()
    assert mirrors.requests == []


class Trickle:
    """An HTTP server sending `size` bytes, `step` bytes every `pause_s` seconds.

    With `hold_at` (a multiple of `step`), a response stops after that many bytes, sets
    `holding` and goes on once `release` is set (or after a minute, so that nothing hangs).
    """

    def __init__(self, size: int, step: int, pause_s: float, hold_at: int | None = None) -> None:
        self.body = bytes(range(256)) * (size // 256)
        self.pause_s = pause_s
        self.hold_at = hold_at
        self.holding, self.release = threading.Event(), threading.Event()
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(state.body)))
                self.end_headers()
                try:
                    for i in range(0, len(state.body), step):
                        if i == state.hold_at:
                            state.holding.set()
                            state.release.wait(timeout=60)
                        self.wfile.write(state.body[i : i + step])
                        self.wfile.flush()
                        time.sleep(state.pause_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    "step, http, reason",
    [
        # 10 bytes/s: each read returns within timeout_s, so only the rate check catches it.
        (1, HttpOptions(retries=0, timeout_s=0.5, attempt_deadline_s=60, min_bytes_per_s=1000), "bytes/s over the last"),
        # 20 kB/s passes the rate check, but the 200 kB would take 10 s.
        (2000, HttpOptions(retries=0, timeout_s=0.5, attempt_deadline_s=1.0, min_bytes_per_s=1000),
         "not done within download.attempt_deadline_s = 1 s"),
    ],
)
def test_a_trickling_mirror_is_given_up_as_stalled(tmp_path, monkeypatch, step, http, reason):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    trickle = Trickle(size=200_000, step=step, pause_s=0.1)
    spec = FileSpec(name="big.bin", path="big.bin", md5=md5(trickle.body))
    try:
        with pytest.raises(DownloadError) as caught:
            fetch(toy([trickle.base], spec), spec, tmp_path / "raw", PinLock(tmp_path / "lock.json"), http=http)
    finally:
        trickle.close()
    assert f"{trickle.base}big.bin: stalled: " in str(caught.value) and reason in str(caught.value)
    # Given up early, however fast the machine: the mirror paces itself, and when either check
    # fires it has sent a few bytes (the rate) or about a tenth of the file (the deadline).
    received = int(re.search(r"\((\d+)(?: of \d+)? bytes received\)", str(caught.value)).group(1))
    assert 0 < received < len(trickle.body) // 4
    assert list((tmp_path / "raw").iterdir()) == []  # no temporary file


DRIVER = """
import sys
from pathlib import Path
from hw4.data.sources.registry import load_registry
from hw4.stages import download as stage
from tests.conftest import conf_values
stage.exit_cleanly_on_sigterm()
settings = stage.DownloadSettings(**conf_values("download", datasets=["toy"], retries=0, timeout_s=60))
print(stage.run(settings, raw_dir=Path(sys.argv[2]), lock_path=Path(sys.argv[3]), registry=load_registry(Path(sys.argv[1]))))
"""


def test_sigterm_during_a_download_leaves_no_temporary_file_and_a_rerun_succeeds(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    # Half the file, then nothing until the child is stopped: 50 kB is past the child's write
    # buffer (8 KiB), so they are in its temporary file.
    trickle = Trickle(size=100_000, step=1000, pause_s=0, hold_at=50_000)
    (tmp_path / "registry.yaml").write_text(
        f"toy:\n  mirrors: ['{trickle.base}']\n  files: [{{name: big.bin, md5: {md5(trickle.body)}}}]\n"
    )
    raw = tmp_path / "raw"
    (raw / "toy").mkdir(parents=True)
    (raw / "toy" / ".big.bin.part-stale").write_bytes(b"left by a SIGKILL")
    args = [sys.executable, "-c", DRIVER, str(tmp_path / "registry.yaml"), str(raw), str(tmp_path / "lock.json")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Downloading: the mirror holds half the file, the stale file is gone and this run's own
        # temporary file has bytes. No clock: the child's imports take what the machine gives.
        while not (trickle.holding.is_set() and
                   any(p.name != ".big.bin.part-stale" and p.stat().st_size > 0 for p in (raw / "toy").iterdir())):
            assert child.poll() is None, child.communicate()
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == 128 + signal.SIGTERM, stderr
        assert "stopped by SIGTERM; temporary files removed" in stderr
        assert list((raw / "toy").iterdir()) == []

        trickle.release.set()  # the mirror recovers; the rerun fetches the file whole
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
    finally:
        trickle.close()
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (raw / "toy").iterdir()] == ["big.bin"]
    assert md5((raw / "toy" / "big.bin").read_bytes()) == md5(trickle.body)


def test_archives_sharing_a_target_cannot_overwrite_their_neighbours(mirrors, tmp_path):
    def dataset(key: str, name: str, unpacks_to: tuple[str, ...]) -> Dataset:
        spec = FileSpec(name=name, path=name, pin=True, extract=True, unpacks_to=unpacks_to)
        return Dataset(key, "coco", (f"{mirrors.base}/m/",), (), (spec,))

    registry = {"images": dataset("images", "train2014.zip", ("train2014",)),
                "annotations": dataset("annotations", "annotations.zip", ("annotations",))}  # fmt: skip
    images = zip_bytes({"train2014/a.jpg": b"image"})
    hostile = zip_bytes({"annotations/captions.json": b"{}", "train2014.zip": b"not the images",
                         "train2014/b.jpg": b"replaces the folder"})  # fmt: skip
    mirrors.routes["/m/train2014.zip"] = (200, images)
    mirrors.routes["/m/annotations.zip"] = (200, hostile)
    raw, lock = tmp_path / "raw", tmp_path / "lock.json"

    with pytest.raises(DownloadError) as caught:
        stage.run(stage.DownloadSettings(**conf_values("download", datasets=["images", "annotations"], retries=0)), raw_dir=raw, lock_path=lock,
                  registry=registry)
    message = str(caught.value)
    assert "annotations.zip: refusing to extract anything; entries would overwrite what is not the archive's" in message
    assert "'train2014.zip': belongs to images (its file train2014.zip)" in message
    assert "'train2014': belongs to images (train2014.zip unpacks to it)" in message
    assert (raw / "coco" / "train2014.zip").read_bytes() == images  # the neighbours are intact
    assert (raw / "coco" / "train2014" / "a.jpg").read_bytes() == b"image"
    assert not (raw / "coco" / "train2014" / "b.jpg").exists() and not (raw / "coco" / "annotations").exists()
    assert list(json.loads(lock.read_text())) == ["images/train2014.zip"]


def test_a_rejected_file_in_place_is_moved_aside(tmp_path):
    (tmp_path / "toy.gz").write_bytes(b"garbage")
    dataset = toy([])
    with pytest.raises(DownloadError) as caught:
        fetch(dataset, dataset.files[0], tmp_path, PinLock(tmp_path / "lock.json"), FAST)
    aside = tmp_path / "toy.gz.rejected"
    assert f"{tmp_path / 'toy.gz'} (already there): checksum mismatch" in str(caught.value)
    assert f"moved aside to {aside}" in str(caught.value)
    assert aside.read_bytes() == b"garbage" and not (tmp_path / "toy.gz").exists()


def test_every_missing_file_is_tried_and_listed_in_one_error(mirrors, tmp_path):
    specs = tuple(FileSpec(name=f"f{i}.bin", path=f"f{i}.bin", md5=md5(b"%d" % i)) for i in range(3))
    mirrors.routes["/m/f1.bin"] = (200, b"1")  # the middle one is there
    registry = {"toy": Dataset("toy", "toy", (f"{mirrors.base}/m/",), (), specs)}
    settings = stage.DownloadSettings(**conf_values("download", datasets=["toy"], retries=0))
    with pytest.raises(DownloadError) as caught:
        stage.run(settings, raw_dir=tmp_path / "raw", lock_path=tmp_path / "lock.json", registry=registry)
    message = str(caught.value)
    assert message.startswith("2 file(s) failed; 1 other file(s) are in place. Each failure:")
    assert "1. could not get a verified copy of toy/f0.bin" in message
    assert "2. could not get a verified copy of toy/f2.bin" in message
    assert (tmp_path / "raw" / "toy" / "f1.bin").read_bytes() == b"1"


def test_a_gzip_bomb_is_not_decompressed_past_the_registry_size(tmp_path):
    bomb = gzip.compress(b"\0" * (4 << 20))  # 4 MB of zeros in about 4 kB
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "toy.gz").write_bytes(bomb)
    spec = FileSpec(name="toy.gz", path="toy.gz", md5=md5(PUBLISHED), content_sha256=sha256(CONTENT),
                    content_size=len(CONTENT))  # fmt: skip
    with pytest.raises(DownloadError, match="decompresses to more than the registry's content_size, 1200 bytes"):
        fetch(toy([], spec), spec, tmp_path / "raw", PinLock(tmp_path / "lock.json"), FAST, [tmp_path / "mirror"])
