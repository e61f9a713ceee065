"""Re-render latency of the recipe view, measured as the page waits for it: the render
request over HTTP (validation, samples, encoding), 12 samples at 640x480, after the first
render (imports, first build) is done. The target is 1 s on 2 cores; the best of three
edits is asserted, all three are printed (pytest -s) for docs/studio.md."""

from __future__ import annotations

import time

import pytest

from tests.studio.conftest import local_recipe

EDITS = {
    # a source key: the compose source is rebuilt and every scene is made again
    "compose.yaml source.objects_per_image": ("compose.yaml", "source.objects_per_image",
                                              ["[2, 2]", "[3, 5]", "[1, 6]"]),
    # a stage key: the scenes made before are kept, only the augment stage runs again
    "compose.yaml stages.0 GaussNoise p": ("compose.yaml", "stages.0.transforms.1.p", ["0.9", "0.1", "0.6"]),
    # an augment recipe's transform
    "augment.yaml stages.0 Rotate limit": ("augment.yaml", "stages.0.transforms.1.limit", ["10", "40", "5"]),
}


@pytest.mark.parametrize("what", list(EDITS))
def test_an_edit_rerenders_12_samples_in_under_a_second(studio, tmp_path, what):
    name, key, values = EDITS[what]
    client = studio(local_recipe(name, tmp_path))
    status, answer = client.post("/api/recipe/render", {"text": client.get_json("/api/recipe")["text"]})
    assert status == 200 and len(answer["samples"]) == 12
    text, seconds = answer["text"], []
    for value in values:
        t0 = time.perf_counter()
        status, answer = client.post("/api/recipe/render", {"text": text, "edit": {"key": key, "value": value}})
        seconds.append(time.perf_counter() - t0)
        assert status == 200 and len(answer["samples"]) == 12 and "error" not in answer
        text = answer["text"]
    print(f"{what}: 12 samples re-rendered in " + ", ".join(f"{s:.2f}" for s in seconds) + " s")
    # The target is 1 s on 2 cores (measured 0.10-0.46 s, docs/studio.md). Other processes on
    # a shared CI machine can triple a wall-clock figure, so the suite's bound is 2 s: what it
    # must catch is an edit that rebuilds and remakes everything (several seconds).
    assert min(seconds) < 2.0
