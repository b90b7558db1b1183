# Set-up, the same in every notebook (tools/setup_cell.py stamps it): on Colab it installs the kit,
# locally it uses your environment (README: "Set up and test").
KIT_URL = "git+https://github.com/ddpm-inpainting-lab/ddpm-inpainting-lab.git"  # where Colab installs the kit from
USE_DRIVE = False  # Colab: True mounts Google Drive (CelebA zip, checkpoints under /content/drive/MyDrive)

import os, subprocess, sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", KIT_URL], check=True)
    if USE_DRIVE:
        from google.colab import drive

        drive.mount("/content/drive")

import torch
import ddpm_lab
from ddpm_lab.profiles import get_profile

PROFILE = get_profile()  # from $DDPM_LAB_PROFILE: smoke | cpu | gpu | full (default: gpu with CUDA, else cpu)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
print(f"ddpm_lab {ddpm_lab.__version__} | profile {PROFILE.name} | device {DEVICE}")
