"""The course's basic UNet ("SimpleUnet"), with its errata fixed.

Design (as in the course): a sinusoidal embedding of the conditioning scalar and a small MLP;
five levels of widths (64, 128, 256, 512, 1024); each ``Block`` is conv-ReLU-BatchNorm, adds the
embedding, conv-ReLU-BatchNorm again, then resamples (strided conv down, transposed conv up);
skip connections concatenate; a 1x1 conv gives the output.

Fixed here:
- the course's ``Block`` creates ``conv2``, both BatchNorms and the ReLU only for *down* blocks, so
  every up block crashes (erratum 1); here every block has them;
- input and output channels are configurable (6 in, 3 out for inpainting: cat[y_cond, y_t]);
- the diffusion passes the noise level gamma in (0, 1), not an integer step; a sinusoid of a number
  below 1 barely moves, so gamma is multiplied by ``noise_level_scale`` (1000) before embedding.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


class SinusoidalPositionEmbeddings(nn.Module):
    """The course's embedding: e(t) = [sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})]
    with h = dim / 2 and w_i = 10000^(-i / (h - 1)). (Sines first and denominator h - 1: not the same
    function as the improved UNet's :func:`~ddpm_lab.nn.gamma_embedding`.)

    :param dim: embedding width, even and >= 4.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"dim must be even and >= 4, got {dim}")
        self.dim = dim

    def forward(self, time: Tensor) -> Tensor:  # (B,) -> (B, dim)
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=time.device, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
        args = time.float()[:, None] * freqs[None, :]  # (B, half)
        return torch.cat((args.sin(), args.cos()), dim=-1)


class Block(nn.Module):
    """conv3x3-ReLU-BN, + ReLU(Linear(emb)), conv3x3-ReLU-BN, then down (conv 4x4 s2) or up (convT 4x4 s2).

    :param in_ch: input channels (an up block receives 2 * in_ch: its input concatenated with a skip).
    :param out_ch: output channels.
    :param time_emb_dim: width of the embedding.
    :param up: transposed-conv upsampling instead of strided-conv downsampling.
    """

    def __init__(self, in_ch: int, out_ch: int, time_emb_dim: int, up: bool = False):
        super().__init__()
        self.time_mlp = nn.Linear(time_emb_dim, out_ch)
        if up:
            self.conv1 = nn.Conv2d(2 * in_ch, out_ch, 3, padding=1)
            self.transform = nn.ConvTranspose2d(out_ch, out_ch, 4, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
            self.transform = nn.Conv2d(out_ch, out_ch, 4, 2, 1)
        # erratum 1: the course creates these four only in the `else` branch above
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.bnrm1 = nn.BatchNorm2d(out_ch)
        self.bnrm2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:  # x (B, in, H, W), t (B, E)
        h = self.bnrm1(self.relu(self.conv1(x)))  # (B, out, H, W)
        h = h + self.relu(self.time_mlp(t))[:, :, None, None]  # add the embedding per channel
        h = self.bnrm2(self.relu(self.conv2(h)))
        return self.transform(h)  # (B, out, H/2, W/2) down or (B, out, 2H, 2W) up


class SimpleUnet(nn.Module):
    """The course's basic UNet, predicting the noise from cat[y_cond, y_t] and the noise level.

    :param in_channels: 6 for inpainting (condition + noisy image), 3 for plain DDPM.
    :param out_channels: 3 (the predicted noise).
    :param down_channels: widths of the five levels; the image is halved len - 1 times, so H and W
        must be divisible by 2 ** (len(down_channels) - 1) (16 for the course's five levels).
    :param time_emb_dim: width of the sinusoidal embedding (32 in the course).
    :param noise_level_scale: the scalar is multiplied by this before embedding (1000: gamma in (0, 1)
        then spans the same range as a step index of a 1000-step schedule).
    """

    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 3,
        down_channels: Sequence[int] = (64, 128, 256, 512, 1024),
        time_emb_dim: int = 32,
        noise_level_scale: float = 1000.0,
    ):
        super().__init__()
        if len(down_channels) < 2:
            raise ValueError("down_channels needs at least two levels")
        up_channels = tuple(reversed(down_channels))
        self.in_channels = in_channels
        self.noise_level_scale = noise_level_scale
        self.factor = 2 ** (len(down_channels) - 1)
        self.time_mlp = nn.Sequential(
            SinusoidalPositionEmbeddings(time_emb_dim), nn.Linear(time_emb_dim, time_emb_dim), nn.ReLU()
        )
        self.conv0 = nn.Conv2d(in_channels, down_channels[0], 3, padding=1)
        self.downs = nn.ModuleList(
            Block(down_channels[i], down_channels[i + 1], time_emb_dim) for i in range(len(down_channels) - 1)
        )
        self.ups = nn.ModuleList(
            Block(up_channels[i], up_channels[i + 1], time_emb_dim, up=True) for i in range(len(up_channels) - 1)
        )
        self.output = nn.Conv2d(up_channels[-1], out_channels, 1)

    def forward(self, x: Tensor, gammas: Tensor) -> Tensor:
        """:param x: (B, in_channels, H, W). :param gammas: B noise levels (or a scalar). -> (B, out, H, W)"""
        b, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {c}")
        if h % self.factor or w % self.factor:
            raise ValueError(
                f"image size {h}x{w} must be divisible by {self.factor} (2 ** (levels - 1)); "
                f"e.g. {self.factor * max(h // self.factor, 1)}"
            )
        scalars = gammas.reshape(-1).to(x.dtype).expand(b) if gammas.numel() == 1 else gammas.reshape(b)
        t = self.time_mlp(scalars * self.noise_level_scale)  # (B, E)
        x = self.conv0(x)
        skips = []
        for down in self.downs:
            x = down(x, t)
            skips.append(x)
        for up in self.ups:
            x = up(torch.cat((x, skips.pop()), dim=1), t)
        return self.output(x)
