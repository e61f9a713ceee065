"""imgsynth.torch.BatchAugment: per-sample parameters, labels that follow, box formats kept."""

import pytest
import torch

from imgsynth.torch import BatchAugment


def test_batched_path_draws_parameters_per_sample_and_flips_boxes_exactly():
    images = torch.zeros(8, 3, 24, 24)
    images[:, :, 2:6, 3:9] = 1.0
    boxes = [torch.tensor([[3.0, 2.0, 9.0, 6.0]]) for _ in range(8)]
    augment = BatchAugment(seed=5, hflip=0.5, vflip=0.5, rot90=0.5, brightness=0.1, contrast=0.1)
    out, out_boxes, _ = augment(images, boxes, batch_index=0)
    expected = [tuple(b[0].tolist()) for b in out_boxes]
    assert len(set(expected)) >= 3  # different flips/turns within one batch
    for i in range(8):
        ys, xs = torch.nonzero(out[i, 0] > out[i, 0].mean(), as_tuple=True)
        assert expected[i] == (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
    brightness = out.mean(dim=(1, 2, 3))
    assert len(set(brightness.round(decimals=5).tolist())) >= 6
    again, again_boxes, _ = augment(images, boxes, batch_index=0)
    assert torch.equal(out, again)
    other, _, _ = augment(images, boxes, batch_index=1)
    assert not torch.equal(out, other)


def test_batched_rotation_boxes_match_rotated_masks():
    images = torch.zeros(4, 3, 32, 48, dtype=torch.uint8)
    masks = [torch.zeros(1, 32, 48, dtype=torch.uint8) for _ in range(4)]
    for m in masks:
        m[0, 8:16, 20:36] = 1
    boxes = [torch.tensor([[20.0, 8.0, 36.0, 16.0]]) for _ in range(4)]
    out, out_boxes, out_masks = BatchAugment(seed=1, hflip=0.0, rotate_limit=40,
                                             noise_sigma=(2, 8))(images, boxes, masks, batch_index=0)
    assert out.dtype == torch.uint8
    for b, m in zip(out_boxes, out_masks):
        ys, xs = torch.nonzero(m[0], as_tuple=True)
        assert b[0].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert len({m.numpy().tobytes() for m in out_masks}) == 4  # one angle per sample


def test_batched_path_takes_and_returns_bounding_boxes_in_their_format():
    from torchvision import tv_tensors

    images = torch.zeros(2, 3, 16, 20, dtype=torch.uint8)
    boxes = [tv_tensors.BoundingBoxes([[2.0, 4.0, 10.0, 6.0]], format="XYWH", canvas_size=(16, 20))] * 2
    _, out, _ = BatchAugment(seed=0, hflip=1.0)(images, boxes, batch_index=0)
    assert all(isinstance(b, tv_tensors.BoundingBoxes) and b.format == boxes[0].format for b in out)
    assert [b.tolist() for b in out] == [[[8.0, 4.0, 10.0, 6.0]]] * 2  # x -> W - x - w, still XYWH


def test_flips_turns_and_rotation_are_one_grid_sample_per_batch(monkeypatch):
    """With the torch kernels (a GPU's, or kernels="torch"), a sample's flips, quarter turns
    and rotation compose into one matrix: the batch's images are resampled once (before:
    exact flips, then a rotation), its masks by the same grid, and the masks are those of
    imgsynth's per-sample warp of that matrix."""
    import cv2
    import numpy as np

    from imgsynth.torch import batch as batch_module

    calls = []
    original = torch.nn.functional.grid_sample
    monkeypatch.setattr(torch.nn.functional, "grid_sample",
                        lambda x, *a, **k: calls.append(tuple(x.shape)) or original(x, *a, **k))
    for name in ("hflip_images", "vflip_images", "rot90_images"):  # no pass of their own
        monkeypatch.setattr(batch_module, name, lambda *a, name=name: pytest.fail(f"{name} ran"))
    size, n = 40, 6
    images = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    masks = [torch.zeros(1, size, size, dtype=torch.uint8) for _ in range(n)]
    for m in masks:
        m[0, 6:20, 9:30] = 1
    boxes = [torch.tensor([[9.0, 6.0, 30.0, 20.0]]) for _ in range(n)]
    augment = BatchAugment(seed=3, hflip=0.5, vflip=0.5, rot90=0.5, rotate_limit=25, kernels="torch")
    out, out_boxes, out_masks = augment(images, boxes, masks, batch_index=0)
    assert calls.count((n, 3, size, size)) == 1  # the images: one grid_sample for the batch
    gen = augment.generator(0, images.device)
    u = [torch.rand(n, generator=gen) for _ in range(3)]
    k90 = torch.where(u[2] < 0.5, torch.randint(1, 4, (n,), generator=gen), 0)
    angle = -25 + 50 * torch.rand(n, generator=gen)
    matrices = batch_module.geometry_matrices(u[0] < 0.5, u[1] < 0.5, k90, angle, size, size)
    assert len({tuple(m.flatten().tolist()) for m in matrices}) == n
    for i in range(n):
        expected = cv2.warpAffine(masks[i][0].numpy(), matrices[i][:2].numpy(), (size, size), flags=cv2.INTER_NEAREST)
        got = out_masks[i][0].numpy()
        assert (got == expected).mean() > 0.99
        ys, xs = np.nonzero(got)
        assert out_boxes[i][0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
