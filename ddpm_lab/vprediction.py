"""A network parametrisation: Palette's UNet predicting v, seen from outside as a noise predictor.

The diffusion and the samplers only ever ask a network for the noise eps; this wrapper lets a UNet
learn the better-conditioned target v while keeping that contract (the bundled demo model uses it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class VPredictionUNet(torch.nn.Module):
    """Palette's UNet predicting v instead of the noise, wrapped to look like a noise predictor.

    The UNet's output is read as v = sqrt(gamma) eps - sqrt(1 - gamma) y_0 (Salimans & Ho 2022,
    "v-prediction"), and the wrapper returns the noise it implies,

        eps = sqrt(1 - gamma) y_t + sqrt(gamma) v,     (so y_0 = sqrt(gamma) y_t - sqrt(1 - gamma) v)

    with y_t the last ``out_channel`` channels of the input ``cat[y_cond, y_t]``. Every part of
    :class:`InpaintingGaussianDiffusion` and every sampler therefore works unchanged. Why the demo
    model uses it: with plain noise prediction, y_0 = (y_t - sqrt(1 - gamma) eps) / sqrt(gamma)
    multiplies the network's error by 1 / sqrt(gamma) (x30 at gamma = 0.001), so a small network
    trained for minutes on a CPU gives garbage in the first, noisiest sampling steps; here the
    near-identity eps ~ y_t of those steps is exact by construction and the network's error in
    y_0 is not amplified.

    :param unet_config: :class:`~ddpm_lab.unet.UNet` keyword arguments.
    """

    def __init__(self, **unet_config: Any):
        super().__init__()
        from .unet import UNet

        self.unet = UNet(**unet_config)
        self.image_size = self.unet.image_size
        self.out_channel = self.unet.out_channel

    def forward(self, x: Tensor, gammas: Tensor) -> Tensor:
        """:param x: cat[y_cond, y_t] (B, in_channel, H, W). :param gammas: B noise levels. -> eps (B, C, H, W)"""
        g = torch.as_tensor(gammas, device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)  # (B or 1, 1, 1, 1)
        v = self.unet(x, gammas)
        return (1.0 - g).sqrt() * x[:, -self.out_channel :] + g.sqrt() * v
