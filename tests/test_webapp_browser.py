"""`python -m jaxreenact.app --tiny` in a real browser: headless Chromium from the distribution's packages
(`apt-get install chromium chromium-driver`), driven by Selenium (`pip install -e ".[browser]"`) with that browser and
that driver only (nothing is downloaded). Uploads the shipped examples, runs a short reenactment, checks that the
reenacted video plays, moves one edit slider and checks that the rendered face changes, picks the examples with one
click, cancels a long reenactment from the page and leaves another running when the app gets SIGTERM (exit 143,
its temporary folders gone). Screenshots are written to
$JAXREENACT_ARTIFACTS/webapp/ (else the test's temporary folder); JAXREENACT_UPDATE_DOCS_IMAGES=1 also writes the
README's docs/images/app.png from them.

Where the browser or Selenium is missing the test is skipped with the reason, except under CI=true, where it fails.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from jaxreenact.webapp.service import example_path

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTO = example_path("source")  # the shipped examples, wherever this installation keeps them
VIDEO = example_path("driving")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the browser test cannot run: {reason} (.ci/run installs it)")
    pytest.skip(reason)


def _browser_paths() -> tuple[str, str]:
    if importlib.util.find_spec("selenium") is None:
        _unavailable('selenium is not installed (pip install -e ".[browser]")')
    binary = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        _unavailable("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    return binary, driver


@pytest.fixture
def chrome(tmp_path, monkeypatch):
    binary, driver_path = _browser_paths()
    from selenium import webdriver

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, should anything call it, may not download
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--window-size=1280,1400", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        opts.add_argument(arg)
    try:
        d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
    except Exception as e:
        _unavailable(f"Chromium does not start under chromedriver ({type(e).__name__}: {str(e).splitlines()[0]})")
    d.set_script_timeout(60)
    yield d
    d.quit()


@pytest.fixture
def app(tmp_path):
    """The app as a user starts it, on a free port of 127.0.0.1, from an empty folder, TMPDIR in the test's folder;
    afterwards: stopped by SIGTERM, its temporary root removed and nothing written anywhere else."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # the compilation cache of the test session (tests/conftest.py), so programs compiled by earlier tests are reused
    env["JAX_COMPILATION_CACHE_DIR"] = os.environ.get("JAXREENACT_TEST_CACHE", "/tmp/jaxreenact-jax-cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "1"
    env["JAX_DEFAULT_MATMUL_PRECISION"] = "highest"
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jaxreenact.app", "--tiny", "--port", "0", "--batch-size", "4"],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 300
        while url is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            m = re.search(r"jaxreenact app: (http://127\.0\.0\.1:\d+/)", log.read_text())
            url = m and m[1]
        assert url, f"the app did not start:\n{log.read_text()[-3000:]}"
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 143, log.read_text()[-3000:]
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == [], "the app left files behind"


@pytest.fixture
def artifacts(tmp_path):
    base = os.environ.get("JAXREENACT_ARTIFACTS")
    folder = pathlib.Path(base) / "webapp" if base else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait(d, condition, what: str, timeout: float = 300):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(d, timeout, poll_frequency=0.2).until(lambda d: condition(d))
    except TimeoutException:
        errors = [e.text for e in d.find_elements("css selector", ".error, .status.bad, .banner.bad") if e.text]
        raise AssertionError(f"timed out waiting for {what}; messages on the page: {errors}") from None


def _screenshot(d, path: pathlib.Path) -> None:
    """The whole page down to its footer."""
    bottom = int(d.execute_script("return document.querySelector('footer').getBoundingClientRect().bottom + scrollY"))
    d.set_window_size(1280, max(600, min(bottom + 200, 3000)))
    d.save_screenshot(str(path))
    with Image.open(path) as im:
        im.crop((0, 0, im.width, min(im.height, bottom + 16))).save(path)


def _pixels(d, img_id: str) -> np.ndarray:
    url = d.execute_script(
        "const i = document.getElementById(arguments[0]); const c = document.createElement('canvas');"
        "c.width = i.naturalWidth; c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0);"
        "return c.toDataURL('image/png');",
        img_id,
    )
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), np.int16)


def test_reenact_and_edit_in_chromium(chrome, app, artifacts):  # chrome first: a missing browser skips at once
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = chrome
    d.get(app)
    _wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "the page", 60)
    assert "mean nothing" in d.find_element(By.ID, "banner").text  # the --tiny banner

    # Reenact: upload the shipped examples, no tuning, the first 4 frames.
    d.find_element(By.ID, "source-file").send_keys(str(PHOTO))
    d.find_element(By.ID, "driving-file").send_keys(str(VIDEO))
    for slot in ("source", "driving"):
        _wait(
            d, lambda d, s=slot: "ok" in d.find_element(By.ID, f"{s}-status").get_attribute("class"), f"{slot} upload"
        )
    assert "187 frames" in d.find_element(By.ID, "driving-status").text
    d.find_element(By.ID, "tune").click()
    d.find_element(By.ID, "max-frames").send_keys("4")
    d.find_element(By.ID, "run-reenact").click()
    _wait(d, lambda d: d.find_element(By.ID, "reenact-results").is_displayed() or d.find_element(By.ID, "reenact-error").is_displayed(), "the reenactment")  # fmt: skip
    assert not d.find_element(By.ID, "reenact-error").is_displayed(), d.find_element(By.ID, "reenact-error").text
    played = d.execute_async_script(
        "const v = document.getElementById('video-reenacted'), done = arguments[arguments.length - 1];"
        "const ok = () => v.play().then(() => done({state: v.readyState, duration: v.duration, w: v.videoWidth,"
        " h: v.videoHeight})).catch((e) => done({error: String(e)}));"
        "if (v.error) done({error: 'media error ' + v.error.code}); else if (v.readyState >= 2) ok();"
        "else { v.addEventListener('loadeddata', ok, {once: true});"
        " v.addEventListener('error', () => done({error: 'media error ' + (v.error && v.error.code)}), {once: true}); }"
    )
    assert "error" not in played, played
    assert played["state"] >= 2 and played["duration"] > 0 and (played["w"], played["h"]) == (256, 256), played
    table = d.find_element(By.ID, "summary-table").text
    assert "4 at 25 fps" in table and "frames without a face none" in table.replace("\n", " "), table
    _screenshot(d, artifacts / "reenact.png")

    # Edit: upload the photo, no tuning, load; one slider moved by the keyboard re-renders the face.
    d.set_window_size(1280, 1400)
    d.find_element(By.ID, "tab-edit").click()
    d.find_element(By.ID, "edit-file").send_keys(str(PHOTO))
    _wait(d, lambda d: "ok" in d.find_element(By.ID, "edit-status").get_attribute("class"), "the edit upload")
    d.find_element(By.ID, "edit-tune").click()
    d.find_element(By.ID, "edit-load").click()
    img = lambda d: d.find_element(By.ID, "edit-img")
    _wait(d, lambda d: int(img(d).get_attribute("data-renders")) >= 1 or d.find_element(By.ID, "edit-error").is_displayed(), "the first render")  # fmt: skip
    assert not d.find_element(By.ID, "edit-error").is_displayed(), d.find_element(By.ID, "edit-error").text
    before, n0 = _pixels(d, "edit-img"), int(img(d).get_attribute("data-renders"))
    assert before.shape == (256, 256, 3)
    d.find_element(By.ID, "s-0").send_keys(*[Keys.ARROW_RIGHT] * 30)  # yaw: 0 -> 3.0 shift units
    assert d.find_element(By.ID, "o-0").text == "3.0"
    _wait(d, lambda d: int(img(d).get_attribute("data-renders")) > n0 and not d.execute_script("return renderBusy"), "the slider's render")  # fmt: skip
    after = _pixels(d, "edit-img")
    assert np.abs(after - before).max() > 0, "moving the yaw slider did not change the rendered face"
    _screenshot(d, artifacts / "edit.png")

    if os.environ.get("JAXREENACT_UPDATE_DOCS_IMAGES") == "1":
        _docs_image(artifacts / "edit.png", ROOT / "docs" / "images" / "app.png")

    # The shipped examples in one click; a long reenactment (tuning 2000 steps) cancelled from the page.
    d.find_element(By.ID, "tab-reenact").click()
    d.find_element(By.ID, "use-examples").click()
    for slot in ("source", "driving"):
        assert "the shipped example" in d.find_element(By.ID, f"{slot}-status").text
    d.find_element(By.ID, "tune").click()  # back on
    steps = d.find_element(By.ID, "tune-steps")
    steps.clear()
    steps.send_keys("2000")
    progress = lambda d: d.find_element(By.ID, "reenact-progress")
    d.find_element(By.ID, "run-reenact").click()
    _wait(d, lambda d: progress(d).is_displayed(), "the long reenactment to start", 60)
    progress(d).find_element(By.CSS_SELECTOR, "button.cancel").click()
    _wait(d, lambda d: d.find_element(By.ID, "reenact-error").is_displayed(), "the cancelled job", 120)
    assert d.find_element(By.ID, "reenact-error").text == "cancelled"
    assert not progress(d).is_displayed()
    # Another one left running: the fixture's SIGTERM stops it (exit 143, nothing left behind).
    d.find_element(By.ID, "run-reenact").click()
    _wait(d, lambda d: "tuning" in progress(d).text, "the second reenactment to run", 120)


def _docs_image(screenshot: pathlib.Path, out: pathlib.Path, width: int = 900) -> None:
    """The README's screenshot: the Edit tab scaled down and palette-coded to stay small."""
    with Image.open(screenshot) as im:
        im = im.convert("RGB")
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    im.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG).save(
        out, optimize=True
    )
