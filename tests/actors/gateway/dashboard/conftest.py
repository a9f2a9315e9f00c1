"""Fixtures: headless Chromium (Debian's package, driven by selenium), a dashboard sign-in,
and the dashboard in-process over a status tracker and a task manager with its own templates."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from actors.gateway.actor import SUBMISSIONS, TOKENS
from actors.gateway.app import build_app
from actors.gateway.auth import TokenVerifier
from actors.gateway.config import GatewayConfig
from actors.gateway.events import EventHub
from actors.gateway.services import Services
from actors.gateway.submissions import Submissions
from actors.gateway.tokenstore import TokenStore
from actors.runtime.bus import Bus
from actors.runtime.kv import TypedBucket
from actors.status_tracker import StatusTracker
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig
from protocols.gateway import TokenRecord
from protocols.tasks import TaskSubmitted
from tests.actors.gateway.conftest import Gateway

CHROMIUM = os.environ.get("TROUPE_CHROMIUM", "/usr/bin/chromium")
"""The browser binary (Debian's ``chromium``); never downloaded."""

CHROMEDRIVER = os.environ.get("TROUPE_CHROMEDRIVER", "/usr/bin/chromedriver")
"""Its driver (Debian's ``chromium-driver``)."""

IMAGES = Path(
    os.environ.get("TROUPE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "troupe-screenshots"
)
"""Where the screenshots are saved: a temporary folder, or ``TROUPE_SCREENSHOTS``
(``TROUPE_SCREENSHOTS=docs/images make test`` refreshes those the README shows)."""


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[Callable[..., Any]]:
    """Start headless Chromium windows (1280x800 unless told); all are quit at the end."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    started: list[Any] = []

    def start(width: int = 1280, height: int = 800) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            f"--window-size={width},{height}",
            "--force-device-scale-factor=1",
            "--lang=en-US",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        driver.set_page_load_timeout(30)
        # The exact viewport (a headless window is never narrower than 500 px).
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
        )
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


def screenshot(driver: Any, name: str, *, most: int = 1400) -> None:
    """Save the page, 1280 px wide and as tall as its content (up to ``most``), in IMAGES."""
    height = min(most, int(driver.execute_script("return document.body.scrollHeight")))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": max(800, height), "deviceScaleFactor": 1, "mobile": False},
    )
    IMAGES.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(IMAGES / name))


def sign_in(driver: Any, gateway: Gateway, token: str) -> None:
    """Open the dashboard and sign in with ``token`` through the login form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(gateway.url + "/")
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.ID, "token")))
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.ID, "rows")))


def submit(gateway: Gateway, token: str, body: dict[str, Any]) -> str:
    """Submit a workflow through the HTTP API; return its id."""
    with gateway.client(token) as client:
        answer = client.post("/api/v1/workflows", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["workflow_id"])


def wait_state(gateway: Gateway, token: str, workflow_id: str, states: set[str]) -> str:
    """Follow the workflow's SSE stream until it reaches one of ``states``; return it."""
    with (
        httpx.Client(base_url=gateway.url, timeout=60) as client,
        client.stream(
            "GET",
            f"/api/v1/workflows/{workflow_id}/events",
            headers={"Authorization": f"Bearer {token}"},
        ) as stream,
    ):
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])["event"]
            if event["type"] == "troupe.status.v1.transition" and event["state"] in states:
                return str(event["state"])
    raise AssertionError(f"{workflow_id} never reached {states}")


DIAMOND = """\
name = "diamond"
[[params]]
name = "who"
type = "str"
[[steps]]
name = "split"
run = "echo {{ who }}"
[[steps]]
name = "left"
needs = ["split"]
run = "true"
[[steps]]
name = "right"
needs = ["split"]
run = "true"
[[steps]]
name = "join"
needs = ["left", "right"]
run = "true"
"""
"""A template only the task manager knows: four steps, four edges, a required parameter."""

CHAIN = """\
name = "chain"
[[steps]]
name = "a"
run = "true"
[[steps]]
name = "b"
needs = ["a"]
run = "true"
[[steps]]
name = "c"
needs = ["b"]
run = "true"
"""
"""A template only the task manager knows, without parameters: three steps, two edges."""


async def in_process_services(bus: Bus) -> Services:
    """The gateway's services over ``bus``, as a test runs them in its own process."""
    tokens = TokenStore(await TypedBucket.bind(bus, TOKENS, TokenRecord))
    return Services(
        bus=bus,
        verifier=TokenVerifier(tokens.lookup),
        tokens=tokens,
        hub=EventHub(bus.js),
        submissions=Submissions(bus, await TypedBucket.bind(bus, SUBMISSIONS, TaskSubmitted)),
    )


@dataclass(frozen=True)
class InProcess:
    """The dashboard's app in this process, and a viewer's token."""

    app: Starlette
    services: Services
    viewer: str

    def client(self) -> httpx.AsyncClient:
        """A client of the app carrying the viewer's session cookie."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://dashboard.test",
            headers={"Origin": "http://dashboard.test"},
            cookies={"troupe_session": self.viewer},
            timeout=30,
        )


@pytest.fixture
async def in_process(
    bus: Bus, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[InProcess]:
    """A status tracker, a task manager whose only templates are in a directory of its own
    (``diamond``, ``chain``; ``param`` False: no task manager), and the gateway's app over them.
    """
    (tmp_path / "diamond.toml").write_text(DIAMOND)
    (tmp_path / "chain.toml").write_text(CHAIN)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(StatusTracker().running(bus))
        if getattr(request, "param", True):
            config = TaskManagerConfig(template_dirs=(tmp_path,), bundled=False, dispatch=None)
            await stack.enter_async_context(TaskManager(config=config).running(bus))
        services = await in_process_services(bus)
        app = build_app(services, config=GatewayConfig())
        viewer = await services.tokens.create("viewer", "viewer")
        yield InProcess(app, services, viewer.token)
