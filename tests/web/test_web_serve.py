"""`newsagg serve` as a user runs it, driven by a real headless Chromium (Debian's chromium + chromedriver)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pipeline.settings import Settings

LOCAL_INTRO = "Harbor City's water board will vote next month"  # the Ledger's own paragraph on the wire story
TRIMMED = "Valmora already runs four smaller desalination plants"  # where Metro Wire Online's copy stops
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextmanager
def serving(data_dir: Path, *options: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """`newsagg serve --port 0` in a process of its own; its base URL and what it printed before listening."""
    command = [sys.executable, "-m", "pipeline", "--data-dir", str(data_dir), "serve", "--port", "0", *options]
    with subprocess.Popen(command, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                          env={**os.environ, **(env or {})}) as process:
        try:
            assert process.stderr is not None
            printed = ""
            while "serving the stories" not in printed:
                line = process.stderr.readline()
                assert line, f"newsagg serve stopped: {printed}"
                printed += line
            url = printed.rsplit("on http://", 1)[1].split("/", 1)[0]
            yield f"http://{url}", printed
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_serve_warns_when_the_settings_put_it_off_loopback(demo_web_settings: Settings) -> None:
    with serving(demo_web_settings.data_dir, env={"NEWSAGG_WEB__HOST": "0.0.0.0"}) as (url, printed):
        assert "warning: serving on 0.0.0.0 (from the settings), not on loopback" in printed
        port = url.rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/runs").status_code == 200
    with serving(demo_web_settings.data_dir, "--host", "0.0.0.0") as (_, printed):
        assert "warning" not in printed
    with serving(demo_web_settings.data_dir) as (url, printed):
        assert "warning" not in printed and url.startswith("http://127.0.0.1:")


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason="Debian's chromium and chromium-driver are not installed and `make test` could not "
                           "install them (apt-get install chromium chromium-driver)")
def test_a_reader_goes_from_the_river_to_a_story_and_sees_what_each_outlet_changed(
    demo_web_settings: Settings, tmp_path: Path
) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    with serving(demo_web_settings.data_dir) as (url, _):
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))

        def arrive(part: str) -> None:
            # A submit or a click starts the navigation and may return before it ends.
            WebDriverWait(driver, 20).until(expected_conditions.url_contains(part))

        try:
            driver.get(url + "/")
            assert driver.title == "Stories · newsagg"
            river = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "li.story h2 a")]
            assert "Drought-hit Valmora approves 1.2 bln euro desalination plant" in river
            driver.save_screenshot(str(tmp_path / "1-river.png"))

            box = driver.find_element(By.CSS_SELECTOR, "header form.search input[name=q]")
            box.send_keys("desalination plant")
            box.submit()
            arrive("/search?q=")
            assert driver.current_url.startswith(url + "/search?q=desalination+plant")
            marks = [m.text.lower() for m in driver.find_elements(By.CSS_SELECTOR, "p.snippet mark")]
            assert "desalination" in marks
            driver.save_screenshot(str(tmp_path / "2-search.png"))

            driver.find_element(By.CSS_SELECTOR, "li.story h2 a").click()
            arrive("/stories/")
            ledger = driver.find_element(By.XPATH, "//section[h3='Harbor City Ledger']")
            added = [p.text for p in ledger.find_elements(By.CSS_SELECTOR, "p.added") if p.is_displayed()]
            assert any(text.startswith(LOCAL_INTRO) for text in added)
            metro = driver.find_element(By.XPATH, "//section[h3='Metro Wire Online']")
            cut = [p.text for p in metro.find_elements(By.CSS_SELECTOR, "p.cut") if p.is_displayed()]
            assert any(text.startswith(TRIMMED) for text in cut)
            assert "ending trimmed" in metro.text
            # The stylesheet (served by the app, allowed by its CSP) marks them: green added, red cut.
            ins = ledger.find_element(By.CSS_SELECTOR, "p.added")
            assert ins.value_of_css_property("background-color") == "rgba(230, 244, 234, 1)"
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1280, min(int(height), 6000))
            driver.save_screenshot(str(tmp_path / "3-story.png"))
            driver.set_window_size(1280, 1000)

            ledger.find_element(By.CSS_SELECTOR, "p.copy-head a").click()
            arrive("/articles/")
            facts = driver.find_element(By.CSS_SELECTOR, "dl.facts").text
            assert "Harbor City Ledger" in facts and "Text source" in facts
            assert LOCAL_INTRO in driver.find_element(By.CSS_SELECTOR, "section.text").text
            driver.save_screenshot(str(tmp_path / "4-article.png"))
        finally:
            driver.quit()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["1-river.png", "2-search.png", "3-story.png",
                                                               "4-article.png"]
