"""The data set browser: output folders, COCO/YOLO sets, filters, details, big manifests."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from imgsynth.core.masks import rle_encode
from imgsynth.io.image import encode_image
from tests.conftest import make_coco_dataset
from tests.studio.conftest import REPO

W, H = 64, 48


def write_output_folder(root: Path, instances_per_record: list[list[tuple[str, list[float]]]]) -> Path:
    """An imgsynth-like output folder: images, manifest.jsonl, errors.jsonl, skipped.jsonl."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(root / "manifest.jsonl", "w") as fh:
        for i, instances in enumerate(instances_per_record):
            rel = f"images/{i + 1:08d}.png"
            (root / rel).write_bytes(encode_image(rng.integers(0, 80, (H, W, 3), dtype=np.uint8), "png"))
            insts = []
            for name, box in instances:
                mask = np.zeros((H, W), bool)
                mask[int(box[1]):int(box[3]), int(box[0]):int(box[2])] = True
                insts.append({"class": name, "bbox_xyxy": box, "area": int(mask.sum()),
                              "segmentation": rle_encode(mask), "polygons": None})
            fh.write(json.dumps({"id": i + 1, "index": i, "image": rel, "width": W, "height": H,
                                 "sha256": {rel: "ab" * 32}, "seed_keys": [f"0/compose/{i}"],
                                 "source_files": ["bg.png"], "label": None, "text": None,
                                 "instances": insts, "meta": {}}) + "\n")
    (root / "errors.jsonl").write_text(json.dumps(
        {"index": 7, "error": "InputError: file 'bg.png': cannot decode", "sources": ["bg.png"]}) + "\n")
    (root / "skipped.jsonl").write_text(json.dumps(
        {"index": 8, "skipped": "no_object_placed", "detail": "4 tries"}) + "\n")
    return root


SMALL, LARGE = [4.0, 4.0, 12.0, 12.0], [0.0, 0.0, 48.0, 40.0]  # 2.1% and 62.5% of the image


def records_fixture(tmp_path: Path) -> Path:
    return write_output_folder(tmp_path / "out", [
        [("cat", SMALL)],
        [("dog", LARGE), ("cat", SMALL)],
        [("dog", SMALL), ("dog", SMALL), ("bird", SMALL)],
        [],
        [("bird", LARGE)],
    ])


def page(client, query: str = "") -> dict:
    deadline = time.monotonic() + 10
    while True:
        answer = client.get_json(f"/api/sets/0/page?size=48{query}")
        if answer["done"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_an_output_folder_pages_filters_and_shows_a_record(studio, tmp_path):
    client = studio(records_fixture(tmp_path))
    state = client.get_json("/api/state")
    assert [(i["kind"], Path(i["path"]).name) for i in state["items"]] == [("imgsynth", "out")]
    everything = page(client)
    assert everything["total"] == 5 and [i["count"] for i in everything["items"]] == [1, 2, 3, 0, 1]
    assert everything["classes"] == ["bird", "cat", "dog"]

    assert [i["n"] for i in page(client, "&class=dog")["items"]] == [1, 2]
    assert [i["n"] for i in page(client, "&class=dog&class=bird")["items"]] == [1, 2, 4]
    assert [i["n"] for i in page(client, "&min_count=2")["items"]] == [1, 2]
    assert [i["n"] for i in page(client, "&max_count=0")["items"]] == [3]
    assert [i["n"] for i in page(client, "&min_size=50")["items"]] == [1, 4]  # % of the image
    assert [i["n"] for i in page(client, "&class=cat&min_size=50")["items"]] == []
    assert [i["n"] for i in page(client, "&class=dog&max_size=10")["items"]] == [2]

    detail = client.get_json("/api/sets/0/item/1")
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    assert detail["record"] == json.loads(manifest[1])
    status, _, body = client.get(detail["links"]["image"])
    assert status == 200 and body == (tmp_path / "out" / "images" / "00000002.png").read_bytes()

    info = client.get_json("/api/sets/0")
    assert info["errors"] == {"total": 1, "rows": [{"index": 7, "error": "InputError: file 'bg.png': "
                                                     "cannot decode", "sources": ["bg.png"]}]}
    assert info["skipped"]["rows"][0]["skipped"] == "no_object_placed"
    assert set(info["links"]) == {"errors.jsonl", "skipped.jsonl"}


def test_thumbnails_draw_the_labels_only_when_asked(studio, tmp_path):
    client = studio(records_fixture(tmp_path))
    page(client)
    pictures = {}
    for labels in (0, 1):
        status, headers, body = client.get(f"/api/sets/0/thumb/1?labels={labels}&fit=128")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        pictures[labels] = np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)
    assert pictures[0].shape == (96, 128, 3)  # a small image is enlarged, as in preview.png
    differs = np.abs(pictures[1] - pictures[0]).sum(axis=2) > 60
    assert differs[:, :64].any()  # the dog's box and tint are drawn


def test_a_coco_and_a_yolo_set_are_read_with_imgsynths_readers(studio, tmp_path):
    coco = make_coco_dataset(tmp_path / "sets" / "coco", n_images=4)
    yolo = tmp_path / "sets" / "yolo"
    (yolo / "images").mkdir(parents=True)
    (yolo / "labels").mkdir()
    (yolo / "images" / "a.png").write_bytes(encode_image(np.zeros((40, 80, 3), np.uint8), "png"))
    (yolo / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")  # a quarter of the image
    (yolo / "data.yaml").write_text("names: [ship, plane]\n")
    client = studio(tmp_path / "sets")
    items = {Path(i["path"]).name: i for i in client.get_json("/api/state")["items"]}
    assert {name: i["kind"] for name, i in items.items()} == {"coco": "coco", "yolo": "yolo"}

    coco_page = page_of(client, items["coco"]["id"])
    annotations = json.loads((coco / "annotations.json").read_text())["annotations"]
    assert sum(i["count"] for i in coco_page["items"]) == len(annotations)
    assert coco_page["classes"] == ["disk", "square"]

    yolo_id = items["yolo"]["id"]
    assert [i["classes"] for i in page_of(client, yolo_id)["items"]] == [["plane"]]
    assert page_of(client, yolo_id, "&min_size=20&max_size=30")["total"] == 1  # 25% of the image
    assert page_of(client, yolo_id, "&min_size=30")["total"] == 0
    status, headers, body = client.get(f"/api/sets/{yolo_id}/thumb/0?labels=1")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    detail = client.get_json(f"/api/sets/{yolo_id}/item/0")
    assert detail["record"]["label_file"] == "labels/a.txt"


def page_of(client, set_id: int, query: str = "") -> dict:
    deadline = time.monotonic() + 10
    while True:
        answer = client.get_json(f"/api/sets/{set_id}/page?size=48{query}")
        if answer["done"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_a_broken_label_file_is_a_message_not_a_crash(studio, tmp_path):
    coco = make_coco_dataset(tmp_path / "coco", n_images=2)
    doc = json.loads((coco / "annotations.json").read_text())
    doc["annotations"][0]["category_id"] = 99
    (coco / "annotations.json").write_text(json.dumps(doc))
    client = studio(coco)
    answer = page(client)
    assert answer["items"] == [] and "category" in answer["error"]
    assert "annotations.json" in client.get_json("/api/sets/0")["failure"]


def test_a_folder_of_outputs_and_reports_lists_each(studio, tmp_path):
    write_output_folder(tmp_path / "runs" / "a", [[("cat", SMALL)]])
    write_output_folder(tmp_path / "runs" / "b" / "scenes", [[("dog", SMALL)]])
    (tmp_path / "runs" / "report").mkdir()
    (tmp_path / "runs" / "report" / "report.html").write_text("<h1>FID 12.3</h1>")
    client = studio(tmp_path / "runs")
    items = client.get_json("/api/state")["items"]
    assert sorted((i["kind"], i["rel"]) for i in items) == [
        ("imgsynth", "a"), ("imgsynth", "b/scenes"), ("report", "report")]
    report = next(i for i in items if i["kind"] == "report")
    status, headers, body = client.get(report["url"])
    assert status == 200 and body == b"<h1>FID 12.3</h1>"
    assert headers["Content-Security-Policy"].startswith("sandbox")  # runs no script as the studio


def make_big_manifest(root: Path, n: int) -> Path:
    """n records over hard links to four of sample_assets' backgrounds (two PNG, two JPEG)."""
    (root / "images").mkdir(parents=True)
    sources = []
    for name in ("bricks_600x400.png", "marble_480x360.png", "sky_640x480.jpg", "terrain_640x480.jpg"):
        shutil.copy(REPO / "sample_assets" / "backgrounds" / name, root / name)
        w, h = (int(v) for v in name.rsplit("_", 1)[1].split(".")[0].split("x"))
        sources.append((root / name, w, h))
    classes = ["cat", "dog", "bird", "fish"]
    with open(root / "manifest.jsonl", "w") as fh:
        for i in range(n):
            source, w, h = sources[i % 4]
            rel = f"images/{i + 1:08d}{source.suffix}"
            os.link(source, root / rel)
            instances = ", ".join(
                f'{{"class": "{classes[(i + j) % 4]}", "bbox_xyxy": [{20 + 30 * j}.0, 40.0, '
                f'{120 + 40 * j}.0, 160.0], "area": 12000, "segmentation": null, "polygons": '
                f'[[{20 + 30 * j}.0, 40.0, {120 + 40 * j}.0, 40.0, 70.0, 160.0]]}}'
                for j in range(1 + i % 4))
            fh.write(f'{{"id": {i + 1}, "index": {i}, "image": "{rel}", "width": {w}, "height": {h}, '
                     f'"sha256": {{"{rel}": "{"0" * 64}"}}, "seed_keys": ["0/compose/{i}"], '
                     f'"source_files": ["{source.name}"], "label": null, "text": null, '
                     f'"instances": [{instances}], "meta": {{}}}}\n')
    return root


def test_the_first_page_of_100k_records_shows_in_under_a_second(studio, tmp_path):
    root = make_big_manifest(tmp_path / "big", 100_000)
    client = studio(root)
    t0 = time.perf_counter()
    first = client.get_json("/api/sets/0/page?start=0&size=48")
    with ThreadPoolExecutor(6) as pool:  # as a browser fetches them: 6 connections
        thumbs = list(pool.map(lambda item: client.get(f"/api/sets/0/thumb/{item['n']}?labels=1"),
                               first["items"]))
    seconds = time.perf_counter() - t0
    print(f"first page of 100k records with its 48 thumbnails: {seconds:.2f} s")
    assert [item["n"] for item in first["items"]] == list(range(48))
    assert all(status == 200 and body[:2] == b"\xff\xd8" for status, _, body in thumbs)
    # What makes it fast, asserted without a clock: the first page is served before the
    # background index has read the whole manifest (0.34-0.45 s measured on 2 cores, see
    # docs/studio.md; a wall-clock bound of 1 s would fail on a loaded machine, so the bound
    # here only catches a page that waits for the whole file).
    assert first["done"] is False and first["indexed"] < 100_000
    assert seconds < 5.0

    everything = page(client, "&start=99990")
    assert everything["total"] == 100_000 and [i["id"] for i in everything["items"]] == list(range(99_991, 100_001))
    fish = page(client, "&class=fish&min_count=4")  # records with 4 labels include every class
    assert fish["total"] == 25_000


def test_a_manifest_replaced_while_browsing_is_read_again(studio, tmp_path):
    out = records_fixture(tmp_path)
    client = studio(out)
    assert page(client)["total"] == 5
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.new").write_text("\n".join(lines[3:]) + "\n")
    os.replace(out / "manifest.new", out / "manifest.jsonl")  # as a run writes it: a new file
    again = page(client)
    assert again["total"] == 2 and [i["id"] for i in again["items"]] == [4, 5]
    assert client.get_json("/api/sets/0/item/1")["record"]["id"] == 5


def test_a_coco_file_of_any_name_is_opened_as_a_data_set(studio, tmp_path):
    coco = make_coco_dataset(tmp_path / "coco", n_images=2)
    (coco / "annotations.json").rename(coco / "instances_val.json")
    client = studio(coco / "instances_val.json")
    [item] = client.get_json("/api/state")["items"]
    assert (item["kind"], item["rel"]) == ("coco", "instances_val.json")
    first = page(client)
    assert first["total"] == 2 and first["items"][0]["image"] == "images/img000.png"
    status, headers, _ = client.get("/api/sets/0/thumb/0")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert client.get_json("/api/sets/0/item/0")["links"]["image"] == "/files/0/images/img000.png"


def test_an_imagefolder_set_filters_by_its_class_labels(studio, tmp_path):
    for name, n in (("cat", 2), ("dog", 3)):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for k in range(n):
            (tmp_path / "pets" / name / f"{k}.png").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8), "png"))
    client = studio(tmp_path / "pets")
    assert [i["kind"] for i in client.get_json("/api/state")["items"]] == ["imagefolder"]
    assert [i["label"] for i in page(client)["items"]] == ["cat"] * 2 + ["dog"] * 3
    assert [i["label"] for i in page(client, "&class=dog")["items"]] == ["dog"] * 3


def test_a_voc_set_is_read(studio, tmp_path):
    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    (voc / "JPEGImages" / "a.jpg").write_bytes(encode_image(np.zeros((40, 60, 3), np.uint8), "jpg"))
    (voc / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>60</width><height>40</height></size>"
        "<object><name>boat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>30</xmax><ymax>20</ymax>"
        "</bndbox></object></annotation>")
    client = studio(voc)
    [item] = page(client)["items"]
    assert item["classes"] == ["boat"] and item["image"] == "JPEGImages/a.jpg"
    assert page(client, "&min_size=24&max_size=26")["total"] == 1  # 30x20 of 60x40: 25%
    assert client.get("/api/sets/0/thumb/0")[1]["Content-Type"] == "image/jpeg"
