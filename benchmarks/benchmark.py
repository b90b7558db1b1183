"""Speed and memory of training and sampling, per profile (a script, not a test).

    python benchmarks/benchmark.py                       # smoke and cpu on a CPU; + gpu, full on CUDA
    python benchmarks/benchmark.py --profiles smoke --threads 1

For each profile: training images per second (a few optimiser steps of
:func:`ddpm_lab.trainer.training_step` on offline faces, batch = the profile's ``batch_size``, after
one warm-up step), then sampling milliseconds per image for every sampler on the profile's "test"
schedule: DDIM with 10 / 25 / 50 steps, full-T DDPM (only when T <= ``--max-full-t``, it costs T
network calls) and RePaint (full T with small jumps, same limit, ``jump_n_sample`` times the cost),
and the peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak resident set
size (``resource.getrusage``, which never goes down) on a CPU. Weights are random: speed does not
depend on them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddpm_lab.diffusion import InpaintingGaussianDiffusion  # noqa: E402
from ddpm_lab.faces import OfflineFaces  # noqa: E402
from ddpm_lab.nn import count_parameters, init_weights  # noqa: E402
from ddpm_lab.profiles import get_profile  # noqa: E402
from ddpm_lab.samplers import sample  # noqa: E402
from ddpm_lab.unet import UNet  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def bench_training(model: InpaintingGaussianDiffusion, profile, device: torch.device, steps: int) -> float:
    """Training images per second over ``steps`` steps (after one warm-up step)."""
    from torch.utils.data import DataLoader

    from ddpm_lab.trainer import resolve_amp, training_step

    faces = OfflineFaces(profile.batch_size * (steps + 1), image_size=profile.image_size, seed=0, mask_seed=0)
    loader = DataLoader(faces, batch_size=profile.batch_size, shuffle=False)
    batches = list(loader)  # rendered before timing
    amp_dtype = resolve_amp("auto" if profile.amp else False, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    opt = torch.optim.AdamW(model.parameters(), lr=profile.lr)
    model.train()
    training_step(model, batches[0], opt, device, scaler, 1.0, amp_dtype)
    _sync(device)
    t0 = time.perf_counter()
    for batch in batches[1:]:
        training_step(model, batch, opt, device, scaler, 1.0, amp_dtype)
    _sync(device)
    return steps * profile.batch_size / (time.perf_counter() - t0)


@torch.no_grad()
def bench_sampling(model: InpaintingGaussianDiffusion, size: int, batch: int, device: torch.device, runs: list) -> list:
    """(label, network calls, ms per image) for each (sampler, steps, jump_length, jump_n_sample) in ``runs``."""
    model.eval()
    model.set_new_noise_schedule(device, phase="test")
    gen = torch.Generator().manual_seed(0)
    y_0 = torch.rand(batch, 3, size, size, generator=gen).to(device) * 2 - 1
    mask = torch.zeros(batch, 1, size, size, device=device)
    mask[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    y_cond = y_0 * (1 - mask) + mask * torch.randn(y_0.shape, generator=gen).to(device)
    sample(model, y_cond, y_0=y_0, mask=mask, sampler="ddim", steps=2, generator=gen)  # warm-up, not timed
    rows = []
    for sampler, steps, jump, n_sample in runs:
        calls = {"n": 0}
        hook = model.denoise_fn.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
        _sync(device)
        t0 = time.perf_counter()
        sample(model, y_cond, y_0=y_0, mask=mask, sampler=sampler, steps=steps, jump_length=jump,
               jump_n_sample=n_sample, generator=gen)
        _sync(device)
        ms = (time.perf_counter() - t0) * 1000 / batch
        hook.remove()
        label = {"ddim": f"ddim {steps} steps", "ddpm": f"ddpm T={model.num_timesteps}",
                 "repaint": f"repaint T={model.num_timesteps} jump {jump}x{n_sample}"}[sampler]
        rows.append((label, calls["n"], ms))
    model.set_new_noise_schedule(device, phase="train")
    return rows


def run_profile(name: str, device: torch.device, args: argparse.Namespace) -> None:
    profile = get_profile(name)
    torch.manual_seed(0)
    model = InpaintingGaussianDiffusion(UNet(**profile.unet_config), profile.beta_schedule).to(device)
    init_weights(model.denoise_fn, "kaiming")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_test = profile.beta_schedule["test"]["n_timestep"]
    print(f"\n== profile {name}: {profile.image_size}x{profile.image_size}, UNet {count_parameters(model.denoise_fn):,} "
          f"parameters, batch {profile.batch_size}, test schedule T={t_test}, device {device}")
    ips = bench_training(model, profile, device, args.train_steps)
    print(f"training: {ips:8.1f} images/s   (peak memory so far {_peak_mb(device):.0f} MiB)")
    runs = [("ddim", s, 10, 10) for s in args.ddim if s <= t_test]
    if t_test <= args.max_full_t:
        runs += [("ddpm", None, 10, 10), ("repaint", None, args.jump_length, args.jump_n_sample)]
    rows = bench_sampling(model, profile.image_size, args.batch, device, runs)
    print(f"sampling, batch {args.batch}:")
    print(f"  {'sampler':<28}{'net calls':>10}{'ms / image':>12}")
    for label, calls, ms in rows:
        print(f"  {label:<28}{calls:>10}{ms:>12.1f}")
    if t_test > args.max_full_t:
        print(f"  (ddpm and repaint skipped: T={t_test} > --max-full-t {args.max_full_t}; they cost T network calls)")
    print(f"peak memory: {_peak_mb(device):.0f} MiB ({'CUDA max_memory_allocated' if device.type == 'cuda' else 'process max RSS'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", help="default: smoke cpu (+ gpu full with CUDA)")
    parser.add_argument("--device", default="auto", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps (default 3)")
    parser.add_argument("--batch", type=int, default=4, help="sampling batch size (default 4)")
    parser.add_argument("--ddim", type=int, nargs="+", default=[10, 25, 50], help="DDIM step counts")
    parser.add_argument("--max-full-t", type=int, default=100, help="run full-T ddpm/repaint only up to this T")
    parser.add_argument("--jump-length", type=int, default=2, help="RePaint jump length (default 2)")
    parser.add_argument("--jump-n-sample", type=int, default=2, help="RePaint resampling passes (default 2)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    profiles = args.profiles or (["smoke", "cpu"] + (["gpu", "full"] if device.type == "cuda" else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    for name in profiles:
        run_profile(name, device, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
