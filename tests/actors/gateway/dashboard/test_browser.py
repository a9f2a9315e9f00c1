"""The dashboard in headless Chromium against ``troupe up``: live list, detail, docs, roles.

Also saves screenshots (with ``TROUPE_SCREENSHOTS=docs/images``, those the README shows).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.actors.gateway.conftest import Gateway
from tests.actors.gateway.dashboard.conftest import screenshot, sign_in, submit, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.processes]

WAIT_S = 60

FAILING = {
    "pipeline": {
        "name": "nightly-report",
        "steps": [
            {"name": "fetch", "run": "echo '::progress 100' && echo fetched 42 rows"},
            {"name": "validate", "needs": ["fetch"], "run": "echo checked"},
            {
                "name": "transform",
                "needs": ["fetch"],
                "run": "echo 'column amount is not a number' >&2; exit 3",
            },
            {"name": "publish", "needs": ["validate", "transform"], "run": "echo done"},
        ],
    },
    "labels": {"team": "data"},
}

SLOW = {"pipeline": {"name": "slow", "steps": [{"name": "wait", "run": "sleep 120"}]}}


def _wait(driver: Any) -> Any:
    """A bounded wait that tries again when a live update replaced what it was reading."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))


def _css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _read(driver: Any, read: Callable[[Any], Any]) -> Any:
    """``read(driver)``, read again if the page re-rendered an element it held meanwhile.

    The pages redraw parts of themselves as events arrive, so an element found
    a moment ago may be gone; what is asserted is what the page shows now.
    """
    box: list[Any] = []

    def attempt(d: Any) -> bool:
        box[:] = [read(d)]
        return True

    _wait(driver).until(attempt)
    return box[0]


def _text(driver: Any, selector: str) -> str:
    """The text of the first element ``selector`` matches, as the page shows it now."""
    return str(_read(driver, lambda d: _css(d, selector)[0].text))


def _click(driver: Any, selector: str) -> None:
    """Click the first element ``selector`` matches, found again if a live update replaced it."""

    def attempt(d: Any) -> bool:
        found = _css(d, selector)
        if not found:
            return False
        found[0].click()
        return True

    _wait(driver).until(attempt)


def test_a_submitted_workflow_appears_and_succeeds_without_reloading(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Signed in, the list shows a new workflow and its final state, pushed over SSE."""
    driver = chromium()
    sign_in(driver, gateway, tokens["viewer"])
    driver.execute_script("window.__sameDocument = true")
    _wait(driver).until(lambda d: "live" in _css(d, "#live-status")[0].text)
    workflow_id = submit(gateway, tokens["operator"], {"template": "hello", "labels": {"t": "1"}})
    row = f'tr[data-id="{workflow_id}"]'
    _wait(driver).until(lambda d: _css(d, row))
    _wait(driver).until(lambda d: _css(d, f'{row}[data-state="succeeded"]'))
    assert driver.execute_script("return window.__sameDocument === true")
    assert "t=1" in _text(driver, row)


def test_the_detail_page_draws_the_step_graph_and_the_timeline(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A finished workflow's page has one SVG node per step, coloured by state, and its history."""
    workflow_id = submit(gateway, tokens["operator"], {"template": "hello"})
    assert wait_state(gateway, tokens["operator"], workflow_id, {"succeeded"}) == "succeeded"
    driver = chromium()
    sign_in(driver, gateway, tokens["viewer"])
    _click(driver, f'a[href="/workflows/{workflow_id}"]')
    _wait(driver).until(lambda d: _css(d, "svg.graph"))
    nodes = _read(
        driver,
        lambda d: {
            n.get_attribute("data-step"): n.get_attribute("data-state")
            for n in _css(d, "svg.graph a.node")
        },
    )
    assert nodes == {"greet": "succeeded", "shout": "succeeded"}
    assert len(_css(driver, "svg.graph path.edge")) == 1
    entries = _read(driver, lambda d: [li.text for li in _css(d, "#timeline li")])
    assert any("succeeded" in e and "workflow" in e for e in entries)
    assert any("greet" in e for e in entries)


def _gated(gate: Path, line: str) -> str:
    """A shell fragment that waits (bounded) until ``gate`` exists, then prints ``line``."""
    wait = f"while [ ! -e {gate} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
    return f"i=0; {wait}; echo {line}"


def test_the_detail_page_shows_a_running_steps_output_as_it_is_printed(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A line the step prints is on the page while the step still runs, before its next line."""
    # The step may run as an unprivileged user: the gates are where it can see them.
    shared = Path(tempfile.mkdtemp(prefix="troupe-live-output-"))
    shared.chmod(0o755)
    opened, gate = shared / "opened", shared / "gate"
    run = f"{_gated(opened, 'first-line')}; {_gated(gate, 'second-line')}"
    pipeline = {"name": "gated", "steps": [{"name": "talk", "run": run, "backend": "local"}]}
    try:
        workflow_id = submit(gateway, tokens["operator"], {"pipeline": pipeline})
        driver = chromium()
        sign_in(driver, gateway, tokens["viewer"])
        driver.get(f"{gateway.url}/workflows/{workflow_id}")
        _wait(driver).until(lambda d: _css(d, '#live-output[data-following="1"]'))
        opened.touch()
        _wait(driver).until(lambda d: "first-line" in _css(d, "#live-output")[0].text)
        assert "second-line" not in _text(driver, "#live-output")
        assert _css(driver, '#state:not([data-state="succeeded"])')
        gate.touch()
        _wait(driver).until(lambda d: _css(d, '#state[data-state="succeeded"]'))
        _wait(driver).until(lambda d: _css(d, '#live-output[data-following="0"]'))
        shown = _text(driver, "#live-output")
        assert shown.index("first-line") < shown.index("second-line")
    finally:
        gate.touch()
        opened.touch()
        shutil.rmtree(shared, ignore_errors=True)


def test_the_detail_page_starts_with_what_a_running_step_printed_before_it_opened(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Lines printed before the page was opened are on it while the step still runs."""
    shared = Path(tempfile.mkdtemp(prefix="troupe-early-output-"))
    shared.chmod(0o755)
    gate = shared / "gate"
    run = f"echo early-line; {_gated(gate, 'late-line')}"
    pipeline = {"name": "early", "steps": [{"name": "talk", "run": run, "backend": "local"}]}
    try:
        workflow_id = submit(gateway, tokens["operator"], {"pipeline": pipeline})
        logs = f"/api/v1/workflows/{workflow_id}/steps/talk/logs"
        deadline = time.monotonic() + WAIT_S
        with gateway.client(tokens["viewer"]) as client:
            while "early-line" not in client.get(logs).json().get("stdout", ""):
                assert time.monotonic() < deadline, "the gateway never saw the step's first line"
                time.sleep(0.1)
        driver = chromium()
        sign_in(driver, gateway, tokens["viewer"])
        driver.get(f"{gateway.url}/workflows/{workflow_id}")
        _wait(driver).until(lambda d: "early-line" in _css(d, "#live-output")[0].text)
        assert "late-line" not in _text(driver, "#live-output")
        gate.touch()
        _wait(driver).until(lambda d: _css(d, '#state[data-state="succeeded"]'))
    finally:
        gate.touch()
        shutil.rmtree(shared, ignore_errors=True)


def test_a_failed_step_shows_its_error_class_and_a_link_to_troubleshooting(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """The failed step is red in the graph; the error names its class and links to its docs."""
    workflow_id = submit(gateway, tokens["operator"], FAILING)
    driver = chromium()
    sign_in(driver, gateway, tokens["operator"])
    driver.get(f"{gateway.url}/workflows/{workflow_id}")
    _wait(driver).until(
        lambda d: _css(d, 'svg.graph a.node[data-step="transform"][data-state="failed"]')
    )
    _wait(driver).until(lambda d: _css(d, "section.error"))
    assert "permanent" in _text(driver, "section.error")
    link = _read(driver, lambda d: _css(d, "section.error a")[0].get_attribute("href"))
    assert "/docs/" in link
    _wait(driver).until(lambda d: _css(d, '#state[data-state="failed"]'))
    driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    screenshot(driver, "workflow-detail.png")


def test_a_guide_is_found_by_a_word_from_its_body(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Searching the docs for a word in a guide's text lists that guide, and the link opens it."""
    from selenium.webdriver.common.keys import Keys

    driver = chromium()
    sign_in(driver, gateway, tokens["viewer"])
    driver.find_element("link text", "Docs").click()
    box = _wait(driver).until(lambda d: _css(d, "#q"))[0]
    box.send_keys("permission matrix", Keys.ENTER)
    hits = _wait(driver).until(lambda d: _css(d, "ol.hits a"))
    assert any("/docs/guides/security" in h.get_attribute("href") for h in hits)
    next(h for h in hits if "/docs/guides/security" in h.get_attribute("href")).click()
    _wait(driver).until(lambda d: _css(d, "article.markdown h1"))
    assert _css(driver, "article.markdown h1")[0].get_attribute("id") == "security"


def test_an_operator_cancels_a_running_workflow(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """The operator's cancel button ends a running workflow; the page shows it cancelled."""
    workflow_id = submit(gateway, tokens["operator"], SLOW)
    driver = chromium()
    sign_in(driver, gateway, tokens["operator"])
    driver.get(f"{gateway.url}/workflows/{workflow_id}")
    _wait(driver).until(lambda d: _css(d, 'svg.graph a.node[data-state="running"]'))
    _click(driver, "#cancel")
    _wait(driver).until(lambda d: _css(d, '#state[data-state="cancelled"]'))
    assert not _css(driver, "#cancel")


def test_a_viewer_sees_no_cancel_button_and_is_refused_by_the_api(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A viewer gets no cancel button; calling the API or the form anyway answers 403."""
    workflow_id = submit(gateway, tokens["operator"], SLOW)
    try:
        driver = chromium()
        sign_in(driver, gateway, tokens["viewer"])
        driver.get(f"{gateway.url}/workflows/{workflow_id}")
        _wait(driver).until(lambda d: _css(d, "svg.graph a.node"))
        assert not _css(driver, "#cancel")
        form = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"fetch('/workflows/{workflow_id}/cancel', {{method: 'POST'}})"
            ".then(r => done(r.status))"
        )
        assert form == 403
        with gateway.client(tokens["viewer"]) as client:
            api = client.post(f"/api/v1/workflows/{workflow_id}/cancel", json={})
        assert api.status_code == 403
        assert api.json()["code"] == "forbidden"
    finally:
        with gateway.client(tokens["operator"]) as client:
            client.post(f"/api/v1/workflows/{workflow_id}/cancel", json={})


def test_list_and_performance_pages_render_for_the_screenshots(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """The list and the performance charts render with data; their screenshots are saved."""
    ids = [
        submit(gateway, tokens["operator"], {"template": "hello", "labels": {"team": "web"}}),
        submit(gateway, tokens["operator"], {"template": "fanout"}),
        submit(gateway, tokens["operator"], FAILING),
        submit(gateway, tokens["operator"], {"template": "hello", "params": {"who": "ops"}}),
    ]
    for workflow_id in ids:
        wait_state(gateway, tokens["operator"], workflow_id, {"succeeded", "failed"})
    driver = chromium()
    sign_in(driver, gateway, tokens["viewer"])
    _wait(driver).until(lambda d: all(_css(d, f'tr[data-id="{i}"]') for i in ids))
    _wait(driver).until(lambda d: "live" in _css(d, "#live-status")[0].text)
    screenshot(driver, "workflow-list.png", most=800)
    driver.get(f"{gateway.url}/performance?range=15m")
    charts = _wait(driver).until(lambda d: _css(d, "svg.chart"))
    assert len(charts) >= 4
    assert "Computed from" in driver.find_element("css selector", "main").text
    screenshot(driver, "performance.png")


def test_pages_fit_a_390_pixel_wide_phone(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """At 390 px the pages do not scroll sideways (wide tables and graphs scroll in place)."""
    driver = chromium(390, 844)
    sign_in(driver, gateway, tokens["viewer"])
    for path in ("/", "/performance", "/docs/guides/security", "/agents"):
        driver.get(gateway.url + path)
        _wait(driver).until(lambda d: _css(d, "main h1, article h1"))
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 392, f"{path} is {width}px wide"


def test_the_first_tab_reaches_the_skip_link_and_it_moves_focus_to_the_content(
    chromium: Callable[..., Any], gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Keyboard users can skip the navigation."""
    from selenium.webdriver.common.keys import Keys

    driver = chromium()
    sign_in(driver, gateway, tokens["viewer"])
    driver.find_element("css selector", "body").send_keys(Keys.TAB)
    active = driver.switch_to.active_element
    assert active.get_attribute("class") == "skip"
    active.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "main"
