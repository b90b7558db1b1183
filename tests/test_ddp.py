"""DistributedDataParallel on the CPU: 2 gloo processes over loopback, launched like torchrun."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_train_identically(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(WORKER), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=WORKER.parent.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for r in ranks:
        assert r["world_size"] == 2 and r["ddp"] == "DistributedDataParallel" and r["sampler"] == "DistributedSampler"
        assert r["step"] == 4  # 8 faces / 2 processes / batch 2 = 2 steps per epoch, 2 epochs
    for key in ("model", "ema"):
        a, b = ranks[0][key], ranks[1][key]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), key
    timeless = [{k: v for k, v in r["history"].items() if k != "epoch_time"} for r in ranks]
    assert timeless[0] == timeless[1]  # losses averaged over both processes
    assert len(ranks[0]["seen"]) == 4 and not set(ranks[0]["seen"]) & set(ranks[1]["seen"])  # data split
    # only rank 0 writes files and logs: one checkpoint, one summary line per epoch
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["config"]["world_size"] == 2
    assert all(torch.equal(ckpt["model"][k], ranks[0]["model"][k]) for k in ckpt["model"])
    assert (tmp_path / "best_model.pth").is_file()
    assert proc.stdout.count("| End of epoch") == 2, proc.stdout
