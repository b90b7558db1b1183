"""Inpainting masks: 1 marks the hole (missing pixels), 0 the known pixels, everywhere.

The course uses one kind, the centre box ``(h//4, w//4, h//2, w//2)`` built by ``bbox2mask``. The
lecture slides list five kinds, all generated here by :func:`make_mask`:

- ``"center"``: the course's centre box (a quarter of the image area);
- ``"random_box"``: one axis-aligned box of random size and position;
- ``"irregular"``: a few random ellipses and polygons ("blobs");
- ``"free_form"``: brush strokes, i.e. random walks of thick lines with round joints (DeepFill v2);
- ``"hybrid"``: a random box united with free-form strokes (Palette's ``hybrid``).

Random kinds take all their randomness from a ``torch.Generator`` (a 63-bit seed is drawn from it
and seeds a numpy Generator), so one generator seed always gives the same mask, and every size is
expressed as a fraction of the image side (the same mask "looks" the same at 64 and 256 px).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

MASK_MODES = ("center", "random_box", "irregular", "free_form", "hybrid")


def check_mask_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`MASK_MODES`, else raise ValueError listing them.

    :param mode: a mask kind name.
    :return: the same name.
    """
    if not isinstance(mode, str) or mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mode!r}; valid modes are: {', '.join(MASK_MODES)}")
    return mode


def image_size_hw(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(H, W)`` from an int (square) or a pair; ValueError unless both are positive integers."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        h = w = int(image_size)
    elif isinstance(image_size, (tuple, list, torch.Size)) and len(image_size) == 2:
        h, w = (int(v) for v in image_size)
    else:
        raise ValueError(f"image_size must be an int or a pair (h, w), got {image_size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w


def bbox2mask(img_shape: tuple[int, ...], bbox: tuple[int, int, int, int], dtype: str = "uint8") -> np.ndarray:
    """Box mask as in the course: ``mask[top:top+height, left:left+width] = 1``.

    :param img_shape: image shape whose first two entries are (H, W), e.g. ``(256, 256)``.
    :param bbox: ``(top, left, height, width)`` in pixels; the box must be non-empty and lie
        inside the image.
    :param dtype: numpy dtype of the result.
    :return: array of shape (H, W, 1), 1 inside the box and 0 elsewhere.
    """
    if len(img_shape) < 2:
        raise ValueError(f"img_shape must start with (H, W), got {img_shape!r}")
    height, width = int(img_shape[0]), int(img_shape[1])
    if len(bbox) != 4:
        raise ValueError(f"bbox must be (top, left, height, width), got {bbox!r}")
    top, left, bh, bw = (int(v) for v in bbox)
    if bh < 1 or bw < 1:
        raise ValueError(f"bbox {bbox!r} is empty: height and width must be >= 1")
    if top < 0 or left < 0 or top + bh > height or left + bw > width:
        raise ValueError(
            f"bbox {bbox!r} (top, left, height, width) leaves the {height}x{width} image; "
            "keep 0 <= top, top + height <= H, 0 <= left, left + width <= W"
        )
    mask = np.zeros((height, width, 1), dtype=dtype)  # (H, W, 1)
    mask[top : top + bh, left : left + bw, :] = 1
    return mask


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """numpy Generator seeded from ``generator`` (63-bit draw) or from fresh OS entropy if None."""
    if generator is None:
        return np.random.default_rng()
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator).item())
    return np.random.default_rng(seed)


def _random_box(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) with sides in [0.3, 0.6] of the image side (9%..36% of the area)."""
    bh = max(1, int(round(h * rng.uniform(0.3, 0.6))))
    bw = max(1, int(round(w * rng.uniform(0.3, 0.6))))
    top = int(rng.integers(0, h - bh + 1))
    left = int(rng.integers(0, w - bw + 1))
    return top, left, bh, bw


def _fraction(canvas: Image.Image) -> float:
    return float(np.count_nonzero(np.asarray(canvas))) / (canvas.width * canvas.height)


def _draw_blobs(rng: np.random.Generator, canvas: Image.Image, target: float, max_shapes: int = 12) -> None:
    """Add random ellipses / polygons to ``canvas`` until the hole fraction reaches ``target``."""
    draw = ImageDraw.Draw(canvas)
    w, h = canvas.size
    side = min(h, w)
    for _ in range(max_shapes):
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        r = side * rng.uniform(0.06, 0.18)
        if rng.random() < 0.5:
            ry = r * rng.uniform(0.5, 1.5)
            draw.ellipse([cx - r, cy - ry, cx + r, cy + ry], fill=255)
        else:
            n = int(rng.integers(5, 10))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = r * rng.uniform(0.5, 1.4, n)
            pts = [(cx + rr * np.cos(a), cy + rr * np.sin(a)) for a, rr in zip(angles, radii)]
            draw.polygon(pts, fill=255)
        if _fraction(canvas) >= target:
            break


def _draw_strokes(rng: np.random.Generator, canvas: Image.Image, target: float, max_strokes: int = 10) -> None:
    """Add DeepFill-v2-style brush strokes until the hole fraction reaches ``target``.

    A stroke is a random walk of 4..10 segments (length 5%..20% of the longer side, direction
    drifting from a random heading, bouncing off the borders) drawn as thick lines (width 4%..10%
    of the shorter side) with a filled circle at every joint, so joints and ends are round.
    """
    draw = ImageDraw.Draw(canvas)
    w, h = canvas.size
    side, big = min(h, w), max(h, w)
    for _ in range(max_strokes):
        width = max(1.0, side * rng.uniform(0.04, 0.1))
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        heading = rng.uniform(0, 2 * np.pi)
        pts = [(x, y)]
        for _ in range(int(rng.integers(4, 11))):
            heading += rng.normal(0.0, 0.8)
            length = big * rng.uniform(0.05, 0.2)
            x, y = x + length * np.cos(heading), y + length * np.sin(heading)
            if not 0 <= x <= w - 1:  # bounce off the left/right border
                x, heading = float(np.clip(-x if x < 0 else 2 * (w - 1) - x, 0, w - 1)), np.pi - heading
            if not 0 <= y <= h - 1:  # bounce off the top/bottom border
                y, heading = float(np.clip(-y if y < 0 else 2 * (h - 1) - y, 0, h - 1)), -heading
            pts.append((x, y))
        draw.line(pts, fill=255, width=max(1, int(round(width))))
        rad = width / 2
        for px, py in pts:
            draw.ellipse([px - rad, py - rad, px + rad, py + rad], fill=255)
        if _fraction(canvas) >= target:
            break


def make_mask(
    mode: str, image_size: int | tuple[int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """One inpainting mask, float32 of shape (1, H, W) with values in {0, 1} (1 = hole).

    - ``"center"``: ``bbox2mask((h, w), (h//4, w//4, h//2, w//2))``, deterministic.
    - ``"random_box"``: a box whose sides are 30%..60% of the image sides, anywhere inside.
    - ``"irregular"``: ellipses/polygons (radius 6%..18% of the side) added until a hole
      fraction drawn from U(0.15, 0.45) is reached.
    - ``"free_form"``: brush strokes added until a fraction drawn from U(0.1, 0.4) is reached.
    - ``"hybrid"``: ``random_box | free_form`` (strokes add 5%..15% of the area on top of the box).

    Every random mask keeps its hole fraction in roughly [0.09, 0.6] and is never empty.

    :param mode: one of :data:`MASK_MODES`.
    :param image_size: ``H = W = image_size`` or a pair ``(H, W)``.
    :param generator: the only source of randomness; the same generator state gives the same mask.
        None draws fresh OS entropy (different every call).
    :return: mask tensor, float32, (1, H, W).
    """
    check_mask_mode(mode)
    h, w = image_size_hw(image_size)
    if mode == "center":
        arr = bbox2mask((h, w), (h // 4, w // 4, max(1, h // 2), max(1, w // 2)), dtype="float32")
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (1, H, W)
    rng = _numpy_rng(generator)
    canvas = Image.new("L", (w, h), 0)
    if mode in ("random_box", "hybrid"):
        top, left, bh, bw = _random_box(rng, h, w)
        ImageDraw.Draw(canvas).rectangle([left, top, left + bw - 1, top + bh - 1], fill=255)
    if mode == "irregular":
        _draw_blobs(rng, canvas, target=rng.uniform(0.15, 0.45))
    elif mode == "free_form":
        _draw_strokes(rng, canvas, target=rng.uniform(0.1, 0.4))
    elif mode == "hybrid":
        _draw_strokes(rng, canvas, target=min(0.55, _fraction(canvas) + rng.uniform(0.05, 0.15)))
    arr = (np.asarray(canvas) > 0).astype(np.float32)  # (H, W)
    if not arr.any():  # only possible for tiny images; keep the "never empty" promise
        arr[h // 2, w // 2] = 1.0
    return torch.from_numpy(arr)[None]  # (1, H, W)
