"""Image folders: non-images set aside and counted, unreadable images named, the stand-in's layout."""

import hashlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from hw4.data.loaders.image_folders import (
    ImageFolderDataset,
    ImageFolderError,
    eval_transform,
    scan,
    train_transform,
)
from hw4.data.loaders.resumable import EpochOrder, ResumableLoader
from hw4.data.standins import hymenoptera as standin_hymenoptera

TINY = {"train": 3, "val": 2}


def write_image(path: Path, colour=(200, 30, 30), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), colour).save(path, format=fmt)
    return path


@pytest.fixture
def split(tmp_path: Path) -> Path:
    """An empty split directory (tmp_path itself also holds the tests' working directory)."""
    path = tmp_path / "split"
    path.mkdir()
    return path


def test_files_that_are_not_images_are_skipped_and_returned(split: Path):
    write_image(split / "bees/b1.jpg")
    write_image(split / "ants/a1.PNG")
    write_image(split / "ants/imageNotFound.gif")  # an image, but not an accepted type
    (split / "ants/notes.txt").write_text("not an image")
    folder = scan(split)
    assert folder.classes == ("ants", "bees")
    assert [(p.name, label) for p, label in folder.samples] == [("a1.PNG", 0), ("b1.jpg", 1)]
    assert sorted(p.name for p in folder.skipped) == ["imageNotFound.gif", "notes.txt"]


def test_an_unreadable_image_stops_with_its_name(split: Path):
    write_image(split / "ants/a1.jpg")
    bad = split / "bees/broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"<html>404</html>")
    with pytest.raises(ImageFolderError, match=r"bees/broken\.jpg: not a readable image"):
        scan(split)


def test_a_truncated_image_stops_with_its_name_when_decoded(split: Path):
    write_image(split / "ants/a1.jpg")
    cut = split / "bees/cut.jpg"
    cut.parent.mkdir()
    Image.effect_noise((64, 64), 60).convert("RGB").save(cut)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # the header survives: found when decoded
    data = ImageFolderDataset(scan(split), eval_transform(16))
    with pytest.raises(ImageFolderError, match=r"bees/cut\.jpg: cannot decode"):
        data[1]


def test_an_empty_class_folder_is_an_error(split: Path):
    write_image(split / "ants/a1.jpg")
    (split / "bees").mkdir()
    (split / "bees/readme.txt").write_text("x")
    with pytest.raises(ImageFolderError, match=r"\['bees'\] hold no images"):
        scan(split)


def test_the_tutorial_transforms_give_normalised_crops(tmp_path: Path):
    image = Image.open(write_image(tmp_path / "x.png", fmt="PNG"))
    assert train_transform(12)(image).shape == (3, 12, 12)
    x = eval_transform(12)(image)
    assert x.shape == (3, 12, 12) and x.min() < 0  # ImageNet mean subtracted


def test_standin_has_the_real_layout_a_gif_and_a_marker(tmp_path: Path):
    standin_hymenoptera.generate(tmp_path, seed=0, per_class=TINY)
    root = tmp_path / "hymenoptera_data"
    assert (tmp_path / "STANDIN").is_file()
    for split, n in TINY.items():
        folder = scan(root / split)
        assert folder.classes == ("ants", "bees") and len(folder.samples) == 2 * n
    assert [p.name for p in scan(root / "train").skipped] == ["imageNotFound.gif"]
    assert scan(root / "val").skipped == ()


def test_standin_depends_on_the_seed_only(tmp_path: Path):
    def digest(seed: int, where: Path) -> str:
        standin_hymenoptera.generate(where, seed, per_class=TINY)
        files = sorted((where / "hymenoptera_data").rglob("*.jpg"))
        return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()

    assert digest(0, tmp_path / "a") == digest(0, tmp_path / "b") != digest(1, tmp_path / "c")


def training_batches(root: Path, workers: int, epoch: int, resume_after: int = 0) -> list[torch.Tensor]:
    """One epoch of the training loader's images, from batch `resume_after` on (as a checkpoint
    taken after that many batches resumes it)."""
    data = ImageFolderDataset(scan(root / "train"), train_transform(16), seed=3)
    sampler = EpochOrder(data, num_replicas=1, rank=0, shuffle=True, seed=3, drop_last=True)
    loader = ResumableLoader(data, batch_size=2, sampler=sampler, num_workers=workers)
    loader.set_epoch(epoch)
    if resume_after:
        loader.load_state_dict({"epoch": epoch, "items_done": resume_after})
    batches = [images for images, _ in loader]
    assert loader.state_dict() == {"epoch": epoch, "items_done": len(loader)}
    return batches


def test_training_batches_are_the_same_with_any_workers_and_after_a_resume(tmp_path: Path):
    """Each image's random crop and flip come from (seed, epoch, index), not from the worker
    that loads it; a resumed epoch goes on with the batches it had not trained on."""
    standin_hymenoptera.generate(tmp_path, seed=0, per_class={"train": 3, "val": 1})
    root = tmp_path / "hymenoptera_data"
    alone = training_batches(root, workers=0, epoch=1)
    assert len(alone) == 3  # 6 images in batches of 2
    assert all(torch.equal(a, b) for a, b in zip(alone, training_batches(root, workers=2, epoch=1), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(alone[1:], training_batches(root, workers=0, epoch=1, resume_after=1), strict=True))
    assert not torch.equal(torch.cat(alone), torch.cat(training_batches(root, workers=0, epoch=2)))  # epochs differ
