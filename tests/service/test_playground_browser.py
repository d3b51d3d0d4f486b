"""The playground in a real browser: Debian's Chromium, headless, driven by Selenium through Debian's chromedriver.

Nothing downloads a browser or a driver: both paths are given explicitly (so selenium-manager never runs) and
SE_OFFLINE is set in case it would. The server is a real uvicorn serving the shipped model on Redis, with an
API key. Outside CI the test is skipped when Chromium is missing; with CI=true a missing Chromium fails.

The screenshot goes to $RECKONING_PLAYGROUND_SCREENSHOT when set (the README's results/playground.png is made
that way), else to the test's temporary directory.
"""

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.processes import ApiProcess, RedisProcess, redis_api_env
from reckoning_core.config import DEFAULT_MODEL_DIR

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / DEFAULT_MODEL_DIR
CHROMIUM = Path(os.environ.get("RECKONING_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("RECKONING_CHROMEDRIVER", "/usr/bin/chromedriver"))
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

KEY = "playground-key-0123456789"
WAIT_S = 90.0


def _page_example(name: str) -> list[str]:
    """An example list of the page's own script (`const NAME = [...]` in service/static/playground.js), read from
    the file the server sends: the test types in the page's example, not a copy of it."""
    script = (REPO / "service" / "static" / "playground.js").read_text(encoding="utf-8")
    found = re.search(rf"const {name} = (\[.*?\]);", script, re.DOTALL)
    assert found, f"playground.js defines no {name}"
    strings: list[str] = json.loads(re.sub(r",\s*\]$", "]", found[1]))  # JS allows a trailing comma, JSON does not
    return strings


# The playground's built-in example theory and questions.
FACTS = _page_example("EXAMPLE_FACTS")
QUESTIONS = _page_example("EXAMPLE_QUESTIONS")


def _need_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        message = f"{', '.join(missing)} not found: apt-get install -y --no-install-recommends chromium chromium-driver"
        if IN_CI:
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def redis_for_playground(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    # Its own redis-server: the last test stops it to see a real 503 on the page.
    with RedisProcess(tmp_path_factory.mktemp("playground-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def playground_api(
    tmp_path_factory: pytest.TempPathFactory, redis_for_playground: RedisProcess
) -> Iterator[ApiProcess]:
    env = redis_api_env(MODEL, redis_for_playground.url, {"playground": KEY}, RECKONING_MAX_FACT_CHARS="200")
    with ApiProcess(tmp_path_factory.mktemp("playground-api"), env) as api:
        yield api


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _need_browser()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if IN_CI:
            pytest.fail("selenium is not installed (pip install -e '.[dev]')")
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
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
        "--lang=en-US",
        "--window-size=1000,1200",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    # Both paths explicit, so selenium-manager has nothing to resolve; SE_OFFLINE in case it ran anyway.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(profile / "chromedriver.log"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(WAIT_S)
        try:
            yield driver
        finally:
            driver.quit()


# ----------------------------------------------------------------------------- page helpers


def _wait(driver: Any, predicate: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(predicate, message=f"waiting for {what}")


def _by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def _type(driver: Any, element_id: str, text: str) -> None:
    field = _by_id(driver, element_id)
    field.clear()
    field.send_keys(text)


def _visible_text(driver: Any, element_id: str) -> str:
    element = _by_id(driver, element_id)
    return str(element.text) if element.is_displayed() else ""


def _click_and_wait_for(driver: Any, button: str, *outcomes: str) -> str:
    """Click a button, wait until one of the outcome elements shows; return the id of the one that did."""
    for element_id in outcomes:
        driver.execute_script("document.getElementById(arguments[0]).hidden = true", element_id)
    _by_id(driver, button).click()
    shown: str = _wait(
        driver, lambda d: next((o for o in outcomes if _by_id(d, o).is_displayed()), False), f"{button} -> {outcomes}"
    )
    return shown


def _answers_on_page(driver: Any) -> list[dict[str, Any]]:
    from selenium.webdriver.common.by import By

    shown = []
    for item in driver.find_elements(By.CSS_SELECTOR, "#answers li.answer"):
        rows = item.find_elements(By.CSS_SELECTOR, ".bar-row")
        shown.append(
            {
                "question": item.get_attribute("data-question"),
                "answer": item.get_attribute("data-answer"),
                "verdict_text": item.find_element(By.CSS_SELECTOR, ".verdict").text,
                "scores": {r.get_attribute("data-label"): float(r.get_attribute("data-p")) for r in rows},
                "bar_text": {
                    r.get_attribute("data-label"): r.find_element(By.CSS_SELECTOR, ".bar-value").text for r in rows
                },
            }
        )
    return shown


def _screenshot(driver: Any, path: Path) -> None:
    # The whole page, not just the window, with the facts box scrolled to its first line.
    driver.execute_script("document.getElementById('facts').scrollTop = 0")
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


# ----------------------------------------------------------------------------- tests


def test_playground_is_public_static_and_needs_no_cdn(playground_api: ApiProcess) -> None:
    with playground_api.client() as anonymous:  # no key: the page itself is public
        page = anonymous.get("/playground")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for asset in ("/playground/playground.js", "/playground/playground.css"):
            assert anonymous.get(asset).status_code == 200
        assert "http://" not in page.text and "https://" not in page.text  # no CDN, no external resource
        assert anonymous.post("/encode", json={"facts": ["x."]}).status_code == 401  # the API still needs the key


def test_encode_and_ask_in_the_browser_match_the_api(
    browser: Any, playground_api: ApiProcess, redis_for_playground: RedisProcess, tmp_path: Path
) -> None:
    driver = browser
    driver.get(f"{playground_api.url}/playground")
    _wait(driver, lambda d: "reckoning-full" in _by_id(d, "server").text, "the server line")
    assert "redis store" in _by_id(driver, "server").text

    # Without the key: a readable 401.
    _type(driver, "facts", "\n".join(FACTS))
    assert _click_and_wait_for(driver, "encode", "encode-result", "encode-error") == "encode-error"
    assert "401" in _visible_text(driver, "encode-error") and "API key" in _visible_text(driver, "encode-error")

    # With the key, a fact over the limit: the 422 names the line and the limit.
    _type(driver, "api-key", KEY)
    _type(driver, "facts", "Bob is nice.\n" + "Bob is very " * 20 + "nice.")
    assert _click_and_wait_for(driver, "encode", "encode-result", "encode-error") == "encode-error"
    error = _visible_text(driver, "encode-error")
    assert "422" in error and "facts[1] (line 2)" in error and "max_fact_chars=200" in error, error

    # Encode the set: the page shows what the API says.
    _type(driver, "facts", "\n".join(FACTS))
    assert _click_and_wait_for(driver, "encode", "encode-result", "encode-error") == "encode-result"
    shown_id = _by_id(driver, "out-kid").text
    with playground_api.client(KEY) as api:
        again = api.post("/encode", json={"facts": FACTS}).json()  # the same set: cached, same id
        assert again["knowledge_id"] == shown_id and again["cached"] is True
        assert _by_id(driver, "out-nfacts").text == str(again["n_facts"]) == str(len(FACTS))
        assert _by_id(driver, "out-cached").text.startswith("no")
        assert _by_id(driver, "out-encode-ms").text.endswith(" ms")
        assert _by_id(driver, "out-recall").text.startswith(f"{100 * again['recall']:.0f}%")
        n = again["delta_bytes"]
        assert _by_id(driver, "out-delta-bytes").text == (f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB")
        assert _by_id(driver, "kid").get_attribute("value") == shown_id

        # Ask two questions: the answers and probabilities shown are the API's.
        _type(driver, "questions", "\n".join(QUESTIONS))
        assert _click_and_wait_for(driver, "ask", "ask-result", "ask-error") == "ask-result"
        expected = api.post("/ask", json={"knowledge_id": shown_id, "questions": QUESTIONS}).json()["answers"]
        shown = _answers_on_page(driver)
        assert [a["question"] for a in shown] == QUESTIONS
        for on_page, from_api in zip(shown, expected, strict=True):
            assert on_page["answer"] == on_page["verdict_text"] == from_api["answer"]
            assert on_page["scores"] == pytest.approx(from_api["scores"], abs=1e-9)
            assert on_page["bar_text"] == {k: f"{100 * p:.1f}%" for k, p in from_api["scores"].items()}
        # The shipped model gets this theory right: Bob is young in three steps, Fred's youth is unknown.
        assert [a["answer"] for a in expected] == ["True", "Unknown"]
        assert _by_id(driver, "out-delta").get_attribute("data-cached") == "true"
        assert "cached delta" in _by_id(driver, "out-delta").text
        assert _by_id(driver, "out-ask-ms").text.startswith("ask ")

        screenshot = Path(os.environ.get("RECKONING_PLAYGROUND_SCREENSHOT") or tmp_path / "playground.png")
        _screenshot(driver, screenshot)
        assert screenshot.stat().st_size > 10_000

        # The delta evicted: the page says the ask re-encoded it, with the same answers.
        client = redis_for_playground.client()
        assert client.delete(*client.keys(f"*:delta:*:{shown_id}")) == 1  # per-model delta keys
        assert _click_and_wait_for(driver, "ask", "ask-result", "ask-error") == "ask-result"
        assert _by_id(driver, "out-delta").get_attribute("data-cached") == "false"
        assert "re-encoded" in _by_id(driver, "out-delta").text
        assert [a["answer"] for a in _answers_on_page(driver)] == ["True", "Unknown"]


def test_errors_the_server_cannot_produce_on_demand_read_well(browser: Any, playground_api: ApiProcess) -> None:
    driver = browser
    driver.get(f"{playground_api.url}/playground")
    _wait(driver, lambda d: "reckoning-full" in _by_id(d, "server").text, "the server line")
    # This server has no rate limit, so 429 is checked through the page's own formatter.
    text = driver.execute_script("return window.reckoningPlayground.describeError(429, {detail: 'slow down'}, '7')")
    assert text.startswith("429 Too many requests") and "Retry after 7 s." in text and "slow down" in text


def test_store_down_shows_503_with_retry_after(
    browser: Any, playground_api: ApiProcess, redis_for_playground: RedisProcess
) -> None:
    driver = browser
    driver.get(f"{playground_api.url}/playground")
    _wait(driver, lambda d: "reckoning-full" in _by_id(d, "server").text, "the server line")
    with playground_api.client(KEY) as api:
        knowledge_id = api.post("/encode", json={"facts": FACTS}).json()["knowledge_id"]
    _type(driver, "api-key", KEY)
    _type(driver, "kid", knowledge_id)
    _type(driver, "questions", QUESTIONS[0])
    redis_for_playground.stop()  # a real outage: the store is unreachable
    assert _click_and_wait_for(driver, "ask", "ask-result", "ask-error") == "ask-error"
    error = _visible_text(driver, "ask-error")
    assert error.startswith("503 Service unavailable") and "Retry after 5 s." in error, error
    assert "knowledge store unavailable" in error
    with httpx.Client(base_url=playground_api.url, timeout=30) as api:
        assert api.get("/readyz").status_code == 503
