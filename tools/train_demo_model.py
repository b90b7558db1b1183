"""Train the bundled demo model ``ddpm_lab/assets/demo_model.pt`` (one command, fixed seed, CPU).

    python tools/train_demo_model.py            # the shipped model: DEMO_CONFIG, seed 0
    python tools/train_demo_model.py --steps 200 --out /tmp/try.pt   # a quick try

The shipped model (torch 2.15 CPU build, one thread, 2-core AMD EPYC shared with other jobs):
3500 steps of batch 32 in 29 minutes (1764 s of training, ~63 images/s), 1,371,971 parameters,
2.8 MB (float16). DDIM step count picked on validation faces: 10 (masked MAE 0.153; 25 steps
0.166, 50 steps 0.172). On 64 held-out faces with a centre hole, one DDIM-10 sample each
(seed 0), masked region, PSNR with data range 2:

    diffusion model   19.54 dB   MAE 0.149
    OpenCV Telea      16.11 dB   MAE 0.251
    mean fill         12.97 dB   MAE 0.413

Two runs of the same command on one machine give bit-identical weights (checked on 30 steps);
another CPU or torch build may differ in the last bits.

What it does, all from :data:`DEMO_CONFIG`:

1. renders ``num_train`` offline faces at 32x32 (:class:`ddpm_lab.OfflineFaces` with face seed base
   0, i.e. ``render_face(i)`` for i < num_train) into memory;
2. trains a small Palette UNet inside :class:`ddpm_lab.InpaintingGaussianDiffusion` (Palette's
   2000-step training schedule, 1000-step test schedule) with AdamW, linear warm-up then cosine
   decay of the learning rate, gradient clipping and an EMA of the weights; every batch draws fresh
   masks (mostly the centre box, the demo's task, plus the other mask kinds so
   ``inpaint --mask random_box`` works too), fresh noise and random horizontal flips;
3. picks the DDIM step count (10, 25 or 50) by masked MAE on 64 validation faces (face seed base
   2), then evaluates the EMA weights on 64 held-out faces (face seed base 1,
   ``ddpm_lab.inference.HELDOUT_FACE_SEED``; neither set is used for training) with a centre hole:
   masked-region PSNR / MAE of the model (DDIM, seed 0) against mean fill and OpenCV Telea;
4. writes the EMA weights in float16 with the config and the metrics inside (a
   ``ddpm_lab-checkpoint`` dict that :func:`ddpm_lab.inference.load_model` reads with
   ``weights_only=True``), plus a JSON summary next to it.

Two choices differ from the course, both because the budget is ~30 CPU-minutes, not GPU-hours:

- v-prediction (:class:`ddpm_lab.vprediction.VPredictionUNet`, network ``"unet_v"``): the UNet
  predicts v = sqrt(g) eps - sqrt(1-g) y_0 and the loss is the masked MSE of v, which is the
  course's noise MSE divided by gamma: |eps_hat - eps|^2 / g = |v_hat - v|^2. Measured on 64
  held-out faces (DDIM 25, masked PSNR): the plain noise-predicting UNet with the course's loss
  reached 12.4 dB after 1500 steps (below mean fill's 13.0 dB: its first, noisiest sampling steps
  are garbage, because y_0 = (y_t - sqrt(1-g) eps) / sqrt(g) multiplies the error by
  1/sqrt(g)), 10.2 dB after 500 steps with the v loss; v-prediction reached 14.8 dB after 500.
- The loop is written out here rather than run through :class:`ddpm_lab.trainer.Trainer`: the v
  loss needs gamma, which ``InpaintingGaussianDiffusion.forward`` keeps to itself, and the demo
  needs none of the Trainer's validation restorations, checkpoints or DDP.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddpm_lab.diffusion import InpaintingGaussianDiffusion  # noqa: E402
from ddpm_lab.inference import build_model  # noqa: E402
from ddpm_lab.ema import ema_decay_at, make_ema, update_ema  # noqa: E402
from ddpm_lab.faces import OfflineFaces  # noqa: E402
from ddpm_lab.masks import MASK_MODES, make_mask  # noqa: E402
from ddpm_lab.nn import count_parameters, init_weights  # noqa: E402
from ddpm_lab.profiles import COURSE_UNET_CONFIG, PALETTE_BETA_SCHEDULE  # noqa: E402

DEFAULT_OUT = ROOT / "ddpm_lab" / "assets" / "demo_model.pt"

DEMO_CONFIG: dict = {
    "network": "unet_v",
    "image_size": 32,
    "unet_config": {**COURSE_UNET_CONFIG, "inner_channel": 32, "channel_mults": [1, 2, 2], "res_blocks": 1,
                    "attn_res": [4], "dropout": 0.0, "image_size": 32},
    "beta_schedule": {"train": dict(PALETTE_BETA_SCHEDULE["train"]), "test": dict(PALETTE_BETA_SCHEDULE["test"])},
    "train": {
        "seed": 0, "face_seed": 0, "num_train": 8000, "steps": 3500, "batch_size": 32, "lr": 5e-4,
        "weight_decay": 0.01, "warmup": 100, "min_lr_fraction": 0.1, "ema_decay": 0.999, "grad_clip": 1.0,
        "center_fraction": 0.8, "hflip": True, "loss": "v", "max_loss_weight": 1000.0,
    },
    "sample": {"sampler": "ddim", "steps": None, "eta": 0.0, "candidates": [10, 25, 50]},
    "eval": {"face_seed": 1, "val_face_seed": 2, "n": 64, "mask": "center", "seed": 0},
}


def render_faces(n: int, size: int, face_seed: int) -> torch.Tensor:
    """``n`` offline faces (face seed base ``face_seed``) as a float tensor (n, 3, size, size) in [-1, 1]."""
    faces = OfflineFaces(n, image_size=size, seed=face_seed)
    arr = np.stack([np.asarray(faces.image(i)) for i in range(n)])  # (n, H, W, 3) uint8
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def draw_masks(b: int, size: int, center_fraction: float, gen: torch.Generator) -> torch.Tensor:
    """(b, 1, size, size): the centre box with probability ``center_fraction``, else a random other kind."""
    others = [m for m in MASK_MODES if m != "center"]
    masks = []
    for _ in range(b):
        if torch.rand((), generator=gen).item() < center_fraction:
            masks.append(make_mask("center", size))
        else:
            kind = others[int(torch.randint(len(others), (), generator=gen))]
            masks.append(make_mask(kind, size, gen))
    return torch.stack(masks)


def lr_at(step: int, cfg: dict) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_lr_fraction * lr``."""
    if step < cfg["warmup"]:
        return cfg["lr"] * (step + 1) / cfg["warmup"]
    progress = (step - cfg["warmup"]) / max(1, cfg["steps"] - cfg["warmup"])
    floor = cfg["min_lr_fraction"]
    return cfg["lr"] * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def v_loss(model: InpaintingGaussianDiffusion, y_0: torch.Tensor, y_cond: torch.Tensor, mask: torch.Tensor,
           gen: torch.Generator, max_weight: float) -> torch.Tensor:
    """The course's training step with the v-prediction loss.

    gamma ~ Palette's p(gamma); y_in = mask * (sqrt(g) y_0 + sqrt(1-g) eps) + (1 - mask) * y_0;
    loss = mean_b( mean_pixels(mask * (eps_hat - eps))^2 / min(g, ...) ), the weight 1/g capped at
    ``max_weight``; with eps_hat from a :class:`VPredictionUNet` this is the masked MSE of v.
    """
    b = y_0.shape[0]
    g = model.sample_noise_levels(b, y_0, gen)  # (B, 1)
    eps = torch.randn(y_0.shape, generator=gen)
    y_noisy = model.q_sample(y_0, g.view(b, 1, 1, 1), eps)
    y_in = y_noisy * mask + (1 - mask) * y_0
    eps_hat = model.predict_noise(y_in, g, y_cond)  # (B, 3, S, S)
    per_image = ((mask * (eps_hat - eps)) ** 2).flatten(1).mean(dim=1)  # (B,)
    weight = (1.0 / g.view(-1)).clamp(max=max_weight)
    return (weight * per_image).mean()


def train(config: dict, log=print, snapshot: Path | None = None) -> tuple[InpaintingGaussianDiffusion, dict]:
    """Train per ``config`` and return the EMA model and a small history (``snapshot``: a file that
    receives the EMA weights every 250 steps, to inspect a long run while it trains)."""
    tc, size = config["train"], config["image_size"]
    torch.manual_seed(tc["seed"])
    gen = torch.Generator().manual_seed(tc["seed"])
    t0 = time.time()
    data = render_faces(tc["num_train"], size, tc["face_seed"])  # (N, 3, S, S)
    log(f"rendered {len(data)} training faces in {time.time() - t0:.1f}s")
    model = build_model(config)
    init_weights(model.denoise_fn, "kaiming")
    ema = make_ema(model)
    opt = torch.optim.AdamW(model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"])
    log(f"UNet parameters: {count_parameters(model):,}")
    history, running, t0 = {"step": [], "loss": []}, 0.0, time.time()
    model.train()
    for step in range(tc["steps"]):
        idx = torch.randint(len(data), (tc["batch_size"],), generator=gen)
        y_0 = data[idx]  # (B, 3, S, S)
        if tc["hflip"]:
            flip = torch.rand(len(idx), generator=gen) < 0.5
            y_0 = torch.where(flip[:, None, None, None], y_0.flip(-1), y_0)
        mask = draw_masks(len(idx), size, tc["center_fraction"], gen)  # (B, 1, S, S)
        y_cond = y_0 * (1 - mask) + mask * torch.randn(y_0.shape, generator=gen)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        loss = v_loss(model, y_0, y_cond, mask, gen, tc["max_loss_weight"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        update_ema(ema, model, ema_decay_at(tc["ema_decay"], step))
        running += loss.item()
        if (step + 1) % 50 == 0 or step + 1 == tc["steps"]:
            n = 50 if (step + 1) % 50 == 0 else (step + 1) % 50
            history["step"].append(step + 1)
            history["loss"].append(running / n)
            rate = (step + 1) * tc["batch_size"] / (time.time() - t0)
            log(f"step {step + 1}/{tc['steps']}  loss {running / n:.4f}  lr {lr_at(step, tc):.2e}  {rate:.1f} img/s")
            running = 0.0
        if snapshot is not None and (step + 1) % 250 == 0:
            torch.save({"format": "ddpm_lab-checkpoint", "model": ema.state_dict(), "config": config, "step": step + 1}, snapshot)
    history["train_seconds"] = round(time.time() - t0, 1)
    return ema, history


def evaluate(model: InpaintingGaussianDiffusion, config: dict, log=print) -> dict:
    """Pick the DDIM step count on validation faces, then score it on the held-out faces.

    Validation: ``eval["n"]`` faces of face-seed base ``eval["val_face_seed"]``; the step count in
    ``sample["candidates"]`` with the lowest masked MAE becomes ``config["sample"]["steps"]``.
    Report: masked-region PSNR / MAE on ``eval["n"]`` faces of base ``eval["face_seed"]`` (the demo's
    faces), model vs mean fill vs OpenCV Telea, centre hole, seed ``eval["seed"]``.
    """
    from ddpm_lab.inference import compare_on_faces

    ec, sc = config["eval"], config["sample"]
    t0 = time.time()
    scores = {}
    for steps in sc["candidates"]:
        m = compare_on_faces(model, n=ec["n"], face_seed=ec["val_face_seed"], mask_mode=ec["mask"], seed=ec["seed"],
                             sampler=sc["sampler"], steps=steps, eta=sc["eta"])["metrics"]["model"]
        scores[steps] = m
        log(f"validation, DDIM {steps:3d} steps: masked PSNR {m['psnr']:.2f} dB   masked MAE {m['mae']:.4f}")
    sc["steps"] = min(scores, key=lambda k: scores[k]["mae"])
    report = compare_on_faces(model, n=ec["n"], face_seed=ec["face_seed"], mask_mode=ec["mask"], seed=ec["seed"],
                              sampler=sc["sampler"], steps=sc["steps"], eta=sc["eta"])
    metrics = report["metrics"]
    log(f"held-out faces, DDIM {sc['steps']} steps:")
    for name, m in metrics.items():
        log(f"{name:>10}: masked PSNR {m['psnr']:.2f} dB   masked MAE {m['mae']:.4f}")
    log(f"evaluation took {time.time() - t0:.1f}s")
    return {**metrics, "validation": {str(k): v for k, v in scores.items()}}


def save(model: InpaintingGaussianDiffusion, config: dict, metrics: dict, history: dict, out: Path) -> None:
    """Write the float16 EMA network weights with the config and metrics (weights_only-loadable)."""
    from ddpm_lab.diffusion import BUFFER_NAMES

    state = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items() if k not in BUFFER_NAMES}
    ckpt = {"format": "ddpm_lab-checkpoint", "model": state, "config": config, "metrics": metrics,
            "history": {"step": history["step"], "loss": history["loss"]}}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    summary = {"config": config, "metrics": metrics, "train_seconds": history["train_seconds"],
               "file_bytes": out.stat().st_size, "parameters": count_parameters(model.denoise_fn)}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    parser.add_argument("--steps", type=int, help="optimiser steps (default: DEMO_CONFIG)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, see main())")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    args = parser.parse_args(argv)
    config = json.loads(json.dumps(DEMO_CONFIG))  # a deep copy
    if args.steps:
        config["train"]["steps"] = args.steps
    # One thread: on a CPU shared with other jobs, two OpenMP threads that wait for each other ran
    # ten times slower than one (measured: 15-20 s vs 1.7-2.2 s per step); results do not change.
    torch.set_num_threads(args.threads)
    t0 = time.time()
    snapshot = args.out.with_suffix(".partial.pt")
    model, history = train(config, snapshot=snapshot)
    metrics = {} if args.no_eval else evaluate(model, config)
    save(model, config, metrics, history, args.out)
    snapshot.unlink(missing_ok=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f}s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
