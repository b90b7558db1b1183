"""Losses and metrics against closed forms (and torchmetrics' SSIM behaviour)."""

import math

import pytest
import torch

from ddpm_lab import mae, masked_mae, masked_mse_loss, masked_psnr, masked_ssim, mse_loss, psnr, ssim, weighted_mse_loss


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1  # 64 of 256 pixels
    pred = target + 0.5 * mask  # wrong only in the hole, by 0.5
    return pred, target, mask


def test_losses(pair):
    pred, target, mask = pair
    assert mse_loss(pred, target).item() == pytest.approx(0.25 * 64 / 256)
    assert mae(pred, target).item() == pytest.approx(0.5 * 64 / 256)
    assert masked_mse_loss(pred, target, mask).item() == pytest.approx(0.25)
    assert masked_mae(pred, target, mask).item() == pytest.approx(0.5)
    # W = mask * 1 + (1 - mask) * 0.05; only the hole is wrong here
    assert weighted_mse_loss(pred, target, mask).item() == pytest.approx(0.25 * 64 / 256)
    ctx = target + 0.5 * (1 - mask)
    assert weighted_mse_loss(ctx, target, mask).item() == pytest.approx(0.05 * 0.25 * 192 / 256)
    assert weighted_mse_loss(ctx, target, mask, lambda_context=0.0).item() == 0.0
    assert not mae(pred.requires_grad_(), target).requires_grad  # a metric: no graph


def test_loss_errors(pair):
    pred, target, mask = pair
    with pytest.raises(ValueError, match="shapes differ"):
        mse_loss(pred, target[:1])
    with pytest.raises(ValueError, match="empty"):
        masked_mse_loss(pred, target, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=">= 0"):
        weighted_mse_loss(pred, target, mask, lambda_mask=-1)


def test_psnr_closed_forms(pair):
    pred, target, mask = pair
    # whole image: mse = 0.0625, data range 2 -> 10 log10(4 / 0.0625)
    assert psnr(pred, target).item() == pytest.approx(10 * math.log10(4 / 0.0625), rel=1e-5)
    assert masked_psnr(pred, target, mask).item() == pytest.approx(10 * math.log10(4 / 0.25), rel=1e-5)
    assert psnr(target, target).item() > 100  # identical images: capped, finite
    with pytest.raises(ValueError, match="empty mask"):
        masked_psnr(pred, target, torch.zeros_like(mask))


def test_ssim(pair):
    pred, target, mask = pair
    assert ssim(target, target).item() == pytest.approx(1.0, abs=1e-5)
    whole, hole = ssim(pred, target).item(), masked_ssim(pred, target, mask).item()
    assert whole < 1.0 and hole < whole  # the damage is in the hole
    assert masked_ssim(pred, target, 1 - mask).item() > whole  # the known region is better than average
    noisy = target + 0.3 * torch.randn_like(target)
    assert ssim(noisy, target).item() < ssim(target + 0.05 * torch.randn_like(target), target).item()
