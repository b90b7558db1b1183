"""Small neural-network building blocks used by the improved UNet (no diffusion knowledge here).

Facts follow Palette's ``models/guided_diffusion_modules/nn.py`` (itself from
openai/guided-diffusion, MIT License); the code is written from scratch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GROUPS = 32  # GroupNorm groups, fixed in Palette/guided-diffusion (not a config knob)


def gamma_embedding(gammas: Tensor, dim: int, max_period: int = 10000) -> Tensor:
    """Sinusoidal embedding of the continuous noise level gamma (Palette's ``gamma_embedding``).

    With ``half = dim // 2`` and frequencies ``w_i = max_period ** (-i / half)``,
    ``i = 0 .. half-1`` (the denominator is ``half``, not ``half - 1``)::

        e(gamma) = [cos(gamma*w_0), ..., cos(gamma*w_{half-1}),
                    sin(gamma*w_0), ..., sin(gamma*w_{half-1})]

    Cosines come first; an odd ``dim`` gets one trailing zero. gamma is used as is (values in
    (0, 1], no ``x 1000`` as for integer time steps), so gamma = 0 gives ``[1, ..., 1, 0, ..., 0]``.

    :param gammas: tensor with N elements (any shape, flattened), e.g. ``alphas_cumprod`` values.
    :param dim: width of the embedding.
    :param max_period: controls the lowest frequency ``1 / max_period``.
    :return: an (N, dim) float32 tensor on the device of ``gammas``.
    """
    if dim < 1:
        raise ValueError(f"gamma_embedding: dim must be >= 1, got {dim}")
    gammas = gammas.reshape(-1).float()  # (N,)
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32, device=gammas.device)  # (half,)
    freqs = torch.exp(-math.log(max_period) * i / half)  # (half,)
    args = gammas[:, None] * freqs[None]  # (N, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, 2*half)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)  # (N, dim)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm (eps 1e-5) computed in float32 and cast back to the input dtype.

    Statistics over 32-group blocks are fragile in float16/bfloat16, so they are always taken in
    float32 (also when the module's weights are half precision).
    """

    def forward(self, x: Tensor) -> Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).to(x.dtype)


def normalization(channels: int) -> GroupNorm32:
    """The UNet's only normalisation layer: ``GroupNorm32(32, channels)``.

    :param channels: number of channels; must be a positive multiple of 32.
    :raises ValueError: if ``channels`` is not a multiple of 32.
    """
    if channels <= 0 or channels % GROUPS:
        raise ValueError(
            f"GroupNorm with {GROUPS} groups needs a channel count divisible by {GROUPS}, got "
            f"{channels}. In the UNet config make inner_channel * every channel_mults entry a "
            f"multiple of {GROUPS} (e.g. inner_channel 32 or 64)."
        )
    return GroupNorm32(GROUPS, channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero (in place) and return it.

    Used on the last layer of each residual branch so that a fresh block is the identity.
    """
    for p in module.parameters():
        p.detach().zero_()
    return module


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model``: ``sum(p.numel())``.

    :param model: any module (also one built on the ``meta`` device).
    :param trainable_only: if True, count only parameters with ``requires_grad``; by default
        ALL parameters are counted, frozen ones included (buffers never are).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def init_weights(model: nn.Module, init_type: str = "kaiming", gain: float = 0.02) -> nn.Module:
    """Re-initialise Conv/Linear layers in place, as Palette's ``BaseNetwork.init_weights`` does.

    For every ``nn.Conv*``/``nn.Linear`` module the weight is drawn with ``init_type``:
    ``"kaiming"`` -> ``kaiming_normal_(a=0, mode="fan_in")``, i.e. N(0, 2 / fan_in);
    ``"normal"`` -> N(0, gain^2); ``"xavier"`` -> ``xavier_normal_(gain)``;
    ``"xavier_uniform"`` -> ``xavier_uniform_(gain=1)``; ``"orthogonal"`` -> ``orthogonal_(gain)``;
    ``"none"`` -> PyTorch's default ``reset_parameters()``; and every bias is set to 0.
    Normalisation layers are left as they are (GroupNorm weight 1, bias 0). Note that this
    overrides the UNet's zero-init of the residual branches, exactly as in Palette's training.

    :param model: the module to initialise (its RNG draws use the global torch seed).
    :param init_type: one of the names above.
    :param gain: scale for ``normal``/``xavier``/``orthogonal``.
    :return: ``model`` (for chaining).
    """
    inits = {
        "kaiming": lambda w: nn.init.kaiming_normal_(w, a=0, mode="fan_in"),
        "normal": lambda w: nn.init.normal_(w, 0.0, gain),
        "xavier": lambda w: nn.init.xavier_normal_(w, gain=gain),
        "xavier_uniform": lambda w: nn.init.xavier_uniform_(w, gain=1.0),
        "orthogonal": lambda w: nn.init.orthogonal_(w, gain=gain),
    }
    if init_type not in inits and init_type != "none":
        raise ValueError(f"init_type must be one of {sorted(inits) + ['none']}, got {init_type!r}")
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            if init_type == "none":
                m.reset_parameters()
            else:
                inits[init_type](m.weight.data)
            if m.bias is not None:
                nn.init.zeros_(m.bias.data)
    return model
