"""ResNet18 weights: found, verified against the hash in their name, or refused with a clear message."""

from pathlib import Path

import pytest
import torch
import torchvision

from hw4.io.checksums import file_sha256
from hw4.models.resnet import (
    ResNet18Config,
    WeightsError,
    backbone_modules,
    hub_cache_file,
    load_verified,
    resnet18_classifier,
    resolve_weights,
)


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's own torch hub cache."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def save_named_by_hash(state_dict: dict, directory: Path, arch: str = "resnet18") -> Path:
    """Save as torch hub does: `<arch>-<first 8 hex digits of the sha256>.pth`."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "unnamed.pth"
    torch.save(state_dict, tmp)
    return tmp.rename(directory / f"{arch}-{file_sha256(tmp)[:8]}.pth")


def test_a_file_whose_hash_matches_its_name_loads(tmp_path: Path):
    state = {"w": torch.arange(6.0)}
    path = save_named_by_hash(state, tmp_path)
    loaded, sha256 = load_verified(path)
    assert torch.equal(loaded["w"], state["w"]) and path.name[9:17] == sha256[:8]


def test_a_file_with_the_wrong_hash_is_refused(tmp_path: Path):
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save({"w": torch.zeros(3)}, path)  # not the real file: its sha256 starts otherwise
    with pytest.raises(WeightsError, match=r"refused: its sha256 is [0-9a-f]{64}, but its name says it starts with f37072fd"):
        resolve_weights("imagenet", path)


def test_a_file_with_no_hash_in_its_name_is_refused(tmp_path: Path):
    path = tmp_path / "my_resnet.pth"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match="carries no hash"):
        load_verified(path)


def test_a_bad_file_is_refused_even_when_random_is_the_fallback(tmp_path: Path):
    path = tmp_path / "resnet18-00000000.pth"
    path.write_bytes(b"not weights")
    with pytest.raises(WeightsError, match="refused"):
        resolve_weights("imagenet_if_available", path)


def test_missing_weights_stop_with_a_message_naming_where_and_what_to_do(tmp_path: Path):
    path = tmp_path / "data/raw/resnet18_imagenet/resnet18-f37072fd.pth"
    with pytest.raises(WeightsError) as err:
        resolve_weights("imagenet", path)
    message = str(err.value)
    assert str(path) in message and str(hub_cache_file(path.name)) in message
    assert "download" in message and "'random'" in message


def test_random_backbone_when_asked_or_when_nothing_is_found(tmp_path: Path):
    assert resolve_weights("random", tmp_path / "absent-f37072fd.pth").kind == "random"
    fallback = resolve_weights("imagenet_if_available", tmp_path / "resnet18-f37072fd.pth")
    assert fallback.kind == "random" and fallback.state_dict is None


def test_the_torch_hub_cache_is_searched_under_the_same_name(tmp_path: Path, empty_torch_home: Path):
    cached = save_named_by_hash({"w": torch.ones(2)}, empty_torch_home / "hub" / "checkpoints")
    weights = resolve_weights("imagenet", tmp_path / "elsewhere" / cached.name)
    assert weights.kind == "imagenet" and weights.path == cached and torch.equal(weights.state_dict["w"], torch.ones(2))


def test_the_head_has_two_outputs_and_the_backbone_keeps_the_loaded_weights():
    imagenet_like = torchvision.models.resnet18(weights=None).state_dict()  # fc: 1000 classes
    net = resnet18_classifier(ResNet18Config(2), imagenet_like)
    own = net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in imagenet_like.items() if not k.startswith("fc."))
    assert net.fc.out_features == 2 and net(torch.randn(3, 3, 32, 32)).shape == (3, 2)
    assert net.fc not in backbone_modules(net) and len(backbone_modules(net)) == len(list(net.children())) - 1


def test_weights_of_another_network_are_refused():
    with pytest.raises(WeightsError, match="do not fit torchvision's ResNet18"):
        resnet18_classifier(ResNet18Config(2), {"conv1.weight": torch.zeros(1)})
