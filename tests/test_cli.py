"""The command line ``python -m ddpm_lab``: end to end in subprocesses, plus its bad-input paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddpm_lab.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "ddpm_lab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_demo_writes_figure_and_prints_metrics(tmp_path):
    proc = _run("demo", "--n", "2", "--steps", "5", "--out", "fig.png", "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "fig.png") as fig:
        assert fig.format == "PNG" and fig.width > 200 and fig.height > 300
    lines = proc.stdout.splitlines()
    assert any("masked PSNR (dB)" in line and "masked MAE" in line for line in lines)
    rows = {line.split("  ")[0].strip(): line.split() for line in lines if line.startswith(("diffusion", "mean", "OpenCV"))}
    assert set(rows) == {"diffusion model", "mean fill", "OpenCV Telea"}
    for cells in rows.values():
        psnr, mae = float(cells[-2]), float(cells[-1])
        assert 5 < psnr < 60 and 0 < mae < 2


def test_inpaint_writes_png_of_the_original_size(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)).save(tmp_path / "in.jpg", quality=90)
    proc = _run("inpaint", "in.jpg", "--mask", "10,20,15,12", "--steps", "3", "--out", "out/result.png",
                "--no-progress", "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "out" / "result.png") as out:
        assert out.format == "PNG" and out.size == (61, 45)


def test_bad_sampler_exits_2_with_one_line(tmp_path):
    proc = _run("demo", "--sampler", "euler", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown sampler 'euler'" in proc.stderr and "ddim, ddpm, repaint" in proc.stderr
    assert not (tmp_path / "demo.png").exists()


def test_train_smoke_two_steps(tmp_path):
    pytest.importorskip("ddpm_lab.trainer")
    proc = _run("train", "--profile", "smoke", "--max-steps", "2", "--out", "run", "--no-progress", "--device", "cpu",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "best_model.pth").is_file() or (tmp_path / "run" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inpaint", "IMG", "--checkpoint", "nowhere/model.pt"], "no checkpoint at 'nowhere/model.pt'"),
        (["inpaint", "missing.png"], "image file not found: 'missing.png'"),
        (["inpaint", "BAD"], "cannot read image file"),
        (["inpaint", "IMG", "--mask", "middle"], "--mask 'middle'"),
        (["inpaint", "IMG", "--sampler", "plms"], "unknown sampler 'plms'"),
        (["demo", "--n", "0"], "--n must be at least 1"),
        (["train", "--profile", "huge", "--max-steps", "1"], "unknown profile 'huge'"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (20, 20), "red").save(tmp_path / "img.png")
    (tmp_path / "bad.jpg").write_bytes(b"this is not a JPEG")
    argv = [{"IMG": "img.png", "BAD": "bad.jpg"}.get(a, a) for a in argv]
    if argv[0] == "train":
        pytest.importorskip("ddpm_lab.trainer")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and err.startswith(f"python -m ddpm_lab {argv[0]}: error:")


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["-h"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("demo", "train", "inpaint"))
