"""Noise statistics, saturation and exact geometry of the pure kernels."""

import cv2
import numpy as np
import pytest

from imgsynth.augment import functional as F


def residual(out, image):
    return out.astype(np.float64) - image.astype(np.float64)


def neighbour_correlation(r):
    a, b = r[:, :-1].ravel(), r[:, 1:].ravel()
    return float(np.corrcoef(a, b)[0, 1])


def test_random_words_are_splitmix64_streams_with_balanced_bits():
    """The vectorized words equal SplitMix64 (java.util.SplittableRandom) computed one
    word at a time from the two draws the sample's Generator gives; every bit is set
    half the time; two samples' words are unrelated, also shifted against each other."""
    mask = (1 << 64) - 1

    def mix64(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    start, gamma = (int(v) for v in np.random.default_rng(11).bit_generator.random_raw(2))
    gamma = F._odd_gamma(gamma)
    words = F.random_words(np.random.default_rng(11), 5000)
    assert words.dtype == np.uint64
    for i in (0, 1, 2, 777, 4999):
        assert int(words[i]) == mix64((start + (i + 1) * gamma) & mask)
    bits = np.unpackbits(words.view(np.uint8)).reshape(-1, 64).mean(axis=0)
    assert np.abs(bits - 0.5).max() < 0.025  # 5000 draws per bit: 3.5 standard errors
    other = F.random_words(np.random.default_rng(12), 5000).view(np.uint16).astype(float)
    mine = words.view(np.uint16).astype(float)
    for shift in (0, 1, 4, 100):
        assert abs(np.corrcoef(mine[shift:], other[:len(other) - shift])[0, 1]) < 0.02
    assert np.array_equal(F.random_words(np.random.default_rng(11), 5000), words)


@pytest.mark.parametrize("per_channel", [True, False])
def test_gaussian_noise_uint8_residual_has_requested_statistics(per_channel):
    image = np.full((192, 192, 3), 128, np.uint8)
    out = F.gaussian_noise_image(image, 10.0, np.random.default_rng(1), per_channel=per_channel)
    r = residual(out, image)
    assert abs(r.mean()) < 0.15
    assert abs(r.std() - 10.0) < 0.25  # rounding to whole levels adds 1/12 variance
    assert abs(neighbour_correlation(r[:, :, 0])) < 0.02
    channels_equal = np.array_equal(r[:, :, 0], r[:, :, 1])
    assert channels_equal == (not per_channel)
    if per_channel:
        assert abs(np.corrcoef(r[:, :, 0].ravel(), r[:, :, 1].ravel())[0, 1]) < 0.02


def test_gaussian_noise_levels_follow_the_rounded_normal_and_values_are_independent():
    """Every noise level has the probability of round(N(0, sigma^2)) (tails included),
    and the two values made from one random pair (first and second half of the image)
    are independent, also in magnitude."""
    from statistics import NormalDist

    image = np.full((256, 256, 3), 128, np.uint8)
    r = residual(F.gaussian_noise_image(image, 10.0, np.random.default_rng(3)), image).ravel()
    levels = np.arange(-60, 61)
    seen = np.array([(r == v).mean() for v in levels])
    normal = NormalDist(0, 10)
    expected = np.array([normal.cdf(v + 0.5) - normal.cdf(v - 0.5) for v in levels])
    assert np.abs(seen - expected).max() < 0.003
    assert (np.abs(r) >= 30).mean() == pytest.approx(2 * normal.cdf(-29.5), rel=0.2)
    kurtosis = (r.astype(float) ** 4).mean() / r.var() ** 2
    assert abs(kurtosis - 3.0) < 0.1
    first, second = np.split(r.astype(float), 2)
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.01
    assert abs(np.corrcoef(first ** 2, second ** 2)[0, 1]) < 0.01


def test_gaussian_noise_float32_statistics_and_range():
    image = np.full((160, 160, 3), 0.5, np.float32)
    out = F.gaussian_noise_image(image, 12.75, np.random.default_rng(2))  # 0.05 in [0, 1]
    assert out.dtype == np.float32
    r = residual(out, image)
    assert abs(r.mean()) < 0.001 and abs(r.std() - 0.05) < 0.001
    bright = F.gaussian_noise_image(np.full((64, 64, 3), 0.99, np.float32), 30.0,
                                    np.random.default_rng(2))
    assert bright.max() <= 1.0 and bright.min() >= 0.0


def test_noise_on_uint8_saturates_instead_of_wrapping():
    image = np.full((128, 128, 3), 250, np.uint8)
    out = F.gaussian_noise_image(image, 20.0, np.random.default_rng(3))
    assert out.max() == 255
    # Wrapping 250 + 30 would give 24; saturation never leaves the plausible range.
    assert out.min() >= 250 - 5 * 20
    dark = F.gaussian_noise_image(np.full((128, 128, 3), 3, np.uint8), 20.0, np.random.default_rng(3))
    assert dark.min() == 0 and dark.max() <= 3 + 5 * 20
    for kernel in (lambda im, g: F.speckle_noise_image(im, 0.05, g),
                   lambda im, g: F.poisson_noise_image(im, 1000.0, g)):
        out = kernel(image, np.random.default_rng(4))
        assert out.max() == 255 and out.min() >= 150


def test_same_seed_same_noise_other_seed_other_noise():
    image = np.full((64, 64, 3), 100, np.uint8)
    a = F.gaussian_noise_image(image, 8.0, np.random.default_rng(7))
    b = F.gaussian_noise_image(image, 8.0, np.random.default_rng(7))
    c = F.gaussian_noise_image(image, 8.0, np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert abs(np.corrcoef(residual(a, image).ravel(), residual(c, image).ravel())[0, 1]) < 0.03


def test_poisson_variance_follows_the_photon_count():
    image = np.full((200, 200, 1), 128, np.uint8)
    peak = 50.0
    r = residual(F.poisson_noise_image(image, peak, np.random.default_rng(5)), image)
    expected_std = np.sqrt(128 * peak / 255) * 255 / peak
    assert abs(r.mean()) < 0.5 and abs(r.std() / expected_std - 1) < 0.05


def test_salt_and_pepper_fraction():
    image = np.full((200, 200, 3), 128, np.uint8)
    out = F.salt_pepper_image(image, 0.1, 0.25, np.random.default_rng(6))
    salt = (out == 255).all(axis=2).mean()
    pepper = (out == 0).all(axis=2).mean()
    assert abs(salt - 0.025) < 0.005 and abs(pepper - 0.075) < 0.007


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_points_follow_rot90_image(k):
    image = np.zeros((5, 7), np.uint8)
    image[1, 4] = 1  # pixel spanning x 4..5, y 1..2
    turned = F.rot90_image(image, k)
    ys, xs = np.nonzero(turned)
    centre = F.rot90_points(np.array([[4.5, 1.5]]), k, 5, 7)
    assert centre.tolist() == [[xs[0] + 0.5, ys[0] + 0.5]]


def test_rotation_expand_keeps_the_whole_image():
    matrix, h, w = F.rotation_matrix(90.0, 40, 60, expand=True)
    assert (h, w) == (60, 40)
    image = np.full((40, 60, 3), 200, np.uint8)
    out = F.affine_image(image, matrix, h, w, interpolation="nearest")
    assert (out == 200).all()
    _, h45, w45 = F.rotation_matrix(45.0, 40, 60, expand=True)
    assert (h45, w45) == (72, 72)  # 70.7 rounded up to the input's (even) parity
    _, hc, wc = F.rotation_matrix(45.0, 40, 60, expand=False)
    assert (hc, wc) == (40, 60)


@pytest.mark.parametrize("height, width", [(41, 60), (40, 61), (41, 61), (40, 60)])
def test_expanded_canvas_keeps_the_pixel_grid(height, width):
    """Quarter turns with expand are np.rot90 exactly (the canvas is the swapped size), and
    any other angle gives a canvas whose size differs from the input's by an even number of
    pixels per axis: the centre stays on the input's grid, so a rotation and its inverse
    shift labels by whole pixels."""
    image = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    for angle, k in ((90, 1), (180, 2), (-90, 3), (270, 3)):
        matrix, h, w = F.rotation_matrix(angle, height, width, expand=True)
        out = F.affine_image(image, matrix, h, w, interpolation="nearest")
        assert np.array_equal(out, np.rot90(image, k))
    for angle in (1.0, 17.5, 30.0, -30.0, 44.9, 135.0, 200.0):
        matrix, h, w = F.rotation_matrix(angle, height, width, expand=True)
        assert (h - height) % 2 == 0 and (w - width) % 2 == 0
        centre = F.affine_points(np.array([[width / 2, height / 2]]), matrix)
        assert np.allclose(centre, [[w / 2, h / 2]])


@pytest.mark.parametrize("mode,corner", [("constant", 0), ("replicate", 255)])
def test_border_modes(mode, corner):
    image = np.full((32, 32, 3), 255, np.uint8)
    matrix, h, w = F.rotation_matrix(45.0, 32, 32, expand=False)
    out = F.affine_image(image, matrix, h, w, border_mode=mode)
    assert out[0, 0, 0] == corner


def test_clip_polygon_to_image():
    square = np.array([[-5.0, -5.0], [5.0, -5.0], [5.0, 5.0], [-5.0, 5.0]])
    clipped = F.clip_polygon(square, 100, 100)
    assert F.polygon_area(clipped) == pytest.approx(25.0)
    assert len(F.clip_polygon(square - 50, 100, 100)) == 0


@pytest.mark.parametrize("shape", [(200, 200), (200, 200, 1), (200, 200, 3)])
def test_speckle_keeps_the_shape_and_scales_noise_with_brightness(shape):
    image = np.full(shape, 100, np.uint8)
    out = F.speckle_noise_image(image, 0.1, np.random.default_rng(9))
    r = residual(out, image)
    assert out.shape == shape and out.dtype == np.uint8
    assert abs(r.mean()) < 0.3 and abs(r.std() - 10.0) < 0.3  # x * (1 + 0.1 z): std 0.1 * 100


def _nearest_warp(image, matrix, height, width, border_mode, fill):
    """cv2's nearest-neighbour warp, 4 channels at a time (what warp_image falls back to)."""
    value = (tuple(fill) * 4)[:4] if len(fill) == 1 else tuple(fill)
    chunks = [image] if image.ndim < 3 or image.shape[2] <= 4 else \
        [image[:, :, i:i + 4] for i in range(0, image.shape[2], 4)]
    out = [cv2.warpAffine(c, matrix[:2], (width, height), flags=cv2.INTER_NEAREST, borderMode=border_mode,
                          borderValue=value).reshape(height, width, -1) for c in chunks]
    return np.concatenate(out, axis=2).reshape(height, width, *image.shape[2:])


def test_whole_pixel_maps_are_copies_with_the_warps_border():
    """Flips, quarter turns, transposes and whole-pixel shifts, reaching past the image on any
    side or missing it, give cv2's nearest-neighbour warp's pixels exactly: the window is
    copied into place and the constant border filled as cv2 rounds and saturates the fill."""
    rng = np.random.default_rng(7)
    for _ in range(600):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        dtype = [np.uint8, np.float32, np.uint16][int(rng.integers(0, 3))]
        shape = [(h, w), (h, w, 1), (h, w, 3), (h, w, 4), (h, w, 5)][int(rng.integers(0, 5))]
        image = (rng.random(shape) * 300).astype(dtype)
        a, b, c, d = [(1, 0, 0, 1), (-1, 0, 0, 1), (1, 0, 0, -1), (-1, 0, 0, -1),
                      (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, -1, 0), (0, -1, -1, 0)][int(rng.integers(0, 8))]
        tx, ty = (int(v) for v in rng.integers(-14, 15, 2))
        out_h, out_w = (int(v) for v in rng.integers(1, 14, 2))
        matrix = np.array([[a, b, tx], [c, d, ty], [0, 0, 1]], dtype=np.float64)
        channels = shape[2] if len(shape) == 3 else 1
        fill = tuple(float(v) for v in rng.choice([-3.0, 0.0, 127.5, 254.6, 300.0], int(rng.integers(1, 4))))
        if channels > 4 and len(set(fill)) > 1:
            fill = fill[:1]
        got = F.warp_image(image, matrix, out_h, out_w, interpolation=cv2.INTER_LINEAR,
                           border_mode=cv2.BORDER_CONSTANT, fill=fill)
        want = _nearest_warp(image, matrix, out_h, out_w, cv2.BORDER_CONSTANT, fill)
        assert got.dtype == image.dtype and got.shape == want.shape
        assert np.array_equal(got, want), (shape, dtype, (a, b, c, d, tx, ty), (out_h, out_w), fill)
