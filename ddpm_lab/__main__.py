"""Command line: ``python -m ddpm_lab {demo,train,inpaint} ...`` (also installed as ``ddpm-lab``).

Only argument parsing lives here; the work is done by :mod:`ddpm_lab.inference`,
:mod:`ddpm_lab.trainer` and :mod:`ddpm_lab.viz`. Bad input (a missing checkpoint, an unreadable
image, an unknown sampler, ...) ends with exit status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PROG = "python -m ddpm_lab"
SAMPLER_NAMES = "ddim, ddpm, repaint"


class UsageError(ValueError):
    """Bad command-line input found after parsing."""


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return name


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _parse_mask(text: str):
    """A mask kind name, or ``top,left,height,width`` in original-image pixels."""
    from .masks import MASK_MODES

    if text in MASK_MODES:
        return text
    parts = text.split(",")
    if len(parts) == 4:
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            pass
    raise UsageError(f"--mask {text!r}: use one of {', '.join(MASK_MODES)} or a box 'top,left,height,width' in pixels")


# ------------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    """Inpaint held-out offline faces with the demo model, write a figure, print a metrics table."""
    from .inference import HELDOUT_FACE_SEED, compare_on_faces, default_steps, load_model
    from .viz import close_figure, comparison_grid

    t0 = time.time()
    if args.n < 1:
        raise UsageError("--n must be at least 1")
    model = load_model(args.checkpoint, device=_device(args.device))
    steps = args.steps if args.steps is not None else default_steps(model, args.sampler)
    report = compare_on_faces(model, n=args.n, face_seed=HELDOUT_FACE_SEED, mask_mode=args.mask, seed=args.seed,
                              sampler=args.sampler, steps=steps, progress=False)
    images, masks, outputs = report["images"], report["masks"], report["outputs"]
    label = f"{args.sampler}" + (f", {steps} steps" if steps else "")
    rows = {
        "masked input": images * (1 - masks) + masks,
        f"result ({label})": outputs["model"],
        "ground truth": images,
        "mean fill": outputs["mean_fill"],
        "OpenCV Telea": outputs["telea"],
    }
    fig = comparison_grid(rows, title=f"held-out offline faces, {args.mask} hole", path=args.out)
    close_figure(fig)
    size = images.shape[-1]
    print(f"{args.n} held-out offline faces (face seeds {HELDOUT_FACE_SEED * 1_000_003}..{HELDOUT_FACE_SEED * 1_000_003 + args.n - 1}, "
          f"never used in training), {size}x{size}, {args.mask} hole, sampler {label}, seed {args.seed}")
    print(f"{'method':<16}{'masked PSNR (dB)':>18}{'masked MAE':>12}")
    names = {"model": "diffusion model", "mean_fill": "mean fill", "telea": "OpenCV Telea"}
    for key, metric in report["metrics"].items():
        print(f"{names[key]:<16}{metric['psnr']:>18.2f}{metric['mae']:>12.4f}")
    print(f"figure: {args.out}   ({time.time() - t0:.1f} s)")
    return 0


# ------------------------------------------------------------------------------------------ train
def cmd_train(args: argparse.Namespace) -> int:
    """Train with a profile on a folder of images or the offline faces."""
    from .trainer import train_from_profile

    trainer = train_from_profile(
        args.profile, data=args.data, out_dir=args.out, network=args.network, epochs=args.epochs,
        max_steps=args.max_steps, resume=args.resume, seed=args.seed, device=None if args.device == "auto" else _device(args.device),
        progress=not args.no_progress,
    )
    if trainer.dist.is_main:  # under torchrun only the first process reports
        written = [str(Path(args.out) / name) for name in ("best_model.pth", "last.ckpt") if (Path(args.out) / name).is_file()]
        print(f"done after {trainer.global_step} steps: {', '.join(written) or args.out}")
    return 0


# ---------------------------------------------------------------------------------------- inpaint
def cmd_inpaint(args: argparse.Namespace) -> int:
    """Inpaint one image file and write the result at the original size."""
    from PIL import Image

    from .data import load_image, to_pil
    from .inference import inpaint, load_model

    mask = _parse_mask(args.mask)
    image = load_image(args.image)  # FileNotFoundError / ValueError with the file name
    model = load_model(args.checkpoint, device=_device(args.device), config=args.profile)
    res = inpaint(model, image, mask, sampler=args.sampler, steps=args.steps, eta=args.eta,
                  generator=_generator(args.seed), progress=not args.no_progress)
    out = res.pasted
    if args.side_by_side:
        masked = to_pil(res.masked_input[0]).resize((args.panel, args.panel), Image.NEAREST)
        result = to_pil(res.result[0]).resize((args.panel, args.panel), Image.NEAREST)
        pasted = res.pasted.resize((round(res.pasted.width * args.panel / res.pasted.height), args.panel), Image.BICUBIC)
        out = Image.new("RGB", (2 * args.panel + pasted.width, args.panel), "white")
        for x, panel in zip((0, args.panel, 2 * args.panel), (masked, result, pasted)):
            out.paste(panel, (x, 0))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.save(args.out)
    print(f"wrote {args.out} ({out.width}x{out.height})")
    return 0


# ----------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m ddpm_lab``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="DDPM inpainting lab: demo, training and inpainting from the command line.",
        epilog=f"'{PROG} COMMAND -h' explains each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def sampling(p: argparse.ArgumentParser, seed_help: str) -> None:
        p.add_argument("--sampler", default="ddim", help=f"{SAMPLER_NAMES} (default ddim)")
        p.add_argument("--steps", type=int, help="DDIM steps (default: what the model was validated with); "
                       "ddpm and repaint always run the whole schedule")
        p.add_argument("--seed", type=int, default=0, help=seed_help)
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")

    demo = sub.add_parser("demo", help="inpaint held-out offline faces with the bundled demo model (about a minute on a CPU)",
                          description="Inpaint held-out offline faces with the bundled demo model, write a figure "
                          "(masked input / result / ground truth / mean fill / OpenCV Telea) and print masked-region "
                          "PSNR and MAE for the model and both baselines.")
    demo.add_argument("--out", default="demo.png", help="figure to write (default ./demo.png)")
    demo.add_argument("--n", type=int, default=6, help="number of faces (default 6)")
    demo.add_argument("--mask", default="center", help="mask kind (default center)")
    demo.add_argument("--checkpoint", help="another model instead of the bundled demo model")
    sampling(demo, "seed of the masks and the sampler noise (default 0)")
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="train a model with a profile", description="Train with a profile "
                           "(smoke, cpu, gpu, full) on an image folder or the offline faces; writes OUT/best_model.pth "
                           "(EMA weights, a plain state_dict) and OUT/last.ckpt (to --resume).")
    train.add_argument("--profile", default=None, help="smoke, cpu, gpu or full (default: $DDPM_LAB_PROFILE, else gpu/cpu)")
    train.add_argument("--data", default="offline", help="an image folder, or 'offline' for generated faces (default)")
    train.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    train.add_argument("--epochs", type=int, help="override the profile's epochs")
    train.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    train.add_argument("--network", default="unet", choices=("unet", "simple"), help="improved UNet or the basic SimpleUnet")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    train.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    inp = sub.add_parser("inpaint", help="inpaint one image file -> PNG", description="Inpaint IMAGE (any size: "
                         "the model sees a centred square crop) and write the result at the original size.")
    inp.add_argument("image", help="input image file (JPEG, PNG, ...)")
    inp.add_argument("--checkpoint", help="model file (default: the bundled demo model)")
    inp.add_argument("--profile", help="profile the checkpoint was trained with, for files that carry no config")
    inp.add_argument("--mask", default="center", help="center, random_box, irregular, free_form, hybrid, "
                     "or a box 'top,left,height,width' in pixels of the original image (default center)")
    inp.add_argument("--eta", type=float, default=0.0, help="DDIM eta (default 0: deterministic)")
    inp.add_argument("--out", default="result.png", help="output PNG (default result.png)")
    inp.add_argument("--side-by-side", action="store_true", help="write masked input | result | pasted result instead")
    inp.add_argument("--panel", type=int, default=256, help="panel height for --side-by-side (default 256)")
    inp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sampling(inp, "seed of the mask and the sampler noise (default 0)")
    inp.set_defaults(func=cmd_inpaint)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if getattr(args, "sampler", None) is not None and args.sampler not in SAMPLER_NAMES.split(", "):
            raise UsageError(f"unknown sampler {args.sampler!r}; valid samplers: {SAMPLER_NAMES}")
        return args.func(args)
    except (ValueError, FileNotFoundError, IsADirectoryError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
