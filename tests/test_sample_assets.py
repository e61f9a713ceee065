"""sample_assets/: the labeled sets are exact and agree, fonts carry licenses, size stays small."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
import yaml

from imgsynth.core.boxes import xywh_to_xyxy
from imgsynth.core.masks import rle_decode, tight_bbox
from imgsynth.io.image import decode_image

ASSETS = Path(__file__).resolve().parent.parent / "sample_assets"
COCO_DIR = ASSETS / "datasets" / "shapes_coco"
YOLO_DIR = ASSETS / "datasets" / "shapes_yolo"
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")


@pytest.fixture(scope="module")
def coco():
    from pycocotools.coco import COCO

    return COCO(str(COCO_DIR / "annotations.json"))


def test_coco_boxes_are_the_tight_boxes_of_their_masks(coco):
    assert len(coco.getImgIds()) >= 10
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(
        p.name for p in (ASSETS / "objects").iterdir())
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        image = decode_image(COCO_DIR / "images" / info["file_name"])
        assert image.shape[:2] == (info["height"], info["width"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert 1 <= len(anns) <= 4
        for ann in anns:
            assert ann["id"] >= 1 and ann["iscrowd"] == 0
            mask = rle_decode(ann["segmentation"])
            assert np.array_equal(mask, coco.annToMask(ann).astype(bool))  # pycocotools agrees
            assert tight_bbox(mask) == xywh_to_xyxy(tuple(ann["bbox"]))
            assert ann["area"] == int(mask.sum()) > 0


def test_yolo_copy_agrees_with_coco(coco):
    data = yaml.safe_load((YOLO_DIR / "data.yaml").read_text())
    names = [data["names"][k] for k in range(data["nc"])]
    cats = coco.loadCats(coco.getCatIds())
    assert names == [c["name"] for c in sorted(cats, key=lambda c: c["id"])]
    assert (YOLO_DIR / data["train"]).is_dir() and (YOLO_DIR / data["val"]).is_dir()
    images = coco.loadImgs(coco.getImgIds())
    assert len(list((YOLO_DIR / "images").iterdir())) == len(images)
    for info in images:
        name = info["file_name"]
        assert (YOLO_DIR / "images" / name).read_bytes() == (COCO_DIR / "images" / name).read_bytes()
        lines = (YOLO_DIR / "labels" / name).with_suffix(".txt").read_text().splitlines()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
        assert len(lines) == len(anns)
        for line, ann in zip(lines, anns):
            values = line.split()
            assert int(values[0]) == ann["category_id"] - 1
            xy = np.array(values[1:], float).reshape(-1, 2)
            assert len(xy) >= 3 and xy.min() >= 0 and xy.max() <= 1
            xy *= (info["width"], info["height"])
            # The outline runs through pixel centres: half a pixel inside the mask's box.
            outline_box = (*xy.min(axis=0), *xy.max(axis=0))
            assert np.allclose(outline_box, xywh_to_xyxy(tuple(ann["bbox"])), atol=1.0)


def test_object_cutouts_have_soft_alpha_and_a_clear_margin():
    classes = sorted(p for p in (ASSETS / "objects").iterdir() if p.is_dir())
    assert len(classes) >= 3
    for folder in classes:
        files = sorted(folder.glob("*.png"))
        assert len(files) >= 4, folder
        for path in files:
            rgba = decode_image(path, mode="RGBA")
            alpha = rgba[..., 3]
            assert 60 <= max(alpha.shape) <= 220, path
            border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
            assert border.max() == 0, path
            assert ((alpha > 0) & (alpha < 255)).sum() > 20, path  # anti-aliased edge
            x1, y1, x2, y2 = tight_bbox(alpha > 0)
            assert max(x2 - x1, y2 - y1) >= max(alpha.shape) - 16, path  # tight-ish canvas
            assert (alpha == 255).sum() > 0.1 * alpha.size, path


def test_backgrounds_are_varied_photos():
    files = sorted((ASSETS / "backgrounds").iterdir())
    assert len(files) >= 8
    assert {p.suffix for p in files} >= {".jpg", ".png"}
    sizes = {decode_image(p).shape[:2] for p in files}
    assert len(sizes) >= 4


def test_every_font_has_its_license_next_to_it_and_in_the_readme():
    readme = (ASSETS / "README.md").read_text(encoding="utf-8")
    fonts = sorted(p for p in (ASSETS / "fonts").rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    assert len(fonts) >= 4
    for font in fonts:
        licenses = [p for p in font.parent.iterdir()
                    if p.suffix == ".txt" and ("LICENSE" in p.name.upper() or "OFL" in p.name.upper())]
        assert licenses, f"{font} has no license file beside it"
        assert font.name in readme
        assert any(str(lic.relative_to(ASSETS)) in readme for lic in licenses), font


def test_text_files_are_utf8_nfc():
    corpus = (ASSETS / "text" / "corpus.txt").read_text(encoding="utf-8").splitlines()
    assert len(corpus) >= 200
    joined = "\n".join(corpus)
    assert any(c.isdigit() for c in joined) and any(c in ",.;:!?()" for c in joined)
    for name in ("corpus.txt", "words.txt", "arabic.txt"):
        text = (ASSETS / "text" / name).read_text(encoding="utf-8")
        assert text == unicodedata.normalize("NFC", text), name
    arabic = (ASSETS / "text" / "arabic.txt").read_text(encoding="utf-8")
    assert sum("\u0600" <= c <= "\u06ff" for c in arabic) > 50


def test_sample_assets_stay_small():
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 20 * 1024 * 1024
