"""A small COCO-2014-format captioning set, generated: the offline stand-in for COCO.

Each 64x64 JPEG holds one to three coloured shapes (square, ring, triangle), each small or
large, in its own third of the picture (left, middle, right). Every image gets five captions
in varied wording, all true of it ("a red ring and a blue square", "a small green triangle
on the left", "two shapes: ..."), so a captioner can only score well by looking at the
image: a model that ignores it can at best guess the commonest phrases.

The files are COCO 2014's layout and JSON schema:

    annotations/captions_train2014.json   {"info", "licenses", "images": [{"id", "file_name",
    annotations/captions_val2014.json       "width", "height", ...}], "annotations": [{"id",
    train2014/COCO_train2014_<id>.jpg       "image_id", "caption"}]}
    val2014/COCO_val2014_<id>.jpg
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from hw4.data.standins.marker import mark

SIZE = 64
COLOURS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (235, 215, 40),
    "white": (240, 240, 240), "orange": (245, 140, 20), "purple": (150, 60, 200),
    "pink": (250, 130, 190), "cyan": (40, 210, 220), "brown": (130, 80, 30),
}
SHAPES = ("square", "ring", "triangle")  # a hollow ring, not a disc: easier to tell from filled shapes
SLOTS = ("left", "middle", "right")  # thirds of the picture, left to right
SLOT_PHRASES = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
SCALES = {"small": 6, "large": 10}  # half-width in pixels
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
CAPTIONS_PER_IMAGE = 5


@dataclass(frozen=True)
class Shape:
    colour: str
    kind: str
    scale: str
    slot: str

    def phrase(self, with_scale: bool = False) -> str:
        words = [self.scale, self.colour, self.kind] if with_scale else [self.colour, self.kind]
        return " ".join([_article(words[0]), *words])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def generate(target_dir: Path, seed: int, n_train: int = 600, n_val: int = 200) -> None:
    """Write the stand-in into `target_dir` (relative contents only; see the module doc)."""
    target_dir = Path(target_dir)
    rng = random.Random(seed)
    first_id = 1
    for split, count in (("train", n_train), ("val", n_val)):
        write_split(target_dir, split, count, first_id, rng)
        first_id += count
    mark(target_dir, __name__, seed)


def write_split(root: Path, split: str, count: int, first_id: int, rng: random.Random) -> None:
    folder = f"{split}2014"
    (root / folder).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(first_id, first_id + count):
        shapes = random_scene(rng)
        file_name = f"COCO_{folder}_{image_id:012d}.jpg"
        draw_scene(shapes, rng).save(root / folder / file_name, quality=90)
        images.append({"id": image_id, "file_name": file_name, "width": SIZE, "height": SIZE, "license": 0,
                       "coco_url": "", "flickr_url": "", "date_captured": "2014-01-01 00:00:00"})
        for k, caption in enumerate(captions_for(shapes, rng)):
            annotations.append({"id": image_id * 10 + k, "image_id": image_id, "caption": caption})
    doc = {
        "info": {"description": "hw4 stand-in for COCO 2014 captions (generated shapes)", "version": "1.0",
                 "year": 2014, "contributor": "hw4.data.standins.coco", "url": "", "date_created": "2014-01-01"},
        "licenses": [{"id": 0, "name": "generated", "url": ""}],
        "images": images,
        "annotations": annotations,
    }
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"captions_{folder}.json").write_text(json.dumps(doc))


def random_scene(rng: random.Random) -> list[Shape]:
    """One to three shapes in distinct slots, listed left to right."""
    slots = sorted(rng.sample(SLOTS, rng.randint(1, 3)), key=SLOTS.index)
    return [Shape(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(list(SCALES)), slot) for slot in slots]


def draw_scene(shapes: list[Shape], rng: random.Random) -> Image.Image:
    grey = rng.randint(20, 70)
    image = Image.new("RGB", (SIZE, SIZE), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        # Centre of the shape's third, jittered so positions vary within the slot.
        cx = (SLOTS.index(shape.slot) + 0.5) * SIZE / 3 + rng.uniform(-2, 2)
        cy = SIZE / 2 + rng.uniform(-14, 14)
        r = SCALES[shape.scale]
        box = (cx - r, cy - r, cx + r, cy + r)
        fill = COLOURS[shape.colour]
        if shape.kind == "ring":
            draw.ellipse(box, outline=fill, width=max(2, r // 3))
        elif shape.kind == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image


def captions_for(shapes: list[Shape], rng: random.Random) -> list[str]:
    """CAPTIONS_PER_IMAGE different true descriptions, each with its own wording."""
    candidates = list(dict.fromkeys(template(shapes) for template in TEMPLATES))
    rng.shuffle(candidates)
    return [_with_style(c, rng) for c in candidates[:CAPTIONS_PER_IMAGE]]


def _with_style(caption: str, rng: random.Random) -> str:
    """Capitals and a full stop sometimes, as people write them (tokenising removes both)."""
    if rng.random() < 0.5:
        caption = caption[0].upper() + caption[1:]
    return caption + ("." if rng.random() < 0.5 else "")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _plain(shapes: list[Shape]) -> str:
    return _join([s.phrase() for s in shapes])


def _sized(shapes: list[Shape]) -> str:
    return _join([s.phrase(with_scale=True) for s in shapes])


def _placed_first(shapes: list[Shape]) -> str:
    """One shape and where it is: true of the scene, though it names only the leftmost."""
    return f"{shapes[0].phrase(with_scale=True)} {SLOT_PHRASES[shapes[0].slot]}"


def _placed_last(shapes: list[Shape]) -> str:
    return f"{shapes[-1].phrase(with_scale=True)} {SLOT_PHRASES[shapes[-1].slot]}"


def _counted(shapes: list[Shape]) -> str:
    noun = "shape" if len(shapes) == 1 else "shapes"
    return f"{COUNT_WORDS[len(shapes)]} {noun}: {_plain(shapes)}"


def _kind_first(shapes: list[Shape]) -> str:
    return _join([f"a {s.kind} in {s.colour}" for s in shapes])


def _right_to_left(shapes: list[Shape]) -> str:
    if len(shapes) == 1:
        return f"a single {shapes[0].colour} {shapes[0].kind}"
    first, rest = shapes[-1], shapes[:-1]
    return f"{first.phrase()} to the right of {_plain(rest)}"


TEMPLATES = (_plain, _sized, _placed_first, _placed_last, _counted, _kind_first, _right_to_left)

