"""Regenerate every procedurally made file in sample_assets/ (fonts are copied, see README).

    .venv/bin/python sample_assets/make_assets.py

Deterministic: each asset draws from its own Generator derived from SEED and the asset's
name (imgsynth.core.rng), so the same OpenCV/libjpeg/zlib versions write the same bytes,
and adding an asset does not change the others.
"""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path

import cv2
import numpy as np

from imgsynth.core.masks import mask_area, mask_polygons, rle_encode, tight_bbox
from imgsynth.core.rng import sample_rng
from imgsynth.io.atomic import atomic_write_bytes, atomic_write_text
from imgsynth.io.image import encode_image

SEED = 20240601
ROOT = Path(__file__).resolve().parent
CLASSES = ["circle", "star", "triangle", "hexagon"]
OBJECTS_PER_CLASS = 5
DATASET_SIZE = (320, 240)  # width, height
DATASET_IMAGES = 12


# ---------------------------------------------------------------- noise and colour kernels

def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 5,
                  base_cells: int = 4, persistence: float = 0.5) -> np.ndarray:
    """Value noise summed over octaves (perlin-like), float32 in [0, 1]."""
    total = np.zeros((height, width), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells_x = base_cells * 2 ** octave
        cells_y = max(1, round(cells_x * height / width))
        grid = rng.random((cells_y + 1, cells_x + 1)).astype(np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= persistence
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def blend_colors(t: np.ndarray, color_a, color_b) -> np.ndarray:
    """Per-pixel linear mix of two RGB colours, t in [0, 1] -> float32 HxWx3."""
    a = np.asarray(color_a, np.float32)
    b = np.asarray(color_b, np.float32)
    return a + (b - a) * np.clip(t, 0, 1)[..., None]


def add_grain(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Photo-like sensor grain, then clip to uint8."""
    grain = rng.normal(0.0, strength, image.shape[:2]).astype(np.float32)[..., None]
    return np.clip(image + grain, 0, 255).astype(np.uint8)


def random_color(rng: np.random.Generator, sat=(0.45, 0.9), val=(0.55, 0.95)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]],
                   np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


# ---------------------------------------------------------------- backgrounds

def sky_background(rng, width, height):
    _, ys = coordinates(height, width)
    sky = blend_colors(ys / height, (70, 120, 200), (185, 215, 240))
    clouds = np.clip((fractal_noise(rng, height, width, 6) - 0.45) * 2.5, 0, 1)
    cloud = clouds[..., None]
    return add_grain(245 * cloud + sky * (1 - cloud), rng, 2.0)


def wood_background(rng, width, height):
    xs, ys = coordinates(height, width)
    turbulence = fractal_noise(rng, height, width, 5, base_cells=3)
    rings = 0.5 + 0.5 * np.sin(xs / width * 40 + ys / height * 4 + turbulence * 9)
    fibres = fractal_noise(rng, height, width, 4, base_cells=64) * 0.3
    return add_grain(blend_colors(rings * 0.7 + fibres, (95, 55, 25), (190, 135, 80)), rng, 3.0)


def tile_background(rng, width, height):
    tile = int(rng.integers(48, 80))
    grout = 4
    image = np.empty((height, width, 3), np.float32)
    base = random_color(rng, sat=(0.1, 0.35), val=(0.7, 0.9))
    for ty in range(0, height, tile):
        for tx in range(0, width, tile):
            image[ty:ty + tile, tx:tx + tile] = base * rng.uniform(0.85, 1.1)
    xs, ys = coordinates(height, width)
    in_grout = ((xs % tile) < grout) | ((ys % tile) < grout)
    image[in_grout] = (120, 115, 105)
    image *= (0.9 + 0.2 * fractal_noise(rng, height, width, 4))[..., None]
    return add_grain(image, rng, 1.5)


def bokeh_background(rng, width, height):
    _, ys = coordinates(height, width)
    image = blend_colors(ys / height, (20, 18, 35), (60, 40, 55))
    light = np.zeros_like(image)
    for _ in range(40):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(width // 40, width // 9))
        cv2.circle(light, center, radius, random_color(rng, val=(0.6, 1.0)).tolist(), -1,
                   cv2.LINE_AA)
    light = cv2.GaussianBlur(light, (0, 0), sigmaX=width / 90)
    return add_grain(image + light * 0.55, rng, 2.5)


def terrain_background(rng, width, height):
    height_map = fractal_noise(rng, height, width, 6, base_cells=3)
    grass = blend_colors(height_map, (60, 100, 40), (140, 150, 70))
    soil = blend_colors(height_map, (110, 85, 55), (160, 130, 95))
    patches = np.clip((fractal_noise(rng, height, width, 4, base_cells=5) - 0.55) * 4, 0, 1)
    image = grass * (1 - patches[..., None]) + soil * patches[..., None]
    return add_grain(image * (0.85 + 0.3 * fractal_noise(rng, height, width, 3, 48))[..., None],
                     rng, 2.0)


def fabric_background(rng, width, height):
    xs, ys = coordinates(height, width)
    period = float(rng.uniform(18, 30))
    stripes = (((xs + ys) / period) % 2 < 1).astype(np.float32)
    image = blend_colors(stripes, random_color(rng), random_color(rng))
    weave = 0.9 + 0.1 * np.sin(xs * 1.3) * np.sin(ys * 1.3)
    return add_grain(image * weave[..., None], rng, 2.0)


def marble_background(rng, width, height):
    xs, ys = coordinates(height, width)
    turbulence = fractal_noise(rng, height, width, 6, base_cells=3)
    veins = np.abs(np.sin((xs + ys * 0.6) / width * 6 + turbulence * 7)) ** 0.35
    return blend_colors(veins, (110, 110, 120), (235, 232, 225)).astype(np.uint8)


def brick_background(rng, width, height):
    brick_w, brick_h, mortar = 64, 28, 4
    image = np.empty((height, width, 3), np.float32)
    image[:] = (175, 170, 160)
    for row, y in enumerate(range(0, height, brick_h)):
        offset = (brick_w // 2) * (row % 2)
        for x in range(-offset, width, brick_w):
            color = np.array((150, 65, 45), np.float32) * rng.uniform(0.8, 1.15)
            cv2.rectangle(image, (x + mortar, y + mortar), (x + brick_w - 1, y + brick_h - 1),
                          color.tolist(), -1)
    image *= (0.85 + 0.3 * fractal_noise(rng, height, width, 5, base_cells=8))[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


# name, generator, (width, height), file format
BACKGROUNDS = [
    ("sky", sky_background, (640, 480), "jpg"),
    ("wood", wood_background, (800, 600), "jpg"),
    ("tiles", tile_background, (512, 512), "png"),
    ("bokeh", bokeh_background, (1024, 768), "jpg"),
    ("terrain", terrain_background, (640, 480), "jpg"),
    ("fabric", fabric_background, (800, 600), "jpg"),
    ("marble", marble_background, (480, 360), "png"),
    ("bricks", brick_background, (600, 400), "png"),
]


# ---------------------------------------------------------------- objects

def shape_polygon(kind: str, radius: float, rotation: float) -> np.ndarray | None:
    """Outline of a shape centred at (0, 0); None for the circle (drawn as a disc)."""
    if kind == "circle":
        return None
    if kind == "star":
        angles = rotation + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
    else:
        corners = {"triangle": 3, "hexagon": 6}[kind]
        angles = rotation + np.arange(corners) * 2 * math.pi / corners
        radii = np.full(corners, radius)
    return np.stack([radii * np.sin(angles), -radii * np.cos(angles)], axis=1)


def shape_alpha(kind: str, size: int, margin: int, rotation: float) -> np.ndarray:
    """Anti-aliased coverage (float32 0..1) of a shape filling a size x size box, with margin."""
    scale = 4  # draw 4x larger, then area-average: smooth edges
    canvas = size + 2 * margin
    big = np.zeros((canvas * scale, canvas * scale), np.uint8)
    center = canvas * scale / 2
    radius = size * scale / 2
    outline = shape_polygon(kind, radius, rotation)
    if outline is None:
        cv2.circle(big, (round(center), round(center)), round(radius), 255, -1)
    else:
        # Fit the rotated outline into the box: scale its extent to exactly `size`.
        extent = (outline.max(axis=0) - outline.min(axis=0)).max()
        outline = outline * (size * scale / extent)
        outline += center - (outline.max(axis=0) + outline.min(axis=0)) / 2
        cv2.fillPoly(big, [np.round(outline).astype(np.int32)], 255)
    small = cv2.resize(big, (canvas, canvas), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def shaded_object(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """RGBA cutout: coloured, lit from the top left, textured, with a darker rim."""
    margin = int(rng.integers(2, 7))
    alpha = shape_alpha(kind, size, margin, float(rng.uniform(0, 2 * math.pi)))
    canvas = alpha.shape[0]
    xs, ys = coordinates(canvas, canvas)
    light = 1.15 - 0.5 * (xs + ys) / (2 * canvas)
    spot = np.exp(-((xs - canvas * 0.35) ** 2 + (ys - canvas * 0.32) ** 2) / (2 * (canvas * 0.12) ** 2))
    texture = 0.88 + 0.24 * fractal_noise(rng, canvas, canvas, 4, base_cells=3)
    inside = (alpha > 0.5).astype(np.uint8)
    rim = np.clip(cv2.distanceTransform(inside, cv2.DIST_L2, 3) / max(3.0, size / 25), 0, 1)
    shade = light * texture * (0.6 + 0.4 * rim)
    rgb = random_color(rng) * shade[..., None] + 90 * spot[..., None]
    rgb = np.clip(rgb, 0, 255) * (alpha > 0)[..., None]  # no colour under fully clear pixels
    return np.dstack([rgb, alpha * 255]).round().astype(np.uint8)


def object_sizes(rng: np.random.Generator) -> list[int]:
    """OBJECTS_PER_CLASS sizes spread over 60..200 px, jittered."""
    steps = np.linspace(60, 200, OBJECTS_PER_CLASS)
    return [int(np.clip(s + rng.integers(-10, 11), 60, 200)) for s in steps]


# ---------------------------------------------------------------- tiny labeled dataset

def paste_rgba(image: np.ndarray, cutout: np.ndarray, x: int, y: int) -> np.ndarray:
    """Alpha-composite a cutout into image (in place) at (x, y); return its coverage mask."""
    h, w = cutout.shape[:2]
    alpha = cutout[..., 3:].astype(np.float32) / 255
    region = image[y:y + h, x:x + w].astype(np.float32)
    image[y:y + h, x:x + w] = np.round(region * (1 - alpha) + cutout[..., :3] * alpha).astype(np.uint8)
    mask = np.zeros(image.shape[:2], bool)
    mask[y:y + h, x:x + w] = cutout[..., 3] >= 128
    return mask


def visible_masks(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Each object's pixels not covered by objects pasted after it."""
    visible = []
    for k, mask in enumerate(masks):
        covered = np.zeros_like(mask)
        for later in masks[k + 1:]:
            covered |= later
        visible.append(mask & ~covered)
    return visible


def is_clean_layout(masks: list[np.ndarray], visible: list[np.ndarray]) -> bool:
    """Every object keeps >= 60 % of its pixels in one piece, so labels are unambiguous."""
    for mask, vis in zip(masks, visible):
        pieces, _ = cv2.connectedComponents(vis.astype(np.uint8))
        if vis.sum() < 0.6 * mask.sum() or pieces != 2:
            return False
    return True


def dataset_scene(index: int):
    """One 320x240 image with 1-4 shapes: (image, [(class_name, visible_mask)])."""
    width, height = DATASET_SIZE
    rng = sample_rng(SEED, "dataset/shapes", index)
    _, make_background, _, _ = BACKGROUNDS[index % len(BACKGROUNDS)]
    background = make_background(rng, width, height)
    count = int(rng.integers(1, 5))
    for _attempt in range(100):
        image = background.copy()
        classes, masks = [], []
        for _ in range(count):
            kind = CLASSES[int(rng.integers(len(CLASSES)))]
            cutout = shaded_object(rng, kind, int(rng.integers(36, 91)))
            h, w = cutout.shape[:2]
            masks.append(paste_rgba(image, cutout, int(rng.integers(0, width - w + 1)),
                                    int(rng.integers(0, height - h + 1))))
            classes.append(kind)
        visible = visible_masks(masks)
        if is_clean_layout(masks, visible):
            return image, list(zip(classes, visible))
    raise RuntimeError(f"no clean layout for dataset image {index}; change SEED")


def coco_document(scenes) -> dict:
    images, annotations = [], []
    for image_id, (file_name, objects) in enumerate(scenes, start=1):
        width, height = DATASET_SIZE
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                       "license": 1})
        for class_name, mask in objects:
            x1, y1, x2, y2 = tight_bbox(mask)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": CLASSES.index(class_name) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": mask_area(mask),
                "segmentation": rle_encode(mask), "iscrowd": 0,
            })
    return {
        "info": {"description": "imgsynth sample_assets shapes_coco (procedurally generated)",
                 "version": "1.0", "year": 2024, "contributor": "imgsynth",
                 "date_created": "2024-06-01"},
        "licenses": [{"id": 1, "name": "CC0-1.0",
                      "url": "https://creativecommons.org/publicdomain/zero/1.0/"}],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": c, "supercategory": "shape"}
                       for k, c in enumerate(CLASSES)],
    }


def yolo_segment_lines(objects) -> str:
    """`cls x1 y1 x2 y2 ...` per object: the visible outline, normalized to [0, 1]."""
    width, height = DATASET_SIZE
    lines = []
    for class_name, mask in objects:
        outline = max(mask_polygons(mask), key=len)
        coords = np.clip(outline / (width, height), 0, 1).ravel()
        lines.append(" ".join([str(CLASSES.index(class_name))] + [f"{v:.6f}" for v in coords]))
    return "".join(line + "\n" for line in lines)


YOLO_DATA_YAML = """\
# Ultralytics dataset file. 'path' is left out on purpose: the dataset root is then
# this file's folder. train and val are the same 12 images (a smoke-test set).
train: images
val: images
nc: {nc}
names:
{names}"""


# ---------------------------------------------------------------- text

NOUNS = """
apple anchor basket bicycle bottle bridge bucket cabinet camera candle canvas carpet castle
chair clock cloud compass copper corner cotton crystal desk diamond door engine feather
fence field forest garden glass globe hammer harbor helmet island jacket kettle key ladder
lamp lantern letter machine map marble market meadow mirror mountain needle notebook ocean
orchard paper pencil piano pillow planet pocket river rocket saddle school shadow shelf
signal silver station stone street table teapot ticket tower train tunnel valley
violin wagon wall window winter wire workshop
""".split()
ADJECTIVES = """
amber ancient bright broken calm careful clean clever cold crimson curious dark distant dry
early empty faint famous fast gentle golden green heavy hidden hollow honest large late
little loud lucky modern narrow noble old orange pale plain polished quiet rapid rare rough
round rusty silent simple slow small smooth soft solid steady strange sturdy sudden tall
tidy tiny velvet warm wide wild wooden yellow young
""".split()
VERBS = """
builds carries checks cleans collects counts draws finds fixes follows gathers guards holds
lifts measures moves opens orders paints places prints reads repairs sells sends shows sorts
stacks stores turns visits washes watches weighs writes
""".split()
NAMES = "Ada Bram Cleo Dario Elin Femi Gus Hana Ivo Jana Kofi Lena Milo Nia Oren Pia Quin Rosa Saul Tova".split()
PLACES = "Northgate Eastbrook Millford Stonebay Ashvale Redcliff Oakmere Westholm Brightwater Fernhill".split()
ACCENTED = "café naïve façade résumé jalapeño über crème déjà coöperate piñata".split()


def corpus_line(rng: np.random.Generator, k: int) -> str:
    """One line of invented text: ledger, notes, addresses, codes (nothing copied)."""
    def pick(words):
        return words[int(rng.integers(len(words)))]

    n = int(rng.integers(2, 999))
    price = f"{rng.uniform(0.5, 950):.2f}"
    date = f"20{int(rng.integers(10, 30))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"
    time = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
    code = f"{chr(65 + int(rng.integers(26)))}{chr(65 + int(rng.integers(26)))}-{int(rng.integers(1000, 9999))}"
    templates = [
        f"The {pick(ADJECTIVES)} {pick(NOUNS)} {pick(VERBS)} the {pick(NOUNS)}.",
        f"{pick(NAMES)} {pick(VERBS)} {n} {pick(NOUNS)}s near the {pick(ADJECTIVES)} {pick(NOUNS)}.",
        f"Invoice {code}: {n} x {pick(NOUNS)} @ ${price} (due {date}).",
        f"Meet {pick(NAMES)} at {time}, {int(rng.integers(1, 300))} {pick(NAMES)} Road, {pick(PLACES)}.",
        f"Is the {pick(NOUNS)} {pick(ADJECTIVES)}? Yes; the {pick(NOUNS)} is {pick(ADJECTIVES)}!",
        f"Order #{n}: {pick(ADJECTIVES)} {pick(NOUNS)}, {pick(ADJECTIVES)} {pick(NOUNS)} & {pick(NOUNS)}.",
        f"\"{pick(ADJECTIVES).title()} {pick(NOUNS)}s,\" said {pick(NAMES)}, \"are {int(rng.integers(1, 100))}% {pick(ADJECTIVES)}.\"",
        f"Train {int(rng.integers(10, 99))} to {pick(PLACES)} leaves platform {int(rng.integers(1, 12))} at {time}.",
        f"{pick(NAMES)}'s {pick(NOUNS)} weighs {rng.uniform(0.1, 99):.1f} kg / {rng.uniform(0.1, 200):.1f} lb.",
        f"Tel. +{int(rng.integers(1, 99))} {int(rng.integers(100, 999))} {int(rng.integers(1000, 9999))} - ask for {pick(NAMES)} (room {n}).",
        f"The {pick(ACCENTED)} by the {pick(NOUNS)} opens {date}; tickets {price} EUR.",
        f"Note {k + 1}: {pick(VERBS)} the {pick(NOUNS)}, then {pick(VERBS)} it again; ref {code}/{n}.",
    ]
    return templates[int(rng.integers(len(templates)))]


ARABIC_LINES = [
    "مرحبا بالعالم",
    "السلام عليكم ورحمة الله",
    "الكتاب على الطاولة",
    "أحب القراءة في المساء",
    "الطقس جميل اليوم",
    "رقم الغرفة ٢٤٥",
    "السعر ١٥٠ ريالا",
    "القطار يصل في الساعة الثامنة",
    "شكرا جزيلا لك",
    "المدينة كبيرة ومزدحمة",
    "تعلم البرمجة ممتع",
    "افتح النافذة من فضلك",
]
DEVANAGARI_LINES = [
    "नमस्ते दुनिया",
    "आज मौसम अच्छा है",
    "यह किताब मेज़ पर है",
    "मुझे पढ़ना पसंद है",
    "ट्रेन आठ बजे आती है",
    "कमरा नंबर २४५",
]


def nfc_lines(lines) -> str:
    return "".join(unicodedata.normalize("NFC", line) + "\n" for line in lines)


# ---------------------------------------------------------------- writing

def write_image(path: Path, image: np.ndarray) -> None:
    fmt = path.suffix.lstrip(".")
    atomic_write_bytes(path, encode_image(image, fmt, quality=88))


def make_backgrounds() -> None:
    for k, (name, make, (width, height), fmt) in enumerate(BACKGROUNDS):
        image = make(sample_rng(SEED, f"backgrounds/{name}", k), width, height)
        write_image(ROOT / "backgrounds" / f"{name}_{width}x{height}.{fmt}", image)


def make_objects() -> None:
    for kind in CLASSES:
        rng = sample_rng(SEED, f"objects/{kind}", 0)
        for k, size in enumerate(object_sizes(rng)):
            write_image(ROOT / "objects" / kind / f"{kind}_{k + 1:02d}.png",
                        shaded_object(rng, kind, size))


def make_datasets() -> None:
    coco_dir = ROOT / "datasets" / "shapes_coco"
    yolo_dir = ROOT / "datasets" / "shapes_yolo"
    scenes = []
    for index in range(DATASET_IMAGES):
        image, objects = dataset_scene(index)
        name = f"{index + 1:08d}"
        data = encode_image(image, "jpg", quality=90)
        atomic_write_bytes(coco_dir / "images" / f"{name}.jpg", data)
        atomic_write_bytes(yolo_dir / "images" / f"{name}.jpg", data)
        atomic_write_text(yolo_dir / "labels" / f"{name}.txt", yolo_segment_lines(objects))
        scenes.append((f"{name}.jpg", objects))
    atomic_write_text(coco_dir / "annotations.json", json.dumps(coco_document(scenes), indent=1) + "\n")
    names = "".join(f"  {k}: {c}\n" for k, c in enumerate(CLASSES))
    atomic_write_text(yolo_dir / "data.yaml", YOLO_DATA_YAML.format(nc=len(CLASSES), names=names))


def make_text() -> None:
    rng = sample_rng(SEED, "text/corpus", 0)
    atomic_write_text(ROOT / "text" / "corpus.txt", nfc_lines(corpus_line(rng, k) for k in range(300)))
    words = sorted(set(NOUNS + ADJECTIVES + VERBS + NAMES + PLACES + ACCENTED), key=str.lower)
    atomic_write_text(ROOT / "text" / "words.txt", nfc_lines(words))
    atomic_write_text(ROOT / "text" / "arabic.txt", nfc_lines(ARABIC_LINES))
    atomic_write_text(ROOT / "text" / "devanagari.txt", nfc_lines(DEVANAGARI_LINES))


if __name__ == "__main__":
    make_backgrounds()
    make_objects()
    make_datasets()
    make_text()
    print(f"sample assets written under {ROOT}")
