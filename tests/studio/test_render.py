"""The recipe view: samples are the run's bytes, edits keep the text, messages are validate's."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imgsynth.cli import app
from imgsynth.run import prepare, run_recipe
from imgsynth.studio.render import RecipeSession
from tests.studio.conftest import local_recipe

# Finalize-only keys: they change no sample byte, and skipping them keeps the run short.
NO_LABEL_FILES = ("output.formats=[]", "output.preview=false")


def render(client, text: str, **fields) -> dict:
    status, answer = client.post("/api/recipe/render", {"text": text, **fields})
    assert status == 200, answer
    return answer


def run_written(recipe: Path, out: Path, count: int, overrides: tuple[str, ...] = ()) -> list[dict]:
    """The manifest records `imgsynth run` writes into `out` (the files beside them)."""
    run_recipe(recipe, out, count=count, overrides=NO_LABEL_FILES + overrides, quiet=True)
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", ["compose.yaml", "augment.yaml"])
def test_the_studio_shows_the_bytes_and_records_that_run_writes(studio, tmp_path, name):
    recipe = local_recipe(name, tmp_path)
    out = tmp_path / "out"
    written = run_written(recipe, out, 16)
    client = studio(recipe)
    text = recipe.read_text()
    shown = render(client, text)["samples"] + render(client, text, start=12, count=4)["samples"]
    assert [s["index"] for s in shown] == list(range(16))  # two pages: 12, then 4 more
    for sample, record in zip(shown, written, strict=True):
        assert sample["record"] == record
        for what, rel in (("image", record["image"]), ("mask", record.get("mask"))):
            if rel is None:
                continue
            status, headers, body = client.get(sample[what])
            assert status == 200 and body == (out / rel).read_bytes(), (sample["index"], what)
    # the labelled view is a picture of the same sample (not compared: drawn for the page)
    status, headers, body = client.get(shown[0]["labels"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"


def test_an_edit_renders_only_what_it_changed(tmp_path):
    session = RecipeSession(local_recipe("compose.yaml", tmp_path))
    first = session.render(session.baseline)
    assert first["timing"]["made"] == 12 and first["timing"]["built"] == 2

    stage = session.render(first["text"], edit=("stages.0.transforms.0.p", "1.0"))
    assert stage["timing"]["built"] == 1  # the augment stage, not the compose source
    assert stage["timing"]["made"] == 0 and stage["timing"]["staged_again"] == 12

    source = session.render(stage["text"], edit=("source.objects_per_image", "[1, 1]"))
    assert source["timing"]["built"] == 1 and source["timing"]["made"] == 12
    assert {len(s["record"]["instances"]) for s in source["samples"]} == {1}

    label_files = session.render(source["text"], edit=("output.formats", "[coco]"))
    assert label_files["timing"]["files_reused"] == 12 and label_files["timing"]["written"] == 0

    jpeg = session.render(label_files["text"], edit=("output.image_format", "jpg"))
    assert jpeg["timing"]["written"] == 12 and jpeg["timing"]["made"] == 0
    assert jpeg["timing"]["staged_again"] == 0

    undo = session.render(stage["text"])  # back to 4 objects: kept, not made again
    assert undo["timing"]["files_reused"] == 12
    assert {len(s["record"]["instances"]) for s in undo["samples"]} != {1}
    session.close()


def test_a_new_seed_rebuilds_nothing_and_shows_what_run_writes_with_it(tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    session = RecipeSession(recipe)
    first = session.render(session.baseline, count=4)
    reseeded = session.render(first["text"], edit=("seed", "7"), count=4)
    # no part reads the seed when built: fonts, cutouts, datasets and models are kept
    assert reseeded["timing"]["built"] == 0 and reseeded["timing"]["made"] == 4
    out = tmp_path / "out"
    written = run_written(recipe, out, 4, ("seed=7",))
    for sample, record in zip(reseeded["samples"], written, strict=True):
        assert sample["record"] == record
        image, _ = session.file(reseeded["generation"], sample["index"], "image")
        assert image == (out / record["image"]).read_bytes(), sample["index"]
    assert [s["record"] for s in first["samples"]] != [s["record"] for s in reseeded["samples"]]
    session.close()


def test_a_form_edit_changes_one_line_and_keeps_the_comments(tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    session = RecipeSession(recipe)
    before = session.baseline
    after = session.edited(before, "source.objects_per_image", "[2, 6]")
    changed = [line for line in difflib.ndiff(before.splitlines(), after.splitlines())
               if line[:1] in "+-"]
    assert changed == ["-   objects_per_image: [4, 4]", "+   objects_per_image: [2, 6]"]
    added = session.edited(after, "source.flip_vertical", "0.25")  # a key the text lacks
    assert [line for line in difflib.ndiff(after.splitlines(), added.splitlines())
            if line[:1] in "+-"] == ["+   flip_vertical: 0.25"]
    assert prepare(recipe, overrides=["source.objects_per_image=[2, 6]",
                                      "source.flip_vertical=0.25"])[1] == _resolved(session, added)
    session.close()


def _resolved(session: RecipeSession, text: str) -> dict:
    return session.validate(text)[1]


def test_messages_are_those_of_imgsynth_validate_and_name_the_key(studio, tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    client = studio(recipe)
    typo = recipe.read_text().replace("  objects_per_image:", "  objects_per_imag:")
    answer = render(client, typo)
    broken = tmp_path / "broken.yaml"
    broken.write_text(typo)
    cli = CliRunner().invoke(app, ["validate", str(broken)])
    assert cli.exit_code == 2
    assert answer["error"].replace(str(recipe), str(broken)) in cli.output  # word for word
    assert answer["samples"] == [] and str(recipe) in answer["error"]
    [item] = answer["errors"]
    assert item["key"] == "source.objects_per_imag"
    assert item["message"].startswith("unknown key. Did you mean 'objects_per_image'?")

    reversed_range = render(client, recipe.read_text(), edit={"key": "source.objects_per_image",
                                                              "value": "[5, 2]"})
    assert [e["key"] for e in reversed_range["errors"]] == ["source.objects_per_image"]
    assert "must not exceed" in reversed_range["errors"][0]["message"]


def test_copy_as_set_gives_the_command_that_makes_the_edited_recipe(studio, tmp_path):
    recipe = local_recipe("augment.yaml", tmp_path)
    client = studio(recipe)
    text = recipe.read_text()
    for key, value in [("seed", "7"), ("stages.0.transforms.1.limit", "40"),
                       ("stages.0.min_area", "25")]:
        text = render(client, text, edit={"key": key, "value": value})["text"]
    answer = render(client, text)
    flags = answer["sets"]["flags"]
    assert flags == ["seed=7", "stages.0.min_area=25", "stages.0.transforms.1.limit=40"]
    assert answer["sets"]["command"].startswith(f"imgsynth run {recipe} --set seed=7 ")
    edited = tmp_path / "edited.yaml"
    edited.write_text(text)
    assert prepare(recipe, overrides=flags)[1] == prepare(edited)[1]


def test_save_never_replaces_a_file_without_being_asked(studio, tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    original = recipe.read_text()
    client = studio(recipe)
    tuned = render(client, original, edit={"key": "source.objects_per_image", "value": "[1, 3]"})["text"]

    status, answer = client.post("/api/recipe/save", {"text": tuned})
    assert (status, answer["saved"], answer["exists"]) == (200, False, True)
    assert recipe.read_text() == original
    status, answer = client.post("/api/recipe/save", {"text": tuned, "overwrite": True})
    assert status == 200 and recipe.read_text() == tuned

    status, answer = client.post("/api/recipe/save", {"text": original, "name": "other.yaml"})
    assert status == 200 and (tmp_path / "other.yaml").read_text() == original
    status, answer = client.post("/api/recipe/save", {"text": tuned, "name": "other.yaml"})
    assert not answer["saved"] and (tmp_path / "other.yaml").read_text() == original

    (tmp_path / "other.yaml").write_text(original + "# edited elsewhere\n")
    status, answer = client.post("/api/recipe/save", {"text": tuned})
    assert not answer["saved"] and answer["changed_on_disk"]


@pytest.mark.parametrize("name", ["../outside.yaml", "sub/x.yaml", "/tmp/x.yaml", ".hidden.yaml",
                                  "notes.txt"])
def test_save_as_takes_only_a_plain_yaml_name_beside_the_recipe(studio, tmp_path, name):
    folder = tmp_path / "recipes"
    folder.mkdir()
    recipe = local_recipe("compose.yaml", folder)
    client = studio(recipe)
    status, answer = client.post("/api/recipe/save", {"text": recipe.read_text(), "name": name})
    assert status == 400 and "not a recipe file name" in answer["error"]
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["compose.yaml"]
    assert not Path("/tmp/x.yaml").exists() or Path("/tmp/x.yaml").stat().st_mtime < recipe.stat().st_mtime


def test_an_invalid_recipe_is_not_saved(studio, tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    original = recipe.read_text()
    client = studio(recipe)
    status, answer = client.post("/api/recipe/save", {"text": original.replace("count: 200", "count: 0"),
                                                      "overwrite": True})
    assert status == 400 and "count" in answer["error"] and recipe.read_text() == original


def test_a_multi_part_recipe_renders_the_chosen_part(tmp_path):
    session = RecipeSession(local_recipe("quickstart.yaml", tmp_path))
    answer = session.render(session.baseline, part="scenes", count=2)
    assert answer["parts"] == ["augmented", "scenes", "text"] and answer["part"] == "scenes"
    assert all("/scenes/compose/" in s["record"]["seed_keys"][0] for s in answer["samples"])
    keys = {f["key"] for section in answer["form"] for f in section["fields"]}
    assert "parts.scenes.source.objects_per_image" in keys
    text = session.render(session.baseline, part="text", count=2)
    assert all(s["record"]["text"] for s in text["samples"])
    session.close()


def test_the_form_has_the_schema_keys_of_the_source_and_each_stage(tmp_path):
    session = RecipeSession(local_recipe("compose.yaml", tmp_path))
    form = session.form(session.baseline, None)
    titles = [section["title"] for section in form]
    assert titles == ["recipe", "source: compose", "stages.0: augment", "output"]
    source = {f["key"]: f for f in form[1]["fields"]}
    assert source["source.objects_per_image"]["value"] == "[4, 4]" and source["source.objects_per_image"]["present"]
    assert source["source.on_hidden"]["kind"] == "choice" and "resample" in source["source.on_hidden"]["choices"]
    assert source["source.flip_vertical"]["present"] is False  # a default, editable
    assert source["source.objects_per_image"]["description"]
    transforms = next(f for f in form[2]["fields"] if f["key"] == "stages.0.transforms")
    assert [c["key"] for c in transforms["children"][0]["children"]][:2] == [
        "stages.0.transforms.0.name", "stages.0.transforms.0.p"]
    session.close()


def test_a_missing_asset_is_reported_like_a_run_would(tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    session = RecipeSession(recipe)
    answer = session.render(session.baseline, edit=("source.backgrounds", str(tmp_path / "nowhere")))
    assert answer["samples"] == [] and "nowhere" in answer["error"]
    assert answer["errors"][0]["key"].startswith("source")
    session.close()


def test_the_text_on_disk_is_never_written_by_rendering(tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    before = recipe.read_bytes()
    session = RecipeSession(recipe)
    session.render(session.baseline, edit=("seed", "3"), count=2)
    assert recipe.read_bytes() == before
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["compose.yaml"]
    session.close()


def _own_backgrounds(tmp_path) -> tuple:
    """compose.yaml reading a copy of the sample backgrounds: (recipe, backgrounds folder)."""
    import shutil

    from tests.studio.conftest import REPO

    backgrounds = tmp_path / "backgrounds"
    shutil.copytree(REPO / "sample_assets" / "backgrounds", backgrounds)
    recipe = local_recipe("compose.yaml", tmp_path)
    recipe.write_text(recipe.read_text().replace(f"{REPO}/sample_assets/backgrounds", str(backgrounds)))
    return recipe, backgrounds


def test_an_input_file_changed_on_disk_is_read_again_at_the_next_render(tmp_path):
    import os

    import cv2

    recipe, backgrounds = _own_backgrounds(tmp_path)
    session = RecipeSession(recipe)
    before = session.render(session.baseline, count=2)
    unchanged = session.render(session.baseline, count=2)
    assert unchanged["timing"]["built"] == 0 and unchanged["timing"]["files_reused"] == 2

    # the background of sample 0, same name, other pixels, a later mtime (as an editor saves it)
    used = backgrounds / Path(before["samples"][0]["record"]["meta"]["compose"]["background"]).name
    cv2.imwrite(str(used), 255 - cv2.imread(str(used)))
    stat = used.stat()
    os.utime(used, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = session.render(session.baseline, count=2)
    assert after["timing"]["built"] == 1  # the compose source, not the augment stage
    assert after["timing"]["made"] == 2 and after["timing"]["files_reused"] == 0
    old_image, _ = session.file(before["generation"], 0, "image")
    new_image, _ = session.file(after["generation"], 0, "image")
    assert old_image != new_image
    session.close()


def test_a_background_removed_on_disk_is_no_longer_drawn_and_reload_forgets_everything(tmp_path):
    recipe, backgrounds = _own_backgrounds(tmp_path)
    session = RecipeSession(recipe)
    before = session.render(session.baseline, count=2)
    for image in backgrounds.iterdir():  # every background but one removed
        if image.name != "sky_640x480.jpg":
            image.unlink()
    seen = session.render(session.baseline, count=2)
    assert seen["timing"]["built"] == 1 and seen["timing"]["made"] == 2
    assert all("sky_640x480.jpg" in s["record"]["meta"]["compose"]["background"] for s in seen["samples"])
    assert before["samples"][0]["record"] != seen["samples"][0]["record"]
    fresh = session.render(session.baseline, count=2, reload=True)
    assert fresh["timing"]["built"] == 2 and fresh["timing"]["made"] == 2
    assert [s["record"] for s in fresh["samples"]] == [s["record"] for s in seen["samples"]]
    session.close()


def test_a_data_set_changed_on_disk_reaches_the_stages_that_draw_from_it(tmp_path):
    import os

    from tests.conftest import make_coco_dataset

    data = make_coco_dataset(tmp_path / "data")
    recipe = tmp_path / "mosaic.yaml"
    recipe.write_text(f"""
seed: 2
count: 4
source: {{type: dataset, path: {data}, format: coco}}
stages:
  - type: augment
    transforms: [{{name: imgsynth.Mosaic, size: [96, 128]}}]
output: {{formats: [coco], preview: false}}
""")
    session = RecipeSession(recipe)
    session.render(session.baseline, count=4)
    make_coco_dataset(data, seed=1)  # other images and labels, the same names
    for path in [data / "annotations.json", *(data / "images").iterdir()]:
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = session.render(session.baseline, count=4)
    # Mosaic's other images come from the source's data set (BuildContext.samples): rebuilt too
    assert after["timing"]["built"] == 2
    written = run_written(recipe, tmp_path / "out", 4)
    assert [s["record"] for s in after["samples"]] == written
    session.close()


def test_a_large_folder_is_fingerprinted_by_its_listing_not_a_stat_per_file(tmp_path, monkeypatch):
    """Over STATTED_FILES files a folder's fingerprint reads folder mtimes and the file count
    (a stat per file took 1.0 s per render at 100,000 files): an added or renamed file still
    changes it."""
    import os
    import time

    from imgsynth.studio import render

    monkeypatch.setattr(render, "STATTED_FILES", 3)
    folder = tmp_path / "many"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        (folder / "sub" / f"{i}.png").write_bytes(b"x")
    before = render.files_fingerprint([folder])
    assert render.files_fingerprint([folder]) == before
    time.sleep(0.02)  # the kernel stamps mtimes from a coarse clock (a few ms per tick)
    (folder / "sub" / "5.png").write_bytes(b"x")
    added = render.files_fingerprint([folder])
    assert added != before
    time.sleep(0.02)
    os.rename(folder / "sub" / "5.png", folder / "sub" / "6.png")
    assert render.files_fingerprint([folder]) != added
