"""Run profiles: one setting, ``DDPM_LAB_PROFILE``, sizes every notebook cell and command.

=========  ===========================================================================
``smoke``  seconds on a CPU: what CI runs every notebook with (tiny images and networks)
``cpu``    minutes on a laptop CPU: small but real training on the offline faces
``gpu``    a Colab T4/L4/A100 session: 128x128 CelebA, the course's UNet widths, mixed precision
``full``   the course as printed: 256x256 CelebA, the course UNet config, 200 epochs
=========  ===========================================================================

Default: ``gpu`` when CUDA is available, else ``cpu``. Set it before starting Jupyter or in the
first cell (``os.environ["DDPM_LAB_PROFILE"] = "smoke"``); cells never need editing.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

ENV_VAR = "DDPM_LAB_PROFILE"

# The course's configuration (exercise, part 4), with erratum 6 fixed (linear_end is a number).
COURSE_UNET_CONFIG: dict[str, Any] = {
    "in_channel": 6, "out_channel": 3, "inner_channel": 64, "channel_mults": [1, 2, 4, 8],
    "attn_res": [16], "num_head_channels": 32, "res_blocks": 2, "dropout": 0.2, "image_size": 256,
}
COURSE_BETA_SCHEDULE: dict[str, Any] = {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09}
# Palette's CelebA-HQ inpainting schedules: train on 2000 steps, sample on 1000.
PALETTE_BETA_SCHEDULE: dict[str, Any] = {
    "train": {"schedule": "linear", "n_timestep": 2000, "linear_start": 1e-6, "linear_end": 0.01},
    "test": {"schedule": "linear", "n_timestep": 1000, "linear_start": 1e-4, "linear_end": 0.09},
}


@dataclass
class Profile:
    """Everything a profile decides. Plain data: copy it, change a field, pass it on.

    :param name: the profile's name.
    :param image_size: training/inference resolution (square).
    :param unet_config: keyword arguments of :class:`~ddpm_lab.unet.UNet` (course key names).
    :param simple_unet_channels: ``down_channels`` of :class:`~ddpm_lab.simple_unet.SimpleUnet`.
    :param beta_schedule: ``{"train": {...}, "test": {...}}`` for ``InpaintingGaussianDiffusion``.
    :param batch_size: training batch size; ``num_train`` / ``num_val``: images used (None = all).
    :param epochs: training epochs; ``lr`` / ``weight_decay``: Adam(W) settings.
    :param sample_steps: default DDIM steps; ``sample_num``: trajectory frames.
    :param val_batches: validation restorations per epoch (a fixed subset, not the whole set).
    :param num_workers: DataLoader workers; ``amp``: mixed precision on CUDA; ``ema_decay``: EMA.
    """

    name: str
    image_size: int
    unet_config: dict[str, Any]
    simple_unet_channels: tuple[int, ...]
    beta_schedule: dict[str, Any]
    batch_size: int
    num_train: int | None
    num_val: int | None
    epochs: int
    lr: float = 5e-5
    weight_decay: float = 0.0
    sample_steps: int = 50
    sample_num: int = 8
    val_batches: int = 1
    num_workers: int = 0
    amp: bool = False
    ema_decay: float = 0.999
    extra: dict[str, Any] = field(default_factory=dict)

    def copy(self, **changes: Any) -> "Profile":
        """A deep copy with some fields changed, e.g. ``profile.copy(epochs=1)``."""
        new = copy.deepcopy(self)
        for key, value in changes.items():
            if not hasattr(new, key):
                raise ValueError(f"Profile has no field {key!r}")
            setattr(new, key, value)
        return new


def _unet(image_size: int, inner: int, mults: list[int], res_blocks: int, attn_res: list[int], dropout: float) -> dict[str, Any]:
    return {**COURSE_UNET_CONFIG, "inner_channel": inner, "channel_mults": mults, "res_blocks": res_blocks,
            "attn_res": attn_res, "dropout": dropout, "image_size": image_size}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", image_size=32, unet_config=_unet(32, 32, [1, 2], 1, [2], 0.0),
        simple_unet_channels=(8, 16, 32, 64, 128),
        beta_schedule={"train": dict(COURSE_BETA_SCHEDULE), "test": dict(COURSE_BETA_SCHEDULE)},
        batch_size=4, num_train=16, num_val=4, epochs=1, lr=2e-4, sample_steps=5, sample_num=4,
    ),
    "cpu": Profile(
        name="cpu", image_size=32, unet_config=_unet(32, 32, [1, 2, 2], 1, [4], 0.0),
        simple_unet_channels=(16, 32, 64, 128, 256),
        beta_schedule=copy.deepcopy(PALETTE_BETA_SCHEDULE),
        batch_size=16, num_train=2048, num_val=64, epochs=3, lr=3e-4, weight_decay=0.0, sample_steps=25,
    ),
    "gpu": Profile(
        name="gpu", image_size=128, unet_config=_unet(128, 64, [1, 2, 4, 8], 2, [16], 0.2),
        simple_unet_channels=(64, 128, 256, 512, 1024),
        beta_schedule=copy.deepcopy(PALETTE_BETA_SCHEDULE),
        batch_size=16, num_train=None, num_val=256, epochs=10, lr=1e-4, sample_steps=50,
        num_workers=2, amp=True, ema_decay=0.9999,
    ),
    "full": Profile(
        name="full", image_size=256, unet_config=copy.deepcopy(COURSE_UNET_CONFIG),
        simple_unet_channels=(64, 128, 256, 512, 1024),
        beta_schedule={"train": dict(COURSE_BETA_SCHEDULE), "test": dict(COURSE_BETA_SCHEDULE)},
        batch_size=8, num_train=150_000, num_val=None, epochs=200, lr=5e-5, sample_steps=20,
        num_workers=2, amp=True, ema_decay=0.9999,
    ),
}


def default_profile_name() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None) -> Profile:
    """The profile named ``name``, else ``$DDPM_LAB_PROFILE``, else :func:`default_profile_name`.

    Returns a copy, so changing it never changes the table.
    """
    chosen = name or os.environ.get(ENV_VAR, "").strip().lower() or default_profile_name()
    if chosen not in PROFILES:
        where = "argument" if name else f"${ENV_VAR}"
        raise ValueError(f"unknown profile {chosen!r} (from the {where}); choose one of {', '.join(PROFILES)}")
    return PROFILES[chosen].copy()
