"""Checks for notebook 01 (data preparation): the centre mask and the sample composition."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data import make_inpainting_sample
from ..masks import bbox2mask
from .core import check_function, register, seeded

NOTEBOOK = "01_data_preparation"


def _bbox_cases() -> list:
    return [(((h, w), (t, l, bh, bw)), {}) for h, w, t, l, bh, bw in
            [(8, 8, 2, 2, 4, 4), (256, 256, 64, 64, 128, 128), (10, 7, 0, 1, 3, 6), (5, 9, 4, 8, 1, 1)]]


def _swapped_axes(got, want, args, kwargs) -> bool:
    h, w = args[0][:2]
    top, left, bh, bw = args[1]
    alt = np.zeros((h, w, 1))
    alt[left:left + bw, top:top + bh] = 1 if left + bw <= h and top + bh <= w else 0
    return got is not None and np.asarray(got).shape == want.shape and np.array_equal(np.asarray(got), alt)


def _mistake_swapped(img_shape, bbox, dtype="uint8"):
    top, left, bh, bw = bbox
    return bbox2mask(img_shape, (left, top, bw, bh), dtype) if top + bh <= img_shape[1] and left + bw <= img_shape[0] else np.zeros((*img_shape[:2], 1), dtype)


def _mistake_inverted(img_shape, bbox, dtype="uint8"):
    return (1 - bbox2mask(img_shape, bbox, dtype)).astype(dtype)


def _mistake_no_channel(img_shape, bbox, dtype="uint8"):
    return bbox2mask(img_shape, bbox, dtype)[..., 0]


def _mistake_off_by_one(img_shape, bbox, dtype="uint8"):
    top, left, bh, bw = bbox
    mask = np.zeros((img_shape[0], img_shape[1], 1), dtype=dtype)
    mask[top:top + bh - 1, left:left + bw - 1] = 1
    return mask


@register("bbox2mask", NOTEBOOK, bbox2mask, mistakes=[
    (_mistake_inverted, "1 marks the hole"),
    (_mistake_no_channel, "(H, W, 1)"),
    (_mistake_swapped, "(top, left, height, width)"),
    (_mistake_off_by_one, "slice end"),
])
def check_bbox2mask(student: Callable, quiet: bool = False) -> Callable:
    """Check ``bbox2mask(img_shape, bbox)``: an (H, W, 1) array, 1 inside the box."""
    hints = [
        (lambda g, w, a, k: np.asarray(g).ndim == 2, "the course's masks have shape (H, W, 1): keep a channel axis of size 1."),
        (lambda g, w, a, k: np.array_equal(1 - np.asarray(g), w), "1 marks the hole (the box), 0 the known pixels: yours is inverted."),
        (_swapped_axes, "bbox is (top, left, height, width): rows come first (top, height), then columns."),
        (lambda g, w, a, k: 0 < np.asarray(g).sum() < w.sum(), "your box is too small: a slice a:a+n holds n elements, so the slice end is top + height."),
        (lambda g, w, a, k: np.asarray(g).sum() > w.sum(), "your box is too big: a slice a:a+n holds n elements."),
    ]
    fn, _ = check_function("bbox2mask", student, bbox2mask, _bbox_cases(), hints, atol=0, rtol=0, quiet=quiet)
    return fn


def _sample_cases() -> list:
    g = seeded(1)
    cases = []
    for h, w in [(8, 8), (16, 12)]:
        img = torch.rand(3, h, w, generator=g) * 2 - 1
        mask = torch.zeros(1, h, w)
        mask[:, h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2] = 1
        cases.append(((img, mask), {"generator": torch.Generator().manual_seed(7)}))
    return cases


def _mistake_cond_no_noise(img, mask, generator=None):
    out = make_inpainting_sample(img, mask, generator)
    out["cond_image"] = img * (1 - mask)
    return out


def _mistake_keep_hole(img, mask, generator=None):
    out = make_inpainting_sample(img, mask, generator)
    out["cond_image"] = img * mask + (1 - mask) * torch.randn(img.shape, generator=torch.Generator().manual_seed(7))
    return out


def _mistake_mask_image_zero(img, mask, generator=None):
    out = make_inpainting_sample(img, mask, generator)
    out["mask_image"] = img * (1 - mask)
    return out


def _key(name):
    return lambda g, w, a, k: isinstance(g, dict) and name in g and not torch.allclose(g[name], w[name], atol=1e-5)


@register("make_inpainting_sample", NOTEBOOK, make_inpainting_sample, mistakes=[
    (_mistake_cond_no_noise, "noise"),
    (_mistake_keep_hole, "known region"),
    (_mistake_mask_image_zero, "white"),
])
def check_make_inpainting_sample(student: Callable, quiet: bool = False) -> Callable:
    """Check ``make_inpainting_sample(img, mask, generator)``: the course's sample dict."""
    def hole_has_no_noise(g, w, a, k):
        img, mask = a
        return _key("cond_image")(g, w, a, k) and float((g["cond_image"] * mask).abs().sum()) == 0.0

    def known_region_wrong(g, w, a, k):
        img, mask = a
        return _key("cond_image")(g, w, a, k) and not torch.allclose(g["cond_image"] * (1 - mask), img * (1 - mask))

    hints = [
        (lambda g, w, a, k: not isinstance(g, dict), "return a dict with the keys gt_image, cond_image, mask_image, mask and path."),
        (hole_has_no_noise, "cond_image fills the hole with Gaussian noise: img * (1 - mask) + mask * noise, noise drawn with torch.randn(..., generator=generator)."),
        (known_region_wrong, "outside the hole (mask == 0) cond_image must equal the image: that is the known region the model conditions on."),
        (_key("cond_image"), "draw the noise with torch.randn(img.shape, generator=generator) so it matches the reference draw."),
        (_key("mask_image"), "mask_image shows the hole in white (value 1): img * (1 - mask) + mask."),
    ]
    fn, _ = check_function("make_inpainting_sample", student, make_inpainting_sample, _sample_cases(), hints, quiet=quiet)
    return fn
