"""Checks for notebook 06 (inference): the paste-back, the mean-fill baseline and the masked PSNR."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..baselines import mean_fill
from ..masks import make_mask
from ..metrics import masked_psnr
from ..samplers import paste_known
from .core import check_function, register, seeded

NOTEBOOK = "06_inference"


def _scene(seed: int, b: int = 3, size: int = 8, kinds: tuple[str, ...] = ("center", "random_box", "irregular")):
    """Images (B, 3, S, S) in [-1, 1], masks (B, 1, S, S) with 1 = hole (at least one hole and one known pixel)."""
    g = seeded(seed)
    images = torch.rand(b, 3, size, size, generator=g) * 2 - 1
    masks = []
    for i in range(b):
        m = make_mask(kinds[i % len(kinds)], size, g)
        if m.sum() == 0 or m.sum() == m.numel():
            m = make_mask("center", size)
        masks.append(m)
    return images, torch.stack(masks).float()


# ---------------------------------------------------------------------------------------- paste-back
def _paste_cases() -> list:
    cases = []
    for seed, size in ((1, 8), (2, 16)):
        y_0, mask = _scene(seed, size=size)
        y_t = torch.randn(y_0.shape, generator=seeded(seed + 10))
        cases.append(((y_t, y_0, mask), {}))
    return cases


def _mistake_paste_inverted(y_t, y_0, mask):
    return y_t * (1 - mask) + mask * y_0


def _mistake_paste_no_y0(y_t, y_0, mask):
    return mask * y_t


def _mistake_paste_sum(y_t, y_0, mask):
    return y_0 * (1 - mask) + y_t


def _mistake_paste_typo(y_t, y_0, mask):
    return y_0 * (1 - mask) + mask * y_0


@register("paste_known", NOTEBOOK, paste_known, mistakes=[
    (_mistake_paste_inverted, "mask = 1 marks the hole"),
    (_mistake_paste_no_y0, "known region"),
    (_mistake_paste_sum, "outside the hole"),
    (_mistake_paste_typo, "inside the hole"),
])
def check_paste_known(student: Callable, quiet: bool = False) -> Callable:
    """Check ``paste_known(y_t, y_0, mask)``: y_0 outside the hole, y_t inside it."""

    def region_ok(where: str):
        def pred(g, w, a, k):
            y_t, y_0, mask = a
            keep = mask if where == "hole" else 1 - mask
            return torch.is_tensor(g) and g.shape == w.shape and torch.allclose(g * keep, w * keep, atol=1e-6)
        return pred

    def inverted(g, w, a, k):
        y_t, y_0, mask = a
        return torch.is_tensor(g) and g.shape == w.shape and torch.allclose(g, y_t * (1 - mask) + mask * y_0, atol=1e-6)

    hints = [
        (inverted, "mask = 1 marks the hole: keep the sampler's y_t there, and y_0 everywhere else."),
        (region_ok("hole"), "outside the hole (the known region, mask = 0) the result must be exactly y_0."),
        (region_ok("known"), "inside the hole (mask = 1) the result must be exactly y_t, nothing added."),
    ]
    fn, _ = check_function("paste_known", student, paste_known, _paste_cases(), hints, atol=1e-6, rtol=0, quiet=quiet)
    return fn


# ---------------------------------------------------------------------------------------- mean fill
def _fill_cases() -> list:
    return [((*_scene(3),), {}), ((*_scene(4, b=2, size=16),), {})]


def _known_mean(image, mask):  # (B, 3)
    known = 1 - mask
    return (image * known).sum(dim=(2, 3)) / known.sum(dim=(2, 3))


def _mistake_fill_whole_mean(image, mask):
    fill = image.mean(dim=(2, 3), keepdim=True)
    return image * (1 - mask) + mask * fill


def _mistake_fill_grey(image, mask):
    fill = _known_mean(image, mask).mean(dim=1)[:, None, None, None]
    return image * (1 - mask) + mask * fill


def _mistake_fill_batch(image, mask):
    known = 1 - mask
    fill = ((image * known).sum(dim=(0, 2, 3)) / known.sum(dim=(0, 2, 3)))[None, :, None, None]
    return image * (1 - mask) + mask * fill


def _mistake_fill_everywhere(image, mask):
    return _known_mean(image, mask)[:, :, None, None].expand_as(image).clone()


@register("mean_fill", NOTEBOOK, mean_fill, mistakes=[
    (_mistake_fill_everywhere, "unchanged"),
    (_mistake_fill_whole_mean, "known pixels"),
    (_mistake_fill_grey, "per channel"),
    (_mistake_fill_batch, "per image"),
])
def check_mean_fill(student: Callable, quiet: bool = False) -> Callable:
    """Check ``mean_fill(image, mask)``: the hole painted with the mean colour of the known pixels."""

    def known_changed(g, w, a, k):
        image, mask = a
        return torch.is_tensor(g) and g.shape == w.shape and not torch.allclose(g * (1 - mask), image * (1 - mask), atol=1e-6)

    def fill_is(formula):
        def pred(g, w, a, k):
            image, mask = a
            return torch.is_tensor(g) and g.shape == w.shape and torch.allclose(g * mask, formula(image, mask) * mask, atol=1e-5)
        return pred

    hints = [
        (known_changed, "outside the hole (mask = 0) return the image unchanged; only the hole gets the fill colour."),
        (fill_is(_mistake_fill_whole_mean), "average only the known pixels (mask = 0): the hole's own pixels are unknown."),
        (fill_is(_mistake_fill_grey), "the fill colour is per channel: 3 values (R, G, B) per image, not one grey level."),
        (fill_is(_mistake_fill_batch), "the fill colour is per image: average over H and W of each image, not over the batch."),
        (lambda g, w, a, k: True, "fill_bc = sum over (h, w) of (1 - mask) * image / sum over (h, w) of (1 - mask), per image b and channel c."),
    ]
    fn, _ = check_function("mean_fill", student, mean_fill, _fill_cases(), hints, atol=1e-5, rtol=1e-5, quiet=quiet)
    return fn


# ---------------------------------------------------------------------------------------- masked PSNR
def _psnr_cases() -> list:
    cases = []
    for seed in (5, 6):
        target, mask = _scene(seed, b=3, size=16)
        pred = (target + 0.2 * torch.randn(target.shape, generator=seeded(seed + 20)) * (1 + torch.arange(3.0))[:, None, None, None]).clamp(-1, 1)
        cases.append(((pred, target, mask), {}))
    return cases


def _mse_per_image(pred, target, mask, channels=True):
    m = mask.expand_as(pred) if channels else mask
    err = ((pred - target) ** 2 * mask.expand_as(pred)).flatten(1).sum(dim=1)
    return err / m.flatten(1).sum(dim=1)


def _mistake_psnr_range1(pred, target, mask, data_range=2.0):
    return masked_psnr(pred, target, mask, data_range=1.0)


def _mistake_psnr_whole(pred, target, mask, data_range=2.0):
    mse = ((pred - target) ** 2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).mean()


def _mistake_psnr_no_channels(pred, target, mask, data_range=2.0):
    return (10 * torch.log10(data_range**2 / _mse_per_image(pred, target, mask, channels=False))).mean()


def _mistake_psnr_batch_mse(pred, target, mask, data_range=2.0):
    return 10 * torch.log10(data_range**2 / _mse_per_image(pred, target, mask).mean())


@register("masked_psnr", NOTEBOOK, masked_psnr, mistakes=[
    (_mistake_psnr_range1, "data range"),
    (_mistake_psnr_whole, "hole"),
    (_mistake_psnr_no_channels, "every channel"),
    (_mistake_psnr_batch_mse, "per image"),
])
def check_masked_psnr(student: Callable, quiet: bool = False) -> Callable:
    """Check ``masked_psnr(pred, target, mask, data_range=2.0)``: PSNR over the hole, per image, averaged."""

    def off_by(db: float):
        return lambda g, w, a, k: _value(g) is not None and abs(_value(g) - float(w) - db) < 1e-3

    def equals(formula):
        return lambda g, w, a, k: _value(g) is not None and abs(_value(g) - float(formula(*a))) < 1e-4

    hints = [
        (off_by(-20 * math.log10(2.0)), "images live in [-1, 1], so the data range (peak-to-peak) is 2, not 1."),
        (equals(_mistake_psnr_whole), "only the hole counts: the MSE is sum(mask * (pred - target)^2) / sum(mask), per image."),
        (off_by(-10 * math.log10(3.0)), "count the hole pixels in every channel: expand the (B, 1, H, W) mask to (B, C, H, W) "
                                        "before summing it."),
        (equals(_mistake_psnr_batch_mse), "compute one PSNR per image, then average the PSNRs (not the MSEs)."),
        (lambda g, w, a, k: True, "PSNR = 10 log10(data_range^2 / MSE) with the MSE over the hole of each image."),
    ]
    fn, _ = check_function("masked_psnr", student, masked_psnr, _psnr_cases(), hints, atol=1e-4, rtol=1e-5, quiet=quiet)
    return fn


def _value(x) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError, RuntimeError):
        return None
