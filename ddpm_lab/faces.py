"""Offline face data: procedurally drawn cartoon faces, so the course runs with no download.

:func:`render_face` draws one centred, front-facing face from an integer seed (everything comes from
``numpy.random.default_rng(seed)``): background, skin tone from very light to very dark, face shape,
hair style and colour, ears, eyebrows, eyes, nose, mouth, and sometimes glasses, a beard or a
moustache, blush, freckles, earrings. Paired features are mirror images of each other, so, as on a
real face, what the course's centre box hides (eyes, nose, mouth) can be inferred from what it
leaves (face outline, skin, hair, eyebrow ends, glasses arms, ...) but not copied from it.

The face is drawn at 4x the target size (at most 1024 px) and box-downsampled, for smooth edges.
:class:`OfflineFaces` serves these faces as the same dicts as
:class:`~ddpm_lab.data.InpaintingDataset`; :func:`write_offline_faces` writes them as image files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from .data import center_crop_resize, make_inpainting_sample, sample_generator, to_tensor
from .masks import check_mask_mode, image_size_hw, make_mask

Color = tuple[int, int, int]

SKIN_TONES: tuple[Color, ...] = (  # very light .. very dark
    (255, 229, 207), (243, 204, 170), (231, 183, 143), (214, 160, 116), (189, 131, 89),
    (156, 102, 66), (122, 78, 48), (92, 57, 36), (62, 40, 27),
)
HAIR_COLORS: dict[str, Color] = {
    "black": (28, 24, 24), "dark_brown": (62, 40, 26), "brown": (108, 70, 40),
    "light_brown": (152, 112, 70), "blonde": (224, 186, 116), "platinum": (236, 222, 184),
    "red": (150, 58, 30), "ginger": (204, 104, 48), "grey": (150, 148, 146), "white": (228, 226, 222),
}
HAIR_WEIGHTS = (0.22, 0.17, 0.14, 0.08, 0.1, 0.03, 0.06, 0.06, 0.08, 0.06)
IRIS_COLORS: tuple[Color, ...] = (
    (70, 42, 24), (102, 64, 34), (40, 26, 18), (60, 110, 170), (80, 130, 90), (128, 104, 58), (110, 120, 130),
)
FRAME_COLORS: tuple[Color, ...] = ((20, 20, 20), (90, 50, 30), (200, 170, 80), (150, 30, 40), (40, 60, 140))
HAIR_STYLES = ("short", "long", "bangs", "bald", "bun", "curly", "buzz")
STYLE_WEIGHTS = (0.24, 0.22, 0.16, 0.07, 0.1, 0.13, 0.08)


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _shade(c: Color, f: float) -> Color:
    return tuple(int(min(255, max(0, round(x * f)))) for x in c)  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, c: Color, amount: float) -> Color:
    return tuple(int(np.clip(x + rng.normal(0, amount), 0, 255)) for x in c)  # type: ignore[return-value]


def _luma(c: Color) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _hsv(h: float, s: float, v: float) -> Color:
    img = Image.new("HSV", (1, 1), (int(h * 255) % 256, int(s * 255), int(v * 255)))
    return img.convert("RGB").getpixel((0, 0))  # type: ignore[return-value]


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Solid colour or a two-tone linear gradient (vertical, horizontal or diagonal)."""
    h1 = rng.random()
    c1 = _hsv(h1, rng.uniform(0.1, 0.6), rng.uniform(0.35, 0.95))
    if rng.random() < 0.35:
        return Image.new("RGB", (size, size), c1)
    c2 = _hsv(h1 + rng.normal(0, 0.15), rng.uniform(0.1, 0.6), rng.uniform(0.3, 0.95))
    n = min(size, 32)  # a linear ramp survives bilinear upsampling, so compute it small
    grid = np.linspace(0.0, 1.0, n, dtype=np.float32)
    kind = rng.integers(3)
    t = np.broadcast_to(grid[:, None] if kind == 0 else grid[None, :], (n, n))
    if kind == 2:
        t = (grid[:, None] + grid[None, :]) / 2
    arr = np.asarray(c1, np.float32) * (1 - t[..., None]) + np.asarray(c2, np.float32) * t[..., None]
    return Image.fromarray(arr.round().astype(np.uint8)).resize((size, size), Image.BILINEAR)


class _Face:
    """All random choices and the derived geometry of one face (canvas units, y grows downwards)."""

    def __init__(self, rng: np.random.Generator, s: float, pad: float) -> None:
        self.rng = rng
        self.cx = pad + s * (0.5 + np.clip(rng.normal(0, 0.015), -0.035, 0.035))
        self.cy = pad + s * (0.5 + np.clip(rng.normal(0, 0.015), -0.035, 0.035))
        self.fw = s * 0.285 * rng.uniform(0.92, 1.06) * rng.uniform(0.95, 1.05)  # half width of the head
        self.fh = self.fw * rng.uniform(1.18, 1.38)  # half height
        self.jaw = rng.uniform(0.6, 0.95)  # width at the chin / width at the cheeks
        self.squareness = rng.uniform(2.0, 2.7)  # superellipse exponent
        self.skin = _jitter(rng, _mix(*_pick_pair(SKIN_TONES, rng.random())), 4)
        self.hair_name = list(HAIR_COLORS)[rng.choice(len(HAIR_COLORS), p=HAIR_WEIGHTS)]
        self.hair = _jitter(rng, HAIR_COLORS[self.hair_name], 8)
        self.style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=STYLE_WEIGHTS)]
        self.eye_y = self.cy - self.fh * rng.uniform(0.0, 0.12)
        self.eye_dx = self.fw * rng.uniform(0.36, 0.46)
        self.eye_rx = self.fw * rng.uniform(0.15, 0.21)
        self.eye_ry = self.eye_rx * rng.uniform(0.6, 0.85)
        self.brow_y = self.eye_y - self.eye_ry - self.fh * rng.uniform(0.07, 0.14)
        self.nose_y = self.eye_y + self.fh * rng.uniform(0.26, 0.36)
        self.nose_w = self.fw * rng.uniform(0.1, 0.18)
        self.mouth_y = self.nose_y + self.fh * rng.uniform(0.18, 0.26)
        self.mouth_w = self.fw * rng.uniform(0.28, 0.48)
        self.line = max(1, int(round(s / 110)))  # outline width
        self._choose_extras()

    def _choose_extras(self) -> None:
        """Optional features: blush, freckles, beard, moustache, earrings, glasses (None/[] if absent)."""
        rng = self.rng
        self.blush = _mix(self.skin, (235, 110, 120), rng.uniform(0.2, 0.35)) if rng.random() < 0.25 else None
        self.freckles = [(self.fw * rng.uniform(0.15, 0.6), self.fh * rng.uniform(-0.12, 0.08))
                         for _ in range(int(rng.integers(4, 9)))] if rng.random() < 0.15 else []
        self.beard = rng.random() < 0.15
        self.moustache = rng.random() < 0.18
        self.earrings = _jitter(rng, (230, 190, 70), 10) if rng.random() < 0.15 else None
        self.glasses = None
        if rng.random() < 0.22:
            frame = _jitter(rng, FRAME_COLORS[rng.integers(len(FRAME_COLORS))], 8)
            tint = (25, 25, 30) if rng.random() < 0.2 else None  # sunglasses
            self.glasses = (frame, tint, bool(rng.random() < 0.5))  # colour, lens fill, round?

    def outline(self, grow: float = 1.0, n: int = 72) -> list[tuple[float, float]]:
        """Head contour: a superellipse whose lower half narrows towards the jaw."""
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        c, s = np.cos(th), np.sin(th)
        e = 2.0 / self.squareness
        x, y = np.sign(c) * np.abs(c) ** e, np.sign(s) * np.abs(s) ** e
        x = x * np.where(y > 0, 1 - (1 - self.jaw) * np.clip(y, 0, 1) ** 1.6, 1.0)
        return list(zip(self.cx + grow * self.fw * x, self.cy + grow * self.fh * y))


def _pick_pair(tones: tuple[Color, ...], t: float) -> tuple[Color, Color, float]:
    """Two neighbouring anchors and the blend between them for a position t in [0, 1)."""
    pos = t * (len(tones) - 1)
    i = min(int(pos), len(tones) - 2)
    return tones[i], tones[i + 1], pos - i


def _ellipse(d: ImageDraw.ImageDraw, x: float, y: float, rx: float, ry: float, **kw) -> None:
    d.ellipse([x - rx, y - ry, x + rx, y + ry], **kw)


def _hair_back(d: ImageDraw.ImageDraw, f: _Face) -> None:
    cx, cy, fw, fh, hair = f.cx, f.cy, f.fw, f.fh, f.hair
    if f.style in ("short", "bangs", "bun", "buzz"):
        g = 1.02 if f.style == "buzz" else 1.08
        d.ellipse([cx - fw * g, cy - fh * g, cx + fw * g, cy + fh * 0.2], fill=hair)
    if f.style == "bun":
        _ellipse(d, cx, cy - fh * 1.1, fw * 0.36, fw * 0.33, fill=hair)
    elif f.style == "long":
        length = fh * f.rng.uniform(0.7, 1.4)
        d.ellipse([cx - fw * 1.2, cy - fh * 1.12, cx + fw * 1.2, cy + fh * 0.6], fill=hair)
        d.rounded_rectangle([cx - fw * 1.2, cy - fh * 0.2, cx + fw * 1.2, cy + length], radius=fw * 0.3, fill=hair)
    elif f.style == "curly":
        vol = f.rng.uniform(1.12, 1.35)
        d.ellipse([cx - fw * vol, cy - fh * (vol - 0.05), cx + fw * vol, cy + fh * 0.55], fill=hair)
        r = fw * f.rng.uniform(0.22, 0.3)
        for a in np.linspace(np.pi * 0.85, np.pi * 2.15, 11):
            _ellipse(d, cx + fw * (vol - 0.1) * np.cos(a), cy + fh * (vol - 0.15) * np.sin(a), r, r, fill=hair)


def _body(d: ImageDraw.ImageDraw, f: _Face) -> None:
    cx, cy, fw, fh = f.cx, f.cy, f.fw, f.fh
    neck = _shade(f.skin, 0.82)
    d.rectangle([cx - fw * 0.42, cy + fh * 0.3, cx + fw * 0.42, cy + fh * 1.3], fill=neck)
    shirt = _hsv(f.rng.random(), f.rng.uniform(0.2, 0.8), f.rng.uniform(0.25, 0.9))
    top = cy + fh * f.rng.uniform(1.0, 1.1)
    d.ellipse([cx - fw * 2.0, top, cx + fw * 2.0, top + fw * 2.6], fill=shirt)
    if f.rng.random() < 0.5:  # round neckline
        d.chord([cx - fw * 0.46, top - fh * 0.2, cx + fw * 0.46, top + fh * 0.22], 0, 180, fill=neck)
    else:  # v neckline
        d.polygon([(cx - fw * 0.45, top), (cx + fw * 0.45, top), (cx, top + fh * 0.3)], fill=neck)


def _ears(d: ImageDraw.ImageDraw, f: _Face) -> None:
    y = (f.eye_y + f.nose_y) / 2
    rx, ry = f.fw * f.rng.uniform(0.12, 0.17), f.fh * f.rng.uniform(0.16, 0.22)
    for side in (-1, 1):
        x = f.cx + side * f.fw * 0.96
        _ellipse(d, x, y, rx, ry, fill=_shade(f.skin, 0.93), outline=_shade(f.skin, 0.75), width=f.line)
        _ellipse(d, x + side * rx * 0.2, y, rx * 0.45, ry * 0.6, fill=_shade(f.skin, 0.78))
        if f.earrings:
            _ellipse(d, x, y + ry * 0.95, rx * 0.35, rx * 0.35, fill=f.earrings)


def _head(d: ImageDraw.ImageDraw, f: _Face) -> None:
    d.polygon(f.outline(), fill=_shade(f.skin, 0.9), outline=_shade(f.skin, 0.72))
    inner = [(x, y - f.fh * 0.035) for x, y in f.outline(0.93)]  # lit area: shade stays at the jaw
    d.polygon(inner, fill=f.skin)
    d.line(f.outline() + f.outline()[:1], fill=_shade(f.skin, 0.72), width=f.line)


def _hair_front(d: ImageDraw.ImageDraw, f: _Face) -> None:
    cx, cy, fw, fh, rng = f.cx, f.cy, f.fw, f.fh, f.rng
    if f.style == "bald":  # sometimes a horseshoe of hair over the ears
        if f.hair_name not in ("grey", "white") and rng.random() < 0.5:
            return
        for side in (-1, 1):
            x0 = cx + side * fw * 1.03
            d.polygon([(x0, cy - fh * 0.35), (x0 - side * fw * 0.12, cy - fh * 0.3),
                       (x0 - side * fw * 0.06, cy + fh * 0.05), (x0 + side * fw * 0.04, cy)], fill=f.hair)
        return
    color = _mix(f.hair, f.skin, 0.45) if f.style == "buzz" else f.hair
    g = {"long": 1.08, "curly": 1.1, "buzz": 1.0}.get(f.style, 1.06)
    if f.style == "bangs":
        hairline, flat = f.brow_y - fh * rng.uniform(0.02, 0.08), 4.0
    else:
        hairline, flat = cy - fh * rng.uniform(0.45, 0.62), 2.0
    y_side = cy + fh * (0.2 if f.style == "long" else -0.15)
    arc = np.linspace(np.pi, 2 * np.pi, 25)
    pts = [(cx - fw * g, y_side)]
    pts += [(cx + fw * g * np.cos(a), cy + fh * g * np.sin(a)) for a in arc]
    pts += [(cx + fw * g, y_side)]
    n = 15
    zig = fh * 0.04 if f.style == "bangs" and rng.random() < 0.6 else 0.0
    for i, t in enumerate(np.linspace(1, -1, n)):
        y = hairline + (y_side - hairline) * abs(t) ** flat + (zig if i % 2 else 0.0)
        pts.append((cx + t * fw * 0.95, min(y, y_side)))
    d.polygon(pts, fill=color)
    if f.style == "long":  # strands falling beside the face
        bottom = cy + fh * rng.uniform(0.9, 1.3)
        for side in (-1, 1):
            d.polygon([(cx + side * fw * 1.2, cy - fh * 0.3), (cx + side * fw * 0.88, cy - fh * 0.25),
                       (cx + side * fw * 0.8, cy + fh * 0.55), (cx + side * fw * 0.95, bottom),
                       (cx + side * fw * 1.22, bottom)], fill=color)


def _brows(d: ImageDraw.ImageDraw, f: _Face) -> None:
    rng = f.rng
    width = max(1, int(round(f.fh * rng.uniform(0.03, 0.065))))
    tilt = f.fh * rng.uniform(-0.04, 0.05)  # >0: inner end lower (stern), <0: raised
    arch = f.fh * rng.uniform(0.0, 0.05)
    color = _shade(f.hair if f.style != "bald" else HAIR_COLORS["dark_brown"], 0.85)
    while _luma(f.skin) - _luma(color) < 60 and _luma(color) > 25:  # brows darker than the skin
        color = _shade(color, 0.8)
    for side in (-1, 1):
        inner, outer = f.cx + side * f.eye_dx * 0.5, f.cx + side * (f.eye_dx + f.eye_rx * 1.35)
        pts = [(inner, f.brow_y + tilt), ((inner + outer) / 2, f.brow_y - arch), (outer, f.brow_y + f.fh * 0.02)]
        d.line(pts, fill=color, width=width, joint="curve")
        for x, y in (pts[0], pts[2]):
            _ellipse(d, x, y, width / 2, width / 2, fill=color)


def _eyes(d: ImageDraw.ImageDraw, f: _Face) -> None:
    rng = f.rng
    lid = (38, 28, 28)
    w = max(1, int(round(f.line * 1.3)))
    closed = rng.random() < 0.08
    iris = _jitter(rng, IRIS_COLORS[rng.integers(len(IRIS_COLORS))], 6)
    gaze = f.eye_rx * rng.uniform(-0.25, 0.25)
    ir = f.eye_ry * rng.uniform(0.7, 0.92)
    for side in (-1, 1):
        x, y, rx, ry = f.cx + side * f.eye_dx, f.eye_y, f.eye_rx, f.eye_ry
        _ellipse(d, x, y - ry * 0.3, rx * 1.15, ry * 1.2, fill=_shade(f.skin, 0.92))  # eye socket
        if closed:
            d.arc([x - rx, y - ry, x + rx, y + ry], 10, 170, fill=lid, width=w * 2)
            continue
        _ellipse(d, x, y, rx, ry, fill=(246, 244, 238))
        ix = x + gaze
        _ellipse(d, ix, y, ir, ir, fill=iris)
        _ellipse(d, ix, y, ir * 0.48, ir * 0.48, fill=(12, 10, 10))
        _ellipse(d, ix + ir * 0.35, y - ir * 0.35, ir * 0.2, ir * 0.2, fill=(255, 255, 255))
        d.arc([x - rx, y - ry, x + rx, y + ry], 180, 360, fill=lid, width=w + 1)  # upper lid
        d.arc([x - rx, y - ry, x + rx, y + ry], 20, 160, fill=_shade(f.skin, 0.6), width=max(1, w - 1))


def _nose(d: ImageDraw.ImageDraw, f: _Face) -> None:
    cx, y, nw, fh = f.cx, f.nose_y, f.nose_w, f.fh
    shadow = _shade(f.skin, 0.62)
    d.polygon([(cx - nw * 0.25, f.eye_y), (cx + nw * 0.25, f.eye_y), (cx + nw * 0.9, y), (cx - nw * 0.9, y)],
              fill=_shade(f.skin, 0.9))
    kind = f.rng.integers(3)
    if kind == 0:  # round tip with nostrils
        tip = _shade(f.skin, 1.06)
        _ellipse(d, cx, y - fh * 0.02, nw * 0.6, fh * 0.06, fill=tip, outline=shadow, width=f.line)
        for side in (-1, 1):
            _ellipse(d, cx + side * nw * 0.45, y + fh * 0.01, nw * 0.2, fh * 0.025, fill=_shade(f.skin, 0.5))
    elif kind == 1:  # curved base line
        d.arc([cx - nw, y - fh * 0.08, cx + nw, y + fh * 0.03], 10, 170, fill=shadow, width=f.line * 2)
    else:  # wings and nostrils
        for side in (-1, 1):
            d.arc([cx + side * nw * 0.6 - nw * 0.4, y - fh * 0.05, cx + side * nw * 0.6 + nw * 0.4, y + fh * 0.02],
                  90 - side * 80, 270 - side * 80, fill=shadow, width=f.line * 2)
            _ellipse(d, cx + side * nw * 0.3, y, nw * 0.15, fh * 0.02, fill=_shade(f.skin, 0.45))


def _mouth(d: ImageDraw.ImageDraw, f: _Face) -> None:
    rng, cx, y, mw, fh = f.rng, f.cx, f.mouth_y, f.mouth_w, f.fh
    lips = _mix(_shade(f.skin, 0.8), (190, 70, 80), rng.uniform(0.25, 0.55))
    if rng.random() < 0.12:
        lips = _jitter(rng, [(180, 20, 40), (200, 60, 110), (110, 30, 60)][rng.integers(3)], 8)
    dark = (70, 20, 28)
    kind = rng.choice(4, p=(0.3, 0.3, 0.25, 0.15))
    if kind == 0:  # neutral
        _ellipse(d, cx, y + fh * 0.03, mw * 0.65, fh * 0.045, fill=lips)
        d.line([(cx - mw, y), (cx, y + fh * 0.012), (cx + mw, y)], fill=_shade(lips, 0.45), width=f.line * 2)
    elif kind == 1:  # closed smile
        h = fh * rng.uniform(0.06, 0.14)
        d.arc([cx - mw, y - h, cx + mw, y + h], 15, 165, fill=_shade(lips, 0.7), width=f.line * 2 + 1)
    elif kind == 2:  # open smile with teeth
        h = fh * rng.uniform(0.1, 0.18)
        d.chord([cx - mw, y - h, cx + mw, y + h], 0, 180, fill=dark, outline=lips, width=f.line * 2)
        d.chord([cx - mw * 0.85, y - h * 0.3, cx + mw * 0.85, y + h * 0.45], 0, 180, fill=(250, 250, 245))
        d.rectangle([cx - mw * 0.8, y, cx + mw * 0.8, y + h * 0.2], fill=(250, 250, 245))
    else:  # open, surprised
        _ellipse(d, cx, y + fh * 0.03, mw * 0.45, fh * 0.08, fill=dark, outline=lips, width=f.line * 2)


def _extras(d: ImageDraw.ImageDraw, f: _Face, stage: str) -> None:
    """Optional features, drawn at the right layer (``stage``: "skin", "beard" or "top")."""
    cx, fw, fh = f.cx, f.fw, f.fh
    if stage == "skin":
        if f.blush:
            for side in (-1, 1):
                _ellipse(d, cx + side * f.eye_dx * 1.05, f.nose_y, fw * 0.16, fh * 0.07, fill=f.blush)
        for dx, dy in f.freckles:
            for side in (-1, 1):
                _ellipse(d, cx + side * dx, f.nose_y + dy, fw * 0.018, fw * 0.018, fill=_shade(f.skin, 0.75))
    elif stage == "beard":
        hair = f.hair if f.style != "bald" else HAIR_COLORS["brown"]
        if f.beard:
            mid = (f.nose_y + f.mouth_y) / 2  # top edge: low in the middle, sideburns up to the ears

            def top(x: float) -> float:
                return mid - min(1.0, abs(x - cx) / fw) ** 2 * (mid - f.eye_y) * 0.85

            low = [(x, y) for x, y in f.outline(1.02) if y > top(x)]  # right cheek -> chin -> left cheek
            if low:
                xs = np.linspace(low[-1][0], low[0][0], 12)
                d.polygon(low + [(x, top(x)) for x in xs], fill=_shade(hair, 0.95))
        if f.moustache:
            y0, y1 = f.nose_y + fh * 0.06, f.mouth_y + fh * 0.01
            for side in (-1, 1):
                d.polygon([(cx, y0), (cx + side * f.mouth_w * 1.05, y1 + fh * 0.03),
                           (cx + side * f.mouth_w * 0.9, y1 + fh * 0.06), (cx, y1 - fh * 0.02)], fill=hair)
    elif stage == "top" and f.glasses:
        frame, tint, round_ = f.glasses
        r = f.eye_rx * 1.45
        for side in (-1, 1):
            x = cx + side * f.eye_dx
            box = [x - r, f.eye_y - r * 0.8, x + r, f.eye_y + r * 0.8]
            if round_:
                d.ellipse(box, fill=tint, outline=frame, width=f.line * 2)
            else:
                d.rounded_rectangle(box, radius=r * 0.3, fill=tint, outline=frame, width=f.line * 2)
            d.line([(x + side * r, f.eye_y - r * 0.3), (cx + side * fw * 1.0, f.eye_y - r * 0.45)],
                   fill=frame, width=f.line * 2)
        d.line([(cx - f.eye_dx + r, f.eye_y - r * 0.2), (cx + f.eye_dx - r, f.eye_y - r * 0.2)],
               fill=frame, width=f.line * 2)


def render_face(seed: int, size: int = 64) -> Image.Image:
    """Draw one cartoon face, deterministically from ``seed``.

    All randomness comes from ``numpy.random.default_rng(seed)``. The face is drawn at
    ``ss = min(4, 1024 // size)`` times the size (RGBA layer, tilted by a few degrees about the
    face centre, over the background) and box-downsampled by ``ss``.

    :param seed: any non-negative integer.
    :param size: output side in pixels (>= 8).
    :return: an RGB image of size (size, size).
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    ss = max(1, min(4, 1024 // int(size)))
    s = int(size) * ss
    pad = s // 8  # drawing margin, so a tilted body still fills the bottom corners
    bg = _background(rng, s)
    layer = Image.new("RGBA", (s + 2 * pad, s + 2 * pad), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    f = _Face(rng, s, pad)
    _hair_back(d, f)
    _body(d, f)
    _ears(d, f)
    _head(d, f)
    _extras(d, f, "skin")
    _extras(d, f, "beard")
    _nose(d, f)
    _mouth(d, f)
    _eyes(d, f)
    _brows(d, f)
    _hair_front(d, f)
    _extras(d, f, "top")
    angle = float(np.clip(rng.normal(0, 3.0), -7, 7))
    layer = layer.rotate(angle, resample=Image.NEAREST, center=(f.cx, f.cy)).crop((pad, pad, pad + s, pad + s))
    bg.paste(layer, (0, 0), layer)
    return bg.reduce(ss) if ss > 1 else bg


def face_seed(seed: int, index: int) -> int:
    """Seed of face ``index`` of a data set with base ``seed``: ``seed * 1_000_003 + index``."""
    return int(seed) * 1_000_003 + int(index)


class OfflineFaces(Dataset):
    """``n`` rendered faces served as the course's inpainting dicts (no files, no download).

    Face i is :func:`render_face` of ``face_seed(seed, i)``, rendered on first access and cached
    (as a uint8 array). Masks and noise: fresh on every access if ``mask_seed`` is None, otherwise
    fixed per index (generator seeded from (mask_seed, i)), as in
    :class:`~ddpm_lab.data.InpaintingDataset`. ``path`` is ``"offline:face_00042"``.

    :param n: number of faces.
    :param image_size: ``H = W`` or ``(H, W)``; non-square sizes are centre crops of a square face.
    :param seed: base seed of the faces (different seeds give disjoint data sets).
    :param mask_mode: one of :data:`~ddpm_lab.masks.MASK_MODES`.
    :param mask_seed: None for fresh masks/noise, an int for reproducible ones.
    """

    def __init__(
        self,
        n: int,
        image_size: int | tuple[int, int] = 64,
        seed: int = 0,
        mask_mode: str = "center",
        mask_seed: int | None = None,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        self.n = int(n)
        self.image_size = image_size_hw(image_size)
        self.seed = int(seed)
        self.mask_mode = check_mask_mode(mask_mode)
        self.mask_seed = mask_seed
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.n

    def image(self, index: int) -> Image.Image:
        """Face ``index`` as a PIL image of ``image_size``."""
        if index not in self._cache:
            h, w = self.image_size
            img = render_face(face_seed(self.seed, index), max(h, w, 8))
            self._cache[index] = np.asarray(center_crop_resize(img, (h, w)))
        return Image.fromarray(self._cache[index])

    def __getitem__(self, index: int) -> dict:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} faces")
        index %= self.n
        img = to_tensor(self.image(index))  # (3, H, W)
        gen = sample_generator(self.mask_seed, index)
        mask = make_mask(self.mask_mode, self.image_size, gen)  # (1, H, W)
        return make_inpainting_sample(img, mask, gen, f"offline:face_{index:05d}")


def write_offline_faces(
    folder: str | os.PathLike, n: int, image_size: int = 64, seed: int = 0, fmt: str = "jpg"
) -> list[Path]:
    """Write ``n`` rendered faces as image files ``face_00000.<fmt>``, ... (creates ``folder``).

    The folder then works like a small CelebA: ``InpaintingDataset(folder, ...)``.

    :param folder: output directory.
    :param n: number of faces.
    :param image_size: side in pixels.
    :param seed: base seed (face i uses :func:`face_seed` (seed, i), as :class:`OfflineFaces`).
    :param fmt: ``"jpg"`` (quality 95) or ``"png"``.
    :return: the written paths, sorted.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in ("jpg", "jpeg", "png"):
        raise ValueError(f"fmt must be 'jpg' or 'png', got {fmt!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(int(n)):
        path = out / f"face_{i:05d}.{fmt}"
        img = render_face(face_seed(seed, i), image_size)
        if fmt == "png":
            img.save(path)
        else:
            img.save(path, quality=95)
        paths.append(path)
    return sorted(paths)
