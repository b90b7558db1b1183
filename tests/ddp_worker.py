"""One process of the 2-process DDP test (launched by tests/test_ddp.py through torch.distributed.run).

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py OUT_DIR

Trains a tiny UNet on 8 offline faces with gloo on the CPU, then every rank writes its final
weights, EMA weights and history to OUT_DIR/rank<r>.pt so the test can compare them.
"""

import os
import sys

import torch

from ddpm_lab.profiles import get_profile
from ddpm_lab.trainer import train_from_profile

UNET = {"in_channel": 6, "out_channel": 3, "inner_channel": 32, "channel_mults": [1, 2], "attn_res": [],
        "num_head_channels": 32, "res_blocks": 1, "dropout": 0.1, "image_size": 16}
SCHEDULE = {"schedule": "linear", "n_timestep": 10, "linear_start": 1e-4, "linear_end": 0.09}


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    profile = get_profile("smoke").copy(
        image_size=16, unet_config=UNET, beta_schedule={"train": SCHEDULE, "test": SCHEDULE}, batch_size=2,
        num_train=8, num_val=2, epochs=2, sample_steps=2, sample_num=2, lr=1e-3,
    )
    trainer = train_from_profile(profile, out_dir=out_dir, device="cpu", progress=False)
    rank = int(os.environ["RANK"])
    trainer.train_loader.sampler.set_epoch(0)
    seen = sorted(p for batch in trainer.train_loader for p in batch["path"])
    torch.save({"model": trainer.model.state_dict(), "ema": trainer.ema_model.state_dict(),
                "history": trainer.history, "world_size": trainer.dist.world_size,
                "step": trainer.global_step, "ddp": type(trainer.train_model).__name__,
                "sampler": type(trainer.train_loader.sampler).__name__, "seen": seen},
               os.path.join(out_dir, f"rank{rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
