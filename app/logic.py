"""The inpainting page's logic, free of Streamlit, so tests reach every rule without a browser.

The page (``app/streamlit_app.py``) only lays out widgets and calls these functions. Everything
that can go wrong with user input ends here as a ``ValueError`` / ``FileNotFoundError`` whose
message is shown in the page as it is, so it says what to do.

- uploads: :func:`read_upload` (not an image, decompression bombs, downscaling of large images);
- holes: :func:`square_crop` (what the model sees), :func:`center_box`, :func:`box_mask`,
  :func:`random_mask`, :func:`check_mask`;
- sampler settings: :class:`SamplerSettings`, :func:`network_calls`;
- the model: :func:`resolve_checkpoint`, :func:`model_configs`, :func:`model_summary`, :func:`pick_device`;
- the run: :func:`run_inpainting` (with a progress callback);
- display: :func:`masked_preview`, :func:`trajectory_strip`, :func:`enlarge`, :func:`png_bytes`.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MB: more than any honest JPG/PNG photo needs
MAX_PIXELS = 50_000_000  # refuse to decode anything larger (a decompression bomb or a scan)
MAX_SIDE = 1024  # larger images are downscaled so the longest side is this
SAMPLER_LABELS = {"DDIM": "ddim", "DDPM": "ddpm", "RePaint": "repaint"}

ProgressCallback = Callable[[int, int], None]


# --------------------------------------------------------------------------- uploads
def _rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparent pixels become white (what a viewer shows), not garbage."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if arr.max(initial=0.0) > 255 else 255.0
        return Image.fromarray(np.clip(np.rint(arr / scale * 255), 0, 255).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def read_upload(
    data: bytes, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_UPLOAD_BYTES
) -> tuple[Image.Image, str | None]:
    """Decode uploaded bytes into an RGB image no larger than ``max_side`` on its longest side.

    The header is read first: an image of more than ``max_pixels`` pixels is refused *before*
    decoding (a decompression bomb is a small file that unpacks to gigabytes), and so is one that
    Pillow itself flags (``DecompressionBombError`` / ``DecompressionBombWarning``). JPEGs are
    decoded at a reduced scale when that is enough (``Image.draft``). EXIF orientation is applied.
    An image with a longer side than ``max_side`` is downscaled (Lanczos), keeping its aspect ratio.

    :param data: the uploaded file's bytes.
    :param max_side: longest side of the returned image.
    :param max_pixels: largest width * height accepted.
    :param max_bytes: largest file accepted.
    :return: ``(image, note)``: the RGB image and a sentence for the page when it was downscaled
        (else None).
    :raises ValueError: empty, too large, not an image, a decompression bomb, or truncated.
    """
    if not data:
        raise ValueError("The uploaded file is empty. Upload a JPG or PNG image.")
    if len(data) > max_bytes:
        raise ValueError(
            f"The uploaded file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
            "Upload a smaller JPG or PNG image."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise Image.DecompressionBombError(f"{width}x{height}")
                if img.format == "JPEG" and max(width, height) > 2 * max_side:
                    img.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale
                img.load()
                img = ImageOps.exif_transpose(img) or img
                img = _rgb(img).copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ValueError(
            f"The image is too large to open safely ({err}; at most {max_pixels / 1e6:.0f} megapixels): "
            "it may be a decompression bomb. Resize it below that and upload it again."
        ) from None
    except UnidentifiedImageError:
        raise ValueError("The uploaded file is not an image Pillow can read. Upload a JPG or PNG image.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ValueError(f"The image could not be decoded ({err}); it may be truncated or corrupt. "
                         "Upload another JPG or PNG image.") from None
    if min(img.size) < 8:
        raise ValueError(f"The image is only {img.width}x{img.height} pixels; upload one of at least 8x8.")
    note = None
    if max(img.size) > max_side:
        before = img.size
        img.thumbnail((max_side, max_side), Image.LANCZOS)
        note = f"The image was downscaled from {before[0]}x{before[1]} to {img.width}x{img.height} pixels."
    return img, note


# --------------------------------------------------------------------------- holes
@dataclass(frozen=True)
class Box:
    """A rectangular hole in image pixels, the course's ``bbox2mask`` order."""

    top: int
    left: int
    height: int
    width: int


def square_crop(width: int, height: int) -> Box:
    """The centred square the model sees (``ddpm_lab.inference`` crops every image to it):
    side = min(H, W), top = round((H - side) / 2), left = round((W - side) / 2)."""
    side = min(width, height)
    return Box(int(round((height - side) / 2.0)), int(round((width - side) / 2.0)), side, side)


def center_box(width: int, height: int) -> Box:
    """The course's centre hole ``(S//4, S//4, S//2, S//2)`` of the square crop of side S
    (for a square image: ``(H//4, W//4, H//2, W//2)``, a quarter of the area)."""
    crop = square_crop(width, height)
    s = crop.height
    return Box(crop.top + s // 4, crop.left + s // 4, max(1, s // 2), max(1, s // 2))


def box_mask(width: int, height: int, box: Box) -> torch.Tensor:
    """Mask (1, H, W) with ones in ``box``, clipped to the image: ``mask[top:top+h, left:left+w] = 1``.

    :raises ValueError: the box is empty or lies outside the image (nothing to fill).
    """
    top, left = max(0, int(box.top)), max(0, int(box.left))
    bottom, right = min(height, int(box.top) + int(box.height)), min(width, int(box.left) + int(box.width))
    if box.height < 1 or box.width < 1 or bottom <= top or right <= left:
        raise ValueError(
            f"The hole is empty (box top={box.top}, left={box.left}, height={box.height}, width={box.width} "
            f"in a {width}x{height} image): there is nothing to fill. Give it a height and a width of at least 1 pixel."
        )
    mask = torch.zeros(1, height, width)  # (1, H, W)
    mask[:, top:bottom, left:right] = 1.0
    return mask


def random_mask(kind: str, width: int, height: int, seed: int) -> torch.Tensor:
    """One of ``ddpm_lab.make_mask``'s kinds drawn on the square crop (what the model sees) and
    placed into a (1, H, W) mask of the whole image; the same seed gives the same mask.

    :return: float mask (1, H, W), 1 = hole, zero outside the square crop.
    """
    from ddpm_lab.masks import make_mask

    crop = square_crop(width, height)
    generator = torch.Generator().manual_seed(int(seed))
    mask = torch.zeros(1, height, width)  # (1, H, W)
    mask[:, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width] = make_mask(
        kind, crop.height, generator=generator
    )  # (1, S, S)
    return mask


def check_mask(mask: torch.Tensor) -> float:
    """Return the hole's fraction of the image; refuse a mask with nothing to fill, or one that
    reaches outside the centred square crop the model sees.

    :param mask: (1, H, W), 1 = hole.
    :raises ValueError: the mask is empty, or has hole pixels outside the square crop.
    """
    hole = mask.reshape(mask.shape[-2], mask.shape[-1]) > 0.5  # (H, W)
    fraction = float(hole.float().mean())
    if fraction == 0.0:
        raise ValueError("The mask is empty: there is nothing to fill. Choose a hole that covers some pixels.")
    height, width = hole.shape
    crop = square_crop(width, height)
    inside = hole[crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]
    if int(inside.sum()) < int(hole.sum()):
        rows = f"rows {crop.top}..{crop.top + crop.height - 1}" if crop.height < height else ""
        cols = f"columns {crop.left}..{crop.left + crop.width - 1}" if crop.width < width else ""
        raise ValueError(
            f"The hole reaches outside the centred {crop.width}x{crop.height} square that the model sees "
            f"({rows or cols} of this {width}x{height} image, not greyed out in the preview). "
            "Move or shrink the hole to lie inside it."
        )
    return fraction


def masked_preview(image: Image.Image, mask: torch.Tensor) -> Image.Image:
    """The image with its hole painted white (the course's ``mask_image = y_0 (1 - mask) + mask``);
    for a non-square image the part outside the model's square crop is greyed out (50% grey)."""
    arr = np.asarray(image.convert("RGB")).astype(np.float32)  # (H, W, 3)
    height, width = arr.shape[:2]
    crop = square_crop(width, height)
    inside = np.zeros((height, width), dtype=bool)
    inside[crop.top : crop.top + crop.height, crop.left : crop.left + crop.width] = True
    arr[~inside] = 0.5 * arr[~inside] + 0.5 * 128.0
    arr[mask.reshape(height, width).numpy() > 0.5] = 255.0
    return Image.fromarray(arr.round().astype(np.uint8), "RGB")


# --------------------------------------------------------------------------- sampler
@dataclass(frozen=True)
class SamplerSettings:
    """What the sidebar chose: sampler (``ddim``/``ddpm``/``repaint``), DDIM ``steps`` and ``eta``,
    RePaint's ``jump_length`` / ``jump_n_sample``, and the ``seed`` of every random draw."""

    sampler: str = "ddim"
    steps: int = 25
    eta: float = 0.0
    jump_length: int = 10
    jump_n_sample: int = 10
    seed: int = 0

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``ddpm_lab.inference.inpaint`` (DDPM and RePaint run every step)."""
        if self.sampler not in SAMPLER_LABELS.values():
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLER_LABELS.values())}")
        if self.sampler == "ddim":
            return {"sampler": "ddim", "steps": int(self.steps), "eta": float(self.eta)}
        if self.sampler == "repaint":
            return {"sampler": "repaint", "jump_length": int(self.jump_length), "jump_n_sample": int(self.jump_n_sample)}
        return {"sampler": "ddpm"}


def network_calls(settings: SamplerSettings, num_timesteps: int) -> int:
    """Network evaluations a run costs: DDIM ``steps``, DDPM T, RePaint T plus the resampled stretches.

    RePaint walks back ``jump_length`` steps ``jump_n_sample - 1`` extra times after every
    ``jump_length`` steps, except the last stretch (``ddpm_lab.samplers.repaint_schedule``).
    """
    if settings.sampler == "ddim":
        return int(min(max(settings.steps, 1), num_timesteps))
    if settings.sampler == "ddpm":
        return int(num_timesteps)
    from ddpm_lab.samplers import repaint_schedule

    times = repaint_schedule(num_timesteps, settings.jump_length, settings.jump_n_sample)
    return sum(1 for a, b in zip(times[:-1], times[1:]) if b < a)


# --------------------------------------------------------------------------- model
def pick_device() -> str:
    """``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_checkpoint(text: str | None) -> str | None:
    """The sidebar's checkpoint field -> an absolute path, or None (the bundled demo model) when empty.

    :raises FileNotFoundError: the path does not name a file.
    """
    text = (text or "").strip().strip('"').strip("'")
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"No checkpoint at {str(path)!r}. Give the path of a .pth/.pt/.ckpt file on the machine running "
            "the app, or leave the field empty for the bundled demo model."
        )
    return str(path.resolve())


def model_configs() -> dict[str, Any]:
    """Where the model's config comes from, for the sidebar: label -> ``config`` of ``load_model``.

    Our checkpoints carry their config (None: use it). A file without one (the course's
    ``best_model.pth``, Palette's ``*_Network.pth``) needs one chosen here: a run profile, or
    Palette's CelebA-HQ inpainting model (the course UNet at 256 px with Palette's schedules).
    """
    from ddpm_lab.profiles import COURSE_UNET_CONFIG, PALETTE_BETA_SCHEDULE, PROFILES

    choices: dict[str, Any] = {"stored in the checkpoint": None}
    choices.update({f"profile {name}": name for name in PROFILES})
    choices["Palette CelebA-HQ (256 px)"] = {
        "network": "unet", "image_size": 256, "unet_config": dict(COURSE_UNET_CONFIG),
        "beta_schedule": {k: dict(v) for k, v in PALETTE_BETA_SCHEDULE.items()},
    }
    return choices


def file_stamp(path: str | None) -> str:
    """A cache key part that changes when the checkpoint file is rewritten (size and mtime)."""
    if path is None:
        return "demo"
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


def model_summary(model: torch.nn.Module) -> dict[str, Any]:
    """What the sidebar says about a loaded model: its image size, the length of its sampling
    ("test") schedule, its parameter count and the DDIM steps it was validated with."""
    from ddpm_lab.inference import default_steps, model_image_size
    from ddpm_lab.nn import count_parameters

    try:
        size: int | None = model_image_size(model)
    except ValueError:
        size = None
    return {
        "image_size": size,
        "test_steps": int(model.beta_schedule["test"]["n_timestep"]),
        "parameters": int(count_parameters(getattr(model, "denoise_fn", model))),
        "ddim_steps": int(default_steps(model, "ddim") or 1),
    }


def run_inpainting(
    model: torch.nn.Module,
    image: Image.Image,
    mask: torch.Tensor,
    settings: SamplerSettings,
    trajectory: bool = False,
    callback: ProgressCallback | None = None,
) -> Any:
    """Inpaint ``image`` (any size) in the hole ``mask`` (1, H, W) at the image's size.

    Calls ``ddpm_lab.inference.inpaint`` with the sampler settings and a CPU ``torch.Generator``
    seeded with ``settings.seed`` (so the random draws are the same on CPU and GPU). When
    ``callback`` is given it is called as ``callback(done, total)`` after every sampler step.

    :return: the ``InpaintResult`` (``pasted`` is the result at the original size).
    """
    from ddpm_lab.inference import inpaint

    check_mask(mask)
    generator = torch.Generator().manual_seed(int(settings.seed))
    kwargs = dict(settings.kwargs(), generator=generator, return_trajectory=trajectory)
    return inpaint(model, image, mask, callback=callback, **kwargs)


# --------------------------------------------------------------------------- display
def to_image(x: Any) -> Image.Image:
    """A PIL image, or the first image of a [-1, 1] tensor (3, H, W) / (B, 3, H, W), as RGB PIL."""
    if isinstance(x, Image.Image):
        return x.convert("RGB")
    from ddpm_lab.data import to_pil

    t = torch.as_tensor(x).detach().cpu()
    return to_pil(t[0] if t.dim() == 4 else t)


def trajectory_strip(frames: Sequence[Any], tile: int = 96, gap: int = 2) -> Image.Image:
    """The reverse process left to right (noise -> result): each frame enlarged by the integer
    factor ``max(1, round(tile / side))`` with nearest-neighbour (the model's pixels stay visible),
    ``gap`` white pixels apart."""
    if not frames:
        raise ValueError("no trajectory frames to show")
    tiles = [to_image(f) for f in frames]
    scale = max(1, round(tile / tiles[0].height))
    tiles = [t.resize((t.width * scale, t.height * scale), Image.NEAREST) for t in tiles]
    w, h = tiles[0].size
    strip = Image.new("RGB", (len(tiles) * w + (len(tiles) - 1) * gap, h), (255, 255, 255))
    for i, tile_img in enumerate(tiles):
        strip.paste(tile_img, (i * (w + gap), 0))
    return strip


def enlarge(image: Image.Image, min_side: int = 256) -> Image.Image:
    """Nearest-neighbour enlargement of a small image to at least ``min_side`` (crisp pixels on screen)."""
    factor = max(1, -(-min_side // max(1, min(image.size))))
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def png_bytes(image: Image.Image) -> bytes:
    """The image encoded as PNG (for the download button)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def fingerprint(*parts: Any) -> str:
    """A short hash of the inputs of a run: a stored result is shown only while they are unchanged."""
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, Image.Image):
            h.update(part.tobytes())
            h.update(repr(part.size).encode())
        elif torch.is_tensor(part):
            h.update(part.detach().cpu().numpy().tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:16]
