"""The web page in a real headless Chromium (Debian's chromium and chromium-driver, through Selenium): find a
track, play it (the audio element really loads the stream), see its neighbours, filter by genre, make a mix,
export it as a playlist."""

from __future__ import annotations

import re
import shutil
import urllib.request

import pytest
from conftest import make_library, running

pytest.importorskip("fastapi")
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="no Chromium here: apt-get install chromium chromium-driver")]


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--no-first-run"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def test_find_play_filter_mix_and_export_in_a_browser(browser, tmp_path, trained_model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from soundalike.indexer.run import index_library
    from soundalike.search.service import create_app

    library = make_library(tmp_path / "music")
    store = tmp_path / "lib.soundalike"
    index_library(library.root, store, model=trained_model, workers=0, progress=False, log=lambda m: None)
    wait = WebDriverWait(browser, 30)

    def rows():
        # read in one script: the page may redraw the table between two element lookups (a stale element)
        return browser.execute_script("return [...document.querySelectorAll('#list tbody tr')]"
                                      ".map(tr => [...tr.cells].map(td => td.innerText.trim()))")

    with running(create_app(store)) as url:
        browser.get(url + "/")
        wait.until(lambda d: "12 tracks" in d.find_element(By.ID, "status").text)
        browser.find_element(By.ID, "q").send_keys("tones 0")
        wait.until(lambda d: rows() and rows()[0][2] == "tones 0")
        browser.find_elements(By.CSS_SELECTOR, "#list tbody tr")[0].click()
        # the audio element loads the stream (a FLAC file, through range requests) far enough to know its length
        wait.until(lambda d: d.execute_script("const a = document.getElementById('player'); "
                                              "return a.readyState >= 1 && a.duration > 5;"))
        assert "/api/tracks/" in browser.find_element(By.ID, "player").get_attribute("src")
        wait.until(lambda d: d.find_element(By.ID, "list-title").text.startswith("Sounds like tones 0"))
        neighbours = rows()
        assert len(neighbours) == 11 and all(float(r[1]) <= 1.0 for r in neighbours)  # every other track, scored
        assert "tones 0" not in [r[2] for r in neighbours]
        assert any(re.search(r"[A-G]#? (major|minor)$", r[5]) for r in neighbours)  # each track's estimated key
        Select(browser.find_element(By.ID, "genre")).select_by_value("noise")
        wait.until(lambda d: rows() and {r[4] for r in rows()} == {"noise"})
        assert len(rows()) == 4
        browser.find_element(By.ID, "mix").click()
        wait.until(lambda d: d.find_element(By.ID, "list-title").text.startswith("Mix from tones 0"))
        mix = rows()
        assert mix and {r[4] for r in mix} == {"noise"}
        link = browser.find_element(By.ID, "save")
        assert link.is_displayed() and "format=m3u" in link.get_attribute("href")
        with urllib.request.urlopen(link.get_attribute("href"), timeout=60) as r:
            m3u = r.read().decode().splitlines()
        assert m3u[0] == "#EXTM3U" and len([l for l in m3u if not l.startswith("#")]) == len(mix)
