"""The studio in a real browser: Debian's Chromium, headless, driven by Playwright.

Skipped, saying why, without the `playwright` package (the dev extra) or without
/usr/bin/chromium (`apt-get install chromium`; .ci/run installs it). Playwright never
downloads a browser here: it starts the system's.

IMGSYNTH_STUDIO_SCREENSHOTS=docs/studio makes these scenarios write the screenshots of
docs/studio.md.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from imgsynth.run import run_recipe
from tests.studio.conftest import REPO, local_recipe, path_of

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = os.environ.get("IMGSYNTH_STUDIO_SCREENSHOTS") and Path(os.environ["IMGSYNTH_STUDIO_SCREENSHOTS"]).resolve()
NO_LABEL_FILES = ("output.formats=[]", "output.preview=false")
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert errors == []  # no script error, no refused inline style or resource


def screenshot(page, name: str) -> None:
    if SHOTS:  # resolved at import: tests change the working folder
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name))


def tile_counts(page) -> list[int]:
    return [int(n) for n in page.eval_on_selector_all("#grid .tile", "ts => ts.map(t => t.dataset.count)")]


def wait_for_render(page, after: str | None = None) -> str:
    """The grid's render generation once all its images have loaded (a newer one than `after`)."""
    page.wait_for_function("after => { const g = document.querySelector('#grid');"
                           " return g && g.dataset.shown && g.dataset.shown === g.dataset.generation"
                           " && g.dataset.shown !== after; }", arg=after)
    return page.get_attribute("#grid", "data-shown")


def test_edit_objects_per_image_and_the_grid_rerenders_with_the_new_counts(studio, page, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipe's sample_assets/ paths are relative, as for `imgsynth run`
    client = studio("recipes/compose.yaml")
    page.goto(client.server.url)
    first = wait_for_render(page)
    assert page.url.endswith("#/recipe")
    assert len(tile_counts(page)) == 12 and set(tile_counts(page)) == {4}  # objects_per_image: [4, 4]
    screenshot(page, "recipe.png")

    field = page.locator('input[name="source.objects_per_image"]')
    field.fill("[1, 2]")
    field.press("Enter")
    wait_for_render(page, first)
    counts = tile_counts(page)
    assert len(counts) == 12 and set(counts) <= {1, 2} and 1 in counts
    assert "objects_per_image: [1, 2]" in page.input_value("#yaml")
    assert re.search(r"rendered in \d\.\d\d s .*shown \d+\.\d\d s after the change",
                     page.text_content("#status"))

    field.fill("[5, 2]")  # a mistake: the message of imgsynth validate, next to the key
    field.press("Enter")
    message = page.locator('.field[data-key="source.objects_per_image"] .msg')
    message.wait_for(state="visible")
    assert "must not exceed the second" in message.text_content()
    assert "recipe key" in page.text_content("#errors") or "invalid recipe" in page.text_content("#errors")
    screenshot(page, "recipe-error.png")
    field.fill("[1, 2]")
    field.press("Enter")
    page.wait_for_function("() => document.querySelector('#errors').hidden")
    page.wait_for_function("() => !document.querySelector('#grid').classList.contains('stale')")
    assert wait_for_render(page)

    page.click("#labels")  # labels off: the images exactly as the run writes them
    sources = page.eval_on_selector_all("#grid img", "imgs => imgs.map(i => i.getAttribute('src'))")
    assert all(src.endswith("/image") for src in sources)

    page.click("#copy-set")
    assert page.text_content("#command") == (
        "imgsynth run recipes/compose.yaml --set 'source.objects_per_image=[1, 2]' --out out/compose")

    shown = page.get_attribute("#grid", "data-shown")
    page.click("#next")  # the next 12 indices
    wait_for_render(page, shown)
    assert page.input_value("#start") == "12"
    assert page.eval_on_selector("#grid .tile", "t => t.dataset.index") == "12"


def test_save_asks_before_replacing_and_the_saved_recipe_runs_to_what_was_shown(studio, page, tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    original = recipe.read_text()
    client = studio(recipe)
    page.goto(client.server.url)
    first = wait_for_render(page)
    field = page.locator('input[name="source.objects_per_image"]')
    field.fill("[2, 3]")
    field.press("Enter")
    wait_for_render(page, first)

    page.once("dialog", lambda dialog: dialog.dismiss())  # "... exists. Replace it?" - no
    page.click("#save")
    page.wait_for_selector("#toast:not([hidden])")
    assert "not saved" in page.text_content("#toast") and recipe.read_text() == original

    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#save")
    page.wait_for_function("() => document.querySelector('#command').textContent.startsWith('saved')")
    assert asked and "exists" in asked[0] and "Replace it?" in asked[0]
    assert "objects_per_image: [2, 3]" in recipe.read_text()
    assert recipe.read_text().count("#") == original.count("#")  # the comments are kept

    shown = [(img, int(count)) for img, count in page.eval_on_selector_all(
        "#grid .tile", "ts => ts.map(t => [t.querySelector('img').dataset.image, t.dataset.count])")][:3]
    out = tmp_path / "out"
    run_recipe(recipe, out, count=3, overrides=NO_LABEL_FILES, quiet=True)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for (image_url, count), record in zip(shown, records, strict=True):
        status, _, body = client.get(path_of(image_url))
        assert body == (out / record["image"]).read_bytes() and count == len(record["instances"])


@pytest.fixture(scope="module")
def output_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studio-browse")
    out = folder / "out" / "compose"
    run_recipe(local_recipe("compose.yaml", folder), out, count=12, overrides=NO_LABEL_FILES, quiet=True)
    (out / "skipped.jsonl").write_text(json.dumps({"index": 12, "skipped": "no_object_placed",
                                                   "detail": "30 tries"}) + "\n")
    return out


def test_browse_an_output_folder_filter_by_class_and_open_a_record(studio, page, output_folder,
                                                                  monkeypatch):
    monkeypatch.chdir(output_folder.parents[1])
    client = studio("out/compose")  # as a user opens it: imgsynth studio out/compose
    page.goto(client.server.url)
    page.wait_for_url(re.compile(r"#/set/0$"))
    page.wait_for_selector("#grid .tile")
    page.wait_for_function("() => Array.from(document.querySelectorAll('#grid img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("#grid .tile").count() == 12
    assert "1–12 of 12" in page.text_content("#page-info")
    page.click("details.skipped-jsonl summary")
    assert "no_object_placed" in page.text_content("details.skipped-jsonl")
    screenshot(page, "data-set.png")

    records = [json.loads(line) for line in (output_folder / "manifest.jsonl").read_text().splitlines()]
    with_star = [r["id"] for r in records if any(i["class"] == "star" for i in r["instances"])]
    page.check('#class-filter input[value="star"]')
    page.wait_for_function("n => document.querySelectorAll('#grid .tile').length === n", arg=len(with_star))
    page.wait_for_function("() => document.querySelector('#page-info').textContent.includes('matching')")
    shown_ids = page.eval_on_selector_all("#grid .tile .count", "cs => cs.map(c => c.textContent)")
    assert [int(re.match(r"#(\d+)", text)[1]) for text in shown_ids] == with_star
    screenshot(page, "data-set-filtered.png")

    page.click("#grid .tile >> nth=1")
    page.wait_for_url(re.compile(rf"#/set/0/item/{with_star[1] - 1}$"))
    page.wait_for_selector("#record")
    assert json.loads(page.text_content("#record"))["id"] == with_star[1]
    page.wait_for_function("() => document.querySelector('#detail img').naturalWidth > 0")
    screenshot(page, "detail.png")
    page.click("#item-next")  # the next record of the filtered page
    page.wait_for_url(re.compile(rf"#/set/0/item/{with_star[2] - 1}$"))


def test_an_evaluation_report_is_shown(studio, page, tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.html").write_text("<!DOCTYPE html><html><body><h1>imgsynth evaluation</h1>"
                                        "<table><tr><th>fid</th><td>12.3</td></tr></table></body></html>")
    client = studio(report)
    page.goto(client.server.url)
    page.wait_for_url(re.compile(r"#/report/0$"))
    frame = page.frame_locator(".report iframe")
    assert frame.locator("h1").text_content() == "imgsynth evaluation"


def test_the_home_page_lists_a_folders_data_sets_and_recipes_and_opens_one(studio, page, output_folder,
                                                                          monkeypatch):
    monkeypatch.chdir(output_folder.parents[1])  # compose.yaml and out/compose
    client = studio(None)  # imgsynth studio, in that folder
    page.goto(client.server.url)
    page.wait_for_selector("#view .list li")
    entries = page.eval_on_selector_all("#view .list li", "lis => lis.map(li => li.textContent)")
    assert entries == ["recipecompose.yaml", "imgsynthout/compose"]
    screenshot(page, "home.png")
    page.click("text=compose.yaml")
    page.wait_for_url(re.compile(r"#/recipe$"))
    wait_for_render(page)
    assert page.text_content("#recipe-path") == "compose.yaml"
