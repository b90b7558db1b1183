"""The Streamlit page in a real browser: server on 127.0.0.1, headless Chromium driven by selenium.

Starts ``streamlit run app/streamlit_app.py`` on a free local port, loads the page in Debian's
``chromium`` (through ``/usr/bin/chromedriver``; selenium-manager is never asked to download
anything), keeps the default offline face and centre hole, clicks **Inpaint**, and waits for the
inpainted result image. A screenshot goes to pytest's tmp folder, and to ``docs/app_screenshot.png``
when ``UPDATE_SCREENSHOT=1``.

Without chromium/chromedriver/selenium the test is skipped with the reason, except in CI
(``CI`` set), where their absence is a failure: ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "app_screenshot.png"
SERVER_START_S = 30
RESULT_WAIT_S = 40


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI must run the browser test: .ci/run installs chromium and chromium-driver)")
    pytest.skip(f"{reason}; install it (Debian: apt-get install chromium chromium-driver; pip install selenium)")


def _binary(*candidates: str) -> str | None:
    for name in candidates:
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and resp.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit was not healthy at {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``streamlit run`` on 127.0.0.1:<free port>; yields the page URL; always stopped."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    env.pop("DDPM_LAB_CHECKPOINT", None)  # the bundled demo model
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, log, SERVER_START_S)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through the system chromedriver (no selenium-manager download)."""
    chromium = _binary("/usr/bin/chromium", "chromium", "chromium-browser")
    driver_path = _binary("/usr/bin/chromedriver", "chromedriver")
    if chromium is None or driver_path is None:
        _missing(f"headless Chromium is not installed (chromium: {chromium}, chromedriver: {driver_path})")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    saved = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-extensions", "--hide-scrollbars", "--window-size=1400,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        if saved is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = saved


def test_inpaint_an_offline_face_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    assert server.startswith("http://127.0.0.1:")
    started = time.monotonic()
    browser.get(server)
    button = WebDriverWait(browser, SERVER_START_S).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, ".st-key-inpaint button"))
    )  # enabled once the demo model is loaded and the default face and hole are valid
    assert browser.title == "Image Inpainting with DDPM"
    assert not browser.find_elements(By.CSS_SELECTOR, ".st-key-result img")
    button.click()

    def result_loaded(driver):
        imgs = driver.find_elements(By.CSS_SELECTOR, ".st-key-result img")
        ok = imgs and driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", imgs[0])
        return imgs[0] if ok else False

    img = WebDriverWait(browser, RESULT_WAIT_S).until(result_loaded)
    natural = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    size = re.search(r"Original \((\d+)x(\d+)\)", browser.page_source)
    assert size and natural == [int(size.group(1)), int(size.group(2))]  # pasted back at the original size
    assert "Inpainted result" in browser.find_element(By.CSS_SELECTOR, ".st-key-result").text
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid='stDownloadButton']")
    errors = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException'], [data-testid='stAlertContentError']")
    assert not errors, [e.text for e in errors]

    time.sleep(0.5)  # let the progress bar's removal and the images settle before the picture
    shot = tmp_path / "app_screenshot.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    assert time.monotonic() - started < 60


def test_uploads_in_chromium(server, browser, tmp_path):
    """The real upload path (AppTest cannot upload): a non-square JPEG is shown at its size with the
    model's square marked; a text file named .png gets a message in the page, not a traceback."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from PIL import Image

    photo, fake = tmp_path / "photo.jpg", tmp_path / "fake.png"
    Image.new("RGB", (300, 200), (40, 90, 160)).save(photo, quality=90)
    fake.write_text("this is not an image\n")
    browser.get(server)
    radio = WebDriverWait(browser, SERVER_START_S).until(
        lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, ".st-key-source label") if e.text == "Upload"]
    )
    radio[0].click()
    upload = WebDriverWait(browser, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stFileUploaderDropzoneInput']")
    )
    upload[0].send_keys(str(photo))
    WebDriverWait(browser, 20).until(lambda d: "Original (300x200)" in d.page_source)
    upload = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stFileUploaderDropzoneInput']")
    upload[0].send_keys(str(fake))
    WebDriverWait(browser, 20).until(lambda d: "not an image Pillow can read" in d.page_source)
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
