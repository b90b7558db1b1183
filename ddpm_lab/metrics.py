"""Image quality metrics for images in [-1, 1] (data range 2), whole image or hole only.

SSIM comes from torchmetrics (imported on first use, so ``import ddpm_lab`` stays light).
Every function returns the mean over the batch of per-image values.
"""

from __future__ import annotations

import torch
from torch import Tensor

DATA_RANGE = 2.0  # images live in [-1, 1]


def _check(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def _psnr_from_mse(mse: Tensor, data_range: float) -> Tensor:
    return 10.0 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


@torch.no_grad()
def psnr(pred: Tensor, target: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """Peak signal-to-noise ratio in dB, PSNR = 10 log10(range^2 / MSE), per image, then averaged."""
    _check(pred, target)
    mse = ((pred - target) ** 2).flatten(1).mean(dim=1)  # (B,)
    return _psnr_from_mse(mse, data_range).mean()


@torch.no_grad()
def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """PSNR over the hole: the MSE is sum(mask (pred - target)^2) / sum(mask) per image."""
    _check(pred, target)
    m = mask.to(pred.dtype).expand_as(pred).flatten(1)  # (B, C*H*W)
    count = m.sum(dim=1)
    if bool((count == 0).any()):
        raise ValueError("an image in the batch has an empty mask: masked PSNR is undefined")
    mse = (((pred - target) ** 2).flatten(1) * m).sum(dim=1) / count
    return _psnr_from_mse(mse, data_range).mean()


def _ssim_map(pred: Tensor, target: Tensor, data_range: float) -> Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    _, full = structural_similarity_index_measure(
        pred.float(), target.float(), data_range=data_range, reduction="none", return_full_image=True
    )
    return full  # (B, C, H, W)


@torch.no_grad()
def ssim(pred: Tensor, target: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """Structural similarity (Wang et al. 2004, Gaussian window 11, sigma 1.5) from torchmetrics."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check(pred, target)
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=data_range)


@torch.no_grad()
def masked_ssim(pred: Tensor, target: Tensor, mask: Tensor, data_range: float = DATA_RANGE) -> Tensor:
    """SSIM averaged over the hole: the torchmetrics SSIM map, weighted by the mask, per image."""
    _check(pred, target)
    full = _ssim_map(pred, target, data_range)
    m = mask.to(full.dtype).expand_as(full).flatten(1)
    count = m.sum(dim=1)
    if bool((count == 0).any()):
        raise ValueError("an image in the batch has an empty mask: masked SSIM is undefined")
    return ((full.flatten(1) * m).sum(dim=1) / count).mean()
