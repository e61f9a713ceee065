"""The ocr source built from its config: exact labels, fonts that cover the text, boxes."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from imgsynth.core.errors import InputError
from imgsynth.core.rng import sample_rng
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.ocr.config import OcrConfig
from imgsynth.ocr.fonts import missing_characters

ROOT = Path(__file__).resolve().parents[2]
LATIN = str(ROOT / "sample_assets/fonts/latin/DejaVuSans.ttf")
SERIF = str(ROOT / "sample_assets/fonts/latin/DejaVuSerif.ttf")  # has no Arabic glyphs
ARABIC = str(ROOT / "sample_assets/fonts/arabic/NotoSansArabic-Regular.ttf")
DEVANAGARI = "नमस्ते दुनिया"

LINES = [
    "Cafe\u0301 de\u0301ja\u0300 vu",  # decomposed accents: the label is the NFC form
    "Invoice ZL-4958: 878 x @ $583.45",
    "مرحبا بالعالم",  # right to left: the label stays in logical order
    "  padded line  ",
    "../../etc/passwd",
    "a/b\\c:d*e?f",
    "x" * 300,
]


def build(**options):
    return OcrConfig(type="ocr", **options).build(BuildContext())


def generate(source, index, seed=0):
    return source.generate(index, sample_rng(seed, "source", index))


@pytest.fixture
def lines_file(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return str(path)


def test_every_label_is_the_source_line_in_nfc_and_images_have_the_height(lines_file):
    source = build(texts=[{"kind": "lines", "path": lines_file}], fonts=[LATIN, ARABIC], height=40)
    for index, line in enumerate(LINES):
        sample = generate(source, index)
        assert sample.text == unicodedata.normalize("NFC", line.strip())
        assert sample.image.dtype == np.uint8 and sample.image.shape[0] == 40 and sample.image.shape[2] == 3
        assert sample.image.shape[1] > 8
        # ink was drawn: the line is not a flat background
        assert sample.image.min() < 120


def test_arabic_text_is_drawn_with_a_font_that_covers_it_and_devanagari_is_skipped(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_text("مرحبا بالعالم\nAb\n" + DEVANAGARI + "\n", encoding="utf-8")
    assert missing_characters(SERIF, "ﻣﺮﺣﺒﺎ") and missing_characters(ARABIC, "Ab")
    source = build(texts=[{"kind": "lines", "path": str(path)}], fonts=[SERIF, ARABIC])
    arabic = [generate(source, 0, seed=s).meta for s in range(8)]
    latin = [generate(source, 1, seed=s).meta for s in range(8)]
    assert {m["font"] for m in arabic} == {Path(ARABIC).name}
    assert {m["font"] for m in latin} == {Path(SERIF).name}
    # the first font drawn was sometimes the wrong one, and was replaced
    assert any(m["font_rerouted"] for m in arabic) and any(m["font_rerouted"] for m in latin)
    with pytest.raises(SkipSample) as skip:
        generate(source, 2)
    assert skip.value.reason == "no_font_covers_text"


def test_control_characters_are_skipped_not_drawn():
    source = build(texts=[{"kind": "template", "templates": ["tab\there"]}])
    with pytest.raises(SkipSample) as skip:
        generate(source, 0)
    assert skip.value.reason == "control_character"


def test_character_and_word_boxes_follow_the_text():
    text = "Total 42.50 EUR"
    source = build(texts=[{"kind": "template", "templates": [text]}], fonts=[LATIN], boxes="both",
                   box_masks=True, background="plain")
    sample = generate(source, 0)
    chars = [i for i in sample.instances if i.class_name == "char"]
    words = [i for i in sample.instances if i.class_name == "word"]
    assert [c.attributes["text"] for c in chars] == [ch for ch in text if ch != " "]
    assert [w.attributes["text"] for w in words] == text.split()
    lefts = [c.bbox_xyxy[0] for c in chars]
    assert lefts == sorted(lefts)
    h, w = sample.image.shape[:2]
    for inst in sample.instances:
        x1, y1, x2, y2 = inst.bbox_xyxy
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        # the box holds dark text pixels on the white background
        assert sample.image[int(y1):int(y2), int(x1):int(x2)].min() < 100
        assert inst.mask is not None and inst.mask.any()
    for word in words:  # a word box encloses its characters
        inside = [c for c in chars if word.bbox_xyxy[0] <= c.bbox_xyxy[0] and c.bbox_xyxy[2] <= word.bbox_xyxy[2]]
        assert "".join(c.attributes["text"] for c in inside) == word.attributes["text"]


def test_right_to_left_word_boxes_carry_logical_words():
    source = build(texts=[{"kind": "template", "templates": ["مرحبا بالعالم"]}], fonts=[ARABIC], boxes="both")
    sample = generate(source, 0)
    assert sample.text == "مرحبا بالعالم"
    words = sorted(sample.instances, key=lambda i: i.bbox_xyxy[0])
    # drawn right to left: the first logical word is the rightmost box
    assert [w.attributes["text"] for w in words] == ["بالعالم", "مرحبا"]
    assert sample.meta["char_boxes_omitted"] == "right_to_left"


def test_same_seed_same_pixels_and_trdg_global_random_left_alone():
    options = dict(texts=[{"kind": "words", "dictionary": "en", "min_words": 2, "max_words": 3}],
                   fonts=[LATIN], distortion="random", skew_angle=5, random_skew=True,
                   text_color="#000000,#777777", background="quasicrystal", blur=1, random_blur=True)
    a, b = build(**options), build(**options)
    random.seed(123)
    before = random.getstate()
    first = [generate(a, i) for i in range(4)]
    assert random.getstate() == before
    random.random()  # a different global state must not change the samples
    second = [generate(b, i) for i in reversed(range(4))][::-1]
    for x, y in zip(first, second):
        assert x.text == y.text and np.array_equal(x.image, y.image)
    assert len({s.image.tobytes() for s in first}) == 4


@pytest.mark.parametrize("background", ["gaussian_noise", "plain", "quasicrystal", "image"])
def test_every_background_and_vertical_text(background):
    source = build(texts=[{"kind": "charset", "charset": "AB12", "min_length": 3, "max_length": 5}],
                   fonts=[LATIN], background=background, orientation="vertical", height=36,
                   background_images=[str(ROOT / "sample_assets/backgrounds")])
    sample = generate(source, 0)
    assert sample.image.shape[1] == 36 and sample.image.shape[0] > 36
    assert re.fullmatch(r"[AB12]{3,5}", sample.text)


def test_recipe_mistakes_are_named():
    with pytest.raises(ValidationError, match="unknown placeholder"):
        OcrConfig(type="ocr", texts=[{"kind": "template", "templates": ["{nope}"]}])
    with pytest.raises(ValidationError, match="background_images"):
        OcrConfig(type="ocr", texts=[{"kind": "charset", "charset": "a"}], background="image")
    with pytest.raises(InputError, match="no-such-fonts"):
        build(texts=[{"kind": "charset", "charset": "a"}], fonts=["no-such-fonts"])


def test_trdg_runs_on_current_pillow_without_its_handwritten_message():
    code = ("from imgsynth.ocr import trdg_compat; trdg_compat.install();"
            "from trdg.generators import GeneratorFromStrings;"
            f"img, label = next(GeneratorFromStrings(['Hello'], fonts=[{LATIN!r}], size=32));"
            "print(img.size[1], label)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "32 Hello\n"


@pytest.mark.parametrize("options", [{"word_split": True}, {"orientation": "vertical", "height": 40}])
def test_word_boxes_with_whole_word_drawing_and_vertical_text(options):
    source = build(texts=[{"kind": "template", "templates": ["IN  {id} OUT"]}], fonts=[LATIN],
                   boxes="word", background="plain", **options)
    sample = generate(source, 0)
    words = [i.attributes["text"] for i in sample.instances]
    assert words == sample.text.split()  # the double space makes no empty word
    axis = 1 if options.get("orientation") == "vertical" else 0
    starts = [i.bbox_xyxy[axis] for i in sample.instances]
    assert starts == sorted(starts)
