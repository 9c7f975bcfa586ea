"""IDX parsing and the MNIST-family split, on small IDX files written here."""

from __future__ import annotations

import gzip
import hashlib
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from hw4.data.formats.idx import IdxError, read_idx
from hw4.data.formats.mnist import FILES, load_split, split_train_val
from hw4.data.sources.registry import Dataset, FileSpec, load_registry
from hw4.data.standins.marker import STANDIN_MARKER
from hw4.stages import prepare as prepare_stage
from tests.conftest import conf_values


def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    """Header (two zero bytes, type, ndim, big-endian dims) + big-endian data."""
    header = struct.pack(">HBB", 0, type_byte, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool = True) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def labels(n: int) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def write_family(raw: Path, n_train: int, n_test: int) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    write(raw / FILES["train_images"], idx_bytes(images(n_train)))
    write(raw / FILES["train_labels"], idx_bytes(labels(n_train)))
    write(raw / FILES["test_images"], idx_bytes(images(n_test, seed=1)))
    write(raw / FILES["test_labels"], idx_bytes(labels(n_test)))


@pytest.mark.parametrize("gz", [True, False])
def test_good_file_round_trips(tmp_path, gz):
    array = images(3)
    tensor = read_idx(write(tmp_path / "x.idx", idx_bytes(array), gz=gz))
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (3, 28, 28)
    assert np.array_equal(tensor.numpy(), array)


def test_big_endian_types_come_back_native(tmp_path):
    array = np.array([[1, -2], [70000, -70000]], dtype=np.int32)
    tensor = read_idx(write(tmp_path / "x.idx", idx_bytes(array, type_byte=0x0C)))
    assert tensor.dtype == torch.int32 and tensor.tolist() == array.tolist()


def test_truncated_file_names_sizes(tmp_path):
    data = idx_bytes(images(3))[:-1]
    with pytest.raises(IdxError, match=r"x\.gz: truncated: header says 3x28x28 = 2352 bytes of data, file has 2351"):
        read_idx(write(tmp_path / "x.gz", data))


def test_trailing_bytes_are_an_error(tmp_path):
    message = r"x\.gz: trailing bytes: header says 3x28x28 = 2352 bytes of data, file has 2353"
    with pytest.raises(IdxError, match=message):
        read_idx(write(tmp_path / "x.gz", idx_bytes(images(3)) + b"\0"))


def test_wrong_magic(tmp_path):
    data = b"\x01\x00" + idx_bytes(images(1))[2:]
    with pytest.raises(IdxError, match=r"x\.gz: bad magic 01000803"):
        read_idx(write(tmp_path / "x.gz", data))


def test_unknown_type_byte(tmp_path):
    with pytest.raises(IdxError, match=r"x\.gz: unknown element type 0x07"):
        read_idx(write(tmp_path / "x.gz", idx_bytes(images(1), type_byte=0x07)))


def test_header_shorter_than_its_dimensions(tmp_path):
    with pytest.raises(IdxError, match=r"x\.gz: truncated header: 3 dimensions need 16 bytes, file has 10"):
        read_idx(write(tmp_path / "x.gz", idx_bytes(images(1))[:10]))


def test_corrupt_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(images(2)))[:-20])
    with pytest.raises(IdxError, match=r"x\.gz: not a valid gzip file"):
        read_idx(tmp_path / "x.gz")


def test_image_label_count_mismatch(tmp_path):
    write_family(tmp_path, n_train=6, n_test=2)
    write(tmp_path / FILES["train_labels"], idx_bytes(labels(5)))
    message = r"train-images-idx3-ubyte\.gz has 6 images but train-labels-idx1-ubyte\.gz has 5"
    with pytest.raises(IdxError, match=message):
        load_split(tmp_path, "train")


def test_label_out_of_range(tmp_path):
    write_family(tmp_path, n_train=6, n_test=2)
    bad = labels(6)
    bad[4] = 10
    write(tmp_path / FILES["train_labels"], idx_bytes(bad))
    with pytest.raises(IdxError, match=r"train-labels-idx1-ubyte\.gz: label 10 at index 4 is outside 0\.\.9"):
        load_split(tmp_path, "train")


def test_images_must_be_28x28_uint8(tmp_path):
    write_family(tmp_path, n_train=6, n_test=2)
    write(tmp_path / FILES["test_images"], idx_bytes(np.zeros((2, 27, 28), np.uint8)))
    with pytest.raises(IdxError, match=r"t10k-images-idx3-ubyte\.gz: expected uint8 images of shape \(N, 28, 28\)"):
        load_split(tmp_path, "test")


def test_split_holds_out_the_last_images():
    x, y = torch.arange(10).view(10, 1), torch.arange(10)
    train_x, train_y, val_x, val_y = split_train_val(x, y, val_size=3)
    assert train_y.tolist() == list(range(7)) and val_y.tolist() == [7, 8, 9]
    assert train_x.flatten().tolist() == list(range(7)) and val_x.flatten().tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="val_size 10 must be between 1 and 9"):
        split_train_val(x, y, val_size=10)


def test_prepare_stage_writes_the_splits(tmp_path):
    raw = tmp_path / "raw"
    write_family(raw / "kmnist", n_train=12, n_test=5)
    (raw / "kmnist" / STANDIN_MARKER).write_text("generated\n")
    out = tmp_path / "prepared" / "mnist_family.pt"

    summary = prepare_stage.run(prepare_stage.PrepareSettings(**conf_values("prepare", dataset="kmnist", val_size=4)), raw_dir=raw, out_path=out)

    assert summary == {"dataset": "kmnist", "standin": True, "train": 8, "val": 4, "test": 5}
    data = torch.load(out, weights_only=True)
    assert [tuple(data[k].shape) for k in ("train_x", "val_x", "test_x")] == [(8, 28, 28), (4, 28, 28), (5, 28, 28)]
    assert all(data[k].dtype == torch.uint8 for k in data if k != "meta")
    assert np.array_equal(data["val_x"].numpy(), images(12)[8:])
    meta = data["meta"]
    assert meta["classes"][0] == "o" and len(meta["classes"]) == 10 and meta["standin"] is True
    assert sorted(meta["sha256"]) == sorted(FILES.values())
    assert [p.name for p in out.parent.iterdir()] == ["mnist_family.pt"]


def test_prepare_stage_says_what_to_run_when_files_are_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the download stage with 'mnist' in download.datasets"):
        prepare_stage.run(prepare_stage.PrepareSettings(**conf_values("prepare", dataset="mnist")), raw_dir=tmp_path, out_path=tmp_path / "x.pt")


def test_wrong_magic_names_the_expected_and_found_values(tmp_path):
    # A labels header claiming 8 dimensions: read as sizes, its pixels once made "truncated ... 34922128181986080 bytes".
    data = struct.pack(">HBB", 0, 0x08, 8) + idx_bytes(images(2))[4:]
    write(tmp_path / FILES["train_images"], data)
    write(tmp_path / FILES["train_labels"], idx_bytes(labels(2)))
    message = (r"train-images-idx3-ubyte\.gz: bad magic: expected 0x00000803 \(uint8, 3 dimension\(s\)\), "
               r"found 0x00000808 \(uint8, 8 dimension\(s\)\)")
    with pytest.raises(IdxError, match=message):
        load_split(tmp_path, "train")


def test_images_and_labels_swapped_is_bad_magic(tmp_path):
    write(tmp_path / FILES["train_images"], idx_bytes(labels(2)))
    write(tmp_path / FILES["train_labels"], idx_bytes(images(2)))
    with pytest.raises(IdxError, match=r"bad magic: expected 0x00000803 .*found 0x00000801"):
        load_split(tmp_path, "train")


def test_a_gzip_bomb_is_refused_without_decompressing_it_into_memory(tmp_path):
    header = struct.pack(">HBBIII", 0, 0x08, 3, 20_000, 28, 28)
    bomb = write(tmp_path / "bomb.gz", header + bytes(20_000 * 28 * 28))  # 15.7 MB of zeros in about 15 kB
    assert bomb.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(IdxError, match=r"bomb\.gz: decompresses to more than 2352 bytes, the size recorded for it"):
            read_idx(bomb, max_bytes=2352)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def fake_registry(raw: Path, recompressed: bool) -> dict:
    """kmnist with the checksums of the files written in `raw`: container md5s, or (as the
    Debian package's recompressed copies need) only the contents' sha256."""
    specs = []
    for name in FILES.values():
        data = (raw / name).read_bytes()
        if recompressed:
            content = gzip.decompress(data)
            specs.append(FileSpec(name, name, md5="0" * 32, content_sha256=hashlib.sha256(content).hexdigest(),
                                  content_size=len(content)))  # fmt: skip
        else:
            specs.append(FileSpec(name, name, md5=hashlib.md5(data).hexdigest()))
    kmnist = load_registry()["kmnist"]
    return {"kmnist": Dataset("kmnist", "kmnist", (), (), tuple(specs), kmnist.classes)}


@pytest.mark.parametrize("recompressed", [False, True])
def test_prepare_reads_real_data_only_when_it_matches_the_recorded_checksums(tmp_path, recompressed):
    raw, out = tmp_path / "raw", tmp_path / "prepared" / "mnist_family.pt"
    write_family(raw / "kmnist", n_train=12, n_test=5)
    registry = fake_registry(raw / "kmnist", recompressed)
    settings = prepare_stage.PrepareSettings(**conf_values("prepare", dataset="kmnist", val_size=4))
    assert prepare_stage.run(settings, raw_dir=raw, out_path=out, registry=registry)["standin"] is False

    # Another well-formed file put in place by hand (or left there by an older download stage).
    write(raw / "kmnist" / FILES["test_labels"], idx_bytes(labels(5)[::-1].copy()))
    with pytest.raises(ValueError, match="not the files the registry records for 'kmnist'") as caught:
        prepare_stage.run(settings, raw_dir=raw, out_path=out, registry=registry)
    assert f"{raw / 'kmnist' / FILES['test_labels']}: checksum mismatch" in str(caught.value)
    assert FILES["test_images"] not in str(caught.value)
    assert "Run the download stage: it moves each wrong file aside" in str(caught.value)
