"""The transfer-learning tutorial's image transforms: random crops and flips for training, a
resize and centre crop for evaluation, both normalised for torchvision's ImageNet models.

Apart from the loaders because a logged transfer model applies `eval_transform` to what it is
sent: serving imports this module, and only torchvision with it (no Lightning).
"""

from __future__ import annotations

from torchvision import transforms

from hw4.data.formats.images import IMAGENET_MEAN, IMAGENET_STD


def resize_for(image_size: int) -> int:
    """The evaluation resize before the centre crop: the tutorial's 256 for 224, scaled."""
    return round(image_size * 256 / 224)


def train_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.RandomResizedCrop(image_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),  # (3, S, S) float in [0, 1]
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform(image_size: int) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize(resize_for(image_size)),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
