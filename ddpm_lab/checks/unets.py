"""Checks for notebooks 02 (basic UNet) and 03 (improved UNet).

Functions are checked with :func:`~ddpm_lab.checks.core.check_function`. Classes (the basic UNet's
``Block`` and ``SinusoidalPositionEmbeddings``) are checked by :func:`check_module`: both classes are
built with the same arguments, the reference's ``state_dict`` is copied into the student's (a name
or shape mismatch is itself the hint), and the outputs are compared on seeded inputs.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..nn import GroupNorm32, gamma_embedding
from ..simple_unet import Block, SinusoidalPositionEmbeddings
from ..unet import apply_scale_shift, qkv_attention_legacy
from .core import CheckResult, Hint, check_function, compare_outputs, first_hint, raised_message, register, report, same_as, seeded

NB02, NB03 = "02_basic_unet", "03_improved_unet"

# (constructor args, constructor kwargs, forward inputs, train mode?)
ModuleCase = tuple[tuple, dict, tuple, bool]




def check_module(
    name: str,
    student: Callable[..., nn.Module],
    reference: Callable[..., nn.Module],
    cases: Sequence[ModuleCase],
    hints: Sequence[Hint] = (),
    key_hint: Callable[[list[str], list[str], tuple], str] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    quiet: bool = False,
) -> tuple[Callable[..., nn.Module], CheckResult]:
    """Check a student's ``nn.Module`` class against the reference class.

    For every case: build both classes with the same arguments (seed 0), require the same
    ``state_dict`` names and shapes, copy the reference's weights into the student's module, run
    both on the same inputs (train or eval mode) and compare the outputs.

    :param hints: (predicate, message) pairs for a wrong output; predicates get
        (student_out or None if it raised, reference_out, constructor args, a dict with the forward
        ``"inputs"``, the constructor ``"kwargs"`` and, for a shape mismatch, the parameter ``"key"``).
    :param key_hint: builds an extra hint from (missing names, unexpected names, constructor args).
    :return: (the class to use from now on, the verdict).
    """

    def wrong(message: str) -> tuple[Callable[..., nn.Module], CheckResult]:
        return reference, report(CheckResult(name, "wrong", message), quiet)

    for args, kwargs, inputs, train in cases:
        ctx = {"inputs": inputs, "kwargs": kwargs}
        torch.manual_seed(0)
        try:
            mine = student(*args, **kwargs)
        except NotImplementedError:
            return reference, report(CheckResult(name, "not done", "the reference implementation is used until you finish it."), quiet)
        except Exception as err:  # noqa: BLE001 - any student error becomes a hint
            return wrong(raised_message(err) + first_hint(hints, None, None, args, ctx))
        torch.manual_seed(0)
        ref = reference(*args, **kwargs)
        want_sd, got_sd = ref.state_dict(), mine.state_dict()
        missing = sorted(set(want_sd) - set(got_sd))
        unexpected = sorted(set(got_sd) - set(want_sd))
        call = f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})"
        if missing or unexpected:
            def layers(keys: list[str]) -> list[str]:
                return sorted({k.rsplit(".", 1)[0] for k in keys})

            msg = f"{call} does not have the course's layers: missing {layers(missing)}, unexpected {layers(unexpected)}."
            extra = key_hint(missing, unexpected, args) if key_hint else ""
            return wrong(msg + (f"\n  Hint: {extra}" if extra else ""))
        for key, value in want_sd.items():
            if tuple(got_sd[key].shape) != tuple(value.shape):
                msg = f"in {call}, {key} has shape {tuple(got_sd[key].shape)}, the course's has {tuple(value.shape)}."
                return wrong(msg + first_hint(hints, None, None, args, {**ctx, "key": key}))
        mine.load_state_dict(want_sd)
        mine.train(train)
        ref.train(train)
        fresh = tuple(x.clone() for x in inputs)
        try:
            with torch.no_grad():
                got = mine(*fresh)
        except NotImplementedError:
            return reference, report(CheckResult(name, "not done", "the reference implementation is used until you finish it."), quiet)
        except Exception as err:  # noqa: BLE001
            return wrong(raised_message(err) + first_hint(hints, None, None, args, ctx))
        with torch.no_grad():
            want = ref(*(x.clone() for x in inputs))
        problem = compare_outputs(got, want, atol, rtol)
        if problem:
            return wrong(f"{call}: {problem}" + first_hint(hints, got, want, args, ctx))
    return student, report(CheckResult(name, "correct", f"matches the reference on {len(cases)} test inputs."), quiet)


# --------------------------------------------------------------------------- notebook 02: embedding
def _course_embedding(time: Tensor, dim: int, sin_first: bool = True, denominator: int = -1, sign: float = -1.0,
                      interleave: bool = False) -> Tensor:
    """Variants of the course's embedding, for the hints (denominator -1 means half - 1)."""
    half = dim // 2
    den = half - 1 if denominator == -1 else denominator
    freqs = torch.exp(sign * torch.arange(half, dtype=torch.float32) * math.log(10000) / den)
    args = time.float()[:, None] * freqs[None]
    a, b = (args.sin(), args.cos()) if sin_first else (args.cos(), args.sin())
    if interleave:
        return torch.stack((a, b), dim=-1).reshape(len(time), dim)
    return torch.cat((a, b), dim=-1)


def _emb_is(**variant) -> Callable:
    def predicate(got, want, args, ctx) -> bool:
        (time,) = ctx["inputs"]
        alt = _course_embedding(time, args[0], **variant)
        return got is not None and got.shape == alt.shape and torch.allclose(got.float(), alt, atol=1e-4, rtol=1e-4)
    return predicate


def _emb_cases() -> list[ModuleCase]:
    g = seeded(2)
    return [
        ((8,), {}, (torch.tensor([0.0, 1.0, 3.5, 20.0]),), False),
        ((32,), {}, (torch.rand(6, generator=g) * 1000,), False),
        ((6,), {}, (torch.tensor([999.0, 0.5]),), False),
    ]


class _EmbCosFirst(SinusoidalPositionEmbeddings):
    def forward(self, time: Tensor) -> Tensor:
        return _course_embedding(time, self.dim, sin_first=False)


class _EmbHalfDenominator(SinusoidalPositionEmbeddings):
    def forward(self, time: Tensor) -> Tensor:
        return _course_embedding(time, self.dim, denominator=self.dim // 2)


class _EmbGrowingFreqs(SinusoidalPositionEmbeddings):
    def forward(self, time: Tensor) -> Tensor:
        return _course_embedding(time, self.dim, sign=1.0)


class _EmbInterleaved(SinusoidalPositionEmbeddings):
    def forward(self, time: Tensor) -> Tensor:
        return _course_embedding(time, self.dim, interleave=True)


class _EmbNoBatchAxis(SinusoidalPositionEmbeddings):
    def forward(self, time: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))
        args = time.float() * freqs  # no new axes: (B,) * (h,) only works when B == h, and gives (h,)
        return torch.cat((args.sin(), args.cos()), dim=-1)


@register("SinusoidalPositionEmbeddings", NB02, SinusoidalPositionEmbeddings, mistakes=[
    (_EmbCosFirst, "sine half"),
    (_EmbHalfDenominator, "h - 1"),
    (_EmbGrowingFreqs, "decrease"),
    (_EmbInterleaved, "concatenate"),
    (_EmbNoBatchAxis, "(B, dim)"),
])
def check_sinusoidal_embedding(student: Callable, quiet: bool = False) -> Callable:
    """Check the ``forward`` of ``SinusoidalPositionEmbeddings(dim)``: (B,) times -> (B, dim)."""
    hints = [
        (lambda g, w, a, k: g is None or tuple(g.shape) != tuple(w.shape),
         "the result must be (B, dim): one row per time value, so time * frequency needs a (B, 1) times (1, h) "
         "broadcast (new axes with [:, None] and [None, :])."),
        (_emb_is(sin_first=False), "look at the order of the two halves: the course's embedding starts with the sine half."),
        (lambda g, w, a, k: _emb_is(denominator=a[0] // 2)(g, w, a, k),
         "check the frequency denominator: w_i = 10000^(-i / (h - 1)) with h = dim / 2, so the last frequency is exactly 1/10000."),
        (_emb_is(sign=1.0), "the frequencies must decrease from 1 down to 1/10000 as i grows: check the sign of the exponent."),
        (_emb_is(interleave=True), "concatenate the sine block and the cosine block along the last axis; do not interleave them."),
        (lambda g, w, a, k: g is not None and torch.allclose(g[:, : w.shape[1] // 2], w[:, : w.shape[1] // 2], atol=1e-4),
         "the sine half is right; look at the cosine half."),
    ]
    fn, _ = check_module("SinusoidalPositionEmbeddings", student, SinusoidalPositionEmbeddings, _emb_cases(), hints, quiet=quiet)
    return fn


# --------------------------------------------------------------------------- notebook 02: Block
def _block_cases() -> list[ModuleCase]:
    g = seeded(3)
    return [
        ((4, 8, 16), {}, (torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 16, generator=g)), True),
        ((8, 4, 16), {"up": True}, (torch.randn(3, 16, 4, 4, generator=g), torch.randn(3, 16, generator=g)), True),
        ((6, 12, 8), {"up": False}, (torch.randn(2, 6, 8, 12, generator=g), torch.randn(2, 8, generator=g)), False),
        ((12, 6, 8), {"up": True}, (torch.randn(2, 24, 4, 6, generator=g), torch.randn(2, 8, generator=g)), False),
    ]


class _BlockCourseBug(Block):
    """The course as printed (erratum 1): conv2, both BatchNorms and the ReLU only for down blocks."""

    def __init__(self, in_ch: int, out_ch: int, time_emb_dim: int, up: bool = False):
        nn.Module.__init__(self)
        self.time_mlp = nn.Linear(time_emb_dim, out_ch)
        if up:
            self.conv1 = nn.Conv2d(2 * in_ch, out_ch, 3, padding=1)
            self.transform = nn.ConvTranspose2d(out_ch, out_ch, 4, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
            self.transform = nn.Conv2d(out_ch, out_ch, 4, 2, 1)
            self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
            self.bnrm1 = nn.BatchNorm2d(out_ch)
            self.bnrm2 = nn.BatchNorm2d(out_ch)
            self.relu = nn.ReLU()


class _BlockUpNoSkipChannels(Block):
    def __init__(self, in_ch: int, out_ch: int, time_emb_dim: int, up: bool = False):
        super().__init__(in_ch, out_ch, time_emb_dim, up)
        if up:
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)


class _BlockUpStridedConv(Block):
    def __init__(self, in_ch: int, out_ch: int, time_emb_dim: int, up: bool = False):
        super().__init__(in_ch, out_ch, time_emb_dim, up)
        self.transform = nn.Conv2d(out_ch, out_ch, 4, 2, 1)


class _BlockNoPadding(Block):
    def __init__(self, in_ch: int, out_ch: int, time_emb_dim: int, up: bool = False):
        super().__init__(in_ch, out_ch, time_emb_dim, up)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3)


class _BlockTimeToInput(Block):
    def __init__(self, in_ch: int, out_ch: int, time_emb_dim: int, up: bool = False):
        super().__init__(in_ch, out_ch, time_emb_dim, up)
        self.time_mlp = nn.Linear(time_emb_dim, in_ch)


def _block_key_hint(missing: list[str], unexpected: list[str], args: tuple) -> str:
    names = {k.split(".")[0] for k in missing}
    if names & {"conv2", "bnrm1", "bnrm2"}:
        return ("this is the course's bug (erratum 1): forward() uses conv2, bnrm1, bnrm2 and relu in EVERY block, "
                "so up blocks need them too, not only down blocks.")
    return ("use the course's attribute names, the ones forward() uses: time_mlp, conv1, conv2, bnrm1, bnrm2, "
            "relu, transform.")


def _shape_key(fragment: str) -> Callable:
    return lambda g, w, a, k: fragment in k.get("key", "")


@register("Block", NB02, Block, mistakes=[
    (_BlockCourseBug, "erratum 1"),
    (_BlockUpNoSkipChannels, "skip"),
    (_BlockUpStridedConv, "transposed"),
    (_BlockNoPadding, "padding"),
    (_BlockTimeToInput, "time_mlp"),
])
def check_block(student: Callable, quiet: bool = False) -> Callable:
    """Check ``Block(in_ch, out_ch, time_emb_dim, up)``: its layers' names/shapes and its output."""
    hints = [
        (_shape_key("conv1"), "an up block's input is its own input concatenated with the skip connection: "
                              "count conv1's input channels again."),
        (_shape_key("time_mlp"), "time_mlp maps the embedding to one value per channel of h, the output of conv1."),
        (_shape_key("bnrm"), "each BatchNorm normalises the output of a conv: how many channels does it have?"),
        (_shape_key("conv2"), "conv2 maps out_ch channels to out_ch channels."),
        (lambda g, w, a, k: g is not None and k["kwargs"].get("up") and g.shape[-1] * 4 == w.shape[-1],
         "an up block must double H and W: it needs a transposed convolution (a down block a strided one)."),
        (lambda g, w, a, k: g is not None and g.shape[-1] < w.shape[-1],
         "your output is smaller than expected: a 3x3 conv keeps H and W only with padding=1; an up block must "
         "double H and W with a transposed convolution."),
        (lambda g, w, a, k: g is None, "check every layer's channel counts: in_ch -> out_ch in conv1 (twice in_ch "
                                       "for an up block), out_ch everywhere after."),
    ]
    fn, _ = check_module("Block", student, Block, _block_cases(), hints, key_hint=_block_key_hint, quiet=quiet)
    return fn


# --------------------------------------------------------------------------- notebook 03: gamma embedding
def _gamma_variant(gammas: Tensor, dim: int, max_period: int = 10000, cos_first: bool = True,
                   denominator: str = "half", scale: float = 1.0, pad: bool = True) -> Tensor:
    g = gammas.reshape(-1).float() * scale
    half = dim // 2
    den = half if denominator == "half" else half - 1
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / den)
    args = g[:, None] * freqs[None]
    emb = torch.cat([args.cos(), args.sin()] if cos_first else [args.sin(), args.cos()], dim=-1)
    if dim % 2 and pad:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def _gamma_cases() -> list:
    g = seeded(4)
    return [
        ((torch.rand(4, generator=g), 8), {}),
        ((torch.rand(3, 1, generator=g), 64), {}),
        ((torch.tensor([0.0, 0.25, 0.999]), 5), {}),
        ((torch.rand(2, generator=g), 16), {"max_period": 100}),
    ]


def _gamma_is(**variant) -> Callable:
    def predicate(got, want, args, kwargs) -> bool:
        alt = _gamma_variant(args[0], args[1], kwargs.get("max_period", 10000), **variant)
        return got is not None and tuple(got.shape) == tuple(alt.shape) and torch.allclose(got.float(), alt, atol=1e-4)
    return predicate


def _gamma_sin_first(gammas, dim, max_period=10000):
    return _gamma_variant(gammas, dim, max_period, cos_first=False)


def _gamma_course02_denominator(gammas, dim, max_period=10000):
    return _gamma_variant(gammas, dim, max_period, denominator="half-1")


def _gamma_like_notebook02(gammas, dim, max_period=10000):
    return _gamma_variant(gammas, dim, max_period, cos_first=False, denominator="half-1")


def _gamma_times_1000(gammas, dim, max_period=10000):
    return _gamma_variant(gammas, dim, max_period, scale=1000.0)


def _gamma_no_pad(gammas, dim, max_period=10000):
    return _gamma_variant(gammas, dim, max_period, pad=False)


def _gamma_fixed_period(gammas, dim, max_period=10000):
    return _gamma_variant(gammas, dim, 10000)


def _gamma_no_flatten(gammas, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = gammas.float()[..., None] * freqs  # keeps a (B, 1) input's extra axis
    emb = torch.cat([args.cos(), args.sin()], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1) if dim % 2 else emb


@register("gamma_embedding", NB03, gamma_embedding, mistakes=[
    (_gamma_sin_first, "cosine"),
    (_gamma_course02_denominator, "denominator"),
    (_gamma_like_notebook02, "notebook 02's formula"),
    (_gamma_times_1000, "1000"),
    (_gamma_no_pad, "odd"),
    (_gamma_no_flatten, "flatten"),
    (_gamma_fixed_period, "max_period"),
])
def check_gamma_embedding(student: Callable, quiet: bool = False) -> Callable:
    """Check ``gamma_embedding(gammas, dim, max_period=10000)`` -> (N, dim)."""
    def shape(g, w, a, k) -> bool:
        return torch.is_tensor(g) and tuple(g.shape) != tuple(w.shape)

    hints = [
        (lambda g, w, a, k: shape(g, w, a, k) and g.ndim != 2,
         "gammas may arrive as (B,) or (B, 1): flatten them first, so the result is (N, dim)."),
        (lambda g, w, a, k: shape(g, w, a, k) and a[1] % 2 == 1,
         "for an odd dim the two halves give only dim - 1 columns: the odd one out is a column of zeros at the end."),
        (lambda g, w, a, k: g is None, "gammas may arrive as (B,) or (B, 1): flatten them first; for an odd dim "
                                       "add one column of zeros at the end."),
        (_gamma_is(cos_first=False, denominator="half-1"), "this is notebook 02's formula: compare the two columns of "
                                                            "the table above (the order of the halves and the denominator)."),
        (_gamma_is(cos_first=False), "this embedding is not notebook 02's: here the cosine half comes first."),
        (_gamma_is(denominator="half-1"), "check the frequency denominator: here it is half = dim // 2, not half - 1 "
                                          "as in notebook 02."),
        (_gamma_is(scale=1000.0), "gamma is used as it is: the x 1000 belongs to notebook 02's SimpleUnet, which "
                                  "embeds integer-like time values."),
        (lambda g, w, a, k: "max_period" in k and _gamma_is()(g, w, a, {}),
         "use the max_period argument instead of a fixed 10000."),
    ]
    fn, _ = check_function("gamma_embedding", student, gamma_embedding, _gamma_cases(), hints, atol=1e-5, quiet=quiet)
    return fn


# --------------------------------------------------------------------------- notebook 03: AdaGN
def _norm(channels: int, seed: int) -> GroupNorm32:
    norm = GroupNorm32(32, channels)
    g = seeded(seed)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.3 * torch.randn(channels, generator=g))
        norm.bias.copy_(0.3 * torch.randn(channels, generator=g))
    return norm


def _scale_shift_cases() -> list:
    g = seeded(5)
    return [
        ((torch.randn(2, 32, 4, 4, generator=g) * 2 + 1, torch.randn(2, 64, generator=g), _norm(32, 1)), {}),
        ((torch.randn(3, 64, 5, 3, generator=g) - 2, torch.randn(3, 128, generator=g) * 0.5, _norm(64, 2)), {}),
    ]


def _ss_swapped(h, emb_out, norm):
    s, b = emb_out.chunk(2, dim=1)
    return norm(h) * (1 + b[..., None, None]) + s[..., None, None]


def _ss_no_one(h, emb_out, norm):
    s, b = emb_out.chunk(2, dim=1)
    return norm(h) * s[..., None, None] + b[..., None, None]


def _ss_norm_last(h, emb_out, norm):
    s, b = emb_out.chunk(2, dim=1)
    return norm(h * (1 + s[..., None, None]) + b[..., None, None])


def _ss_no_norm(h, emb_out, norm):
    s, b = emb_out.chunk(2, dim=1)
    return h * (1 + s[..., None, None]) + b[..., None, None]


def _ss_interleaved(h, emb_out, norm):
    s, b = emb_out[:, 0::2], emb_out[:, 1::2]
    return norm(h) * (1 + s[..., None, None]) + b[..., None, None]


@register("apply_scale_shift", NB03, apply_scale_shift, mistakes=[
    (_ss_swapped, "first half"),
    (_ss_no_one, "zero"),
    (_ss_norm_last, "normalise first"),
    (_ss_no_norm, "norm"),
    (_ss_interleaved, "halves"),
])
def check_apply_scale_shift(student: Callable, quiet: bool = False) -> Callable:
    """Check ``apply_scale_shift(h, emb_out, norm)`` = norm(h) * (1 + s) + b (AdaGN)."""
    hints = [
        (lambda g, w, a, k: g is None, "emb_out is (B, 2C) and h is (B, C, H, W): split emb_out into two (B, C) "
                                       "halves and give each two trailing axes of size 1 so they broadcast over H, W."),
        (lambda g, w, a, k: torch.is_tensor(g) and g.shape != w.shape,
         "the result must have h's shape (B, C, H, W): give scale and shift shape (B, C, 1, 1)."),
        (same_as(_ss_swapped, atol=1e-4), "which half is which? The first half of emb_out is the scale, the second the shift."),
        (same_as(_ss_no_one, atol=1e-4), "an embedding of all zeros must leave norm(h) unchanged: look at the factor that "
                                  "multiplies norm(h)."),
        (same_as(_ss_norm_last, atol=1e-4), "normalise first, then modulate: the scale and shift act on norm(h), not on h."),
        (same_as(_ss_no_norm, atol=1e-4), "the scale and shift act on the normalised features: apply norm to h."),
        (same_as(_ss_interleaved, atol=1e-4), "split emb_out into two contiguous halves along the channels (chunk), not "
                                       "even/odd channels."),
    ]
    fn, _ = check_function("apply_scale_shift", student, apply_scale_shift, _scale_shift_cases(), hints, quiet=quiet)
    return fn


# --------------------------------------------------------------------------- notebook 03: attention
def _attention_variant(qkv: Tensor, n_heads: int, order: str = "legacy", scale_width: str = "head",
                       softmax_dim: int = -1) -> Tensor:
    b, width, t = qkv.shape
    ch = width // (3 * n_heads)
    if order == "legacy":
        q, k, v = qkv.reshape(b * n_heads, 3 * ch, t).split(ch, dim=1)
    else:
        q, k, v = (z.reshape(b * n_heads, ch, t) for z in qkv.chunk(3, dim=1))
    scale = {"head": ch ** -0.5, "none": 1.0, "all": (width // 3) ** -0.5}[scale_width]
    w = torch.einsum("bct,bcs->bts", q, k) * scale
    w = torch.softmax(w.float(), dim=softmax_dim)
    return torch.einsum("bts,bcs->bct", w, v).reshape(b, width // 3, t)


def _attn_cases() -> list:
    g = seeded(6)
    return [
        ((torch.randn(2, 3 * 2 * 4, 6, generator=g), 2), {}),
        ((torch.randn(1, 3 * 4 * 8, 16, generator=g) * 2, 4), {}),
        ((torch.randn(3, 3 * 1 * 8, 5, generator=g), 1), {}),
    ]


def _attn_new_order(qkv, n_heads):
    return _attention_variant(qkv, n_heads, order="new")


def _attn_no_scale(qkv, n_heads):
    return _attention_variant(qkv, n_heads, scale_width="none")


def _attn_scale_all(qkv, n_heads):
    return _attention_variant(qkv, n_heads, scale_width="all")


def _attn_softmax_queries(qkv, n_heads):
    return _attention_variant(qkv, n_heads, softmax_dim=1)


@register("qkv_attention_legacy", NB03, qkv_attention_legacy, mistakes=[
    (_attn_new_order, "legacy"),
    (_attn_no_scale, "scale"),
    (_attn_scale_all, "per head"),
    (_attn_softmax_queries, "keys"),
])
def check_qkv_attention_legacy(student: Callable, quiet: bool = False) -> Callable:
    """Check ``qkv_attention_legacy(qkv, n_heads)``: (B, 3C, T) -> (B, C, T)."""
    hints = [
        (lambda g, w, a, k: g is None, "follow the shapes: reshape qkv to (B * n_heads, 3 * ch, T), split it into q, k, "
                                       "v of (B * n_heads, ch, T) each, and reshape the result back to (B, C, T)."),
        (lambda g, w, a, k: torch.is_tensor(g) and g.shape != w.shape,
         "the result has C = (channels of qkv) / 3 channels: reshape the (B * n_heads, ch, T) values back to (B, C, T)."),
        (same_as(_attn_new_order, atol=1e-4), "the channel order is the legacy one: heads first, each head's 3 * ch channels "
                                    "hold its own [q | k | v]. Reshape by heads before you split."),
        (same_as(_attn_no_scale, atol=1e-4), "the scores need a scale: without it the softmax saturates as the head width grows."),
        (same_as(_attn_scale_all, atol=1e-4), "the scale uses the width of ONE head (ch), per head, not the full width C."),
        (same_as(_attn_softmax_queries, atol=1e-4), "each query's weights must sum to 1: take the softmax over the keys (the last "
                                          "axis of the (B*heads, T_query, T_key) scores)."),
    ]
    fn, _ = check_function("qkv_attention_legacy", student, qkv_attention_legacy, _attn_cases(), hints, quiet=quiet)
    return fn
