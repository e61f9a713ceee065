"""The scene_text source: word quads, masks and texts; ranges written [lo, hi]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgsynth.core.ranges import RecipeDeprecationWarning
from imgsynth.core.rng import sample_rng
from imgsynth.core.stage import BuildContext
from imgsynth.io.image import encode_image
from imgsynth.ocr.backgrounds import collect_image_files
from imgsynth.ocr.config import SceneTextConfig

ROOT = Path(__file__).resolve().parents[2]
LATIN = str(ROOT / "sample_assets/fonts/latin/DejaVuSans.ttf")
WORDS = {"kind": "words", "path": str(ROOT / "sample_assets/text/words.txt")}
BACKGROUNDS = [str(ROOT / "sample_assets/backgrounds")]


def generate(source, index, seed=0):
    return source.generate(index, sample_rng(seed, "source", index))


def test_scene_text_words_have_quads_masks_and_texts():
    source = SceneTextConfig(
        type="scene_text", texts=[{"kind": "words", "path": str(ROOT / "sample_assets/text/words.txt")}],
        fonts=[LATIN], backgrounds=[str(ROOT / "sample_assets/backgrounds")], max_side=320,
        min_words=3, max_words=3, max_rotation=20).build(BuildContext())
    sample = generate(source, 0)
    assert max(sample.image.shape[:2]) == 320 and sample.instances
    occupied = np.zeros(sample.image.shape[:2], dtype=int)
    for inst in sample.instances:
        assert inst.class_name == "text" and inst.attributes["text"]
        quad = inst.polygons[0]
        assert quad.shape == (4, 2)
        x1, y1, x2, y2 = inst.bbox_xyxy
        # the visible text lies within its quad's extent
        assert quad[:, 0].min() - 1 <= x1 and x2 <= quad[:, 0].max() + 1
        assert quad[:, 1].min() - 1 <= y1 and y2 <= quad[:, 1].max() + 1
        occupied += inst.mask
    assert occupied.max() == 1  # words never overlap


def test_ranges_and_their_old_spellings_give_the_same_images():
    common = dict(type="scene_text", texts=[WORDS], fonts=[LATIN], backgrounds=BACKGROUNDS, max_side=256)
    new = SceneTextConfig(**common, words=[2, 4], text_height=[12, 30], rotation=[-25, 25],
                          placement_attempts=7)
    with pytest.warns(RecipeDeprecationWarning) as warned:
        old = SceneTextConfig(**common, min_words=2, max_words=4, min_text_height=12,
                              max_text_height=30, max_rotation=25, placement_tries=7)
    assert len(warned) == 4
    assert old == new
    assert old.model_dump(mode="json")["rotation"] == [-25.0, 25.0]
    a, b = new.build(BuildContext()), old.build(BuildContext())
    for index in range(3):
        x, y = generate(a, index), generate(b, index)
        assert encode_image(x.image) == encode_image(y.image)
        assert [i.bbox_xyxy for i in x.instances] == [i.bbox_xyxy for i in y.instances]


def test_old_and_new_spelling_together_are_refused():
    with pytest.raises(ValueError, match="give 'placement_attempts' only"):
        SceneTextConfig(type="scene_text", texts=[WORDS], backgrounds=BACKGROUNDS,
                        placement_attempts=3, placement_tries=4)
    with pytest.raises(ValueError, match="max_rotation must be a number >= 0"):
        SceneTextConfig(type="scene_text", texts=[WORDS], backgrounds=BACKGROUNDS, max_rotation=-5)


def test_background_folders_list_image_files_only_in_string_order(tmp_path):
    """Samples pick backgrounds by position, so the order stays what it was; a folder whose
    name looks like an image is not an image (it failed the sample before)."""
    pixel = encode_image(np.zeros((4, 4, 3), np.uint8))
    for name in ("city/a.png", "city-night.png", "city/b.JPG", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(pixel)
    (tmp_path / "folder.png").mkdir()
    assert collect_image_files([str(tmp_path)], key="k") == [
        str(tmp_path / "city-night.png"), str(tmp_path / "city/a.png"), str(tmp_path / "city/b.JPG")]
