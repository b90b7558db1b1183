"""Root pytest configuration: notebooks executed by nbval run under the smoke profile.

nbval's kernels inherit this process's environment, so setting it here (unless the caller chose a
profile) makes every notebook take seconds in CI while the same cells run the full course on Colab.
"""

import os

os.environ.setdefault("DDPM_LAB_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are noise in nbval runs
