"""Safe extraction: unsafe archives are refused whole; good ones unpack once."""

from __future__ import annotations

import io
import stat
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from hw4.data.sources import archives
from hw4.data.sources.archives import ArchiveError, Limits, extract

SHA = "ab" * 32
LIMITS = Limits(max_bytes=10**9, max_entries=1000)  # far above these tests' archives


def make_zip(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP stores a symlink
            zf.writestr(info, target)
    return path


def make_tar(path: Path, entries: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return path


def assert_refused(archive: Path, out: Path, *entries: str) -> None:
    with pytest.raises(ArchiveError, match="refusing to extract anything") as caught:
        extract(archive, out, SHA, LIMITS)
    for entry in entries:
        assert repr(entry) in str(caught.value)
    assert not out.exists()  # not even the good entries, nor a temporary directory
    assert not (archive.parent / "evil").exists()


def test_dotdot_entry_is_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"good/file.txt": b"ok", "../evil": b"x"})
    assert_refused(archive, tmp_path / "out", "../evil")


def test_absolute_entry_is_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"good.txt": b"ok", "/tmp/evil-absolute": b"x"})
    assert_refused(archive, tmp_path / "out", "/tmp/evil-absolute")


def test_zip_symlink_escaping_the_target_is_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"good.txt": b"ok"}, symlinks={"data/link": "../../evil"})
    assert_refused(archive, tmp_path / "out", "data/link")


def test_tar_links_escaping_the_target_are_refused(tmp_path):
    links = {
        "abs-link": (tarfile.SYMTYPE, "/etc/passwd"),
        "up-link": (tarfile.SYMTYPE, "../evil"),
        "hard": (tarfile.LNKTYPE, "../evil"),
    }
    archive = make_tar(tmp_path / "a.tar.gz", {"good.txt": b"ok"}, links)
    assert_refused(archive, tmp_path / "out", "abs-link", "up-link", "hard")


def test_writing_through_a_link_is_refused(tmp_path):
    # "d" alone points inside, but "d/../../x" style tricks start by writing through it.
    archive = make_zip(tmp_path / "a.zip", {"d/f": b"x"}, symlinks={"d": "."})
    assert_refused(archive, tmp_path / "out", "d/f")


def test_link_resolved_through_another_link_is_refused(tmp_path):
    # Read as text, "b/../x" stays inside; on disk b is "." so it would be ../x.
    archive = make_zip(tmp_path / "a.zip", {}, symlinks={"b": ".", "a": "b/../x"})
    assert_refused(archive, tmp_path / "out", "a")


def test_good_zip_extracts_once(tmp_path, monkeypatch):
    archive = make_zip(
        tmp_path / "a.zip",
        {"top/sub/f.txt": b"hello", "top/g.txt": b"g", "readme": b"r"},
        symlinks={"top/alias": "sub/f.txt"},
    )
    out = tmp_path / "out"
    assert extract(archive, out, SHA, LIMITS) == ["readme", "top"]
    assert (out / "top" / "sub" / "f.txt").read_bytes() == b"hello"
    assert (out / "top" / "alias").is_symlink() and (out / "top" / "alias").read_bytes() == b"hello"
    assert sorted(p.name for p in out.iterdir()) == [f".extracted-{SHA}", "readme", "top"]

    monkeypatch.setattr(archives, "_unpack", lambda *a: pytest.fail("extracted twice"))
    assert extract(archive, out, SHA, LIMITS) == ["readme", "top"]


def test_deleted_entries_are_extracted_again_and_stale_files_replaced(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"top/f.txt": b"new"})
    out = tmp_path / "out"
    (out / "top").mkdir(parents=True)
    (out / "top" / "stale.txt").write_text("from an older archive")
    extract(archive, out, SHA, LIMITS)
    assert sorted(p.name for p in (out / "top").iterdir()) == ["f.txt"]

    (out / "top" / "f.txt").unlink()
    (out / "top").rmdir()
    extract(archive, out, SHA, LIMITS)
    assert (out / "top" / "f.txt").read_bytes() == b"new"


def test_good_tar_extracts(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {"top/f.txt": b"t"}, {"top/l": (tarfile.SYMTYPE, "f.txt")})
    out = tmp_path / "out"
    assert extract(archive, out, SHA, LIMITS) == ["top"]
    assert (out / "top" / "l").read_bytes() == b"t"


def test_unreadable_archive(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(ArchiveError, match="neither a zip file nor a tar archive"):
        extract(tmp_path / "a.zip", tmp_path / "out", SHA, LIMITS)


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):
            zf.writestr(f"zeros/{i}", b"\0" * (2 << 20))  # 8 MB of zeros in about 32 kB
    assert (tmp_path / "bomb.zip").stat().st_size < 100_000
    with pytest.raises(ArchiveError, match=r"more than download\.max_extract_bytes = 5000000 bytes"):
        extract(tmp_path / "bomb.zip", tmp_path / "out", SHA, Limits(max_bytes=5_000_000, max_entries=100))
    with pytest.raises(ArchiveError, match=r"more than download\.max_extract_entries = 3 entries"):
        extract(tmp_path / "bomb.zip", tmp_path / "out", SHA, Limits(max_bytes=10**9, max_entries=3))
    assert not (tmp_path / "out").exists()


def test_a_tar_bomb_is_refused_at_the_first_entry_past_the_limit(tmp_path):
    # One 16 MB member: listing a .tar.gz decompresses it, so the check must stop before its data.
    with tarfile.open(tmp_path / "bomb.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("zeros")
        info.size = 16 << 20
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveError, match="max_extract_bytes"):
            extract(tmp_path / "bomb.tar.gz", tmp_path / "out", SHA, Limits(max_bytes=1 << 20, max_entries=10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20 and not (tmp_path / "out").exists()


def test_entries_owned_by_others_are_refused(tmp_path):
    out = tmp_path / "out"
    extract(make_zip(tmp_path / "images.zip", {"train2014/a.jpg": b"image"}), out, "01" * 32, LIMITS)
    (out / "train2014.zip").write_bytes(b"the neighbour's archive")
    archive = make_zip(tmp_path / "ann.zip", {"annotations/c.json": b"{}", "train2014/b.jpg": b"x",
                                              "train2014.zip": b"x", ".extracted-" + "0" * 64: b"x"})  # fmt: skip
    with pytest.raises(ArchiveError, match="would overwrite what is not the archive's") as caught:
        extract(archive, out, SHA, LIMITS, owned={"train2014.zip": "images (its file train2014.zip)"})
    message = str(caught.value)
    assert "'train2014': belongs to images.zip (extracted here)" in message
    assert "'train2014.zip': belongs to images (its file train2014.zip)" in message
    assert f"'.extracted-{'0' * 64}': belongs to a name the extraction itself uses" in message
    assert sorted(p.name for p in (out / "train2014").iterdir()) == ["a.jpg"]
    assert (out / "train2014.zip").read_bytes() == b"the neighbour's archive"
    assert not (out / "annotations").exists()


def test_an_unreadable_marker_or_a_killed_extraction_is_redone(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"top/f.txt": b"new"})
    out = tmp_path / "out"
    (out / ".extract-left-by-a-kill").mkdir(parents=True)
    (out / ".extract-left-by-a-kill" / "half.txt").write_bytes(b"ha")
    (out / f".extracted-{SHA}").write_text('{"archive": "a.zip", "entr')  # cut short
    assert extract(archive, out, SHA, LIMITS) == ["top"]
    assert sorted(p.name for p in out.iterdir()) == [f".extracted-{SHA}", "top"]
