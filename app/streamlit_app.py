"""Image Inpainting with DDPM: the course's deployment exercise as a Streamlit page.

Run from the repository root (after ``pip install -e ".[app]"``)::

    streamlit run app/streamlit_app.py

Pick an offline face or upload a JPG/PNG, choose the hole and the sampler, press **Inpaint**. The page
only lays out widgets; the rules (upload checks, masks, sampler settings, the run) live in
``app/logic.py``. Every user error is shown in the page with ``st.error``, never as a traceback.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `app.logic` (and ddpm_lab in a clone that is not installed)
    sys.path.insert(0, str(ROOT))

from app import logic  # noqa: E402

TITLE = "Image Inpainting with DDPM"
CHECKPOINT_ENV = "DDPM_LAB_CHECKPOINT"  # a deployment's default checkpoint (else the demo model)
HOLE_KINDS = ("Centre box", "Box (sliders)", "Random mask")
FACE_SIZES = (64, 128, 256, 512)
DEFAULT_FACE, DEFAULT_FACE_SIZE = 2, 64  # the demo model works at 32 px: larger faces only upsample its fill
# less empty space above the title (cosmetic; harmless if a Streamlit version renames the block)
STYLE = "<style>.block-container {padding-top: 2.5rem; padding-bottom: 2rem;}</style>"


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def get_model(path: str | None, stamp: str, device: str, config_label: str):  # noqa: ANN201
    """The model for ``path`` (None = bundled demo model), loaded once per file version, device
    and config choice (see ``logic.model_configs``)."""
    from ddpm_lab.inference import load_model

    model = load_model(path, device=device, config=logic.model_configs()[config_label])
    model.eval()
    return model


@st.cache_resource
def model_lock() -> threading.Lock:
    """One run at a time: the cached model is shared by every browser session."""
    return threading.Lock()


@st.cache_data(max_entries=64)
def offline_face(index: int, size: int):  # noqa: ANN201
    """Face ``index`` of the held-out offline faces (never used to train the demo model)."""
    from ddpm_lab.faces import face_seed, render_face
    from ddpm_lab.inference import HELDOUT_FACE_SEED

    return render_face(face_seed(HELDOUT_FACE_SEED, int(index)), int(size))


def sidebar() -> tuple[object | None, logic.SamplerSettings, bool, str]:
    """Model and sampler controls. Returns (model or None, settings, show trajectory, model label)."""
    sb = st.sidebar
    sb.header("Model")
    ckpt = sb.text_input(
        "Checkpoint path", value=os.environ.get(CHECKPOINT_ENV, ""), key="checkpoint",
        placeholder="empty: the bundled demo model",
        help="A checkpoint on this machine: ours (best_model.pth, last.ckpt) or Palette's "
             f"(*_Network.pth / *_Network_ema.pth). Loaded once and cached. Default: ${CHECKPOINT_ENV}.",
    )
    configs = list(logic.model_configs())
    config_label = sb.selectbox(
        "Model config", configs, key="model_config",
        help="Our checkpoints carry their config. For a file without one (the course's best_model.pth, "
             "Palette's *_Network.pth), choose what it was trained with.",
    )
    device = logic.pick_device()
    model, label, num_t, ddim_default = None, "bundled demo model", 1000, 25
    try:
        path = logic.resolve_checkpoint(ckpt)
        label = Path(path).name if path else label
        model = get_model(path, logic.file_stamp(path), device, config_label)
        info = logic.model_summary(model)
        num_t, ddim_default = max(1, info["test_steps"]), info["ddim_steps"]
        size = f"{info['image_size']}x{info['image_size']} px, " if info["image_size"] else ""
        sb.caption(f"**{label}**: {size}{info['parameters'] / 1e6:.2f} M parameters, "
                   f"{num_t} sampling steps, on **{device.upper()}**")
    except (FileNotFoundError, ValueError, RuntimeError, OSError, KeyError) as err:
        sb.error(f"Could not load the model: {err}")

    sb.header("Sampling")
    name = sb.radio("Sampler", list(logic.SAMPLER_LABELS), horizontal=True, key="sampler",
                    help="DDIM: few deterministic steps (fast). DDPM: the course's ancestral sampling, "
                         "every step. RePaint: DDPM with resampling jumps (slowest, most coherent).")
    sampler = logic.SAMPLER_LABELS[name]
    steps, eta, jump_length, jump_n_sample = 25, 0.0, 10, 10
    if sampler == "ddim":
        steps = sb.slider("Steps", 1, min(num_t, 250), min(ddim_default, num_t, 250), key="steps")
        eta = sb.slider("eta (0 = deterministic)", 0.0, 1.0, 0.0, 0.1, key="eta")
    elif sampler == "repaint":
        jump_length = sb.number_input("Jump length", 1, max(1, num_t - 1), min(10, max(1, num_t - 1)), key="jump_length")
        jump_n_sample = sb.number_input("Resamplings per jump", 1, 20, 10, key="jump_n_sample")
    seed = sb.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    settings = logic.SamplerSettings(sampler, int(steps), float(eta), int(jump_length), int(jump_n_sample), int(seed))
    calls = logic.network_calls(settings, num_t)
    sb.caption(f"{calls:,} network calls" + ("" if sampler == "ddim" else " (all steps of the schedule)"))
    trajectory = sb.checkbox("Show the trajectory", key="trajectory")
    return model, settings, trajectory, label


def choose_image() -> tuple[object | None, str]:
    """The image column: an offline face or an upload. Returns (RGB image or None, its name)."""
    st.subheader("1 · Image")
    source = st.radio("Source", ["Offline face", "Upload"], horizontal=True, key="source",
                      label_visibility="collapsed")
    if source == "Offline face":
        left, right = st.columns(2)
        index = left.number_input("Face", 0, 99_999, DEFAULT_FACE, key="face",
                                  help="A face of the kit's held-out offline faces, which the demo model "
                                       "never saw in training.")
        size = right.selectbox("Size (px)", FACE_SIZES, index=FACE_SIZES.index(DEFAULT_FACE_SIZE), key="face_size")
        return offline_face(int(index), int(size)), f"face_{int(index)}"
    upload = st.file_uploader("JPG or PNG image", type=["jpg", "jpeg", "png"], key="upload")
    if upload is None:
        st.info("Upload a JPG or PNG image, or pick an offline face.")
        return None, ""
    try:
        image, note = logic.read_upload(upload.getvalue())
    except ValueError as err:
        st.error(str(err))
        return None, ""
    if note:
        st.caption(note)
    return image, Path(upload.name).stem


def choose_hole(image) -> object | None:  # noqa: ANN001
    """The hole column. Returns the mask (1, H, W) at the image's size, or None after an error."""
    st.subheader("2 · Hole")
    kind = st.radio("Hole", HOLE_KINDS, horizontal=True, key="hole", label_visibility="collapsed")
    if image is None:
        return None
    w, h = image.size
    try:
        if kind == "Centre box":
            st.caption("The course's centre box: half the width and half the height.")
            return logic.box_mask(w, h, logic.center_box(w, h))
        if kind == "Box (sliders)":
            c = logic.center_box(w, h)
            a, b = st.columns(2)
            top = a.slider("Top", 0, h - 1, c.top, key=f"top_{w}x{h}")
            left = b.slider("Left", 0, w - 1, c.left, key=f"left_{w}x{h}")
            height = a.slider("Height", 0, h, c.height, key=f"height_{w}x{h}")
            width = b.slider("Width", 0, w, c.width, key=f"width_{w}x{h}")
            return logic.box_mask(w, h, logic.Box(top, left, height, width))
        a, b = st.columns(2)
        from ddpm_lab.masks import MASK_MODES

        mode = a.selectbox("Mask kind", [m for m in MASK_MODES if m != "center"], key="mask_kind")
        mask_seed = b.number_input("Mask seed", 0, 10**6, 0, key="mask_seed")
        return logic.random_mask(mode, w, h, int(mask_seed))
    except ValueError as err:
        st.error(str(err))
        return None


def run(model, image, mask, settings: logic.SamplerSettings, trajectory: bool, key: str) -> None:  # noqa: ANN001
    """Sample with a progress bar; keep the outcome in the session so reruns keep showing it."""
    bar = st.progress(0.0, text="Sampling ...")
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"Sampling: step {done} of {total}")

    try:
        with model_lock():
            out = logic.run_inpainting(model, image, mask, settings, trajectory=trajectory, callback=report)
    except Exception as err:  # noqa: BLE001 - the page shows every failure as a message
        bar.empty()
        st.error(f"Inpainting failed: {err}")
        return
    bar.empty()
    frames = getattr(out, "frames", None)
    st.session_state["run"] = {
        "key": key,
        "pasted": out.pasted,
        "small": (logic.to_image(out.masked_input), logic.to_image(out.result)),
        "strip": logic.trajectory_strip(frames) if trajectory and frames else None,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon=":art:", layout="wide")
    st.html(STYLE)
    st.title(TITLE)
    st.caption(
        "Fill a hole in a face with a Palette-style conditional DDPM (the course's deployment exercise). "
        "The bundled demo model is a small UNet trained on the kit's procedurally drawn *offline cartoon "
        "faces*, not on CelebA or CelebA-HQ: it completes cartoon faces, not photographs. Load a checkpoint "
        "trained on CelebA in the sidebar for real faces."
    )
    model, settings, trajectory, label = sidebar()

    col_image, col_hole, col_go = st.columns([1.1, 1.1, 0.8], gap="large")
    with col_image:
        image, name = choose_image()
    with col_hole:
        mask = choose_hole(image)
    fraction = None
    if mask is not None:
        try:
            fraction = logic.check_mask(mask)
        except ValueError as err:
            with col_hole:
                st.error(str(err))
            mask = None
    ready = model is not None and image is not None and mask is not None
    key = logic.fingerprint(label, image, mask, settings, trajectory) if ready else ""
    with col_go:
        st.subheader("3 · Inpaint")
        st.caption(f"Sampler **{settings.sampler.upper()}**, seed {settings.seed}"
                   + (f", hole {fraction:.0%} of the image" if fraction else ""))
        pressed = st.button("Inpaint", type="primary", disabled=not ready, key="inpaint", width="stretch")
        if model is None:
            st.warning("No model loaded: fix the checkpoint path in the sidebar.")
    if pressed and ready:
        with col_go:
            run(model, image, mask, settings, trajectory, key)

    st.divider()
    shown = st.session_state.get("run")
    shown = shown if shown and shown["key"] == key else None
    c1, c2, c3 = st.columns(3, gap="medium")
    if image is not None:
        c1.image(image, caption=f"Original ({image.width}x{image.height})", width="stretch")
    if image is not None and mask is not None:
        c2.image(logic.masked_preview(image, mask), caption="Masked input", width="stretch")
    with c3:
        if shown is None:
            st.info("The inpainted result appears here: press **Inpaint**.")
        else:
            with st.container(key="result"):
                st.image(shown["pasted"], caption="Inpainted result", width="stretch")
            st.download_button(
                "Download result (PNG)", logic.png_bytes(shown["pasted"]), file_name=f"{name}_inpainted.png",
                mime="image/png", on_click="ignore", key="download", icon=":material/download:",
            )
            st.caption(f"{settings.sampler.upper()} on {label}, {shown['seconds']:.1f} s")
    if shown is not None:
        with st.expander("What the model sees (its own resolution)"):
            small_in, small_out = shown["small"]
            a, b, _ = st.columns([1, 1, 2])
            a.image(logic.enlarge(small_in), caption="Model input", width="stretch")
            b.image(logic.enlarge(small_out), caption="Model output", width="stretch")
        if shown["strip"] is not None:
            st.subheader("Trajectory")
            st.image(shown["strip"], caption="Reverse process, noise to result (left to right)", width="content")


main()
