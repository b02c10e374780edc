"""The pictures of the README and docs/http.md: the web page after a search, and the library map, made from the
demo's synthesised library (nothing downloaded; the same pictures on any machine, give or take fonts).

Writes ``docs/page.png`` (headless Chromium through Selenium: Debian's ``chromium`` and ``chromium-driver``)
and ``docs/map.png`` (``soundalike map``). Run from the repository root with the package installed:

    python docs/make_screenshots.py [--workdir DIR]
"""

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None, help="Keep the library and store here (default: a temporary folder).")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from soundalike.demo.synth import write_library
    from soundalike.indexer.run import index_library

    work = args.workdir or Path(tempfile.mkdtemp(prefix="soundalike-shots-"))
    lib, store = work / "library", work / "library.soundalike"
    if not store.exists():
        write_library(lib, per_style=12)
        index_library(lib, store, progress=False, log=lambda m: None)
    subprocess.run([sys.executable, "-m", "soundalike.cli", "map", "--db", str(store), "-o", str(HERE / "map.png")],
                   check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "soundalike.cli", "serve", "--db", str(store), "--port", str(port)])
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900", "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: "tracks" in d.find_element(By.ID, "status").text)
        driver.find_element(By.ID, "q").send_keys("jazz")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#list tbody tr"))
        driver.find_elements(By.CSS_SELECTOR, "#list tbody tr")[2].click()
        wait.until(lambda d: d.find_element(By.ID, "list-title").text.startswith("Sounds like"))
        time.sleep(0.5)
        driver.save_screenshot(str(HERE / "page.png"))
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)
    print(f"wrote {HERE / 'page.png'} and {HERE / 'map.png'}")


if __name__ == "__main__":
    main()
