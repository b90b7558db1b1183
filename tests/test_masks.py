"""Masks: the course's centre box, the four random kinds, seeding and bad input."""

import numpy as np
import pytest
import torch

from ddpm_lab.masks import MASK_MODES, bbox2mask, make_mask

RANDOM_MODES = [m for m in MASK_MODES if m != "center"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_bbox2mask_course_example():
    mask = bbox2mask((256, 256), (64, 64, 128, 128))
    assert mask.shape == (256, 256, 1) and mask.dtype == np.uint8
    assert mask.sum() == 128 * 128
    assert mask[64, 64, 0] == 1 and mask[191, 191, 0] == 1
    assert mask[63, 100, 0] == 0 and mask[192, 100, 0] == 0 and mask[100, 63, 0] == 0 and mask[100, 192, 0] == 0


def test_bbox2mask_non_square_and_dtype():
    mask = bbox2mask((10, 20, 3), (2, 5, 3, 4), dtype="float32")
    assert mask.shape == (10, 20, 1) and mask.dtype == np.float32
    expected = np.zeros((10, 20), np.float32)
    expected[2:5, 5:9] = 1
    np.testing.assert_array_equal(mask[..., 0], expected)


@pytest.mark.parametrize(
    "bbox", [(0, 0, 0, 4), (0, 0, 4, 0), (-1, 0, 4, 4), (0, -1, 4, 4), (7, 0, 4, 4), (0, 13, 4, 4)]
)
def test_bbox2mask_rejects_empty_or_outside_boxes(bbox):
    with pytest.raises(ValueError, match="bbox"):
        bbox2mask((10, 16), bbox)


@pytest.mark.parametrize("size", [256, 64, 17, (31, 45), (64, 128)])
def test_center_mask_is_the_course_box(size):
    h, w = (size, size) if isinstance(size, int) else size
    mask = make_mask("center", size)
    assert mask.shape == (1, h, w) and mask.dtype == torch.float32
    top, left, bh, bw = h // 4, w // 4, h // 2, w // 2
    assert mask.sum().item() == bh * bw
    assert mask[0, top:top + bh, left:left + bw].min().item() == 1.0
    expected = torch.zeros(1, h, w)
    expected[:, top:top + bh, left:left + bw] = 1
    assert torch.equal(mask, expected)


def test_center_mask_256_numbers():
    mask = make_mask("center", (256, 256))
    assert mask.sum().item() == 16384.0  # 128 * 128, a quarter of the image
    rows = torch.nonzero(mask[0].any(dim=1)).flatten()
    assert rows.min().item() == 64 and rows.max().item() == 191


@pytest.mark.parametrize("mode", MASK_MODES)
@pytest.mark.parametrize("size", [16, 64, (48, 80)])
def test_every_mode_shape_dtype_values_fraction(mode, size):
    h, w = (size, size) if isinstance(size, int) else size
    for seed in range(6):
        mask = make_mask(mode, size, gen(seed))
        assert mask.shape == (1, h, w) and mask.dtype == torch.float32
        assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
        frac = mask.mean().item()
        assert 0.08 <= frac <= 0.62, (mode, size, seed, frac)


@pytest.mark.parametrize("mode", RANDOM_MODES)
def test_random_modes_are_seeded_by_the_generator(mode):
    a = make_mask(mode, 64, gen(123))
    b = make_mask(mode, 64, gen(123))
    c = make_mask(mode, 64, gen(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # None: fresh randomness every call (two of five draws equal would be a broken RNG)
    fresh = [make_mask(mode, 64) for _ in range(5)]
    assert len({m.numpy().tobytes() for m in fresh}) >= 4


@pytest.mark.parametrize("mode", RANDOM_MODES)
def test_random_modes_vary_and_cover_the_image(mode):
    masks = torch.stack([make_mask(mode, 32, gen(s)) for s in range(40)])  # (40, 1, 32, 32)
    coverage = masks.mean(dim=0)
    assert coverage.max().item() < 1.0  # no pixel is always a hole ...
    assert (coverage > 0).float().mean().item() > 0.8  # ... and most pixels are sometimes one


def test_hybrid_contains_its_box_plus_strokes():
    box = make_mask("random_box", 64, gen(5))
    hybrid = make_mask("hybrid", 64, gen(5))  # same draws first: the same box, then strokes
    assert torch.all(hybrid >= box)
    assert hybrid.sum() > box.sum() + 0.04 * 64 * 64


def test_free_form_masks_are_thin_strokes_not_boxes():
    mask = make_mask("free_form", 128, gen(0))[0]
    ys, xs = torch.nonzero(mask, as_tuple=True)
    bbox_area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert mask.sum().item() < 0.8 * bbox_area.item()


def test_resolution_independent_fraction():
    small = np.mean([make_mask("free_form", 32, gen(s)).mean().item() for s in range(20)])
    large = np.mean([make_mask("free_form", 128, gen(s)).mean().item() for s in range(20)])
    assert abs(small - large) < 0.06


def test_unknown_mode_lists_valid_modes():
    with pytest.raises(ValueError) as err:
        make_mask("circle", 64)
    for mode in MASK_MODES:
        assert mode in str(err.value)


@pytest.mark.parametrize("size", [0, (0, 5), (5,), "64", 2.5])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="image_size"):
        make_mask("center", size)
