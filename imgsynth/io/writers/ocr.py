"""Text-recognition and text-detection formats, built from manifest records.

File names always come from the sample id (images/00000001.png); a text is only ever
written *inside* a label file, so `../../x`, `/`, NUL or 300 characters are stored as
they are. How each format holds a text exactly:

- `ocr_labels` -> OUT/labels.txt, trdg's layout `images/00000001.png<space>text` (the
  text is everything after the first space). A text with a line break cannot be held:
  RecipeError, nothing is written.
- `gt_txt` -> OUT/gt.txt, `images/00000001.png<TAB>text` (PaddleOCR,
  deep-text-recognition-benchmark, SynthTIGER). A text with a line break or a tab
  cannot be held: RecipeError, nothing is written.
- `mmocr` -> OUT/mmocr_textrecog.json (MMOCR 1.x OCRDataset, task textrecog:
  data_list[{img_path, instances: [{text}]}]) and, when instances carry texts (scene
  text, word boxes), OUT/mmocr_textdet.json (task textdet: polygon, bbox, bbox_label 0,
  ignore, text). JSON holds every text exactly.
- `lmdb` -> OUT/lmdb/ in the deep-text-recognition-benchmark / PARSeq layout:
  `image-%09d` (encoded image bytes), `label-%09d` (UTF-8 text), `num-samples`, keys
  numbered 1..N over the samples that have a text, in id order (so they are contiguous
  even when samples were skipped). Holds every text exactly.
- `icdar` -> OUT/icdar/gt_00000001.txt per image: `x1,y1,x2,y2,x3,y3,x4,y4,text` per
  text instance (integer pixels, ICDAR 2015), `###` when an instance has no text. A text
  with a line break cannot be held: RecipeError.

"Line break" is every character Python's str.splitlines() splits on (\\n, \\r, \\v,
\\f, \\x1c-\\x1e, \\x85, \\u2028, \\u2029): readers of line formats split on some of them.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

from imgsynth.core.errors import RecipeError
from imgsynth.io.atomic import atomic_write_text, replace_dir, temporary_dir
from imgsynth.io.readers.base import LabelWarning
from imgsynth.io.writers import Records, image_under

LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
ICDAR_DONT_CARE = "###"


def write_labels_txt(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    lines = [f"{rec['image']} {line_safe(rec['text'], rec, 'ocr_labels')}\n"
             for rec in texted(records, "ocr_labels")]
    path = Path(out_dir) / "labels.txt"
    atomic_write_text(path, "".join(lines))
    return [path]


def write_gt_txt(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    lines = [f"{rec['image']}\t{line_safe(rec['text'], rec, 'gt_txt', forbid_tab=True)}\n"
             for rec in texted(records, "gt_txt")]
    path = Path(out_dir) / "gt.txt"
    atomic_write_text(path, "".join(lines))
    return [path]


def write_mmocr(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    recog = [{"img_path": rec["image"], "instances": [{"text": rec["text"]}]}
             for rec in records if rec.get("text") is not None]
    detect = [{"img_path": rec["image"], "height": rec["height"], "width": rec["width"],
               "instances": [mmocr_instance(inst) for inst in rec["instances"]]}
              for rec in records]
    has_texts = any(instance_text(inst) is not None for rec in records for inst in rec["instances"])
    if not recog and not has_texts:
        raise_no_text("mmocr")
    written = []
    if recog:
        written.append(_write_json(Path(out_dir) / "mmocr_textrecog.json", "TextRecogDataset",
                                   "textrecog", recog))
    if has_texts:
        written.append(_write_json(Path(out_dir) / "mmocr_textdet.json", "TextDetDataset",
                                   "textdet", detect, category=[{"id": 0, "name": "text"}]))
    return written


def write_lmdb(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    import lmdb

    out_dir = Path(out_dir)
    texted(records, "lmdb")  # the checks; the records are read twice below, one image at a time
    final = out_dir / "lmdb"
    tmp = temporary_dir(final)
    # The map size is an upper bound (the file grows as needed); keys and LMDB's pages need room.
    map_size = 2 * sum((out_dir / r["image"]).stat().st_size + len(r["text"].encode("utf-8")) + 64
                       for r in _with_text(records)) + (64 << 20)
    try:
        # lock=False: no lock.mdb (reader pids), so the folder holds only the data, byte-stable.
        env = lmdb.open(str(tmp), map_size=map_size, subdir=True, lock=False)
        with env.begin(write=True) as txn:
            number = 0
            for number, rec in enumerate(_with_text(records), start=1):
                txn.put(b"image-%09d" % number, (out_dir / rec["image"]).read_bytes())
                txn.put(b"label-%09d" % number, rec["text"].encode("utf-8"))
            txn.put(b"num-samples", str(number).encode("ascii"))
        env.close()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final)
    return [final]


def write_icdar(out_dir: Path, records: Records, classes: list[str], output) -> list[Path]:
    files = {}
    for rec in records:
        lines = []
        for inst in rec["instances"]:
            text = instance_text(inst)
            text = ICDAR_DONT_CARE if text is None else line_safe(text, rec, "icdar")
            lines.append(",".join(str(round(v)) for v in quad_of(inst)) + f",{text}\n")
        stem = image_under(rec, "icdar", ".txt")
        files[Path(out_dir) / stem.parent / f"gt_{stem.name}"] = "".join(lines)
    for path, text in files.items():  # written only once every text is known to fit
        atomic_write_text(path, text)
    return list(files)


def texted(records: Records, fmt: str) -> Iterator[dict]:
    """Records that have a text; the others are left out with a LabelWarning."""
    kept = sum(1 for _ in _with_text(records))
    if records and not kept:
        raise_no_text(fmt)
    if kept < len(records):
        warnings.warn(f"{fmt}: {len(records) - kept} sample(s) without a text are left out",
                      LabelWarning, stacklevel=3)
    return _with_text(records)


def _with_text(records: Records) -> Iterator[dict]:
    return (rec for rec in records if rec.get("text") is not None)


def raise_no_text(fmt: str):
    raise RecipeError(f"the '{fmt}' format needs a text per sample and no sample has one",
                      key="output.formats",
                      fix=f"remove '{fmt}' or use a source that makes texts (type: ocr)")


def line_safe(text: str, record: dict, fmt: str, *, forbid_tab: bool = False) -> str:
    """The text unchanged, or a RecipeError when the line format cannot hold it."""
    bad = [ch for ch in text if ch in LINE_BREAKS or (forbid_tab and ch == "\t")]
    if bad:
        names = ", ".join(f"U+{ord(ch):04X}" for ch in dict.fromkeys(bad))
        raise RecipeError(
            f"sample id {record['id']}: its text contains {names}, which the line format "
            f"'{fmt}' cannot hold without changing the label", key="output.formats",
            fix="use mmocr, lmdb or hf (they store any text exactly), or remove line breaks "
                "and tabs from the texts")
    return text


def instance_text(inst: dict) -> str | None:
    return (inst.get("attributes") or {}).get("text")


def quad_of(inst: dict) -> list[float]:
    """The instance's 4-point polygon (x1, y1, ..., x4, y4), else its box corners clockwise."""
    for poly in inst.get("polygons") or []:
        if len(poly) == 8:
            return list(poly)
    x1, y1, x2, y2 = inst["bbox_xyxy"]
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def mmocr_instance(inst: dict) -> dict:
    text = instance_text(inst)
    out = {"polygon": [round(v, 4) for v in quad_of(inst)], "bbox": inst["bbox_xyxy"],
           "bbox_label": 0, "ignore": text is None}
    if text is not None:
        out["text"] = text
    return out


def _write_json(path: Path, dataset_type: str, task: str, data_list: list[dict], **meta) -> Path:
    doc = {"metainfo": {"dataset_type": dataset_type, "task_name": task, **meta}, "data_list": data_list}
    atomic_write_text(path, json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    return path

