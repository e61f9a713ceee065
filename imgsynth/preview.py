"""Contact sheet of an output folder: a picture a person checks at a glance.

`make_preview(out_dir)` reads `manifest.jsonl` (or, without one, the images in the
folder), picks up to n samples spread evenly over the set, and draws each as a tile:
instance masks as translucent colour overlays, boxes in a per-class colour with the class
name, the sample id, and the classification label or OCR text under the image. OCR sets
(every shown sample has text) are laid out as one column of wide tiles so lines stay
readable. A legend counts every class over the whole set. Same inputs, same PNG bytes.

Images are decoded reduced to about their tile's size (`decode_image_reduced`: a JPEG
scaled in its decoder, others reduced right after decoding) and their masks read at the
reduced pixels only, so a 12000 x 12000 image costs about its tile, not gigabytes; boxes
are scaled from the full size. An image over the pixel limit, or unreadable, gets a tile
saying so.
"""

from __future__ import annotations

import colorsys
import functools
import hashlib
import math
import unicodedata
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError, RecipeError
from imgsynth.core.masks import polygons_to_mask, rle_decode, rle_sample
from imgsynth.io.atomic import atomic_write_bytes
from imgsynth.io.folders import image_files
from imgsynth.io.image import decode_image_reduced, encode_image

GRID_TILE = 240  # image area of a grid tile, px (square)
WIDE_TILE = (760, 96)  # largest image area of an OCR tile (width, height)
MAX_UPSCALE = 8.0  # tiny images (digits, text crops) are enlarged up to this factor
GAP = 10
MASK_OPACITY = 0.45
SHEET_BACKGROUND = (245, 245, 245)
IMAGE_BACKGROUND = (45, 45, 45)
INK = (20, 20, 20)
MUTED_INK = (110, 110, 110)
ERROR_INK = (255, 90, 90)  # on the dark image area

# Distinct colours (Trubetskoy's list); classes past the list get a colour from their name.
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
           (170, 110, 40), (255, 225, 25)]

FONT_DIR = Path(__file__).resolve().parent.parent / "sample_assets" / "fonts"
SCRIPT_FONTS = {  # the first font covering the text's script is used
    "arabic": FONT_DIR / "arabic" / "NotoSansArabic-Regular.ttf",
    "devanagari": FONT_DIR / "devanagari" / "NotoSansDevanagari-Regular.ttf",
    "latin": FONT_DIR / "latin" / "DejaVuSans.ttf",
}
# Characters that would break a one-line caption or reorder it (bidi overrides) are escaped.
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_TEXT_CHARS = 400  # longer texts are cut before measuring (a caption shows < 120)


def make_preview(out_dir: Path, n: int = 16, dest: Path | None = None) -> Path:
    """Write a contact sheet PNG of up to n samples of out_dir (default out_dir/preview.png)."""
    out_dir = Path(out_dir)
    if n < 1:
        raise RecipeError(f"the number of samples to show must be at least 1, got {n}",
                          key="--n", fix="pass --n 16 (or any count >= 1)")
    dest = Path(dest) if dest is not None else out_dir / "preview.png"
    records = load_records(out_dir, exclude=dest)
    shown = set(spread_indices(len(records), n))
    chosen = [rec for k, rec in enumerate(records) if k in shown]
    counts = class_counts(records)
    colors = class_colors(sorted(counts))
    # Text lines (wide, short) get one column of wide tiles; scene text keeps the grid.
    wide = all(rec.get("text") for rec in chosen) and median_aspect(chosen) <= 0.5
    area = wide_area(chosen) if wide else grid_area(chosen)
    # Grid captions: the id line, plus a label/text line when any shown sample has one.
    # Wide tiles print the text on the id line.
    lines = 1 if wide or not any(rec.get("text") is not None or rec.get("label") is not None
                                 for rec in chosen) else 2
    tiles = [render_tile(out_dir, rec, colors, area, lines) for rec in chosen]
    columns = 1 if wide else math.ceil(math.sqrt(len(tiles)))
    # No folder name in the header: the sheet's bytes must not depend on where --out is.
    header = (f"{len(records)} samples, showing {len(chosen)}"
              + (" spread evenly" if len(chosen) < len(records) else ""))
    sheet = assemble_sheet(tiles, columns, header, counts, colors)
    atomic_write_bytes(dest, encode_image(sheet, "png"))
    return dest


# ---------------------------------------------------------------- inputs

def load_records(out_dir: Path, exclude: Path | None = None) -> Collection[dict]:
    """Manifest records, or {"id": file name, "image": path} for a folder of images."""
    if not out_dir.is_dir():
        raise InputError("folder not found", file=str(out_dir),
                         fix="give an imgsynth output folder or a folder of images")
    manifest = out_dir / "manifest.jsonl"
    if manifest.is_file():
        from imgsynth.io.writers.manifest import ManifestRecords

        records = ManifestRecords(manifest)  # read on each pass, not held: sets can be huge
        for lineno, rec in enumerate(records, start=1):
            if not isinstance(rec, dict) or "image" not in rec:
                raise InputError(f"record {lineno} has no 'image' path", file=str(manifest),
                                 fix="the manifest is written by `imgsynth run`; re-run it")
    else:
        root = out_dir / "images" if (out_dir / "images").is_dir() else out_dir
        skip = exclude.resolve() if exclude is not None else None
        images = [p for p in image_files(root) if p.resolve() != skip]
        records = [{"id": p.relative_to(root).as_posix(), "image": p.relative_to(out_dir).as_posix()}
                   for p in images]
    if not records:
        raise InputError("nothing to preview: no manifest.jsonl records and no images",
                         file=str(out_dir),
                         fix="run `imgsynth run RECIPE --out DIR` first, or point at a folder of images")
    return records


def spread_indices(total: int, n: int) -> list[int]:
    """n indices spread evenly over range(total), first and last included."""
    if total <= n:
        return list(range(total))
    if n == 1:
        return [0]
    return sorted({round(k * (total - 1) / (n - 1)) for k in range(n)})


def class_counts(records: list[dict]) -> Counter:
    """Instances per class plus samples per classification label, over the whole set."""
    counts: Counter = Counter()
    for rec in records:
        for inst in rec.get("instances") or []:
            counts[str(inst.get("class"))] += 1
        if rec.get("label") is not None:
            counts[str(rec["label"])] += 1
    return counts


def class_colors(names: list[str]) -> dict[str, tuple[int, int, int]]:
    """A fixed colour per class: palette by sorted position, then derived from the name."""
    colors = {}
    for k, name in enumerate(names):
        if k < len(PALETTE):
            colors[name] = PALETTE[k]
        else:
            digest = hashlib.blake2b(name.encode("utf-8"), digest_size=2).digest()
            colors[name] = hsv_color(int.from_bytes(digest, "little") / 65536.0)
    return colors


def hsv_color(hue: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return (round(r * 255), round(g * 255), round(b * 255))


# ---------------------------------------------------------------- text

@functools.lru_cache(maxsize=None)
def caption_font(size: int, script: str = "latin"):
    from PIL import ImageFont

    for path in (SCRIPT_FONTS[script], SCRIPT_FONTS["latin"]):
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)  # installed without sample_assets


def text_script(text: str) -> str:
    for ch in text:
        code = ord(ch)
        if 0x0600 <= code <= 0x06FF or 0x0750 <= code <= 0x077F or 0xFB50 <= code <= 0xFEFF:
            return "arabic"
        if 0x0900 <= code <= 0x097F:
            return "devanagari"
    return "latin"


def printable_text(text: str) -> str:
    """One displayable line: newlines, tabs, NUL, other controls and bidi overrides escaped."""
    out = []
    for ch in text[:MAX_TEXT_CHARS]:
        if ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn", "Zl", "Zp") or ch in BIDI_CONTROLS:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + ("…" if len(text) > MAX_TEXT_CHARS else "")


def fit_text(text: str, font, max_width: int) -> str:
    """The longest prefix of text (plus '…' when cut) that fits max_width pixels."""
    if font.getlength(text) <= max_width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid] + "…") <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…"


def text_on_color(color) -> tuple[int, int, int]:
    """Black or white, whichever reads better on a coloured tag."""
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


# ---------------------------------------------------------------- tiles

def overlay_masks(image: np.ndarray, instances: list[dict], colors: dict,
                  full_size: tuple[int, int]) -> np.ndarray:
    """Tint each instance's mask (RLE, else polygons) with its class colour. `image` may be
    the image reduced from `full_size` (width, height), which the labels refer to."""
    out = image.astype(np.float32)
    for inst in instances:
        mask = instance_mask(inst, full_size, image.shape[:2])
        if mask is not None:
            color = np.array(colors[str(inst.get("class"))], np.float32)
            out[mask] = out[mask] * (1 - MASK_OPACITY) + color * MASK_OPACITY
    return np.round(out).astype(np.uint8)


def instance_mask(inst: dict, full_size: tuple[int, int],
                  shape: tuple[int, int]) -> np.ndarray | None:
    """The instance's mask at `shape` (height, width) of an image whose full size is
    full_size (width, height): decoded, or read at the reduced pixels' centres only."""
    width, height = full_size
    segmentation = inst.get("segmentation")
    if isinstance(segmentation, dict):
        if list(segmentation.get("size") or []) != [height, width]:
            return None
        try:
            if shape == (height, width):
                return rle_decode(segmentation)
            rows = np.minimum(((np.arange(shape[0]) + 0.5) * height / shape[0]).astype(np.int64), height - 1)
            cols = np.minimum(((np.arange(shape[1]) + 0.5) * width / shape[1]).astype(np.int64), width - 1)
            return rle_sample(segmentation, rows, cols)
        except ValueError:  # a malformed RLE: the tile shows the box without a tint
            return None
    if inst.get("polygons"):
        to_shape = np.array([shape[1] / width, shape[0] / height])
        polygons = [np.asarray(p, np.float64).reshape(-1, 2) * to_shape for p in inst["polygons"]]
        return polygons_to_mask(polygons, *shape)
    return None


def fit_scale(width: int, height: int, area_w: int, area_h: int) -> float:
    return min(area_w / width, area_h / height, MAX_UPSCALE)


def median_aspect(records: list[dict]) -> float:
    """Median height / width from the manifest sizes (0.0 when no record states one)."""
    aspects = sorted(rec["height"] / rec["width"] for rec in records
                     if isinstance(rec.get("width"), int) and isinstance(rec.get("height"), int)
                     and rec["width"] > 0 and rec["height"] > 0)
    return aspects[len(aspects) // 2] if aspects else 0.0


def grid_area(records: list[dict]) -> tuple[int, int]:
    """Grid tile image area: GRID_TILE wide, as high as the typical image aspect asks,
    so 4:3 sets do not waste a quarter of the sheet on empty bands."""
    aspect = median_aspect(records) or 1.0
    return GRID_TILE, round(GRID_TILE * min(max(aspect, 0.5), 1.5))


def wide_area(records: list[dict]) -> tuple[int, int]:
    """OCR tile image area: full width, only as high as a typical line needs."""
    width, most = WIDE_TILE
    return width, min(most, max(32, round(width * median_aspect(records))))


def render_tile(out_dir: Path, rec: dict, colors: dict, area: tuple[int, int],
                caption_lines: int) -> np.ndarray:
    """One tile: the annotated image, then the id and the label or text under it."""
    import cv2
    from PIL import Image, ImageDraw

    area_w, area_h = area
    wide = area_w >= WIDE_TILE[0]
    caption_size = 16 if wide else 12
    caption_h = caption_lines * caption_line_height(caption_size) + 4
    tile = Image.new("RGB", (area_w, area_h + caption_h), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, area_w - 1, area_h - 1), fill=IMAGE_BACKGROUND)
    instances = rec.get("instances") or []
    try:
        image, (w, h) = decode_image_reduced(out_dir / rec["image"], (area_w, area_h))
    except InputError as err:
        draw.text((6, 6), fit_text(printable_text(err.message), caption_font(12), area_w - 12),
                  font=caption_font(12), fill=ERROR_INK)
        draw.text((6, 24), fit_text(str(rec["image"]), caption_font(12), area_w - 12),
                  font=caption_font(12), fill=(240, 240, 240))
        image = None
    if image is not None:
        scale = fit_scale(w, h, area_w, area_h)  # from the full size, which the labels use
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # Enlarged 2x or more: show the real pixels (nearest) rather than a blur.
        interpolation = (cv2.INTER_AREA if scale < 1 else
                         cv2.INTER_LINEAR if scale < 2 else cv2.INTER_NEAREST)
        shown = cv2.resize(overlay_masks(image, instances, colors, (w, h)), size,
                           interpolation=interpolation)
        x0, y0 = (area_w - size[0]) // 2, (area_h - size[1]) // 2
        tile.paste(Image.fromarray(shown), (x0, y0))
        draw_boxes(draw, instances, colors, scale, (x0, y0), size)
    draw_caption(draw, rec, colors, (0, area_h + 3), area_w, caption_size, len(instances),
                 inline=wide)
    return np.asarray(tile)


def draw_boxes(draw, instances: list[dict], colors: dict, scale: float, origin, size) -> None:
    font = caption_font(11)
    x0, y0 = origin
    for inst in instances:
        box = inst.get("bbox_xyxy")
        if not box or len(box) != 4:
            continue
        name = str(inst.get("class"))
        color = colors[name]
        # Exclusive right/bottom edges: the last covered pixel is x2 - 1.
        x1 = x0 + round(box[0] * scale)
        y1 = y0 + round(box[1] * scale)
        x2 = x0 + max(round(box[2] * scale) - 1, round(box[0] * scale))
        y2 = y0 + max(round(box[3] * scale) - 1, round(box[1] * scale))
        draw.rectangle((x1, y1, x2, y2), outline=color, width=2)
        label = fit_text(printable_text(name), font, max(20, size[0] - 4))
        tag_w = round(font.getlength(label)) + 6
        tag_y = y1 - 15 if y1 - 15 >= y0 else y1  # above the box unless at the image top
        tag_x = min(x1, x0 + size[0] - tag_w)
        draw.rectangle((tag_x, tag_y, tag_x + tag_w - 1, tag_y + 14), fill=color)
        draw.text((tag_x + 3, tag_y + 1), label, font=font, fill=text_on_color(color))


def caption_line_height(size: int) -> int:
    """Room for one caption line, with the deeper descenders of Arabic and Devanagari."""
    return size + 10


def draw_caption(draw, rec: dict, colors: dict, origin, width: int, size: int,
                 n_instances: int, inline: bool) -> None:
    """'#id  k objects', then the text or label: on the next line, or after it (inline).

    Text is placed by its baseline so fonts of different scripts line up."""
    x, top = origin
    y = top + size  # baseline of the first line
    font = caption_font(size)
    rec_id = rec.get("id")
    title = f"#{rec_id}" if isinstance(rec_id, int) else printable_text(str(rec_id))
    if n_instances:
        title += f"  {n_instances} object{'s' if n_instances != 1 else ''}"
    title = fit_text(title, font, width - 4)
    draw.text((x + 2, y), title, font=font, fill=MUTED_INK, anchor="ls")
    if inline:
        shift = round(font.getlength(title)) + 12
        x, width = x + shift, width - shift
    else:
        y += caption_line_height(size)
    if rec.get("text") is not None:
        line = printable_text(str(rec["text"]))
        script = text_script(line)
        # Noto's Arabic/Devanagari glyphs are drawn smaller than DejaVu's at the same size.
        text_font = caption_font(size + 3 if script != "latin" else size, script)
        draw.text((x + 2, y), fit_text(line, text_font, width - 4), font=text_font, fill=INK,
                  anchor="ls")
    elif rec.get("label") is not None:
        label = str(rec["label"])
        draw.rectangle((x + 2, y - size + 3, x + size - 2, y), fill=colors[label])
        draw.text((x + size + 2, y), fit_text(printable_text(label), font, width - size - 4),
                  font=font, fill=INK, anchor="ls")


# ---------------------------------------------------------------- sheet

def legend_items(counts: Counter, colors: dict) -> list[tuple[str, tuple[int, int, int]]]:
    return [(f"{name} ({counts[name]})", colors[name]) for name in sorted(counts)]


def assemble_sheet(tiles: list[np.ndarray], columns: int, header: str, counts: Counter,
                   colors: dict) -> np.ndarray:
    """Header, wrapped class legend, then the tiles in rows."""
    from PIL import Image, ImageDraw

    tile_h = max(t.shape[0] for t in tiles)
    tile_w = max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / columns)
    width = max(columns * tile_w + (columns + 1) * GAP, 520)
    font = caption_font(14)
    legend_rows = layout_legend(legend_items(counts, colors), font, width - 2 * GAP)
    top = GAP + 22 + len(legend_rows) * 22 + GAP
    sheet = Image.new("RGB", (width, top + rows * (tile_h + GAP)), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((GAP, GAP), fit_text(printable_text(header), caption_font(16), width - 2 * GAP),
              font=caption_font(16), fill=INK)
    for row, items in enumerate(legend_rows):
        y = GAP + 24 + row * 22
        for x, text, color in items:
            draw.rectangle((x, y + 2, x + 13, y + 15), fill=color)
            draw.text((x + 18, y), text, font=font, fill=INK)
    for k, tile in enumerate(tiles):
        x = GAP + (k % columns) * (tile_w + GAP)
        y = top + (k // columns) * (tile_h + GAP)
        sheet.paste(Image.fromarray(tile), (x, y))
    return np.asarray(sheet)


def layout_legend(items, font, width: int) -> list[list[tuple[int, str, tuple]]]:
    """Legend entries (swatch + 'name (count)') wrapped into rows of at most width px."""
    rows: list[list[tuple[int, str, tuple]]] = []
    x = width + 1
    for text, color in items:
        text = fit_text(printable_text(text), font, width - 18)
        item_w = 18 + round(font.getlength(text)) + 16
        if x + item_w > width:
            rows.append([])
            x = 0
        rows[-1].append((GAP + x, text, color))
        x += item_w
    return rows


def stack_previews(parts: list[tuple[str, Path]], dest: Path) -> Path:
    """One sheet for a multi-part run: each part's preview under a title bar."""
    from PIL import Image, ImageDraw

    sheets = [(name, np.asarray(Image.open(path).convert("RGB"))) for name, path in parts
              if Path(path).exists()]
    if not sheets:
        raise InputError("no part wrote a preview.png", file=str(dest.parent))
    width = max(sheet.shape[1] for _, sheet in sheets)
    title_h = 30
    height = sum(sheet.shape[0] + title_h for _, sheet in sheets)
    canvas = Image.new("RGB", (width, height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = 0
    for name, sheet in sheets:
        draw.text((GAP, y + 6), f"part: {name}", font=caption_font(18), fill=INK)
        canvas.paste(Image.fromarray(sheet), (0, y + title_h))
        y += title_h + sheet.shape[0]
    atomic_write_bytes(dest, encode_image(np.asarray(canvas), "png"))
    return dest
