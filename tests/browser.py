"""A real headless browser on ``lorevit app``: Debian's chromium through Selenium and Debian's chromedriver.

Nothing is downloaded: the browser and its driver are the Debian packages ``chromium`` and ``chromium-driver``
(``make setup`` installs them), Selenium is told their paths (so Selenium Manager never runs).

    python tests/browser.py ADAPTER IMAGE OUT.png [--true-class C] [--match A B OUT2.png]
        screenshots of the app after IMAGE's upload (docs/img/app.png) and of a click on A (docs/img/app-match.png)
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = (f"Debian's chromium and chromium-driver are not installed ({CHROMIUM}, {CHROMEDRIVER}): "
           "apt-get install chromium chromium-driver (make setup does)")


def have_chromium() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_app(adapter: str | Path, env: dict | None = None, timeout: float = 90.0, extra: tuple[str, ...] = ()):
    """``lorevit app --adapter ADAPTER --port P`` in a subprocess → (url, seconds until it said where it serves,
    its output lines so far); stopped (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "lorevit", "app", "--adapter", str(adapter), "--port", str(port), *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    lines: list[str] = []
    url_seen = threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "serving at" in line:
                url_seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while not url_seen.wait(0.2):
            if process.poll() is not None or time.perf_counter() - start > timeout:
                raise RuntimeError(f"lorevit app did not start (exit {process.poll()}):\n" + "\n".join(lines))
        seconds = time.perf_counter() - start
        yield f"http://127.0.0.1:{port}/", seconds, lines
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless chromium driven by Selenium (Debian's binaries, no download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def upload(driver, elem_id: str, path: str | Path, wait: float = 30.0) -> None:
    """Put a file into the file input of the Gradio component ``#elem_id`` (as a user's file dialog would)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    selector = f"#{elem_id} input[type=file]"
    field = WebDriverWait(driver, wait).until(EC.presence_of_element_located((By.CSS_SELECTOR, selector)))
    field.send_keys(str(Path(path).resolve()))


def text_of(driver, elem_id: str, contains: str, wait: float = 30.0) -> str:
    """The text of ``#elem_id`` once it contains ``contains`` (TimeoutException otherwise)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        found = d.find_elements(By.ID, elem_id)
        text = found[0].text if found else ""
        return text if contains in text else False

    return WebDriverWait(driver, wait).until(ready)


def choose(driver, elem_id: str, option: str, wait: float = 30.0) -> None:
    """Choose ``option`` in the Gradio dropdown ``#elem_id`` (type it, then Enter), as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    field = WebDriverWait(driver, wait).until(EC.element_to_be_clickable((By.CSS_SELECTOR, f"#{elem_id} input")))
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(option)
    time.sleep(0.3)
    field.send_keys(Keys.ENTER)


def open_tab(driver, title: str, wait: float = 30.0) -> None:
    """Click the tab named ``title`` once the page shows it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def tab(d):
        return next((b for b in d.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.text.strip() == title), False)

    WebDriverWait(driver, wait).until(tab).click()


def wait_image(driver, elem_id: str, wait: float = 30.0):
    """The ``<img>`` of the Gradio image ``#elem_id`` once it is shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, wait).until(EC.visibility_of_element_located((By.CSS_SELECTOR, f"#{elem_id} img")))


def click_image(driver, elem_id: str, fx: float, fy: float, wait: float = 30.0) -> None:
    """Click the image of the Gradio component ``#elem_id`` at the fraction (fx, fy) of its width and height."""
    from selenium.webdriver.common.action_chains import ActionChains

    image = wait_image(driver, elem_id, wait)
    size = image.size
    ActionChains(driver).move_to_element_with_offset(image, round((fx - 0.5) * size["width"]),
                                                     round((fy - 0.5) * size["height"])).click().perform()


def screenshots(adapter: str, image: str, output: str, image_a: str | None = None, image_b: str | None = None,
                output_match: str | None = None, true_class: str | None = None) -> None:
    """The classify tab after ``image``'s upload (KLA's true class chosen when given) → ``output``; with images A and B
    the correspondence tab after a click on A → ``output_match``."""
    with served_app(adapter) as (url, seconds, _), chromium(1400, 1050) as driver:
        print(f"app ready in {seconds:.1f} s at {url}")
        driver.get(url)
        upload(driver, "upload", image)
        print(text_of(driver, "prediction", "predicted", wait=120))
        if true_class:
            choose(driver, "true-class", true_class)
            print(text_of(driver, "prediction", "true:", wait=60))
        time.sleep(1.5)  # the gallery's images load after the text
        driver.save_screenshot(output)
        print(f"screenshot → {output}")
        if image_a and image_b and output_match:
            open_tab(driver, "Correspondence")
            upload(driver, "upload-a", image_a)
            upload(driver, "upload-b", image_b)
            wait_image(driver, "match-bb")
            click_image(driver, "image-a", 0.45, 0.4)
            print(text_of(driver, "match-message", "best match", wait=180))
            time.sleep(1.5)
            driver.save_screenshot(output_match)
            print(f"screenshot → {output_match}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="screenshots of lorevit app in headless chromium")
    parser.add_argument("adapter")
    parser.add_argument("image")
    parser.add_argument("output")
    parser.add_argument("--true-class")
    parser.add_argument("--match", nargs=3, metavar=("IMAGE_A", "IMAGE_B", "OUTPUT"))
    args = parser.parse_args()
    screenshots(args.adapter, args.image, args.output, *(args.match or (None, None, None)), true_class=args.true_class)
