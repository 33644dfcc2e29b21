"""The web page in headless Chromium: pick two zones by name and a time, see both fares, the cheaper one, the spread."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_kit import free_port, registry_copy, running_server

from fares.config.settings import Settings

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
    named = "The yellow taxi is cheaper" if cheaper == "taxi" else "Uber is cheaper"
    assert verdict.startswith((named, "About the same: ")), verdict
    line = browser.find_element("id", "zone-info").text  # the one-line summary says what the verdict says
    assert line.endswith("about the same") if verdict.startswith("About") else "cheaper by $" in line, line
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


# ---- the map ---------------------------------------------------------------------------------------------------------

DESKTOP, PHONE = (1280, 900), (390, 844)


def _map_ready(browser, base_url: str, size: tuple[int, int]):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(*size)
    browser.get(base_url + "/")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda d: len(d.find_elements("css selector", "#map path.zone")) == 263)
    browser.execute_script("document.getElementById('pickup-at').value = '2024-02-14T08:30'")
    return wait


def _click_zone(browser, zone_id: int) -> None:
    """A real mouse click on the screen pixel of a point inside the zone (the map's own label point)."""
    from selenium.webdriver.common.action_chains import ActionChains

    offset = browser.execute_async_script(
        """const [id, done] = arguments;
        fetch('/v1/zones/map').then((r) => r.json()).then((m) => {
          const z = m.zones.find((z) => z.zone_id === id), svg = document.getElementById('map');
          const p = svg.createSVGPoint(); p.x = z.x; p.y = z.y;
          const s = p.matrixTransform(svg.getScreenCTM()), box = svg.getBoundingClientRect();
          done([s.x - box.left - box.width / 2, s.y - box.top - box.height / 2]);
        });""",
        zone_id,
    )
    svg = browser.find_element("id", "map")
    ActionChains(browser).move_to_element_with_offset(svg, round(offset[0]), round(offset[1])).click().perform()


def _zone_fills(browser) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#map path.zone')].map((p) => p.style.fill).filter((f) => f)"
    )


@pytest.mark.parametrize(("size", "shot"), [(DESKTOP, "web_map_desktop.png"), (PHONE, "web_map_phone.png")])
def test_a_person_clicks_two_zones_on_the_map_and_sees_fares_and_the_choropleth(
    browser, base_url: str, size: tuple[int, int], shot: str
) -> None:
    from selenium.webdriver.support import expected_conditions as ec

    wait = _map_ready(browser, base_url, size)
    banner = wait.until(ec.visibility_of_element_located(("id", "banner")))
    assert banner.text.startswith("Synthetic data.") and "not real fares" in banner.text

    _click_zone(browser, 132)  # JFK Airport
    assert browser.find_element("id", "pickup").get_attribute("value") == "JFK Airport (Queens)"
    legend = wait.until(ec.visibility_of_element_located(("id", "legend")))
    wait.until(lambda d: len(_zone_fills(d)) == 263)  # every zone coloured from one batch request
    assert "From JFK Airport at 2024-02-14 08:30" in legend.text
    assert re.search(r"taxi cheaper by \$\d+\+", legend.text) and re.search(r"Uber cheaper by \$\d+\+", legend.text)
    summary = r"The taxi is cheaper to (\d+) of 263 zones, Uber to (\d+), about the same to (\d+)\."
    counts = re.search(summary, legend.text)
    assert counts and sum(int(n) for n in counts.groups()) == 263, legend.text  # by each zone's answer

    _click_zone(browser, 43)  # Central Park
    wait.until(ec.visibility_of_element_located(("id", "result")))
    assert browser.find_element("id", "dropoff").get_attribute("value") == "Central Park (Manhattan)"
    taxi, uber = (float(browser.find_element("id", f"{s}-fare").text[1:]) for s in ("taxi", "uber"))
    verdict = browser.find_element("id", "verdict").text
    named = "The yellow taxi is cheaper" if taxi <= uber else "Uber is cheaper"
    assert verdict.startswith((named, "About the same: ")), verdict
    assert re.fullmatch(
        r"How sure: \d+% that (the taxi|Uber) is cheaper \(.+\)", browser.find_element("id", "confidence").text
    )
    for service in ("taxi", "uber"):  # each band is drawn: a bar from low to high and a mark at the fare
        bar = browser.find_element("css selector", f"#{service}-band i")
        assert bar.size["width"] > 5 and browser.find_element("css selector", f"#{service}-band b").is_displayed()
    assert "JFK Airport → Central Park at 2024-02-14 08:30" in browser.find_element("id", "meta").text
    assert "learned from synthetic TLC-shaped trips" in browser.find_element("id", "source").text
    assert browser.execute_script("return document.documentElement.scrollWidth") <= size[0]  # no sideways scrolling

    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / shot))
    assert (ARTIFACTS / shot).stat().st_size > 20_000


def test_the_map_works_from_the_keyboard(browser, base_url: str) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    wait = _map_ready(browser, base_url, DESKTOP)
    body = browser.find_element("tag name", "body")
    body.send_keys(Keys.TAB)  # the map is the first stop on the page
    assert browser.switch_to.active_element.get_attribute("id") == "map"
    start = browser.find_element("id", "zone-info").text
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    pickup = browser.find_element("id", "pickup").get_attribute("value")
    assert pickup and pickup == start  # Enter picked the zone the focus ring was on
    for _ in range(4):
        browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    moved = browser.find_element("id", "zone-info").text
    assert moved.split(" · ")[0] != pickup
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait.until(ec.visibility_of_element_located(("id", "result")))
    assert browser.find_element("id", "dropoff").get_attribute("value") == moved.split(" · ")[0]
    assert browser.find_element("id", "verdict").text


def test_the_page_makes_no_request_outside_the_server(browser, base_url: str) -> None:
    _map_ready(browser, base_url, DESKTOP)
    _click_zone(browser, 132)
    urls = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert urls and all(u.startswith((base_url, "data:")) for u in urls), urls


def test_the_public_page_links_no_ops_page(browser, base_url: str) -> None:
    _map_ready(browser, base_url, DESKTOP)
    links = browser.execute_script("return [...document.querySelectorAll('a[href]')].map((a) => a.pathname)")
    ops = ("/runs", "/v1/runs", "/data-docs", "/dbt-docs", "/reports", "/metrics", "/v1/admin", "/login")
    assert [link for link in links if link.startswith(ops)] == []
