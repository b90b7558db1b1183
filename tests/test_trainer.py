"""Trainer: exact resume, atomic checkpoints, AMP off on CPU, NaN stop, best model, validation."""

import os
import random
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ddpm_lab.checkpoints import atomic_save, capture_rng_state, read_checkpoint, restore_rng_state
from ddpm_lab.diffusion import BUFFER_NAMES, InpaintingGaussianDiffusion
from ddpm_lab.ema import ema_decay_at, make_ema, update_ema
from ddpm_lab.faces import OfflineFaces
from ddpm_lab.losses import mse_loss
from ddpm_lab.profiles import get_profile
from ddpm_lab.simple_unet import SimpleUnet
from ddpm_lab.trainer import Trainer, resolve_amp, summary_line, train_from_profile, training_step
from ddpm_lab.weights import load_weights

SIZE = 16
UNET = {"in_channel": 6, "out_channel": 3, "inner_channel": 32, "channel_mults": [1, 2], "attn_res": [],
        "num_head_channels": 32, "res_blocks": 1, "dropout": 0.1, "image_size": SIZE}
# different train/test lengths, so a wrong phase shows up in shapes and call counts
SCHEDULE = {"train": {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09},
            "test": {"schedule": "linear", "n_timestep": 10, "linear_start": 1e-4, "linear_end": 0.09}}
N_TRAIN, BATCH = 6, 2  # 3 steps per epoch


@pytest.fixture(scope="module")
def faces():
    return OfflineFaces(N_TRAIN, image_size=SIZE, seed=0), OfflineFaces(4, image_size=SIZE, seed=1, mask_seed=0)


def make_model():
    return InpaintingGaussianDiffusion(dict(UNET), SCHEDULE)


def make_trainer(faces, folder, epochs=3, generator=True, model=None, sample_num=2, **kw):
    train, val = faces
    gen = torch.Generator().manual_seed(0) if generator else None
    train_loader = DataLoader(train, batch_size=BATCH, shuffle=True, generator=gen, drop_last=True)
    val_loader = DataLoader(val, batch_size=BATCH, shuffle=False)
    kw = {"progress": False, "log": lambda *_: None, "val_steps": 3, **kw}
    return Trainer(model or make_model(), {"lr": 1e-3, "weight_decay": 0}, train_loader, val_loader, epochs,
                   sample_num, "cpu", str(folder), **kw)


def states_equal(a, b):
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def optimizer_equal(a, b):
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    assert sa.keys() == sb.keys() and len(sa) > 0
    return all(torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])) for i in sa for k in sa[i])


def history_wo_time(h):
    return {k: v for k, v in h.items() if k != "epoch_time"}


@pytest.fixture(scope="module")
def straight(faces, tmp_path_factory):
    """9 steps (3 epochs) without interruption."""
    trainer = make_trainer(faces, tmp_path_factory.mktemp("straight"))
    trainer.train()
    return trainer


# ---------------------------------------------------------------------- resume
@pytest.mark.parametrize("stop_at, generator", [(4, True), (3, True), (5, False)],
                         ids=["mid-epoch", "epoch-boundary", "mid-epoch-global-rng-shuffle"])
def test_resume_is_exact(faces, straight, tmp_path, stop_at, generator):
    if not generator:  # the reference run must shuffle the same way
        ref = make_trainer(faces, tmp_path / "ref", generator=False)
        ref.train()
    else:
        ref = straight
    first = make_trainer(faces, tmp_path, generator=generator, max_steps=stop_at)
    first.train()
    assert first.global_step == stop_at and first.epoch == stop_at // 3
    assert not states_equal(first.model.state_dict(), ref.model.state_dict())  # the test can fail
    ckpt = read_checkpoint(tmp_path / "last.ckpt")
    assert (ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"]) == (stop_at, stop_at // 3, stop_at % 3)

    # a different initial model and loader generator: everything must come from the checkpoint
    torch.manual_seed(123)
    resumed = make_trainer(faces, tmp_path, generator=generator, resume=True, seed=99)
    assert resumed.global_step == stop_at
    resumed.train()
    assert resumed.global_step == 9 and resumed.epoch == 3
    assert states_equal(resumed.model.state_dict(), ref.model.state_dict())
    assert states_equal(resumed.ema_model.state_dict(), ref.ema_model.state_dict())
    assert optimizer_equal(resumed.optimizer, ref.optimizer)
    assert history_wo_time(resumed.history) == history_wo_time(ref.history)
    best_ref = torch.load(ref.save_model / "best_model.pth", weights_only=True)
    assert states_equal(torch.load(tmp_path / "best_model.pth", weights_only=True), best_ref)


def test_seed_changes_the_run(faces, straight, tmp_path):
    other = make_trainer(faces, tmp_path, seed=1)
    other.train()
    assert not states_equal(other.model.state_dict(), straight.model.state_dict())


def test_resume_errors(faces, straight, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        make_trainer(faces, tmp_path, resume=tmp_path / "nope.ckpt")
    messages = []
    fresh = make_trainer(faces, tmp_path, resume=True, log=messages.append)
    assert fresh.global_step == 0 and any("starting fresh" in m for m in messages)
    with pytest.raises(ValueError, match="not a resumable trainer checkpoint"):
        read_checkpoint(straight.save_model / "best_model.pth")
    # a run that is already complete does nothing more
    done = make_trainer(faces, straight.save_model, resume=True)
    before = {k: v.clone() for k, v in done.model.state_dict().items()}
    done.train()
    assert done.global_step == 9 and states_equal(done.model.state_dict(), before)


# ---------------------------------------------------------------------- checkpoints
def test_interrupted_checkpoint_write_keeps_previous(faces, tmp_path, monkeypatch):
    trainer = make_trainer(faces, tmp_path, max_steps=2)
    trainer.train()
    path = tmp_path / "last.ckpt"
    before = path.read_bytes()
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    trainer.global_step += 1  # something new to save
    with pytest.raises(OSError, match="simulated"):
        trainer.save_checkpoint()
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert read_checkpoint(path)["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["history.json", "last.ckpt"]  # no temp file left (no epoch ended: no best)
    atomic_save({"x": torch.ones(2)}, path)  # and a normal write replaces it
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))


def test_rng_state_roundtrip_through_weights_only_file(tmp_path):
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    random.gauss(0, 1), np.random.randn()  # leave cached gaussians behind
    torch.save(capture_rng_state(gen), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random(), random.gauss(0, 1), torch.rand(2, generator=gen))
    torch.manual_seed(7), np.random.seed(7), random.seed(7), gen.manual_seed(7)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True), gen)
    got = (torch.rand(3), np.random.rand(3), random.random(), random.gauss(0, 1), torch.rand(2, generator=gen))
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2:4] == expected[2:4] and torch.equal(got[4], expected[4])


# ---------------------------------------------------------------------- AMP, steps, NaN
def test_amp_is_skipped_on_cpu(faces, tmp_path, monkeypatch):
    def no_autocast(*args, **kwargs):
        raise AssertionError("autocast must not be used on the CPU")

    monkeypatch.setattr(torch, "autocast", no_autocast)
    trainer = make_trainer(faces, tmp_path, amp="auto", epochs=1, max_steps=1)
    assert trainer.amp_dtype is None and trainer.scaler is None
    trainer.train()
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert resolve_amp("auto", "cpu") is None and resolve_amp(True, "cpu") is None
    assert resolve_amp(False, "cuda") is None and resolve_amp(None, "cuda:0") is None
    for forced in ("fp16", "bf16"):
        with pytest.raises(ValueError, match="needs a CUDA device"):
            resolve_amp(forced, "cpu")
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_amp("fp8", "cuda")


def test_training_step_and_nan(faces):
    torch.manual_seed(0)
    model = InpaintingGaussianDiffusion(dict(UNET, dropout=0.0), SCHEDULE)
    from ddpm_lab.nn import init_weights

    init_weights(model.denoise_fn)
    batch = next(iter(DataLoader(faces[0], batch_size=BATCH)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    loss = training_step(model, batch, opt, "cpu", grad_clip=1e-3)
    torch.manual_seed(1)
    with torch.no_grad():  # the same draws on the (barely) updated weights
        again = float(model(batch["gt_image"], batch["cond_image"], mask=batch["mask"]))
    assert loss == pytest.approx(again, rel=1e-3) and loss > 0
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert float(moved) == pytest.approx(0.1 * 1e-3, rel=1e-2)  # SGD step of a gradient clipped to norm 1e-3
    model.set_loss(lambda a, b: mse_loss(a, b) * float("nan"))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="not finite"):
        training_step(model, batch, opt, "cpu")
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    with pytest.raises(ValueError, match="gt_image"):
        training_step(model, {"image": batch["gt_image"]}, opt, "cpu")


def test_amp_choice_on_cuda_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_amp("auto", "cuda") == torch.bfloat16 and resolve_amp("fp16", "cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a T4
    assert resolve_amp("auto", "cuda:0") == torch.float16 and resolve_amp("bf16", "cuda") == torch.bfloat16


def test_scaled_step_unscales_before_clipping(faces):
    """A GradScaler step (the fp16 path) moves the weights exactly like a plain step: the gradient is
    unscaled before it is clipped. Uses the CPU GradScaler, so no GPU is needed."""
    from ddpm_lab.trainer import _optimisation_step

    batch = next(iter(DataLoader(faces[0], batch_size=BATCH)))
    torch.manual_seed(0)
    base = InpaintingGaussianDiffusion(dict(UNET, dropout=0.0), SCHEDULE)
    from ddpm_lab.nn import init_weights

    init_weights(base.denoise_fn)
    moved = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=1024.0)):
        model = make_ema(base).train().requires_grad_(True)
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(1)
        _optimisation_step(model, batch, opt, torch.device("cpu"), scaler=scaler, grad_clip=1e-3)
        moved.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]))
    assert float(moved[0].norm()) == pytest.approx(1e-4, rel=1e-2)
    assert torch.allclose(moved[0], moved[1], rtol=1e-3, atol=1e-9)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(faces, tmp_path):
    calls = {"n": 0}

    def flaky_loss(target, prediction):
        if torch.is_grad_enabled():  # training calls only (validation runs without grad)
            calls["n"] += 1
            if calls["n"] == 5:
                return mse_loss(target, prediction) * float("inf")
        return mse_loss(target, prediction)

    trainer = make_trainer(faces, tmp_path, loss_fn=flaky_loss, checkpoint_every=1)
    with pytest.raises(FloatingPointError, match=r"step 5 \(epoch 2\).*last good checkpoint"):
        trainer.train()
    ckpt = read_checkpoint(tmp_path / "last.ckpt")
    assert ckpt["step"] == 4 and trainer.global_step == 4
    assert states_equal(ckpt["model"], trainer.model.state_dict())
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    # weights that did become NaN are never written over the good files
    before = (tmp_path / "last.ckpt").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NOT written"):
        trainer.save_checkpoint()
    assert (tmp_path / "last.ckpt").read_bytes() == before


# ---------------------------------------------------------------------- best model, history, log
def test_best_model_is_plain_state_dict_of_the_best_epoch(faces, tmp_path, monkeypatch):
    lines, snapshots = [], {}
    trainer = make_trainer(faces, tmp_path, log=lines.append)
    maes = iter([0.5, 0.7, 0.3])
    monkeypatch.setattr(trainer, "val_step", lambda: (1.0, next(maes)))
    real_save = trainer._save_best
    saves = []

    def spy():
        saves.append(trainer.epoch)
        snapshots[trainer.epoch] = {k: v.clone() for k, v in trainer.ema_model.state_dict().items()}
        real_save()

    monkeypatch.setattr(trainer, "_save_best", spy)
    history = trainer.train()
    assert saves == [1, 3]  # epoch 2 was worse: not saved (the course saved every epoch)
    assert history["best_mae_history"] == [0.5, 0.5, 0.3] and history["best_mae"] == 0.3
    assert history["best_epoch"] == 3 and trainer.best_mae == 0.3
    state = torch.load(tmp_path / "best_model.pth", weights_only=True)
    assert all(torch.is_tensor(v) for v in state.values())
    assert states_equal(state, snapshots[3])
    fresh = make_model()
    fresh.set_new_noise_schedule("cpu")
    fresh.load_state_dict(state, strict=True)  # the course's inference code
    assert load_weights(make_model(), tmp_path / "best_model.pth").format == "network"
    assert load_weights(make_model(), tmp_path / "last.ckpt").format == "ddpm_lab-checkpoint (ema)"


def test_history_and_summary_line(faces, straight):
    h = straight.history
    for key in ("epoch", "train_loss", "val_loss", "val_mae", "val_mae_hole", "epoch_time", "best_mae_history"):
        assert len(h[key]) == 3, key
    assert h["epoch"] == [1, 2, 3] and h["step"] == list(range(1, 10)) and len(h["step_loss"]) == 9
    assert h["epoch_end_step"] == [3, 6, 9]
    assert h["train_loss"][1] == pytest.approx(sum(h["step_loss"][3:6]) / 3)
    assert h["best_mae"] == min(h["val_mae"]) and all(0 < m < 2 for m in h["val_mae"] + h["val_mae_hole"])
    assert h["val_mae_hole"][0] > h["val_mae"][0]  # errors live in the hole; the known region is pasted back

    line = summary_line(1, 1.234, 0.1234, 0.4561, 0.0781)
    assert line == "| End of epoch   1 | Time:  1.23s | Train Loss    0.123 | Valid Loss    0.456 | Valid MAE    0.078 "


def test_summary_lines_logged_once_per_epoch(faces, tmp_path):
    lines = []
    trainer = make_trainer(faces, tmp_path, epochs=2, log=lines.append)
    h = trainer.train()
    pattern = (r"\| End of epoch +(\d+) \| Time: +\d+\.\d\ds \| Train Loss +(\d+\.\d{3}) \| "
               r"Valid Loss +(\d+\.\d{3}) \| Valid MAE +(\d+\.\d{3}) ")
    summaries = [re.fullmatch(pattern, line) for line in lines if "End of epoch" in line]
    assert len(summaries) == 2 and all(summaries)
    for i, m in enumerate(summaries):
        assert int(m.group(1)) == i + 1
        assert m.group(2) == f"{h['train_loss'][i]:.3f}" and m.group(4) == f"{h['val_mae'][i]:.3f}"
    assert (tmp_path / "history.json").is_file()
    fig = trainer.plot_history(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0 and len(fig.axes) == 2


# ---------------------------------------------------------------------- validation
def test_validation_eval_mode_fixed_subset_and_phases(faces, tmp_path):
    train, val = faces
    trainer = make_trainer(faces, tmp_path, val_batches=1, val_steps=4, sample_num=2)
    net = trainer.ema_model
    calls = []

    def spy(module, args):
        dropouts = [m.training for m in module.modules() if isinstance(m, torch.nn.Dropout)]
        calls.append((module.training, all(not d for d in dropouts), len(dropouts), net.num_timesteps, args[0].shape[0]))

    handle = net.denoise_fn.register_forward_pre_hook(spy)
    trainer.model.train()
    net.train()  # whatever mode it was in, validation runs in eval mode and puts the mode back
    rng_before = torch.get_rng_state()
    first = trainer.val_step()
    assert torch.equal(torch.get_rng_state(), rng_before)  # validation leaves the training stream alone
    assert len(calls) == 1 + 4  # 1 batch: one loss forward + 4 DDIM steps, not the whole set (2 batches)
    assert all(not training and drop_off and n > 0 for training, drop_off, n, _, _ in calls)
    assert [c[3] for c in calls] == [20] + [10] * 4  # loss on the train schedule, sampling on test
    assert all(c[4] == BATCH for c in calls)
    assert net.num_timesteps == 20 and net.gammas.shape == (20,)  # back to the train phase
    assert trainer.model.training and net.training  # modes put back
    assert trainer.val_outputs["output"].shape == (BATCH, 3, SIZE, SIZE)
    calls.clear()
    trainer.val_batches = 2
    trainer.val_step()
    assert len(calls) == 2 * (1 + 4)
    trainer.val_batches = 1
    assert trainer.val_step() == first  # fixed subset, fixed seed: comparable across epochs
    handle.remove()


def test_no_ema_validates_the_model_and_ddpm_sampler(faces, tmp_path):
    trainer = make_trainer(faces, tmp_path, ema_decay=None, val_sampler="ddpm", epochs=1)
    assert trainer.ema_model is None
    calls = []
    trainer.model.denoise_fn.register_forward_pre_hook(lambda m, a: calls.append(m.training))
    trainer.val_step()
    assert calls == [False] * (1 + 10)  # ddpm runs the whole 10-step test schedule
    trainer.train()
    state = torch.load(tmp_path / "best_model.pth", weights_only=True)
    assert states_equal(state, trainer.model.state_dict())


# ---------------------------------------------------------------------- EMA, init, options
def test_ema_update_closed_form():
    model = InpaintingGaussianDiffusion(SimpleUnet(down_channels=(8, 16)), SCHEDULE["train"])
    ema = make_ema(model)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        for p in ema.parameters():
            p.fill_(0.0)
        for p in model.parameters():
            p.fill_(1.0)
        bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        bn.running_mean.fill_(3.0)
        ema.gammas.fill_(-1.0)  # schedule buffers are configuration: left alone
    update_ema(ema, model, 0.9)
    assert all(torch.allclose(p, torch.full_like(p, 0.1)) for p in ema.parameters())
    ema_bn = next(m for m in ema.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.equal(ema_bn.running_mean, bn.running_mean)
    assert torch.equal(ema.gammas, torch.full_like(ema.gammas, -1.0)) and set(BUFFER_NAMES) <= dict(ema.named_buffers()).keys()
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1) and ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 10**6) == 0.999 and ema_decay_at(0.999, 0, warmup=False) == 0.999
    with pytest.raises(ValueError, match="decay"):
        update_ema(ema, model, 1.5)


def test_init_only_for_a_fresh_unet(faces, tmp_path):
    fresh = make_trainer(faces, tmp_path, epochs=1)
    assert fresh.model.denoise_fn.out[-1].weight.abs().sum() > 0  # kaiming replaced the zero init
    trained = make_model()
    with torch.no_grad():
        trained.denoise_fn.out[-1].weight.fill_(0.01)
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    messages = []
    make_trainer(faces, tmp_path, model=trained, log=messages.append)
    assert states_equal(trained.state_dict(), before) and any("init skipped" in m for m in messages)
    untouched = make_model()
    make_trainer(faces, tmp_path, model=untouched, init=None)
    assert untouched.denoise_fn.out[-1].weight.abs().sum() == 0
    simple = InpaintingGaussianDiffusion(SimpleUnet(down_channels=(8, 16)), SCHEDULE)
    before = {k: v.clone() for k, v in simple.state_dict().items()}
    make_trainer(faces, tmp_path, model=simple)
    assert states_equal(simple.state_dict(), before)


def test_options_and_bad_arguments(faces, tmp_path):
    assert isinstance(make_trainer(faces, tmp_path, optimizer="adamw").optimizer, torch.optim.AdamW)
    assert isinstance(make_trainer(faces, tmp_path).optimizer, torch.optim.Adam)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_trainer(faces, tmp_path, optimizer="sgd")
    with pytest.raises(ValueError, match="val_sampler"):
        make_trainer(faces, tmp_path, val_sampler="euler")
    with pytest.raises(ValueError, match="epochs"):
        make_trainer(faces, tmp_path, epochs=0)
    with pytest.raises(ValueError, match="max_steps"):
        make_trainer(faces, tmp_path, max_steps=0)
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        make_trainer(faces, tmp_path, amp="fp16")


def test_train_from_profile_offline_and_simple_unet(tmp_path):
    profile = get_profile("smoke").copy(
        image_size=SIZE, unet_config=dict(UNET), simple_unet_channels=(8, 16), beta_schedule=SCHEDULE,
        batch_size=2, num_train=4, num_val=2, epochs=1, sample_steps=2,
    )
    trainer = train_from_profile(profile, out_dir=tmp_path / "unet", progress=False, log=lambda *_: None)
    assert trainer.global_step == 2 and len(trainer.history["val_mae"]) == 1
    assert trainer.train_loader.batch_size == 2 and trainer.val_steps == 2
    import json

    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert config["profile"]["name"] == "smoke" and config["profile"]["unet_config"] == UNET
    assert config["run"]["num_train_images"] == 4 and config["run"]["network"] == "unet"
    simple = train_from_profile(profile, out_dir=tmp_path / "simple", network="simple", max_steps=1,
                                progress=False, log=lambda *_: None)
    assert isinstance(simple.model.denoise_fn, SimpleUnet) and simple.global_step == 1
    assert read_checkpoint(tmp_path / "simple" / "last.ckpt")["config"]["network"] == "SimpleUnet"
    with pytest.raises(ValueError, match="no full batch"):
        train_from_profile(profile.copy(num_train=1), out_dir=tmp_path / "x", progress=False)
