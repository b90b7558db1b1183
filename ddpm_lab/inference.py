"""Inference: load a trained model (or the bundled demo model) and inpaint images of any size.

The course's part 5 builds the model, loads ``best_model.pth`` with a plain ``torch.load``
(erratum 12), and calls ``restoration(cond_image, y_t=cond_image, y_0=cond_image, mask=mask)``
(erratum 5). Here :func:`load_model` reads every checkpoint with ``weights_only=True`` and builds the
right network from the config stored inside, and :func:`inpaint` takes a PIL image, a file or a
tensor of any size, crops and resizes it for the model, runs one of the samplers of
:mod:`ddpm_lab.samplers` on the model's ``"test"`` schedule, and pastes the result back into the
original picture.

The bundled demo model (``assets/demo_model.pt``, trained by ``tools/train_demo_model.py``) is a
small Palette UNet wrapped in :class:`VPredictionUNet`; :func:`compare_on_faces` scores any model
against the two baselines of :mod:`ddpm_lab.baselines` on offline faces it never saw.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .diffusion import InpaintingGaussianDiffusion
from .vprediction import VPredictionUNet

DEMO_MODEL_PATH = Path(__file__).resolve().parent / "assets" / "demo_model.pt"
# Offline faces with this face-seed base (render_face(1 * 1_000_003 + i)) are never used to train
# the demo model, which sees render_face(i) for i < 8000 (face-seed base 0).
HELDOUT_FACE_SEED = 1


# ---------------------------------------------------------------------------------------- loading
def _config_from(config: Any) -> dict[str, Any]:
    """A model config dict from a dict, a :class:`~ddpm_lab.profiles.Profile` or a profile name.

    Also understands the trainer's ``config.json`` (``{"profile": {...}, "run": {"network": ...}}``)
    and network names given as class names (``"UNet"``, ``"SimpleUnet"``).
    """
    from .profiles import Profile, get_profile

    if isinstance(config, str):
        config = get_profile(config)
    if isinstance(config, Profile):
        return {"network": "unet", "image_size": config.image_size, "unet_config": config.unet_config,
                "beta_schedule": config.beta_schedule, "simple_unet_channels": list(config.simple_unet_channels),
                "sample": {"sampler": "ddim", "steps": config.sample_steps}}
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, a Profile or a profile name, got {type(config).__name__}")
    cfg = dict(config)
    if isinstance(cfg.get("profile"), Mapping):  # the trainer's config.json
        profile, run = dict(cfg.pop("profile")), cfg.pop("run", None) or {}
        cfg = {**profile, **cfg, "network": run.get("network", cfg.get("network", "unet"))}
        cfg.setdefault("sample", {"sampler": "ddim", "steps": profile.get("sample_steps")})
    network = str(cfg.get("network", "unet")).lower()
    cfg["network"] = "simple" if network in ("simple", "simpleunet") else network
    return cfg


def _complete(config: Any) -> bool:
    """Whether a stored config is enough to build the model (it has a schedule and the network's arguments)."""
    if not isinstance(config, Mapping):
        return False
    cfg = _config_from(config)
    if "beta_schedule" not in cfg:
        return False
    return cfg["network"] == "simple" or isinstance(cfg.get("unet_config"), Mapping)


def build_model(config: Mapping[str, Any]) -> InpaintingGaussianDiffusion:
    """An untrained :class:`InpaintingGaussianDiffusion` from a config dict.

    Keys: ``beta_schedule`` (required); ``network`` = ``"unet"`` (default, needs ``unet_config``),
    ``"unet_v"`` (:class:`VPredictionUNet`, same ``unet_config``; the demo model) or ``"simple"``
    (:class:`~ddpm_lab.simple_unet.SimpleUnet`, ``simple_unet_channels``);
    ``image_size`` (default: ``unet_config["image_size"]``). The config is kept as ``model.config``.
    """
    cfg = _config_from(config)
    if "beta_schedule" not in cfg:
        raise ValueError(f"the model config has no 'beta_schedule' (keys: {sorted(cfg)})")
    network = str(cfg.get("network", "unet")).lower()
    if network == "simple":
        from .simple_unet import SimpleUnet

        channels = cfg.get("simple_unet_channels") or cfg.get("down_channels")
        net = SimpleUnet(down_channels=tuple(channels)) if channels else SimpleUnet()
        model = InpaintingGaussianDiffusion(net, cfg["beta_schedule"])
    elif network in ("unet", "unet_v"):
        if not isinstance(cfg.get("unet_config"), Mapping):
            raise ValueError(f"a {network!r} model config needs 'unet_config' (the UNet keyword arguments)")
        net = VPredictionUNet(**cfg["unet_config"]) if network == "unet_v" else dict(cfg["unet_config"])
        model = InpaintingGaussianDiffusion(net, cfg["beta_schedule"])
    else:
        raise ValueError(f"unknown network kind {network!r}; use 'unet', 'unet_v' or 'simple'")
    cfg.setdefault("image_size", (cfg.get("unet_config") or {}).get("image_size"))
    model.config = cfg
    return model


def _find_config(path: Path, state: Mapping) -> dict | None:
    """The first complete config among: the file's own, ``config.json`` and ``last.ckpt`` beside it."""
    import json

    from .weights import _read

    if _complete(state.get("config")):
        return dict(state["config"])
    sibling_json = path.with_name("config.json")
    if sibling_json.is_file():
        try:
            found = json.loads(sibling_json.read_text())
        except (OSError, ValueError):
            found = None
        if _complete(found):
            return found
    sibling_ckpt = path.with_name("last.ckpt")
    if sibling_ckpt.is_file() and sibling_ckpt.resolve() != path.resolve():
        found = _read(sibling_ckpt).get("config")
        if _complete(found):
            return dict(found)
    return None


def load_model(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu", config: Any = None
) -> InpaintingGaussianDiffusion:
    """Build a model and load its weights (``torch.load(weights_only=True)``, erratum 12).

    Where the config comes from, first match wins: the ``config`` argument (a dict, a
    :class:`~ddpm_lab.profiles.Profile` or a profile name such as ``"cpu"``); a complete
    ``"config"`` stored in the file (the demo model); the trainer's ``config.json`` in the same
    folder (``train_from_profile`` writes it beside ``best_model.pth`` and ``last.ckpt``); a
    complete ``"config"`` in a ``last.ckpt`` in the same folder.

    :param path: a checkpoint or state_dict file; None loads the bundled demo model.
    :param device: where the model goes.
    :param config: the model config, needed only for files that carry none (the course's
        ``best_model.pth``).
    :return: the model, in eval mode, on ``device``, with ``model.config`` set.
    :raises FileNotFoundError: no file at ``path`` (the message names it).
    :raises ValueError: unreadable file, no config to be found, or weights that do not fit.
    """
    from .weights import _read, load_weights

    path = DEMO_MODEL_PATH if path is None else Path(path)
    if not Path(path).is_file():
        hint = " (the bundled demo model is missing: reinstall ddpm_lab)" if path == DEMO_MODEL_PATH else ""
        raise FileNotFoundError(f"no checkpoint at {os.fspath(path)!r}{hint}")
    state = _read(path)
    if config is None:
        config = _find_config(Path(path), state)
    if config is None:
        raise ValueError(
            f"{os.fspath(path)!r} holds weights but no model config: pass config=<profile name or dict> "
            "(command line: --profile NAME) with the settings it was trained with"
        )
    model = build_model(config)
    load_weights(model, state, use_ema=True, strict=True)
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------- inputs
@dataclass
class InpaintResult:
    """What :func:`inpaint` returns. Tensors are at the model's size, in [-1, 1], on the CPU."""

    result: Tensor  # (B, 3, S, S) the inpainted image (known region = input)
    masked_input: Tensor  # (B, 3, S, S) the input with the hole painted white (the course's mask_image)
    mask: Tensor  # (B, 1, S, S) 1 = hole
    image: Tensor  # (B, 3, S, S) the cropped, resized input (y_0)
    pasted: Image.Image | list[Image.Image]  # the result pasted into the ORIGINAL image (hole only)
    frames: list[Tensor] = field(default_factory=list)  # trajectory, each (B, 3, S, S), if asked


def model_image_size(model: torch.nn.Module, image_size: int | None = None) -> int:
    """The square side the model works at: ``image_size`` if given, else ``model.config["image_size"]``,
    else the UNet's ``image_size``; ValueError if none is known."""
    if image_size is not None:
        return int(image_size)
    size = (getattr(model, "config", None) or {}).get("image_size")
    size = size or getattr(getattr(model, "denoise_fn", model), "image_size", None)
    if not size:
        raise ValueError("cannot tell the model's image size: pass image_size=... (e.g. the profile's image_size)")
    return int(size)


def _crop_box(h: int, w: int) -> tuple[int, int, int]:
    """(top, left, side) of the centred square crop, rounded exactly as ``data.center_crop_resize``."""
    side = min(h, w)
    return int(round((h - side) / 2.0)), int(round((w - side) / 2.0)), side


def _as_images(image: Any) -> tuple[list[Tensor], bool]:
    """Originals as a list of float tensors (3, H, W) in [-1, 1], and whether the input was one image."""
    from .data import load_image, to_tensor

    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        return [to_tensor(image)], True
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] in (3, 4):
        return [to_tensor(Image.fromarray(image))], True  # an (H, W, 3) RGB picture (OpenCV arrays are BGR: convert first)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.asarray(image, dtype=np.float32))
    if torch.is_tensor(image):
        t = image.detach().float().cpu()
        single = t.dim() == 3
        t = t[None] if single else t
        if t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(f"an image tensor must be (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
        if t.numel() and (t.min() < -1.05 or t.max() > 1.05):
            raise ValueError(f"image tensors must be in [-1, 1] (got {t.min():.3g}..{t.max():.3g}); map x -> x / 127.5 - 1")
        return list(t), single or t.shape[0] == 1
    raise ValueError(f"image must be a PIL image, a file path or a tensor, got {type(image).__name__}")


def _resize_for_model(img: Tensor, size: int) -> Tensor:
    """Centre-crop (3, H, W) to a square and resize to (3, size, size): bicubic, antialiased."""
    top, left, side = _crop_box(img.shape[1], img.shape[2])
    crop = img[:, top : top + side, left : left + side]
    if side == size:
        return crop.clone()
    return F.interpolate(crop[None], size=(size, size), mode="bicubic", antialias=True, align_corners=False)[0].clamp(-1, 1)


def _mask_tensor(mask: Any) -> Tensor:
    """A user mask (tensor, array or PIL, 1/nonzero = hole) as float {0, 1} of shape (B or 1, 1, h, w)."""
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L")) > 127
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.asarray(mask, dtype=np.float32))
    m = mask.detach().float().cpu()
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None] if m.shape[0] != 1 else m[None]
    if m.dim() != 4 or m.shape[1] != 1:
        raise ValueError(f"a mask must be (H, W), (1, H, W) or (B, 1, H, W), got {tuple(mask.shape)}")
    return (m > 0.5).float()


def _model_mask_from_original(orig: Tensor, size: int) -> Tensor:
    """(1, H, W) original-size hole -> (1, size, size): a model pixel is a hole if any part of it is."""
    top, left, side = _crop_box(orig.shape[1], orig.shape[2])
    inside = orig[:, top : top + side, left : left + side]
    if inside.sum() < orig.sum():
        raise ValueError(
            f"the hole reaches outside the centred square crop (rows {top}..{top + side - 1}, columns "
            f"{left}..{left + side - 1}) that the model sees; crop the image or move the hole"
        )
    return (F.interpolate(inside[None], size=(size, size), mode="area")[0] > 0).float()


def _original_mask_from_model(model_mask: Tensor, h: int, w: int) -> Tensor:
    """(1, S, S) model-size hole -> (1, H, W): nearest-neighbour upsampling into the crop region."""
    top, left, side = _crop_box(h, w)
    out = torch.zeros(1, h, w)
    out[:, top : top + side, left : left + side] = F.interpolate(model_mask[None], size=(side, side), mode="nearest")[0]
    return out


def _masks(mask: Any, originals: list[Tensor], size: int, generator: torch.Generator | None) -> tuple[list[Tensor], list[Tensor]]:
    """Per image: (model-size mask (1, S, S), original-size mask (1, H, W))."""
    from .masks import MASK_MODES, bbox2mask, make_mask

    model_masks, orig_masks = [], []
    if isinstance(mask, str):
        if mask not in MASK_MODES:
            raise ValueError(f"unknown mask kind {mask!r}; use one of {', '.join(MASK_MODES)} or a box (top, left, height, width)")
        for img in originals:
            m = make_mask(mask, size, generator)  # (1, S, S)
            model_masks.append(m)
            orig_masks.append(_original_mask_from_model(m, img.shape[1], img.shape[2]))
        return model_masks, orig_masks
    if isinstance(mask, Sequence) and len(mask) == 4 and all(isinstance(v, (int, np.integer)) for v in mask):
        for img in originals:
            box = bbox2mask((img.shape[1], img.shape[2]), tuple(int(v) for v in mask), dtype="float32")
            orig = torch.from_numpy(box).permute(2, 0, 1)  # (1, H, W)
            orig_masks.append(orig)
            model_masks.append(_model_mask_from_original(orig, size))
        return model_masks, orig_masks
    if not (torch.is_tensor(mask) or isinstance(mask, (np.ndarray, Image.Image))):
        raise ValueError("mask must be a mask kind name, a box (top, left, height, width) or a tensor/array/PIL mask")
    m = _mask_tensor(mask)
    if m.shape[0] not in (1, len(originals)):
        raise ValueError(f"the mask batch ({m.shape[0]}) does not match the {len(originals)} images")
    for i, img in enumerate(originals):
        mi = m[i if m.shape[0] > 1 else 0]  # (1, h, w)
        h, w = img.shape[1:]
        if tuple(mi.shape[1:]) == (h, w):
            orig_masks.append(mi)
            model_masks.append(_model_mask_from_original(mi, size))
        elif tuple(mi.shape[1:]) == (size, size):
            model_masks.append(mi)
            orig_masks.append(_original_mask_from_model(mi, h, w))
        else:
            raise ValueError(f"mask size {tuple(mi.shape[1:])} is neither the image's {(h, w)} nor the model's {(size, size)}")
    return model_masks, orig_masks


def _paste_back(original: Tensor, result: Tensor, orig_mask: Tensor) -> Image.Image:
    """Resize the (3, S, S) result to the crop, put it into the (3, H, W) original where the hole is."""
    from .data import to_pil

    top, left, side = _crop_box(original.shape[1], original.shape[2])
    up = F.interpolate(result[None], size=(side, side), mode="bicubic", align_corners=False)[0].clamp(-1, 1)
    full = original.clone()
    full[:, top : top + side, left : left + side] = up
    return to_pil(torch.where(orig_mask.bool().expand_as(original), full, original))


# ---------------------------------------------------------------------------------------- inpaint
def default_steps(model: InpaintingGaussianDiffusion, sampler: str) -> int | None:
    """DDIM steps the model was validated with (``model.config["sample"]["steps"]``), else 50
    (capped at the schedule length); None (all T steps) for the other samplers."""
    if sampler != "ddim":
        return None
    steps = ((getattr(model, "config", None) or {}).get("sample") or {}).get("steps") or 50
    return int(min(steps, model.beta_schedule["test"]["n_timestep"]))


@torch.no_grad()
def inpaint(
    model: InpaintingGaussianDiffusion,
    image: Any,
    mask: Any,
    sampler: str = "ddim",
    steps: int | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    jump_length: int = 10,
    jump_n_sample: int = 10,
    return_trajectory: bool = False,
    image_size: int | None = None,
    sample_num: int = 8,
    callback: Callable[[int, int], None] | None = None,
) -> InpaintResult:
    """Inpaint ``image`` where ``mask`` is 1.

    Steps: centre-crop the image to a square and resize it to the model's size S (y_0); build the
    course's condition y_cond = y_0 (1 - mask) + mask * noise; switch the model to its ``"test"``
    schedule; run ``sampler`` (:func:`ddpm_lab.samplers.sample`), which pastes the known region
    y_0 (1 - mask) back after every step; restore the schedule; upsample the result to the crop
    and paste it into the original image inside the hole only.

    Why ``y_0`` is the image (erratum 5): the course passes ``cond_image`` as ``y_0``. The samplers
    only ever read ``y_0 * (1 - mask)``, and ``cond_image`` equals the image wherever mask = 0
    (its noise sits in the hole, where ``1 - mask`` is 0), so the course gets the same numbers by
    luck. ``y_0`` means "the image whose known pixels are kept", so the honest argument is the image
    itself; its hole pixels are never read, which is why inpainting a real photo, whose hole content
    is unknown, is legitimate.

    :param model: an :class:`InpaintingGaussianDiffusion` (e.g. from :func:`load_model`); its
        device is where sampling runs.
    :param image: a PIL image, an image file path, a uint8 RGB array (H, W, 3), or a tensor
        (3, H, W) / (B, 3, H, W) in [-1, 1], of any size.
    :param mask: a mask kind of :data:`~ddpm_lab.masks.MASK_MODES` (drawn at the model size from
        ``generator``); a box ``(top, left, height, width)`` in ORIGINAL image pixels; or a tensor,
        array or PIL mask (1 / white = hole) of the original or the model size.
    :param sampler: ``"ddim"``, ``"ddpm"`` or ``"repaint"``.
    :param steps: DDIM steps (default :func:`default_steps`); DDPM and RePaint run all T steps.
    :param eta: DDIM noise (0 = deterministic given the start).
    :param generator: a CPU ``torch.Generator``, the source of all randomness (mask, condition
        noise, start, step noise); None uses torch's global generator.
    :param progress: show a progress bar.
    :param callback: called as ``callback(done, total)`` after every sampler step.
    :param jump_length: RePaint jump length; ``jump_n_sample``: RePaint resampling passes.
    :param return_trajectory: keep about ``sample_num`` intermediate frames in ``frames``.
    :param image_size: the model's side S; default from the model (see :func:`model_image_size`).
    :return: an :class:`InpaintResult`; ``pasted`` is one PIL image for a single input image, a
        list for a batch, always of the original size, equal to the original outside the hole.
    """
    from .samplers import SAMPLERS, sample

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    size = model_image_size(model, image_size)
    originals, single = _as_images(image)
    y_0 = torch.stack([_resize_for_model(img, size) for img in originals])  # (B, 3, S, S)
    model_masks, orig_masks = _masks(mask, originals, size, generator)
    m = torch.stack(model_masks)  # (B, 1, S, S)
    if bool((m.flatten(1).sum(dim=1) == 0).any()):
        raise ValueError("the mask has no hole (no pixel is 1) at the model's size: nothing to inpaint")
    device = next(model.parameters()).device
    noise = torch.randn(y_0.shape, generator=generator, device=None if generator is None else generator.device)
    y_cond = y_0 * (1 - m) + m * noise.cpu()  # (B, 3, S, S)

    steps = default_steps(model, sampler) if steps is None else steps
    phase, was_training = model.phase, model.training
    model.eval()
    model.set_new_noise_schedule(device, phase="test")
    try:
        out = sample(model, y_cond.to(device), y_0=y_0.to(device), mask=m.to(device), sampler=sampler,
                     steps=steps, eta=eta, jump_length=jump_length, jump_n_sample=jump_n_sample,
                     sample_num=sample_num, generator=generator, progress=progress,
                     callback=callback)
    finally:
        model.set_new_noise_schedule(device, phase=phase)
        model.train(was_training)
    result = out.sample.float().cpu().clamp(-1, 1)
    pasted = [_paste_back(o, r, om) for o, r, om in zip(originals, result, orig_masks)]
    return InpaintResult(
        result=result, masked_input=y_0 * (1 - m) + m, mask=m, image=y_0,
        pasted=pasted[0] if single else pasted,
        frames=[f.float().cpu() for f in out.frames] if return_trajectory else [],
    )


# ---------------------------------------------------------------------------------------- evaluation
def heldout_faces(n: int, image_size: int, face_seed: int = HELDOUT_FACE_SEED) -> Tensor:
    """``n`` offline faces the demo model never saw, (n, 3, S, S) in [-1, 1]."""
    from .data import to_tensor
    from .faces import OfflineFaces

    faces = OfflineFaces(n, image_size=image_size, seed=face_seed)
    return torch.stack([to_tensor(faces.image(i)) for i in range(n)])


@torch.no_grad()
def compare_methods(
    model: InpaintingGaussianDiffusion, images: Tensor, masks: Tensor, sampler: str = "ddim", steps: int | None = None,
    eta: float = 0.0, generator: torch.Generator | None = None, batch_size: int = 32, progress: bool = False,
) -> dict[str, Any]:
    """Inpaint ``images`` (B, 3, S, S) with the model, mean fill and Telea; score the hole only.

    Metrics (per image, then averaged): masked PSNR in dB with data range 2
    (:func:`~ddpm_lab.metrics.masked_psnr`) and masked MAE (:func:`~ddpm_lab.losses.masked_mae`).

    :return: ``{"metrics": {method: {"psnr", "mae"}}, "outputs": {method: (B, 3, S, S)}}`` with methods
        ``"model"``, ``"mean_fill"``, ``"telea"``.
    """
    from .baselines import mean_fill, telea_fill
    from .losses import masked_mae
    from .metrics import masked_psnr

    results = []
    for start in range(0, len(images), batch_size):
        chunk, mchunk = images[start : start + batch_size], masks[start : start + batch_size]
        res = inpaint(model, chunk, mchunk, sampler=sampler, steps=steps, eta=eta, generator=generator,
                      progress=progress, image_size=images.shape[-1])
        results.append(res.result)
    outputs = {"model": torch.cat(results), "mean_fill": mean_fill(images, masks), "telea": telea_fill(images, masks)}
    metrics = {
        name: {"psnr": round(float(masked_psnr(out, images, masks)), 3), "mae": round(float(masked_mae(out, images, masks)), 4)}
        for name, out in outputs.items()
    }
    return {"metrics": metrics, "outputs": outputs}


def compare_on_faces(
    model: InpaintingGaussianDiffusion, n: int = 64, face_seed: int = HELDOUT_FACE_SEED, mask_mode: str = "center",
    seed: int = 0, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0, progress: bool = False,
) -> dict[str, Any]:
    """:func:`compare_methods` on ``n`` held-out offline faces with ``mask_mode`` holes, seeded by ``seed``.

    :return: the :func:`compare_methods` dict plus ``"images"`` (n, 3, S, S) and ``"masks"`` (n, 1, S, S).
    """
    from .masks import make_mask

    size = model_image_size(model)
    images = heldout_faces(n, size, face_seed)
    gen = torch.Generator().manual_seed(seed)
    masks = torch.stack([make_mask(mask_mode, size, gen) for _ in range(n)])
    report = compare_methods(model, images, masks, sampler=sampler, steps=steps, eta=eta, generator=gen, progress=progress)
    return {**report, "images": images, "masks": masks}


def show_tensor_image(image: Tensor, show: bool = True) -> Image.Image:
    """The course's ``show_tensor_image``, fixed (erratum 4); see :func:`ddpm_lab.viz.show_tensor_image`."""
    from .viz import show_tensor_image as _show

    return _show(image, show=show)
