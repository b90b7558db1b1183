"""Training losses (and the course's MAE), with masked and spatially weighted variants.

All take tensors (B, C, H, W); a ``mask`` is (B, 1, H, W) or (B, C, H, W) with 1 = hole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """sum(mask * values) / sum(mask broadcast to values): the mean over hole pixels only."""
    mask = mask.to(values.dtype).expand_as(values)
    total = mask.sum()
    if total == 0:
        raise ValueError("the mask is empty (no hole pixels): a masked mean is undefined")
    return (values * mask).sum() / total


def mse_loss(output: Tensor, target: Tensor) -> Tensor:
    """Mean squared error, mean((output - target)^2): the course's training loss."""
    _check_pair(output, target)
    return F.mse_loss(output, target)


def mae(input: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error, mean(|input - target|), without gradient: the course's validation metric."""
    _check_pair(input, target)
    with torch.no_grad():
        return F.l1_loss(input, target)


def masked_mse_loss(output: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """MSE over the hole only: sum(mask (output - target)^2) / sum(mask)."""
    _check_pair(output, target)
    return _masked_mean((output - target) ** 2, mask)


def masked_mae(input: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """MAE over the hole only: sum(mask |input - target|) / sum(mask), without gradient."""
    _check_pair(input, target)
    with torch.no_grad():
        return _masked_mean((input - target).abs(), mask)


def weighted_mse_loss(
    output: Tensor, target: Tensor, mask: Tensor, lambda_mask: float = 1.0, lambda_context: float = 0.05
) -> Tensor:
    """The student project's spatially weighted loss: mean(W * (output - target)^2) with
    W = mask * lambda_mask + (1 - mask) * lambda_context (defaults 1.0 and 0.05)."""
    _check_pair(output, target)
    if lambda_mask < 0 or lambda_context < 0:
        raise ValueError("lambda_mask and lambda_context must be >= 0")
    weights = mask.to(output.dtype) * lambda_mask + (1.0 - mask.to(output.dtype)) * lambda_context
    return (weights * (output - target) ** 2).mean()
