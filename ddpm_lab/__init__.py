"""ddpm_lab: the reference implementation behind the DDPM inpainting course kit.

Everything public is importable from the package root (``from ddpm_lab import UNet``), but the
submodules are imported lazily on first use, so ``import ddpm_lab`` costs one ``import torch`` and
never pulls in matplotlib or torchvision.

Conventions used everywhere in the kit:

- images live in ``[-1, 1]``, shape ``(B, C, H, W)``;
- ``mask`` is 1 in the hole (missing pixels) and 0 where the image is known;
- ``y_0`` clean image, ``y_t`` noisy image, ``y_cond`` the conditioning image,
  ``gammas`` = cumulative product of alphas (``alphas_cumprod``), ``noise`` = epsilon.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that owns it
_EXPORTS: dict[str, str] = {
    # profiles
    "Profile": "profiles",
    "get_profile": "profiles",
    "COURSE_UNET_CONFIG": "profiles",
    "COURSE_BETA_SCHEDULE": "profiles",
    "PALETTE_BETA_SCHEDULE": "profiles",
    "PROFILES": "profiles",
    # masks
    "bbox2mask": "masks",
    "make_mask": "masks",
    "MASK_MODES": "masks",
    # data
    "InpaintingDataset": "data",
    "list_images": "data",
    "train_val_split": "data",
    "load_image": "data",
    "prepare_celeba": "data",
    "make_inpainting_sample": "data",
    "center_crop_resize": "data",
    "to_tensor": "data",
    "to_pil": "data",
    # offline faces
    "render_face": "faces",
    "OfflineFaces": "faces",
    "write_offline_faces": "faces",
    # networks
    "SinusoidalPositionEmbeddings": "simple_unet",
    "Block": "simple_unet",
    "SimpleUnet": "simple_unet",
    "UNet": "unet",
    "apply_scale_shift": "unet",
    "qkv_attention_legacy": "unet",
    "gamma_embedding": "nn",
    "count_parameters": "nn",
    "init_weights": "nn",
    # schedules and diffusion
    "make_beta_schedule": "schedules",
    "schedule_quantities": "schedules",
    "cosine_betas": "schedules",
    "posterior_coefficients": "schedules",
    "extract": "schedules",
    "get_index_from_list": "schedules",
    "InpaintingGaussianDiffusion": "diffusion",
    "q_sample": "diffusion",
    "paste_known": "samplers",
    "sample": "samplers",
    "ddim_step": "samplers",
    "SAMPLERS": "samplers",
    # losses and metrics
    "mse_loss": "losses",
    "mae": "losses",
    "masked_mse_loss": "losses",
    "masked_mae": "losses",
    "weighted_mse_loss": "losses",
    "psnr": "metrics",
    "ssim": "metrics",
    "masked_psnr": "metrics",
    "masked_ssim": "metrics",
    # training
    "Trainer": "trainer",
    "training_step": "trainer",
    "train_from_profile": "trainer",
    "resolve_amp": "trainer",
    "make_ema": "ema",
    "update_ema": "ema",
    "atomic_save": "checkpoints",
    "read_checkpoint": "checkpoints",
    "setup_distributed": "distributed",
    "cleanup_distributed": "distributed",
    # inference, baselines, plots
    "inpaint": "inference",
    "load_model": "inference",
    "build_model": "inference",
    "InpaintResult": "inference",
    "compare_on_faces": "inference",
    "heldout_faces": "inference",
    "VPredictionUNet": "vprediction",
    "mean_fill": "baselines",
    "telea_fill": "baselines",
    "show_tensor_image": "viz",
    "plot_trajectory": "viz",
    "comparison_grid": "viz",
    "plot_history": "viz",
    "plot_masks": "viz",
    "plot_schedule": "viz",
    # weights
    "load_weights": "weights",
    "WeightsReport": "weights",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ddpm_lab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
