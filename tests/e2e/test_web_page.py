"""The web page in headless Chromium: pick two zones by name and a time, see both fares, the cheaper one, the spread."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_kit import free_port, registry_copy, running_server

from fares.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO_ROOT / "artifacts"


@pytest.fixture(scope="module")
def base_url(tlc_samples, tmp_path_factory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("web")
    registry_copy(tlc_samples, data_dir / "models")
    settings = Settings(data_dir=data_dir, database_url="postgresql://postgres@127.0.0.1:9/none")
    port = free_port()
    with running_server(settings, port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            f"headless browser test needs Debian chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); "
            "install them with `apt-get install -y chromium chromium-driver`"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _fill(browser, element_id: str, text: str) -> None:
    field = browser.find_element("id", element_id)
    field.clear()
    field.send_keys(text)


def test_a_person_compares_fares_from_jfk_to_times_square(browser, base_url: str) -> None:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base_url + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: len(d.find_elements("css selector", "#zone-list option")) == 265)
    _fill(browser, "pickup", "JFK Airport (Queens)")
    _fill(browser, "dropoff", "Times Sq")
    browser.execute_script("document.getElementById('pickup-at').value = '2024-02-14T08:30'")
    browser.find_element("id", "compare").click()
    wait.until(ec.visibility_of_element_located(("id", "result")))

    verdict = browser.find_element("id", "verdict").text
    taxi = browser.find_element("id", "taxi-fare").text
    uber = browser.find_element("id", "uber-fare").text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "web_page_quote.png"))
    assert taxi.startswith("$") and uber.startswith("$")
    cheaper = "taxi" if float(taxi[1:]) <= float(uber[1:]) else "uber"
    assert verdict.startswith("The yellow taxi is cheaper" if cheaper == "taxi" else "Uber is cheaper"), verdict
    assert "cheaper" in browser.find_element("id", f"{cheaper}-card").get_attribute("class")
    assert browser.find_element("id", "taxi-range").text.startswith("likely $")
    assert "JFK Airport → Times Sq/Theatre District at 2024-02-14 08:30" in browser.find_element("id", "meta").text
    assert (ARTIFACTS / "web_page_quote.png").stat().st_size > 10_000


def test_an_ambiguous_zone_name_is_explained_on_the_page(browser, base_url: str) -> None:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base_url + "/")
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d", browser.find_element("id", "pickup-at").get_attribute("value"))
    _fill(browser, "pickup", "Corona")
    _fill(browser, "dropoff", "JFK")
    browser.find_element("id", "compare").click()
    error = WebDriverWait(browser, 20).until(ec.visibility_of_element_located(("id", "error")))
    assert "ambiguous" in error.text and "zone_id 56" in error.text
    assert not browser.find_element("id", "result").is_displayed()
