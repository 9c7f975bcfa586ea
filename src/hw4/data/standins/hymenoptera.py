"""A generated stand-in for hymenoptera_data.zip: two classes of small JPEGs, same layout.

    hymenoptera_data/{train,val}/{ants,bees}/*.jpg   (+ train/ants/imageNotFound.gif, as upstream)

"ants" are dark, narrow, three-segment bodies with thin legs; "bees" are rounder, with
yellow-black stripes and pale wings. Both sit on blotchy grass, soil or sky backgrounds
that also hold yellow flowers and dark pebbles, at random sizes, positions and angles,
with pixel noise and JPEG artefacts: colour alone does not decide the class, so the task
is learnable on two CPU cores in a few epochs without being solved at the first batch.
Every image comes from its own seeded generator, so the data set depends on `seed` only.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hw4.data.standins.marker import mark

ROOT = "hymenoptera_data"
CLASSES = ("ants", "bees")
SPLITS = {"train": 80, "val": 50}  # images per class (upstream: about 120 and 75)
SIZE_RANGE = (72, 96)  # width and height in pixels, drawn independently per image
NOT_AN_IMAGE = "imageNotFound.gif"  # upstream's train/ants holds this GIF placeholder

BACKGROUNDS = {
    "grass": (70, 120, 50),
    "soil": (120, 95, 65),
    "sky": (130, 170, 210),
    "petals": (200, 150, 170),
}


def generate(target_dir: Path, seed: int, per_class: dict[str, int] | None = None) -> None:
    """Write the stand-in under `target_dir/hymenoptera_data`, marked by `target_dir/STANDIN`.

    `per_class`: images per class of each split (default `SPLITS`; tests ask for fewer)."""
    per_class = per_class or SPLITS
    for split_index, (split, count) in enumerate(per_class.items()):
        for label, name in enumerate(CLASSES):
            folder = Path(target_dir) / ROOT / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([seed, split_index, label, i])
                image = draw_image(name, rng)
                image.save(folder / f"{split}_{name}_{i:04d}.jpg", quality=int(rng.integers(70, 95)))
    _write_placeholder_gif(Path(target_dir) / ROOT / "train" / "ants" / NOT_AN_IMAGE)
    mark(target_dir, __name__, seed)


def draw_image(name: str, rng: np.random.Generator) -> Image.Image:
    width, height = (int(v) for v in rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1, size=2))
    image = _background(width, height, rng)
    _scatter_distractors(image, rng)
    insect = _ant(rng) if name == "ants" else _bee(rng)
    _paste_insect(image, insect, rng)
    return _add_noise(image, rng)


def _background(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A base colour with large soft blotches of the other palette colours."""
    palette = list(BACKGROUNDS.values())
    base = _jitter(palette[rng.integers(len(palette))], rng, 25)
    image = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        colour = _jitter(palette[rng.integers(len(palette))], rng, 30)
        x, y = rng.integers(0, width), rng.integers(0, height)
        r = int(rng.integers(width // 6, width // 2))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(3, 8))))


def _scatter_distractors(image: Image.Image, rng: np.random.Generator) -> None:
    """Yellow flowers and dark pebbles in both classes: neither colour gives the label away."""
    draw = ImageDraw.Draw(image)
    w, h = image.size
    for _ in range(int(rng.integers(0, 4))):
        x, y, r = rng.integers(0, w), rng.integers(0, h), int(rng.integers(3, 8))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_jitter((235, 200, 40), rng, 20))
    for _ in range(int(rng.integers(0, 4))):
        x, y, r = rng.integers(0, w), rng.integers(0, h), int(rng.integers(2, 6))
        draw.ellipse((x - r, y - r // 2, x + r, y + r // 2), fill=_jitter((40, 35, 30), rng, 15))


def _ant(rng: np.random.Generator) -> Image.Image:
    """A dark ant along the x axis on a transparent (RGBA) canvas: head, thorax, abdomen, legs."""
    canvas = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    body = _jitter((45, 30, 20), rng, 20) + (255,)
    legs = tuple(max(0, c - 10) for c in body[:3]) + (255,)
    for x in (26, 32, 38):  # three pairs of legs from the thorax
        dx = int(rng.integers(-6, 7))
        draw.line((x, 16, x + dx, 3), fill=legs, width=1)
        draw.line((x, 16, x - dx, 29), fill=legs, width=1)
    draw.line((12, 14, 4, 5), fill=legs, width=1)  # antennae
    draw.line((12, 18, 4, 27), fill=legs, width=1)
    draw.ellipse((6, 11, 17, 21), fill=body)  # head
    draw.ellipse((19, 12, 38, 20), fill=body)  # thorax: long and narrow
    draw.ellipse((38, 8, 60, 24), fill=body)  # abdomen
    return canvas


def _bee(rng: np.random.Generator) -> Image.Image:
    """A striped bee along the x axis on a transparent (RGBA) canvas: wings, thorax, abdomen."""
    canvas = Image.new("RGBA", (64, 40), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    wing = (235, 240, 245, int(rng.integers(120, 200)))
    draw.ellipse((18, 0, 38, 17), fill=wing)
    draw.ellipse((18, 23, 38, 40), fill=wing)
    yellow = _jitter((225, 175, 35), rng, 25) + (255,)
    black = _jitter((30, 25, 20), rng, 10) + (255,)
    draw.ellipse((5, 14, 16, 26), fill=black)  # head
    draw.ellipse((14, 11, 32, 29), fill=_jitter((120, 90, 40), rng, 20) + (255,))  # furry thorax
    abdomen = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(abdomen).ellipse((28, 8, 62, 32), fill=255)
    stripes = Image.new("RGBA", canvas.size, yellow)
    stripe_draw = ImageDraw.Draw(stripes)
    width = int(rng.integers(3, 6))
    for x in range(30 + int(rng.integers(0, width)), 64, 2 * width):
        stripe_draw.rectangle((x, 0, x + width - 1, canvas.size[1]), fill=black)
    canvas.paste(stripes, (0, 0), abdomen)
    return canvas


def _paste_insect(image: Image.Image, insect: Image.Image, rng: np.random.Generator) -> None:
    """Scale the insect to 40-80% of the image's shorter side, rotate it, paste it anywhere it fits."""
    w, h = image.size
    length = int(min(w, h) * rng.uniform(0.4, 0.8))
    insect = insect.resize((length, max(1, length * insect.height // insect.width)), Image.BICUBIC)
    if rng.random() < 0.5:
        insect = insect.transpose(Image.FLIP_LEFT_RIGHT)
    insect = insect.rotate(float(rng.uniform(0, 360)), resample=Image.BICUBIC, expand=True)
    x = int(rng.integers(-insect.width // 4, max(1, w - 3 * insect.width // 4)))
    y = int(rng.integers(-insect.height // 4, max(1, h - 3 * insect.height // 4)))
    image.paste(insect, (x, y), insect)


def _add_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0, rng.uniform(4, 14), size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _write_placeholder_gif(path: Path) -> None:
    """A real GIF, like upstream's: an image, but not one of the accepted image types."""
    buffer = io.BytesIO()
    Image.new("P", (16, 16), 0).save(buffer, format="GIF")
    path.write_bytes(buffer.getvalue())
