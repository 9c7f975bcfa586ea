"""ResNet18 with a new classifier head, and ImageNet weights loaded only once their hash checks out.

torchvision names its weight files `<arch>-<first hex digits of the sha256>.pth`
(resnet18-f37072fd.pth is ResNet18_Weights.IMAGENET1K_V1), but checks that prefix only
when torch.hub downloads the file. Here every load checks it, wherever the file came from,
and unpickles with `weights_only=True`, so a weights file can hold tensors but no code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn

from hw4.io.checksums import file_sha256

# What the stage may start from; see TransferSettings for what each choice means.
Pretrained = Literal["imagenet", "imagenet_if_available", "random"]
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth?$")


class WeightsError(RuntimeError):
    """Weights that are missing, fail their check, or do not fit ResNet18."""


@dataclass(frozen=True)
class Weights:
    """What the backbone starts from: `imagenet` (with the file and its sha256) or `random`."""

    kind: Literal["imagenet", "random"]
    path: Path | None = None
    sha256: str | None = None
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def hub_cache_file(name: str) -> Path:
    """Where torchvision keeps a downloaded weights file ($TORCH_HOME/hub/checkpoints/<name>)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def resolve_weights(pretrained: Pretrained, path: Path) -> Weights:
    """The weights `pretrained` asks for: `path`, else torch's hub cache, else random or an error."""
    if pretrained == "random":
        return Weights("random")
    path = Path(path).expanduser()
    candidates = [path, hub_cache_file(path.name)]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None and pretrained == "imagenet_if_available":
        return Weights("random")
    if found is None:
        looked = " and ".join(str(p) for p in candidates)
        raise WeightsError(
            f"ResNet18 ImageNet weights not found: looked for {looked}. Fetch them with the download "
            f"stage (download.datasets lists resnet18_imagenet) or copy {path.name} to one of those "
            f"places; or set transfer.pretrained to 'random' (a randomly initialised backbone) or "
            f"'imagenet_if_available' (ImageNet when found, random otherwise)"
        )
    state_dict, sha256 = load_verified(found)
    return Weights("imagenet", found, sha256, state_dict)


def load_verified(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, sha256) of a weights file whose sha256 starts with the hash in its name."""
    match = HASH_IN_NAME.search(path.name)
    if match is None:
        raise WeightsError(
            f"{path}: the file name carries no hash (torch hub's '<name>-<sha256 prefix>.pth', "
            f"e.g. resnet18-f37072fd.pth), so the file cannot be verified; refusing to load it"
        )
    sha256 = file_sha256(path)
    if not sha256.startswith(match.group(1)):
        raise WeightsError(
            f"{path}: refused: its sha256 is {sha256}, but its name says it starts with "
            f"{match.group(1)}; the file is corrupt or not what its name says. Delete it and "
            f"fetch it again (download stage)"
        )
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise WeightsError(f"{path}: not a loadable weights file ({type(e).__name__}: {e})") from None
    return state_dict, sha256


@dataclass(frozen=True)
class ResNet18Config:
    num_classes: int  # the new head's outputs


def resnet18_classifier(config: ResNet18Config, state_dict: dict[str, torch.Tensor] | None = None) -> torchvision.models.ResNet:
    """torchvision's ResNet18, from `state_dict` (ImageNet, 1000 classes) or random, with a new
    head `fc`: images (B, 3, H, W) -> features (B, 512) -> logits (B, num_classes).

    The layout stays torchvision's, so a saved state dict loads into
    `torchvision.models.resnet18(num_classes=num_classes)`.
    """
    net = torchvision.models.resnet18(weights=None)
    if state_dict is not None:
        try:
            net.load_state_dict(state_dict)
        except RuntimeError as e:
            raise WeightsError(f"the weights do not fit torchvision's ResNet18: {e}") from None
    net.fc = nn.Linear(net.fc.in_features, config.num_classes)  # after the load: its initial weights follow the seed
    return net


resnet18_classifier.config_class = ResNet18Config  # type: ignore[attr-defined]  # hw4.models.nets.NetSpec builds it from JSON


def backbone_modules(net: torchvision.models.ResNet) -> list[nn.Module]:
    """Every top-level part but the head `fc`: what the `freeze` mode keeps fixed."""
    return [module for name, module in net.named_children() if name != "fc"]
