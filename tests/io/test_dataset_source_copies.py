"""The dataset source decodes an image once for all its copies, and each copy is its own."""

from __future__ import annotations

import numpy as np

from imgsynth.core.stage import BuildContext
from imgsynth.io.source import DatasetSourceConfig

ASSETS = "sample_assets/datasets/shapes_coco"


def source(copies: int):
    config = DatasetSourceConfig.model_validate({"type": "dataset", "path": ASSETS, "format": "coco",
                                                 "copies": copies})
    return config.build(BuildContext())


def test_copies_of_an_image_decode_it_once(monkeypatch):
    """Copies are consecutive indices: decoding (most of a sample's cost) is done once per
    image, not once per copy; the samples are those a fresh read gives."""
    src, fresh = source(4), source(4)
    loads = []
    load = src.dataset.load
    monkeypatch.setattr(src.dataset, "load", lambda i: loads.append(i) or load(i))
    for index in range(len(src)):
        a, b = src.generate(index, None), fresh.generate(index, None)
        assert np.array_equal(a.image, b.image) and a.meta == b.meta and a.index == b.index
        assert [i.bbox_xyxy for i in a.instances] == [i.bbox_xyxy for i in b.instances]
        assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.instances, b.instances))
    assert loads == list(range(len(src.dataset)))


def test_each_copy_is_its_own_sample():
    """A stage changing one copy in place (image, masks) leaves the next copy as read."""
    src = source(3)
    first = src.generate(0, None)
    first.image[:] = 0
    for inst in first.instances:
        if inst.mask is not None:
            inst.mask[:] = False
    second = src.generate(1, None)
    assert second.image.any()
    assert any(inst.mask is not None and inst.mask.any() for inst in second.instances)
