"""Blend kernels on small windows: each mode paints where the object is and nowhere far off."""

import numpy as np
import pytest

from imgsynth.compose import blend
from imgsynth.compose.config import BLEND_MODES
from tests.compose.conftest import shape_alpha, textured


@pytest.fixture
def window():
    bg = textured(48, 56, 1)
    fg = textured(48, 56, 2)
    alpha = np.zeros((48, 56), np.uint8)
    alpha[12:36, 14:42] = shape_alpha(24, 28, 0)
    return bg, fg, alpha


def test_hard_copies_object_pixels_exactly(window):
    bg, fg, alpha = window
    out = blend.blend_hard(bg, fg, alpha)
    inside = alpha >= 128
    assert (out[inside] == fg[inside]).all() and (out[~inside] == bg[~inside]).all()


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_every_mode_changes_the_object_and_leaves_far_pixels(window, mode):
    bg, fg, alpha = window
    out = blend.blend_patch(bg, fg, alpha, mode, feather_radius=2, pyramid_levels=3)
    assert out.shape == bg.shape and out.dtype == np.uint8
    assert np.abs(out[20:28, 22:34].astype(int) - bg[20:28, 22:34]).mean() > 5
    if mode != "pyramid":  # a pyramid blend spreads a little, by design
        assert (out[:4] == bg[:4]).all() and (out[:, :4] == bg[:, :4]).all()


def test_poisson_only_changes_pixels_inside_the_silhouette(window):
    bg, fg, alpha = window
    for mixed in (False, True):
        out = blend.blend_poisson(bg, fg, alpha, mixed)
        changed = (out != bg).any(axis=2)
        assert changed.any() and not (changed & (alpha < 128)).any()


def test_feather_keeps_the_edge_on_the_silhouette(window):
    _, _, alpha = window
    soft = blend.feather_alpha(alpha, 3, "gaussian")
    assert soft[24, 28] == 255 and soft[0, 0] == 0
    assert 0 < soft[24, 15] < 255  # on the edge: partly transparent


def test_harmonize_moves_object_colour_toward_background():
    bg = np.full((30, 30, 3), (40, 60, 200), np.uint8)
    fg = np.full((30, 30, 3), (220, 200, 30), np.uint8)
    alpha = np.zeros((30, 30), np.uint8)
    alpha[10:20, 10:20] = 255
    out = blend.harmonize_lab(fg, alpha, bg, strength=1.0)
    assert np.abs(out[15, 15].astype(int) - bg[0, 0]).sum() < np.abs(fg[15, 15].astype(int) - bg[0, 0]).sum() / 4


def test_shadow_darkens_offset_ground_only():
    alpha = np.zeros((30, 30), np.uint8)
    alpha[5:15, 5:15] = 255
    shade = blend.shadow_alpha(alpha, 6, 6, blur=0, opacity=0.5)
    out = blend.darken(np.full((30, 30, 3), 200, np.uint8), shade)
    assert out[18, 18, 0] == 100 and out[2, 2, 0] == 200


def test_motion_blur_spreads_alpha_along_its_direction():
    fg = np.full((21, 41, 3), 255, np.uint8)
    alpha = np.zeros((21, 41), np.uint8)
    alpha[5:16, 15:26] = 255
    _, a = blend.motion_blur_patch(fg, alpha, 9, 0.0)
    assert a[10, 12] > 0 and a[2, 20] == 0  # horizontal blur: wider, not taller
