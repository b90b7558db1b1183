"""The improved UNet of Palette (guided-diffusion's ADM UNet), conditioned on the noise level gamma.

This is an independent, shorter rewrite of Palette's ``models/guided_diffusion_modules/unet.py``
(Janspiry/Palette-Image-to-Image-Diffusion-Models, MIT License, (c) 2022 Liangwei Jiang; derived
from openai/guided-diffusion, MIT License, (c) 2021 OpenAI). Module names and their order are
exactly Palette's, so a Palette checkpoint loads with ``load_state_dict(..., strict=True)`` (strip
the ``denoise_fn.`` prefix of a ``Network`` checkpoint first) and gives the same outputs.

Layout (C = inner_channel, E = 4C, one level per entry of ``channel_mults``)::

    gamma -> gamma_embedding (C) -> cond_embed: Linear(C,E) SiLU Linear(E,E) -> emb (B, E)
    x -> input_blocks.0 (3x3 conv) -> [ResBlock (+Attention)] * res_blocks, down-ResBlock, ...
      (every input block's output is pushed on the skip stack)
      -> middle_block: ResBlock, Attention, ResBlock
      -> output_blocks: cat(h, skip) -> ResBlock (+Attention) (+up-ResBlock at each level end)
      -> out: GroupNorm, SiLU, 3x3 conv -> eps (B, out_channel, H, W)

emb reaches only the ResBlocks (AdaGN); the first conv, attention and ``out`` never see it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .nn import GROUPS, gamma_embedding, normalization, zero_module


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling, optionally followed by a 3x3 conv (key ``conv``)."""

    def __init__(self, channels: int, use_conv: bool, out_channel: int | None = None):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channel or channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")  # (B, C, 2H, 2W)
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """x2 downsampling (key ``op``): stride-2 3x3 conv if ``use_conv``, else 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channel: int | None = None):
        super().__init__()
        out_channel = out_channel or channels
        if use_conv:
            self.op: nn.Module = nn.Conv2d(channels, out_channel, 3, stride=2, padding=1)
        elif out_channel != channels:
            raise ValueError("Downsample without a conv cannot change the channel count")
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)  # (B, C', H/2, W/2)


def apply_scale_shift(h: Tensor, emb_out: Tensor, norm: nn.Module) -> Tensor:
    """Adaptive group normalisation (AdaGN), the "scale-shift norm" of a :class:`ResBlock`.

    ``[s, b] = emb_out`` split in two halves along the channels (first half = scale s, second half =
    shift b), each broadcast over H and W::

        out = norm(h) * (1 + s) + b

    The ``1 +`` makes an all-zero embedding output mean "leave the normalised features as they are".

    :param h: features, (B, C, H, W) (any number of trailing spatial dims).
    :param emb_out: the ResBlock's ``emb_layers(emb)``, (B, 2C).
    :param norm: the normalisation module applied to ``h`` first (a ``GroupNorm32``).
    :return: (B, C, H, W).
    """
    scale, shift = emb_out.chunk(2, dim=1)  # 2 x (B, C)
    extra = (None,) * (h.ndim - scale.ndim)
    scale, shift = scale[(..., *extra)], shift[(..., *extra)]  # (B, C, 1, 1)
    return norm(h) * (1 + scale) + shift


class ResBlock(nn.Module):
    """Residual block conditioned on the noise-level embedding by AdaGN (scale-shift norm).

    ``h = in_layers(x)`` (GroupNorm, SiLU, 3x3 conv to ``out_channel``); then, with
    ``[s, b] = emb_layers(emb)`` (SiLU, Linear to 2*out_channel; first half = scale s, second half
    = shift b, broadcast over H, W)::

        h = conv(dropout(SiLU(GroupNorm(h) * (1 + s) + b)))      # use_scale_shift_norm=True
        h = out_layers(h + emb_layers(emb))                       # use_scale_shift_norm=False
        return skip_connection(x) + h

    "AdaGN": the norm's affine transform is modulated per sample by the noise level; the ``1 +``
    makes s = 0 mean "no change". The last conv is zero-initialised, so a fresh block is the
    identity (up to its skip conv). In an up/down block the feature path is resampled between the
    SiLU and the conv of ``in_layers``, and ``x`` is resampled the same way before the skip (no
    parameters: nearest x2 up, 2x2 average-pool down).
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channel: int | None = None,
        use_scale_shift_norm: bool = True,
        use_checkpoint: bool = False,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        out_channel = out_channel or channels
        self.use_scale_shift_norm, self.use_checkpoint = use_scale_shift_norm, use_checkpoint
        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channel, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        emb_out = 2 * out_channel if use_scale_shift_norm else out_channel
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            normalization(out_channel),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out_channel, out_channel, 3, padding=1)),
        )
        # Palette's `use_conv` option (3x3 skip conv) is never used by its UNet and is left out.
        self.skip_connection = (
            nn.Identity() if out_channel == channels else nn.Conv2d(channels, out_channel, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """:param x: (B, channels, H, W) features. :param emb: (B, E) embedding.
        :return: (B, out_channel, H', W') with H' = 2H (up), H/2 (down) or H."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, emb, use_reentrant=False)
        return self._forward(x, emb)

    def _forward(self, x: Tensor, emb: Tensor) -> Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)  # norm, SiLU
            h, x = self.h_upd(h), self.x_upd(x)  # resample both paths
            h = self.in_layers[-1](h)  # conv
        else:
            h = self.in_layers(x)  # (B, out, H, W)
        e = self.emb_layers(emb).to(h.dtype)  # (B, 2*out) or (B, out)
        if self.use_scale_shift_norm:
            h = apply_scale_shift(h, e, self.out_layers[0])  # AdaGN
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e[..., None, None])
        return self.skip_connection(x) + h


def _attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q.k / sqrt(ch)) v per head: q, k, v (B*heads, ch, T) -> (B*heads, ch, T)."""
    scale = q.shape[1] ** -0.25  # per-head width, split over q and k (fp16-friendly)
    w = torch.einsum("bct,bcs->bts", q * scale, k * scale)  # (B*heads, T, T)
    w = torch.softmax(w.float(), dim=-1).to(w.dtype)  # over the keys s, in float32
    return torch.einsum("bts,bcs->bct", w, v)  # (B*heads, ch, T)


def qkv_attention_legacy(qkv: Tensor, n_heads: int) -> Tensor:
    """Multi-head self-attention on a packed qkv tensor, in the "legacy" channel order.

    With ``ch = C / n_heads``, the 3*C channels are ``n_heads`` contiguous groups of 3*ch channels,
    each group ordered ``[q | k | v]`` (heads split first, then q/k/v: the layout of Palette's and
    guided-diffusion's weights). For each head, over the T positions::

        A = softmax_s( (q * ch^-1/4)^T (k * ch^-1/4) )     # (T, T), = q.k / sqrt(ch), softmax over keys s
        out[:, t] = sum_s A[t, s] v[:, s]

    The softmax is computed in float32 (and cast back), which keeps half-precision runs stable;
    the heads' outputs are stacked back in head order.

    :param qkv: (B, 3*C, T), the output of the attention block's ``qkv`` 1x1 conv.
    :param n_heads: number of heads; 3 * n_heads must divide the channel count.
    :return: (B, C, T).
    """
    b, width, t = qkv.shape
    if width % (3 * n_heads):
        raise ValueError(f"qkv has {width} channels, not divisible by 3 * n_heads = {3 * n_heads}")
    ch = width // (3 * n_heads)
    q, k, v = qkv.reshape(b * n_heads, 3 * ch, t).split(ch, dim=1)  # 3 x (B*heads, ch, T)
    return _attend(q, k, v).reshape(b, width // 3, t)  # (B, C, T)


class QKVAttentionLegacy(nn.Module):
    """Multi-head attention on a packed qkv tensor, heads split FIRST ("legacy" order).

    The 3*C channels are read as ``n_heads`` contiguous groups of ``3*ch`` channels, each ordered
    ``[q | k | v]`` (ch = C / n_heads). This is the layout of Palette's and guided-diffusion's
    pretrained weights. Scores are ``(q*ch^-1/4) . (k*ch^-1/4) = q.k / sqrt(ch)``, soft-maxed over
    keys in float32.
    """

    def __init__(self, n_heads: int):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv: Tensor) -> Tensor:
        """:param qkv: (B, 3*C, T). :return: (B, C, T) attended values."""
        return qkv_attention_legacy(qkv, self.n_heads)


class QKVAttention(QKVAttentionLegacy):
    """Same attention, but q, k, v split FIRST ("new" order): channels are
    ``[q_all | k_all | v_all]``, each then cut into heads. Same parameter shapes, different
    meaning: loading legacy (Palette) weights here gives different outputs."""

    def forward(self, qkv: Tensor) -> Tensor:
        """:param qkv: (B, 3*C, T). :return: (B, C, T) attended values."""
        b, width, t = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = (z.reshape(b * self.n_heads, ch, t) for z in qkv.chunk(3, dim=1))
        return _attend(q, k, v).reshape(b, width // 3, t)  # (B, C, T)


class AttentionBlock(nn.Module):
    """Self-attention over all H*W positions: ``x + proj_out(attention(qkv(norm(x))))``.

    ``qkv`` and ``proj_out`` are 1x1 ``Conv1d`` on the flattened (B, C, H*W) map; ``proj_out`` is
    zero-initialised, so a fresh block is the identity. Heads: ``C // num_head_channels`` if
    ``num_head_channels != -1``, else ``num_heads``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_checkpoint: bool = False,
        use_new_attention_order: bool = False,
    ):
        super().__init__()
        if num_head_channels != -1:
            if num_head_channels <= 0 or channels % num_head_channels:
                raise ValueError(
                    f"attention width {channels} is not divisible by num_head_channels "
                    f"{num_head_channels}; choose num_head_channels dividing every attended width"
                )
            num_heads = channels // num_head_channels
        if num_heads <= 0 or channels % num_heads:
            raise ValueError(f"attention width {channels} not divisible by num_heads {num_heads}")
        self.use_checkpoint = use_checkpoint
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        attention = QKVAttention if use_new_attention_order else QKVAttentionLegacy
        self.attention = attention(num_heads)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        """:param x: (B, C, H, W). :return: (B, C, H, W)."""
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)  # (B, C, T)
        h = self.proj_out(self.attention(self.qkv(self.norm(x))))  # (B, C, T)
        return (x + h).reshape(b, c, *spatial)


class EmbedSequential(nn.Sequential):
    """``nn.Sequential`` calling ResBlocks as ``layer(x, emb)`` and other layers as ``layer(x)``."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """Palette's improved UNet: predicts the noise eps from ``x = cat[y_cond, y_t]`` and gamma.

    Defaults of the first nine arguments are the course config (62,641,347 parameters); the rest
    are Palette's defaults. A fresh model outputs exactly ZERO: as in Palette's constructor, the
    last conv of every ResBlock, every attention ``proj_out`` and the final ``out`` conv are
    zero-initialised. Palette's trainer then re-initialises all Conv/Linear layers (Kaiming, zero
    bias): call :func:`ddpm_lab.nn.init_weights` before training from scratch.

    :param in_channel: channels of ``x`` (inpainting: 3 condition + 3 noisy = 6).
    :param out_channel: channels of the predicted noise.
    :param inner_channel: base width C; the gamma embedding has C dims, ``cond_embed`` gives E = 4C.
    :param channel_mults: width multiplier per level; level i works at ``H / 2**i``. Every
        ``inner_channel * mult`` must be a multiple of 32, because every norm is a GroupNorm with
        32 groups (Palette's cannot be configured), which splits the channels into 32 equal groups.
    :param attn_res: where to add self-attention in the encoder/decoder levels (the middle block
        always has one). THE QUIRK: in Palette (``attn_res_unit="downsample"``) the entries are
        downsampling factors ds = 1, 2, 4, ..., not pixel sizes. The course config's ``[16]``
        never matches (ds only reaches 8 with 4 levels), so its only attention block is
        ``middle_block.1``, on the 32x32 map of a 256 input. Keep this default to load Palette
        checkpoints.
    :param num_head_channels: channels per attention head (-1: use ``num_heads`` heads).
    :param res_blocks: ResBlocks per level in the encoder (the decoder has one more per level).
    :param dropout: dropout probability inside the ResBlocks.
    :param image_size: nominal input size; only used to convert ``attn_res`` in "pixels" mode
        (inputs of other sizes work if divisible by ``2**(len(channel_mults)-1)``).
    :param conv_resample: with ``resblock_updown=False``, resample with a learned conv.
    :param use_checkpoint: gradient checkpointing (``torch.utils.checkpoint``) in ResBlocks and
        attention to save memory; outputs and gradients are unchanged.
    :param use_fp16: accepted for config compatibility and ignored; use ``torch.autocast`` instead.
    :param num_heads: attention heads if ``num_head_channels == -1``.
    :param num_heads_upsample: heads in the decoder's attention (-1: same as ``num_heads``).
    :param use_scale_shift_norm: AdaGN conditioning (see :class:`ResBlock`); else emb is added.
    :param resblock_updown: resample with ResBlocks (``up``/``down``), else Up/Downsample layers.
    :param use_new_attention_order: split q/k/v before heads (see :class:`QKVAttention`); Palette's
        weights need the default legacy order.
    :param attn_res_unit: ``"downsample"`` (Palette, see above) or ``"pixels"``: entries are
        feature-map sizes, converted to ``ds = image_size // res`` as guided-diffusion's scripts do.
        Each entry must be a divisor of ``image_size`` with a power-of-two ratio that the network
        reaches. Honest note: for the course net (256 input, 4 levels: 256, 128, 64, 32 pixels)
        "pixels" ``[16]`` matches no level either and is rejected; ``[32]`` would put attention at
        the deepest level and change the state_dict keys (no longer Palette-compatible).
    """

    def __init__(
        self,
        *,
        in_channel: int = 6,
        out_channel: int = 3,
        inner_channel: int = 64,
        channel_mults: Sequence[float] = (1, 2, 4, 8),
        attn_res: Sequence[int] = (16,),
        num_head_channels: int = 32,
        res_blocks: int = 2,
        dropout: float = 0.2,
        image_size: int = 256,
        conv_resample: bool = True,
        use_checkpoint: bool = False,
        use_fp16: bool = False,
        num_heads: int = 1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = True,
        use_new_attention_order: bool = False,
        attn_res_unit: str = "downsample",
    ):
        super().__init__()
        widths = [int(m * inner_channel) for m in channel_mults]
        if not widths or min(widths) <= 0 or any(w % GROUPS for w in widths):
            raise ValueError(
                f"inner_channel * channel_mults = {widths} must all be positive multiples of "
                f"{GROUPS} (GroupNorm with {GROUPS} groups): change inner_channel (e.g. to 32 or "
                "64) or channel_mults"
            )
        self.in_channel, self.out_channel = in_channel, out_channel
        self.inner_channel = inner_channel
        self.channel_mults, self.image_size = tuple(channel_mults), image_size
        self.attn_ds = self._attention_factors(attn_res, attn_res_unit, image_size, len(widths))
        num_heads_upsample = num_heads if num_heads_upsample == -1 else num_heads_upsample
        E = 4 * inner_channel

        def res(cin: int, cout: int | None = None, **kw) -> ResBlock:
            return ResBlock(cin, E, dropout, cout, use_scale_shift_norm, use_checkpoint, **kw)

        def attn(c: int, heads: int) -> AttentionBlock:
            return AttentionBlock(
                c, heads, num_head_channels, use_checkpoint, use_new_attention_order
            )

        self.cond_embed = nn.Sequential(nn.Linear(inner_channel, E), nn.SiLU(), nn.Linear(E, E))

        ch = widths[0]
        stem = nn.Conv2d(in_channel, ch, 3, padding=1)
        self.input_blocks = nn.ModuleList([EmbedSequential(stem)])
        skip_chans, ds = [ch], 1
        for level, width in enumerate(widths):
            for _ in range(res_blocks):
                layers: list[nn.Module] = [res(ch, width)]
                ch = width
                if ds in self.attn_ds:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_chans.append(ch)
            if level < len(widths) - 1:  # downsample between levels
                down = res(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample)
                self.input_blocks.append(EmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2

        self.middle_block = EmbedSequential(res(ch), attn(ch, num_heads), res(ch))

        self.output_blocks = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for i in range(res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), width)]
                ch = width
                if ds in self.attn_ds:
                    layers.append(attn(ch, num_heads_upsample))
                if level > 0 and i == res_blocks:  # upsample at the end of each level but the top
                    up = res(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample)
                    layers.append(up)
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))

        self.out = nn.Sequential(
            normalization(ch), nn.SiLU(), zero_module(nn.Conv2d(ch, out_channel, 3, padding=1))
        )

    @staticmethod
    def _attention_factors(
        attn_res: Sequence[int], unit: str, image_size: int, levels: int
    ) -> set[int]:
        """Downsampling factors ds at which encoder/decoder blocks get attention."""
        if unit == "downsample":
            return {int(r) for r in attn_res}  # Palette: silently ignores factors that never occur
        if unit != "pixels":
            raise ValueError(f'attn_res_unit must be "downsample" or "pixels", got {unit!r}')
        sizes = [image_size >> i for i in range(levels)]
        factors = set()
        for r in attn_res:
            r = int(r)
            ds = image_size // r if 0 < r <= image_size and image_size % r == 0 else 0
            if ds & (ds - 1) or ds == 0 or ds >= 2**levels:
                raise ValueError(
                    f"attn_res entry {r} (pixels) is not a feature-map size of this UNet: with "
                    f"image_size {image_size} and {levels} levels the sizes are {sizes}"
                )
            factors.add(ds)
        return factors

    def forward(self, x: Tensor, gammas: Tensor) -> Tensor:
        """Predict the noise eps of ``y_t`` (Palette: ``denoise_fn(cat[y_cond, y_t], gammas)``).

        ``gammas`` (the noise level alphas_cumprod, not a step index) is embedded by
        :func:`ddpm_lab.nn.gamma_embedding` into C dims, then ``cond_embed`` gives emb (B, 4C).
        ``x`` is cast to the parameters' dtype (float32 as in Palette, unless the model was cast);
        under ``torch.autocast`` the layers run in reduced precision. The result has ``x``'s dtype.

        :param x: (B, in_channel, H, W), H and W divisible by ``2**(len(channel_mults)-1)``.
        :param gammas: B values of any shape, e.g. (B,) or (B, 1) as Palette passes; a single value
            is broadcast over the batch.
        :return: (B, out_channel, H, W).
        """
        if x.ndim != 4 or x.shape[1] != self.in_channel:
            raise ValueError(
                f"x must have shape (B, in_channel={self.in_channel}, H, W), got {tuple(x.shape)}; "
                "for inpainting pass torch.cat([y_cond, y_t], dim=1)"
            )
        f = 2 ** (len(self.channel_mults) - 1)
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"H and W must be multiples of 2**(len(channel_mults)-1) = {f} (e.g. {f}, {2 * f}, "
                f"{4 * f}, ...), got {x.shape[2]}x{x.shape[3]}; resize or pad the image"
            )
        b = x.shape[0]
        gammas = torch.as_tensor(gammas, device=x.device).reshape(-1)  # (B,) or (1,)
        if gammas.numel() == 1:
            gammas = gammas.expand(b)
        elif gammas.numel() != b:
            raise ValueError(f"gammas must have B={b} elements (or 1), got {tuple(gammas.shape)}")

        dtype = self.out[2].weight.dtype
        emb = self.cond_embed(gamma_embedding(gammas, self.inner_channel).to(dtype))  # (B, 4C)
        h, skips = x.to(dtype), []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h).to(x.dtype)  # (B, out_channel, H, W)
