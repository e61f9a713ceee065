"""Writers -> readers round trips on odd but valid samples: the minimal cases a seeded fuzz
found, and a bounded seeded fuzz over every detection format (COCO read by imgsynth and by
pycocotools, YOLO detect and segment, VOC)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings

import numpy as np
import pytest

from imgsynth.core.boxes import clip_xyxy, is_empty
from imgsynth.core.masks import tight_bbox
from imgsynth.core.sample import Instance, Sample
from imgsynth.io.readers import read_dataset
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers.coco import write_coco
from imgsynth.io.writers.voc import write_voc
from imgsynth.io.writers.yolo import write_yolo_detect, write_yolo_segment
from imgsynth.recipes.schema import OutputConfig


def _coco_masks(path) -> list[np.ndarray]:
    """Every annotation's mask as pycocotools (what COCO trainers use) decodes it."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    return [gt.annToMask(ann).astype(bool) for ann in gt.loadAnns(gt.getAnnIds())]


def _masked(index: int, mask: np.ndarray, name: str = "thing") -> Sample:
    h, w = mask.shape
    image = np.zeros((h, w, 3), dtype=np.uint8)
    return Sample(index=index, image=image,
                  instances=[Instance(name, tight_bbox(mask), mask=mask)])


def _odd_masks() -> dict[str, np.ndarray]:
    masks = {}
    m = np.zeros((11, 57), bool)
    m[0, :] = True
    m[:, -1] = True
    masks["one-pixel L along the border"] = m
    m = np.zeros((20, 20), bool)
    m[2:12, 2:12] = True
    m[17, 18] = True
    masks["square and a one-pixel part"] = m
    m = np.zeros((6, 6), bool)
    m[np.arange(6), np.arange(6)] = True
    masks["one-pixel diagonal line"] = m
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    masks["one pixel"] = m
    masks["full 1x1 image"] = np.ones((1, 1), bool)
    m = np.zeros((9, 9), bool)
    m[0:3, 0:3] = True
    m[3:6, 3:6] = True  # touches the first part at one corner only
    masks["parts touching at a corner"] = m
    m = np.ones((9, 12), bool)
    m[3:6, 4:8] = False
    masks["ring with a hole"] = m
    return masks


@pytest.mark.parametrize("name", list(_odd_masks()))
def test_coco_polygon_encoding_gives_pycocotools_the_exact_mask(tmp_path, write_output, name):
    """coco_segmentation: polygon wrote outlines through pixel centers (pycocotools then lost a
    row and a column of every object, and every one-pixel-wide part), dropped parts too small
    for a 3-point contour, and filled holes. Outlines now run along pixel edges; a mask no
    polygon can hold (a hole) keeps its RLE."""
    mask = _odd_masks()[name]
    out = tmp_path / "out"
    records = write_output(out, [_masked(0, mask)])
    write_coco(out, records, ["thing"], OutputConfig(coco_segmentation="polygon"))
    [got] = _coco_masks(out / "annotations.json")
    assert np.array_equal(got, mask)
    segmentation = json.loads((out / "annotations.json").read_text())["annotations"][0]["segmentation"]
    assert isinstance(segmentation, dict if name == "ring with a hole" else list)


def test_yolo_segment_outline_keeps_every_part_of_a_mask(tmp_path, write_output):
    """A part too small for a 3-point contour (a pixel, a one-pixel line) was left out of the
    joined YOLO outline: the object's box and mask came back without it."""
    mask = np.zeros((40, 73), bool)
    mask[2:5, 21:24] = True
    mask[37, 72] = True  # a lone pixel in the far corner
    mask[20, 40:50] = True  # a one-pixel-high line
    out = tmp_path / "out"
    records = write_output(out, [_masked(0, mask)])
    write_yolo_segment(out, records, ["thing"], OutputConfig(formats=["yolo_seg"]))
    [back] = read_dataset(out, "yolo").load(0).instances
    assert back.bbox_xyxy == tight_bbox(mask)
    assert not (mask & ~back.mask).any()  # every object pixel comes back


def _one_box(name: str) -> Sample:
    return Sample(index=0, image=np.zeros((4, 5, 3), dtype=np.uint8),
                  instances=[Instance(name, (1.0, 1.0, 3.0, 3.0))], label=name)


@pytest.mark.parametrize("name", ["nel\x85x", "line\u2028sep", "中文 é 🦊", "yes", "1"])
def test_yolo_data_yaml_names_read_back_exactly(tmp_path, write_output, name):
    """U+0085 (NEL) is a YAML line break: written raw, data.yaml read the class back as
    'nel x', a silently different name for ultralytics and for imgsynth's reader."""
    import yaml

    records = write_output(tmp_path, [_one_box(name)])
    write_yolo_detect(tmp_path, records, [name], OutputConfig())
    assert yaml.safe_load((tmp_path / "data.yaml").read_text(encoding="utf-8"))["names"] == {0: name}
    assert read_dataset(tmp_path, "yolo").classes == [name]


def test_csv_label_with_a_carriage_return_stays_one_field(tmp_path, write_output):
    """A label holding '\\r' was written unquoted (the line terminator is '\\n'): a CSV reader
    split the row there and read the label 'cr'."""
    import csv

    from imgsynth.io.writers.classification import write_csv

    records = write_output(tmp_path, [_one_box("cr\rname")])
    write_csv(tmp_path, records, ["cr\rname"], OutputConfig())
    with open(tmp_path / "labels.csv", encoding="utf-8", newline="") as fh:
        assert list(csv.reader(fh)) == [["file", "label"], ["images/00000001.png", "cr\rname"]]


def test_an_empty_class_name_is_refused_for_voc_naming_the_key(tmp_path, write_output):
    """An empty name was written as <name/>, and the VOC file was then unreadable
    ('object #0 has no <name>')."""
    from imgsynth.core.errors import RecipeError
    from imgsynth.io.writers import check_class_names

    with pytest.raises(RecipeError, match="is empty") as err:
        check_class_names(["voc"], ["cat", ""])
    assert err.value.key == "output.formats" and "rename the class" in str(err.value)


# --- the bounded seeded fuzz ---------------------------------------------------------------

NAMES = ["é", "中文", "🦊 fox", "with space", "a,b", 'quo"te', "<tag>", "a&b", "x" * 300,
         "yes", "null", "1", "a: b", "#hash", "line\u2028sep"]  # all valid for VOC too
SIZES = [(1, 1), (2000, 3), (3, 2000), (7, 1), (1, 7), (2, 2), (64, 48), (100, 5)]


def _fuzz_mask(rng, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    kind = rng.integers(8)
    if kind == 0:
        m[:] = True
    elif kind == 1:
        m[rng.integers(h), rng.integers(w)] = True
    elif kind == 2:  # several parts, some of one pixel
        for _ in range(rng.integers(2, 5)):
            y, x = rng.integers(h), rng.integers(w)
            m[y:y + rng.integers(1, 4), x:x + rng.integers(1, 4)] = True
    elif kind == 3:  # a hole
        m[:] = True
        m[h // 3:max(h // 3 + 1, 2 * h // 3), w // 3:max(w // 3 + 1, 2 * w // 3)] = h < 3 or w < 3
    elif kind == 4:  # one-pixel diagonal
        k = min(h, w)
        m[np.arange(k), np.arange(k)] = True
    elif kind == 5:  # one-pixel L on the border
        m[0, :] = True
        m[:, -1] = True
    elif kind == 6:
        m = rng.random((h, w)) < 0.3
    else:
        yy, xx = np.mgrid[:h, :w]
        m = (yy - rng.uniform(0, h)) ** 2 + (xx - rng.uniform(0, w)) ** 2 <= rng.uniform(0.5, 20) ** 2
    return m


def _fuzz_samples(seed: int, n: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(n):
        h, w = SIZES[rng.integers(len(SIZES))] if rng.random() < 0.4 else rng.integers(1, 60, 2)
        instances = []
        for _ in range(rng.integers(0, 4)):
            name = NAMES[rng.integers(len(NAMES))]
            if rng.random() < 0.6:
                mask = _fuzz_mask(rng, h, w)
                box = tight_bbox(mask) or (0.0, 0.0, 0.0, 0.0)  # an empty mask: left out
                inst = Instance(name, box, mask=mask, iscrowd=bool(rng.random() < 0.3))
            else:  # float, sub-pixel, zero-size, on or over the border
                x1, x2 = sorted(rng.uniform(-3, w + 3, 2))
                y1, y2 = sorted(rng.uniform(-3, h + 3, 2))
                kind = rng.integers(4)
                x2 = x1 if kind == 0 else x1 + rng.uniform(0.01, 0.9) if kind == 1 else x2
                inst = Instance(name, (x1, y1, x2, y2))
            inst.truncated, inst.difficult = bool(rng.random() < 0.3), bool(rng.random() < 0.2)
            inst.occluded = float(rng.choice([0.0, 0.05, 0.06]))
            instances.append(inst)
        samples.append(Sample(index=index, image=np.zeros((h, w, 3), np.uint8), instances=instances))
    return samples


def _kept(rec: dict, keep) -> list[tuple[dict, tuple]]:
    """(instance record, its box clipped to the image) of the instances a format keeps."""
    out = []
    for inst in rec["instances"]:
        box = tuple(inst["bbox_xyxy"])
        clipped = clip_xyxy(box, rec["width"], rec["height"])
        if not is_empty(box) and not is_empty(clipped) and keep(clipped, rec):
            out.append((inst, clipped))
    return out


def _yolo_keeps(box, rec) -> bool:  # a size of 0 at 6 decimals is left out
    return round((box[2] - box[0]) / rec["width"], 6) > 0 and round((box[3] - box[1]) / rec["height"], 6) > 0


def _voc_keeps(box, rec) -> bool:  # a box under one pixel after rounding is left out
    return all(math.floor(b + 0.5) > math.floor(a + 0.5) for a, b in ((box[0], box[2]), (box[1], box[3])))


@pytest.mark.parametrize("seed", [0, 1])
def test_seeded_round_trip_fuzz_every_detection_format(tmp_path, write_output, seed):
    """Odd samples (1x1 to 2000x3 images, empty/full/one-pixel/holed/multi-part masks, crowd
    RLEs, float/sub-pixel/zero/border boxes, unicode and XML-special class names) through
    every detection writer and back: the same objects, classes, boxes (to the format's
    precision), pixel-equal masks, crowd and VOC flags."""
    from pycocotools.coco import COCO

    samples = _fuzz_samples(seed, 150)
    out = tmp_path / "out"
    records = write_output(out, samples)
    classes = list(NAMES)
    poly = tmp_path / "poly"
    (poly / "images").mkdir(parents=True)
    for rec in records:
        (poly / rec["image"]).write_bytes((out / rec["image"]).read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)  # empty boxes are left out, with a warning
        write_coco(out, records, classes, OutputConfig())
        write_coco(poly, records, classes, OutputConfig(coco_segmentation="polygon"))
        write_yolo_detect(out, records, classes, OutputConfig())
        write_yolo_segment(out, records, classes, OutputConfig(formats=["yolo", "yolo_seg"]))
        write_voc(out, records, classes, OutputConfig())
        coco = read_dataset(out, "coco")
        coco_poly = read_dataset(poly, "coco")
        yolo = read_dataset(out, "yolo")
        yolo_seg = read_dataset(out / "yolo_seg", "yolo")
        voc = read_dataset(out, "voc", classes=classes)
        with contextlib.redirect_stdout(io.StringIO()):
            pycoco = {"rle": COCO(str(out / "annotations.json")),
                      "polygon": COCO(str(poly / "annotations.json"))}
    assert coco.classes == coco_poly.classes == yolo.classes == yolo_seg.classes == classes
    for i, (rec, sample) in enumerate(zip(records, samples)):
        w, h = rec["width"], rec["height"]
        masks = [inst.mask for inst in sample.instances
                 if not is_empty(clip_xyxy(tuple(round(v, 4) for v in inst.bbox_xyxy), w, h))]
        for ds, encoding in ((coco, "rle"), (coco_poly, "polygon")):
            back = ds.load(i).instances
            kept = _kept(rec, lambda box, rec: True)
            assert [b.class_name for b in back] == [inst["class"] for inst, _ in kept]
            assert [b.iscrowd for b in back] == [inst["iscrowd"] for inst, _ in kept]
            for got, (inst, box), mask in zip(back, kept, masks):
                np.testing.assert_allclose(got.bbox_xyxy, box, atol=1e-3)
                assert (got.mask is None) == (mask is None)
                assert mask is None or np.array_equal(got.mask, mask), (encoding, rec["id"])
            gt = pycoco[encoding]
            anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=[rec["id"]])) if a["segmentation"]]
            want = [inst.mask for inst in sample.instances if inst.mask is not None and inst.mask.any()]
            assert len(anns) == len(want)
            for ann, mask in zip(anns, want):
                assert np.array_equal(gt.annToMask(ann).astype(bool), mask), (encoding, rec["id"])
                assert ann["area"] == mask.sum()
        kept = _kept(rec, _yolo_keeps)
        back = yolo.load(i).instances
        assert [b.class_name for b in back] == [inst["class"] for inst, _ in kept]
        for got, (_, box) in zip(back, kept):
            np.testing.assert_allclose(got.bbox_xyxy, box, atol=max(w, h) * 1e-6 + 1e-9)
        back = yolo_seg.load(i).instances
        kept = _kept(rec, _yolo_keeps)
        assert [b.class_name for b in back] == [inst["class"] for inst, _ in kept]
        for got, (inst, _) in zip(back, kept):
            mask = sample.instances[rec["instances"].index(inst)].mask
            if mask is not None:  # a box of whole pixels, every pixel (holes are filled)
                assert got.bbox_xyxy == tight_bbox(mask) and not (mask & ~got.mask).any()
        kept = _kept(rec, _voc_keeps)
        back = voc.load(i).instances
        assert [b.class_name for b in back] == [inst["class"] for inst, _ in kept]
        for got, (inst, box) in zip(back, kept):
            np.testing.assert_allclose(got.bbox_xyxy, box, atol=0.5 + 1e-9)
            assert (got.truncated, got.difficult, got.occluded > 0) == (
                inst["truncated"], inst["difficult"], inst["occluded"] > 0.05)


def test_a_coco_polygon_reads_as_the_pixels_pycocotools_decodes(tmp_path):
    """COCO polygons run along pixel edges (pixel i spans i..i+1). The reader rounded
    vertex - 0.5 half-to-even and filled the outline too: a 20x15 rectangle came back as
    21x17 pixels (a row more at the top, one at the bottom, a column at the right)."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    polygons = [[10, 5, 30, 5, 30, 20, 10, 20], [40, 30, 60, 30, 40, 45]]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
           "categories": [{"id": 1, "name": "thing"}],
           "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "bbox": [0, 0, 1, 1], "segmentation": [p]} for k, p in enumerate(polygons)]}
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    back = read_dataset(tmp_path / "annotations.json").load(0).instances
    want = _coco_masks(tmp_path / "annotations.json")
    assert back[0].mask.sum() == 20 * 15
    for got, mask in zip(back, want):
        assert np.array_equal(got.mask, mask)


def test_a_pixel_center_on_a_long_sloped_edge_is_in_the_mask():
    """Pixel (row 35, column 11) has its center (11.5, 35.5) exactly on the edge
    (29, -2)-(37, 39)... of this polygon: the rule keeps it. Dividing the slope before
    multiplying rounded the crossing past the center and lost it."""
    from imgsynth.core.masks import polygons_to_mask

    polygon = np.array([[43.0, 7.0], [1.0, 45.0], [29.0, -2.0], [37.0, 39.0], [5.0, 47.0], [33.0, 25.0]])
    assert polygons_to_mask([polygon], 54, 35)[35, 11]


def test_a_small_polygon_on_a_large_image_is_rasterized_in_its_window():
    """The scanlines cover the polygon's bounding window, not the whole image: a 30-vertex
    polygon on a 4000x4000 image takes milliseconds, and matches the same polygon on a
    canvas just large enough for it."""
    import time

    from imgsynth.core.masks import polygons_to_mask

    t = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    polygon = np.stack([3000 + 50 * np.cos(t), 3500 + 40 * np.sin(t)], 1)
    start = time.perf_counter()
    big = polygons_to_mask([polygon], 4000, 4000)
    elapsed = time.perf_counter() - start
    small = polygons_to_mask([polygon - (2900, 3400)], 200, 200)
    assert np.array_equal(big[3400:3600, 2900:3100], small) and big.sum() == small.sum()
    assert elapsed < 0.05  # the whole-image scanlines took ~0.1 s here
