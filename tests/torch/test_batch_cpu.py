"""BatchAugment on CPU tensors runs OpenCV kernels: the same per-sample parameters as the
torch kernels (grid_sample, torch.randn), images within a level of them, masks and boxes
that follow the same geometry, the same noise distribution, and the same output for any
thread count."""

import cv2
import numpy as np
import pytest
import torch

from imgsynth.torch import BatchAugment


def smooth_images(n: int, channels: int, height: int, width: int, dtype=torch.uint8) -> torch.Tensor:
    """Photo-like images: gradients and a bright disc per sample (bilinear resampling of
    smooth content is where uint8 and float warps agree to a level)."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    out = []
    for i in range(n):
        planes = []
        for c in range(channels):
            wave = 0.5 + 0.3 * torch.sin(xx / (5 + i + c) + c) * torch.cos(yy / (7 + c))
            disc = ((xx - width * (0.3 + 0.05 * i)) ** 2 + (yy - height * 0.6) ** 2 < (height / 5) ** 2).float()
            planes.append((wave + 0.2 * disc).clamp(0, 1))
        out.append(torch.stack(planes))
    x = torch.stack(out)
    return (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)


def disc_masks(n: int, height: int, width: int, dtype=torch.uint8) -> list[torch.Tensor]:
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    masks = []
    for i in range(n):
        centres = [(width * 0.35 + i, height * 0.4), (width * 0.6, height * 0.6 - i)]
        masks.append(torch.stack([((xx - cx) ** 2 + (yy - cy) ** 2 < (height / 6) ** 2) for cx, cy in centres]
                                 ).to(dtype))
    return masks


def both_paths(images, boxes=None, masks=None, **options):
    cpu = BatchAugment(**options)(images, boxes, masks, batch_index=3)
    reference = BatchAugment(kernels="torch", **options)(images, boxes, masks, batch_index=3)
    return cpu, reference


def levels(x: torch.Tensor) -> torch.Tensor:
    return x.double() * (1.0 if x.dtype == torch.uint8 else 255.0)


@pytest.fixture
def restore_threads():
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [3, 1, 5])
def test_cpu_rotation_is_within_a_level_of_the_grid_sample_path(dtype, channels):
    images = smooth_images(6, channels, 64, 64, dtype)
    options = dict(seed=4, hflip=0.5, vflip=0.5, rot90=0.5, rotate_limit=30, brightness=0.1, contrast=0.2)
    (out, _, _), (reference, _, _) = both_paths(images, **options)
    assert out.dtype == dtype and out.shape == images.shape
    # The centre, inside the disc every rotation of the square keeps: no border pixels.
    diff = (levels(out) - levels(reference)).abs()[..., 12:52, 12:52]
    assert diff.mean() < 1.0
    assert diff.max() <= 2
    assert (levels(out) - levels(reference)).abs().mean() < 1.0  # borders included


def test_cpu_masks_and_boxes_follow_the_same_rotation():
    from torchvision import tv_tensors

    images = smooth_images(6, 3, 48, 64)
    masks = disc_masks(6, 48, 64)
    plain_boxes = [torch.tensor([[10.0, 6.0, 40.0, 30.0], [30.0, 20.0, 60.0, 44.0]]) for _ in range(6)]
    options = dict(seed=2, hflip=0.5, vflip=0.5, rot90=0.5, rotate_limit=35)
    (_, boxes, out_masks), (_, ref_boxes, ref_masks) = both_paths(images, plain_boxes, masks, **options)
    for got, ref, bx, ref_bx in zip(out_masks, ref_masks, boxes, ref_boxes):
        assert got.dtype == torch.uint8 and got.shape == ref.shape
        for m, r in zip(got.bool(), ref.bool()):
            assert (m & r).sum() / (m | r).sum() >= 0.98
        assert (bx - ref_bx).abs().max() <= 1.0  # tight boxes of the moved masks
        for box, m in zip(bx.tolist(), got):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert box == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    # Without masks: the moved corners' boxes, the same function of the same matrices.
    given = [tv_tensors.BoundingBoxes(torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], -1), format="XYWH",
                                      canvas_size=(48, 64)) for b in plain_boxes]
    (_, boxes, _), (_, ref_boxes, _) = both_paths(images, given, **options)
    assert all(isinstance(b, tv_tensors.BoundingBoxes) and b.format == tv_tensors.BoundingBoxFormat.XYWH
               for b in boxes)
    assert all(torch.equal(b, r) for b, r in zip(boxes, ref_boxes))


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64])
def test_cpu_rotated_masks_keep_their_dtype_and_label_values(dtype):
    images = smooth_images(3, 3, 32, 32)
    labels = torch.zeros(1, 32, 32, dtype=torch.int64)
    labels[0, 8:20, 6:26] = 1 if dtype == torch.bool else 2**40 + 7  # beyond float32's integers
    masks = [labels.to(dtype)] * 3
    _, _, out_masks = BatchAugment(seed=1, rotate_limit=20)(images, None, masks, batch_index=0)
    for m in out_masks:
        assert m.dtype == dtype
        assert set(m.unique().tolist()) == set(labels.to(dtype).unique().tolist())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cpu_flips_and_quarter_turns_are_the_torch_paths_exact_copies(dtype):
    images = smooth_images(16, 3, 40, 40, dtype)  # square: odd quarter turns too
    masks = disc_masks(16, 40, 40)
    boxes = [torch.tensor([[3.0, 5.0, 20.0, 17.0]]) for _ in range(16)]
    options = dict(seed=7, hflip=0.5, vflip=0.5, rot90=0.7)
    (out, out_boxes, out_masks), (ref, ref_boxes, ref_masks) = both_paths(images, boxes, None, **options)
    assert torch.equal(out, ref)
    assert len({o.numpy().tobytes() for o in out}) >= 6  # many different flips/turns
    assert all(torch.equal(b, r) for b, r in zip(out_boxes, ref_boxes))
    (_, _, out_masks), (_, _, ref_masks) = both_paths(images, None, masks, **options)
    assert all(torch.equal(m, r) for m, r in zip(out_masks, ref_masks))
    # Brightness and contrast on top: the same per-sample gain and bias, rounded once.
    options.update(brightness=0.2, contrast=0.3)
    (out, _, _), (ref, _, _) = both_paths(images, **options)
    assert (levels(out) - levels(ref)).abs().max() <= 1.0


def test_cpu_noise_has_the_torch_paths_per_sample_sigma_and_distribution():
    gray = torch.full((8, 3, 64, 64), 128, dtype=torch.uint8)
    options = dict(seed=5, hflip=0.0, noise_sigma=(2.0, 12.0))
    (out, _, _), (ref, _, _) = both_paths(gray, **options)
    noise, ref_noise = out.double() - 128, ref.double() - 128
    assert not torch.equal(out, ref)  # another normal generator ...
    std, ref_std = noise.std(dim=(1, 2, 3)), ref_noise.std(dim=(1, 2, 3))
    assert ref_std.max() / ref_std.min() > 2  # ... with each sample's own sigma,
    assert ((std / ref_std) - 1).abs().max() < 0.03  # the same one on both paths
    assert noise.mean(dim=(1, 2, 3)).abs().max() < 0.2
    flat = noise[0].reshape(3, -1)  # independent per pixel and channel
    assert torch.corrcoef(flat).sub(torch.eye(3)).abs().max() < 0.05
    assert abs(torch.corrcoef(torch.stack([flat[0, :-1], flat[0, 1:]]))[0, 1]) < 0.05
    floats = gray.float() / 255
    (out, _, _), (ref, _, _) = both_paths(floats, **options)
    ratio = (out - floats).std(dim=(1, 2, 3)) / (ref - floats).std(dim=(1, 2, 3))
    assert (ratio - 1).abs().max() < 0.03  # float images: sigma / 255


def test_cpu_output_is_the_same_for_any_thread_count(restore_threads):
    images = smooth_images(6, 3, 48, 48)
    masks = disc_masks(6, 48, 48)
    boxes = [torch.tensor([[10.0, 6.0, 40.0, 30.0]]) for _ in range(6)]
    augment = BatchAugment(seed=9, hflip=0.5, rot90=0.5, rotate_limit=30, brightness=0.1, contrast=0.1,
                           noise_sigma=(3, 9))
    runs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        runs.append(augment(images, boxes, masks, batch_index=4))
    (a, a_boxes, a_masks), (b, b_boxes, b_masks) = runs
    assert torch.equal(a, b)
    assert all(torch.equal(x, y) for x, y in zip(a_boxes, b_boxes))
    assert all(torch.equal(x, y) for x, y in zip(a_masks, b_masks))
    again, _, _ = augment(images, boxes, masks, batch_index=5)
    assert not torch.equal(a, again)


def test_cpu_batch_takes_the_opencv_path(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a torch kernel ran on a CPU batch")

    monkeypatch.setattr(torch.nn.functional, "grid_sample", refuse)
    monkeypatch.setattr(torch, "randn", refuse)
    images = smooth_images(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    out, boxes, masks = BatchAugment(seed=0, rotate_limit=30, noise_sigma=(2, 4), brightness=0.1)(
        images, [torch.tensor([[4.0, 4.0, 20.0, 20.0]])] * 4, disc_masks(4, 32, 32), batch_index=0)
    assert out.shape == images.shape and len(boxes) == len(masks) == 4
    with pytest.raises(AssertionError, match="torch kernel"):
        BatchAugment(rotate_limit=30, kernels="torch")(images, batch_index=0)


def test_cpu_batch_that_needs_gradients_and_an_empty_batch():
    images = smooth_images(2, 3, 16, 16, torch.float32).requires_grad_()
    out, _, _ = BatchAugment(rotate_limit=20, brightness=0.1)(images, batch_index=0)
    out.sum().backward()  # torch's kernels: differentiable, as before
    assert images.grad is not None and images.grad.abs().sum() > 0
    empty = torch.zeros(0, 3, 16, 16, dtype=torch.uint8)
    out, boxes, masks = BatchAugment(rotate_limit=20, noise_sigma=(1, 2))(empty, [], [], batch_index=0)
    assert out.shape == empty.shape and boxes == [] and masks == []


def test_unknown_kernels_option_is_refused():
    with pytest.raises(ValueError, match="'auto'.*'torch'"):
        BatchAugment(kernels="opencv")


def test_cpu_warp_is_imgsynths_own_warp_of_the_same_matrix():
    """Images: cv2.warpAffine of the geometry matrix, bilinear, zero border, as the
    per-sample path warps (here on an HxWxC copy)."""
    from imgsynth.torch import batch as batch_module

    images = smooth_images(4, 3, 40, 56)
    augment = BatchAugment(seed=8, hflip=0.5, vflip=0.5, rotate_limit=30)
    out, _, _ = augment(images, batch_index=0)
    gen = augment.generator(0, images.device)
    u = [torch.rand(4, generator=gen) for _ in range(3)]
    torch.randint(1, 4, (4,), generator=gen)  # the quarter turns' draw (rot90 is 0 here)
    angle = -30 + 60 * torch.rand(4, generator=gen)
    matrices = batch_module.geometry_matrices(u[0] < 0.5, u[1] < 0.5, torch.zeros(4, dtype=torch.int64), angle, 40, 56)
    for i in range(4):
        hwc = images[i].permute(1, 2, 0).contiguous().numpy()
        expected = cv2.warpAffine(hwc, matrices[i][:2].numpy(), (56, 40), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        assert np.array_equal(out[i].permute(1, 2, 0).numpy(), expected)
