"""The lab console in a real headless Chromium against a real meterd process (network API on a
free TCP port): it loads behind the token prompt, its values follow ``sim set``, a fault injected
from the page reaches the event list, and Arabic renders right to left. Screenshots are saved
and looked at the way a person would: the phasor diagram has drawn lines in the phase colours,
the scope is not blank, no panel's text runs out of its box.

Skipped only when Debian's chromium and chromium-driver are not installed (``make test``
installs them). Every wait is a bounded WebDriverWait on a condition.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.meterd_process import MeterdProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="chromium and chromium-driver are not installed (make test installs them)")
WAIT_S = 30.0
SHOTS = Path(os.environ.get("PMM_DASHBOARD_SHOTS", "")) if os.environ.get("PMM_DASHBOARD_SHOTS") else None
PHASE_RGB = {"L1": (0xFF, 0xB3, 0x47), "L2": (0x5E, 0xC8, 0xFF), "L3": (0xC7, 0x92, 0xFF)}


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[MeterdProcess]:
    # the comment names the section, so the harness keeps power quality on, as config/sim.toml has it
    process = MeterdProcess(tmp_path / "meter", speed="4",
                            extra_toml="# [power_quality] on: the console shows harmonics and flicker\n")
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1920,1080", "--force-device-scale-factor=1",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    viewport(driver, 1080)
    try:
        yield driver
    finally:
        driver.quit()


def viewport(driver: Any, height: int) -> None:
    """A 1920-pixel wide screen of ``height`` pixels, whatever the window's decorations take."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1920, "height": height, "deviceScaleFactor": 1, "mobile": False})


def tokens(meter: MeterdProcess) -> dict[str, Any]:
    code, answer = meter.api("GET", "/api/tokens")
    assert code == 200, answer
    return answer


def wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(condition, message=what)


def text_of(driver: Any, css: str) -> str:
    return str(driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css))


def cell(driver: Any, quantity: str, phase: int) -> str:
    return text_of(driver, f'#values-table tr[data-q="{quantity}"] td:nth-of-type({phase})')


def open_console(driver: Any, meter: MeterdProcess, role: str = "control") -> None:
    """Load the page, enter the token in its prompt once, wait for live values."""
    from selenium.webdriver.common.by import By

    info = tokens(meter)
    driver.get(f"{info['url']}/dashboard/")
    dialog = wait(driver, lambda d: d.find_element(By.ID, "token-dialog"), "token prompt")
    wait(driver, lambda d: dialog.get_attribute("open") is not None, "the token prompt opens")
    driver.find_element(By.ID, "token-input").send_keys(info[role][0])
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait(driver, lambda d: cell(d, "voltage_v", 1) == "230.0", "live values")
    wait(driver, lambda d: d.execute_script("return document.getElementById('conn').dataset.state") == "live",
         "the values stream")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#phasor .phasor-line")) == 6, "six phasors")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events li")) > 0, "the event list")
    wait(driver, lambda d: d.find_element(By.ID, "panel-sim").is_displayed(), "the simulation panel")
    wait(driver, lambda d: d.execute_script("return document.getElementById('scope').dataset.traced") == "yes",
         "the first waveform on the scope")


def screenshot(driver: Any, tmp_path: Path, name: str) -> Any:
    """Save a screenshot (in the test's directory, and in $PMM_DASHBOARD_SHOTS when set); the image."""
    from PIL import Image

    viewport(driver, max(1080, int(driver.execute_script("return document.documentElement.scrollHeight"))))
    png = driver.get_screenshot_as_png()
    viewport(driver, 1080)
    (tmp_path / f"{name}.png").write_bytes(png)
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"{name}.png").write_bytes(png)
    return Image.open(io.BytesIO(png)).convert("RGB")


def crop(driver: Any, image: Any, element_id: str) -> Any:
    r = driver.execute_script("const b = document.getElementById(arguments[0]).getBoundingClientRect();"
                              "return [b.left, b.top, b.right, b.bottom]", element_id)
    return image.crop(tuple(round(v) for v in r))


def near(pixel: tuple[int, int, int], rgb: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, rgb, strict=True))


def pixels(image: Any) -> list[tuple[int, ...]]:
    """The image's pixels as tuples of band values, row by row (``Image.getdata`` is deprecated)."""
    data, bands = image.tobytes(), len(image.getbands())
    return [tuple(data[i:i + bands]) for i in range(0, len(data), bands)]


def looks_right(driver: Any, image: Any) -> None:
    """What a person checks at a glance: phasor lines in each phase colour, a scope with traces,
    and no text running out of its panel."""
    phasor = crop(driver, image, "phasor")
    drawn = pixels(phasor)
    for phase, rgb in PHASE_RGB.items():
        assert sum(near(p, rgb) for p in drawn) > 150, f"no {phase} phasor drawn"
    scope = crop(driver, image, "scope")
    background = (0x0F, 0x14, 0x1A)
    traced = sum(1 for p in pixels(scope) if not near(p, background, 30) and max(p) > 120)
    assert traced > 0.01 * scope.width * scope.height, "the scope is blank"
    overflowing = driver.execute_script("""
        const bad = [];
        for (const p of document.querySelectorAll('.panel:not([hidden])')) {
          if (p.scrollWidth > p.clientWidth + 1) bad.push(p.className + ' ' + p.scrollWidth + '>' + p.clientWidth);
          for (const e of p.querySelectorAll('td, th, dd, dt, h2, li, button, label')) {
            const b = e.getBoundingClientRect(), q = p.getBoundingClientRect();
            if (b.width && (b.right > q.right + 1 || b.left < q.left - 1)) bad.push(p.className + ': ' + e.textContent.trim().slice(0, 30));
          }
        }
        if (document.documentElement.scrollWidth > window.innerWidth + 1) bad.push('page wider than the window');
        return bad;""")
    assert overflowing == [], overflowing


def test_console_loads_with_a_token_and_draws(meter: MeterdProcess, browser: Any, tmp_path: Path) -> None:
    info = tokens(meter)
    with urllib.request.urlopen(f"{info['url']}/dashboard/", timeout=10) as answer:  # no token for the files
        assert answer.status == 200 and "default-src 'self'" in answer.headers["Content-Security-Policy"]
    try:
        urllib.request.urlopen(f"{info['url']}/status", timeout=10)
        raise AssertionError("the API answered without a token")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    open_console(browser, meter, role="read")
    assert cell(browser, "frequency_hz", 1) == "50.00"
    assert browser.execute_script("return sessionStorage.getItem('meterd-token')") == info["read"][0]
    wait(browser, lambda d: text_of(d, "#energy-table").count("0.0") > 0, "energy registers")
    wait(browser, lambda d: len(d.find_elements("css selector", "#harm-tabs button")) == 6, "harmonic tabs")
    wait(browser, lambda d: text_of(d, "#relay-kv") != "", "relay state")
    image = screenshot(browser, tmp_path, "dashboard-en")
    looks_right(browser, image)
    browser.refresh()  # the token is kept for the tab: no second prompt
    wait(browser, lambda d: cell(d, "voltage_v", 1) == "230.0", "live values after a reload")
    assert browser.execute_script("return document.getElementById('token-dialog').open") is False


def test_values_follow_sim_set(meter: MeterdProcess, browser: Any) -> None:
    open_console(browser, meter)
    code, _ = meter.api("POST", "/sim/set", {"phase": "B", "voltage_v": 212.5, "current_a": 7.5})
    assert code == 200
    wait(browser, lambda d: cell(d, "voltage_v", 2) == "212.5" and cell(d, "current_a", 2) == "7.50",
         "L2 follows sim set")
    assert cell(browser, "voltage_v", 1) == "230.0"


def test_fault_injected_from_the_page_reaches_the_event_list(meter: MeterdProcess, browser: Any,
                                                             tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_console(browser, meter)
    Select(browser.find_element(By.ID, "fault-kind")).select_by_value("voltage_swell")
    phase = wait(browser, lambda d: d.find_element(By.NAME, "param:phase"), "the fault's parameters")
    Select(phase).select_by_value("L2")
    magnitude = browser.find_element(By.NAME, "param:magnitude_pct")
    magnitude.clear()
    magnitude.send_keys("115")
    browser.find_element(By.NAME, "duration_s").send_keys("2")
    browser.find_element(By.ID, "fault-inject").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#events li[data-name="VOLTAGE_SWELL"]'),
         "VOLTAGE_SWELL in the event list")
    assert meter.api("GET", "/sim/faults")[1]["active"] == []  # its 2 s are over
    # a fault until cleared, cleared from the page
    Select(browser.find_element(By.ID, "fault-kind")).select_by_value("magnet")
    browser.find_element(By.NAME, "duration_s").clear()
    browser.find_element(By.ID, "fault-inject").click()
    wait(browser, lambda d: "magnet" in text_of(d, "#active-faults"), "the fault in force")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#events li[data-name="STRONG_DC_FIELD"]'),
         "STRONG_DC_FIELD in the event list")
    screenshot(browser, tmp_path, "dashboard-fault")
    browser.find_element(By.CSS_SELECTOR, "#active-faults button").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#events li[data-name="NO_STRONG_DC_FIELD"]'),
         "the end of the magnetic field in the event list")
    assert meter.api("GET", "/sim/faults")[1]["active"] == []


def test_arabic_renders_right_to_left(meter: MeterdProcess, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_console(browser, meter)
    browser.find_element(By.ID, "lang").click()
    wait(browser, lambda d: d.execute_script("return getComputedStyle(document.body).direction") == "rtl", "rtl")
    assert browser.execute_script("return document.documentElement.lang") == "ar"
    assert text_of(browser, ".brand [data-t=title]") == "لوحة العداد"
    assert "الجهد" in text_of(browser, "#values-table")
    # right to left: the first panel sits at the right edge, the header's brand on the right
    values = browser.find_element(By.ID, "panel-values").rect
    assert values["x"] + values["width"] > 1920 * 0.6
    wait(browser, lambda d: cell(d, "voltage_v", 1) == "230.0", "values while in Arabic")
    image = screenshot(browser, tmp_path, "dashboard-ar")
    looks_right(browser, image)
    browser.refresh()
    wait(browser, lambda d: d.execute_script("return document.documentElement.dir") == "rtl", "the language kept")
    json.dumps(tokens(meter))  # the meter still answers
