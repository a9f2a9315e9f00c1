"""The dashboard over HTTP against ``troupe up``: sign-in, guards, filters, fragments, downloads."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.actors.gateway.conftest import Gateway
from tests.actors.gateway.dashboard.conftest import submit, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.processes]


@contextlib.contextmanager
def _browser(gateway: Gateway, token: str | None = None) -> Iterator[httpx.Client]:
    """A client that behaves like the dashboard's own pages (same Origin), signed in with token."""
    with httpx.Client(
        base_url=gateway.url, headers={"Origin": gateway.url}, timeout=30, follow_redirects=False
    ) as client:
        if token:
            answer = client.post("/login", data={"token": token})
            assert answer.status_code == 303, answer.text
        yield client


def test_signed_out_pages_send_the_browser_to_the_login_form(gateway: Gateway) -> None:
    """Without a session every page redirects to /login, coming back afterwards."""
    with _browser(gateway) as client:
        assert client.get("/").headers["location"] == "/login"
        assert client.get("/performance").headers["location"] == "/login?next=/performance"
        assert client.get("/ui/events").status_code == 303
        form = client.get("/login")
    assert form.status_code == 200
    assert 'name="token"' in form.text


def test_login_keeps_the_token_in_an_http_only_strict_cookie(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A good token: 303 to the list with the cookie; the list then renders."""
    with _browser(gateway) as client:
        answer = client.post("/login", data={"token": tokens["viewer"], "next": "/agents"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/agents"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert client.get("/").status_code == 200


def test_a_bad_token_or_a_foreign_origin_cannot_sign_in(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A wrong token is refused with the form again; a cross-site login is a 403."""
    with _browser(gateway) as client:
        wrong = client.post("/login", data={"token": "trp_0000000000000000_nope"})
        assert wrong.status_code == 401
        assert "Sign-in refused" in wrong.text
        assert "set-cookie" not in wrong.headers
        foreign = client.post(
            "/login", data={"token": tokens["viewer"]}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        assert "set-cookie" not in foreign.headers


def test_a_login_redirect_never_leaves_the_site(gateway: Gateway, tokens: dict[str, str]) -> None:
    """``next`` pointing elsewhere lands on the list instead."""
    with _browser(gateway) as client:
        answer = client.post("/login", data={"token": tokens["viewer"], "next": "//evil.example/"})
        assert answer.headers["location"] == "/"


def test_a_revoked_token_signs_the_browser_out_at_once(
    gateway: Gateway, make_token: Callable[..., str], tokens: dict[str, str]
) -> None:
    """Revoking the token behind a session sends the next page to the login form."""
    token = make_token("viewer", name="revoked-session")
    with _browser(gateway, token) as client:
        assert client.get("/").status_code == 200
        with gateway.client(tokens["admin"]) as admin:
            assert admin.delete(f"/api/v1/tokens/{token.split('_')[1]}").status_code == 200
        deadline = time.monotonic() + 10
        while client.get("/").status_code != 303:
            assert time.monotonic() < deadline, "the revoked session still works"
            time.sleep(0.1)


def test_a_viewer_may_not_cancel_and_nobody_may_post_from_another_site(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Viewer forms answer 403; an operator's form posted cross-site answers 403 too."""
    with _browser(gateway, tokens["viewer"]) as viewer:
        assert viewer.post("/workflows/nothing/cancel").status_code == 403
        assert viewer.post("/breakers/backend:local", data={"action": "reset"}).status_code == 403
    with _browser(gateway, tokens["operator"]) as operator:
        answer = operator.post(
            "/workflows/nothing/cancel", headers={"Origin": "http://evil.example"}
        )
        assert answer.status_code == 403


def test_pages_forbid_inline_scripts_and_framing(gateway: Gateway, tokens: dict[str, str]) -> None:
    """Every page carries a strict Content-Security-Policy and no-sniff."""
    with _browser(gateway, tokens["viewer"]) as client:
        answer = client.get("/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_assets_are_served_from_the_installed_package(gateway: Gateway) -> None:
    """The ES module and the stylesheet come from the gateway, no CDN."""
    with _browser(gateway) as client:
        script = client.get("/static/app.js")
        style = client.get("/static/style.css")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "EventSource" in script.text
    assert style.status_code == 200
    assert "http://" not in script.text + style.text
    assert "https://" not in script.text + style.text


def test_the_docs_are_readable_and_searchable_without_signing_in(gateway: Gateway) -> None:
    """/docs lists the guides; a search answers sections linked by anchor."""
    with _browser(gateway) as client:
        index = client.get("/docs")
        hits = client.get("/docs/search", params={"q": "permission matrix"})
        missing = client.get("/docs/guides/nothing-here")
    assert index.status_code == 200
    assert 'href="/docs/guides/security"' in index.text
    assert 'href="/docs/guides/security#' in hits.text
    assert missing.status_code == 404


def test_filters_narrow_the_list_and_no_match_shows_the_empty_state(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A label filter shows exactly its workflow; a text filter matching nothing says so."""
    mark = uuid.uuid4().hex[:10]
    workflow_id = submit(gateway, tokens["operator"], {"template": "hello", "labels": {"m": mark}})
    wait_state(gateway, tokens["operator"], workflow_id, {"succeeded"})
    with _browser(gateway, tokens["viewer"]) as client:
        labelled = client.get("/ui/rows", params={"label": f"m={mark}"}).text
        none = client.get("/", params={"q": f"no-such-{mark}", "state": "failed"}).text
        page = client.get("/", params={"state": "succeeded", "template": "hello"}).text
    assert labelled.count("<tr ") == 1
    assert workflow_id in labelled
    assert "No workflows to show." in none
    assert 'data-state="failed"' not in page


def test_the_detail_page_links_artifacts_that_download_through_the_session(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A finished workflow's artifacts are listed and download with the cookie."""
    workflow_id = submit(gateway, tokens["operator"], {"template": "hello", "params": {"who": "x"}})
    wait_state(gateway, tokens["operator"], workflow_id, {"succeeded"})
    with _browser(gateway, tokens["viewer"]) as client:
        page = client.get(f"/workflows/{workflow_id}")
        assert page.status_code == 200
        assert "Cancel workflow" not in page.text
        download = client.get(f"/workflows/{workflow_id}/artifacts/shout.txt?step=shout")
    assert download.status_code == 200
    assert download.content.strip() == b"HELLO, X"
    assert "attachment" in download.headers["content-disposition"]


def test_an_unknown_workflow_is_a_404_page(gateway: Gateway, tokens: dict[str, str]) -> None:
    """No such workflow: a page saying so, status 404."""
    with _browser(gateway, tokens["viewer"]) as client:
        answer = client.get("/workflows/no-such-workflow")
    assert answer.status_code == 404
    assert "Not found" in answer.text


def test_operations_pages_show_clear_empty_states_on_a_fresh_troupe(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """No agents connected: the agents page says so rather than showing an empty table."""
    with _browser(gateway, tokens["viewer"]) as client:
        agents = client.get("/agents").text
        executions = client.get("/executions")
        breakers = client.get("/breakers")
    assert "No live agents." in agents
    assert executions.status_code == 200
    assert breakers.status_code == 200


def test_a_workflow_id_that_is_not_an_id_never_reaches_the_bus(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Wildcards or dots in an id answer 404 instead of following ``troupe.status.events.>``."""
    with _browser(gateway, tokens["viewer"]) as client:
        for path in ("/ui/workflows/%3E/events", "/workflows/a.b", "/ui/workflows/*/live"):
            assert client.get(path).status_code == 404, path


def test_the_performance_page_shows_the_depth_of_both_queues(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """The gateway may read the tasks and pipelines streams' info: both depths are numbers."""
    with _browser(gateway, tokens["viewer"]) as client:
        page = client.get("/performance", params={"range": "15m"}).text
    for stream in ("TROUPE_TASKS", "TROUPE_PIPELINES"):
        row = re.search(rf"<tr><td>[^<]*</td><td>([^<]*)</td><td><code>{stream}</code>", page)
        assert row is not None, stream
        assert re.fullmatch(r"[\d,]+", row.group(1)), (stream, row.group(1))


def test_the_live_output_stream_needs_a_session_and_ends_at_once_for_a_finished_workflow(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Live output: signed out 303, unknown 404, a finished workflow ``ready`` then ``end``."""
    workflow_id = submit(gateway, tokens["operator"], {"template": "hello"})
    assert wait_state(gateway, tokens["operator"], workflow_id, {"succeeded"}) == "succeeded"
    with _browser(gateway) as client:
        assert client.get(f"/ui/workflows/{workflow_id}/logs").status_code == 303
    with _browser(gateway, tokens["viewer"]) as client:
        assert client.get("/ui/workflows/no-such-workflow/logs").status_code == 404
        with client.stream("GET", f"/ui/workflows/{workflow_id}/logs") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kinds = [line[7:] for line in stream.iter_lines() if line.startswith("event: ")]
        page = client.get(f"/workflows/{workflow_id}").text
    assert kinds == ["ready", "end"]
    assert 'id="live-output"' not in page


def _submit_with_cli(gateway: Gateway, *argv: str) -> str:
    """Submit with ``troupe submit ... --wait`` (over NATS, not the gateway); return the id."""
    done = subprocess.run(
        [sys.executable, "-m", "actors", "submit", *argv, "--wait", "--nats-url", gateway.nats_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TROUPE_STATE_DIR": str(gateway.state_dir)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


def test_a_workflow_submitted_over_nats_can_be_resubmitted_by_an_operator(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """A finished CLI workflow shows Re-submit to operators only; posting it makes a linked one."""
    workflow_id = _submit_with_cli(gateway, "hello", "--param", "who=cli")
    with _browser(gateway, tokens["viewer"]) as viewer:
        assert 'id="rerun"' not in viewer.get(f"/workflows/{workflow_id}").text
        assert viewer.post(f"/workflows/{workflow_id}/rerun").status_code == 403
    with _browser(gateway, tokens["operator"]) as operator:
        page = operator.get(f"/workflows/{workflow_id}").text
        assert 'id="rerun"' in page
        answer = operator.post(f"/workflows/{workflow_id}/rerun")
        assert answer.status_code == 303
        new_id = answer.headers["location"].rsplit("/", 1)[-1]
        assert new_id != workflow_id
    assert wait_state(gateway, tokens["operator"], new_id, {"succeeded"}) == "succeeded"
    with gateway.client(tokens["viewer"]) as client:
        view = client.get(f"/api/v1/workflows/{new_id}").json()
    assert view["labels"]["rerun_of"] == workflow_id


def test_a_running_workflow_offers_cancel_and_only_once_finished_resubmit(
    gateway: Gateway, tokens: dict[str, str]
) -> None:
    """Re-submit appears for an operator when the workflow ends, here by being cancelled."""
    slow = {"pipeline": {"name": "slow", "steps": [{"name": "wait", "run": "sleep 120"}]}}
    workflow_id = submit(gateway, tokens["operator"], slow)
    wait_state(gateway, tokens["operator"], workflow_id, {"running"})
    with _browser(gateway, tokens["operator"]) as operator:
        running = operator.get(f"/workflows/{workflow_id}").text
        assert operator.post(f"/workflows/{workflow_id}/cancel").status_code == 303
        wait_state(gateway, tokens["operator"], workflow_id, {"cancelled"})
        deadline = time.monotonic() + 20  # until the tracker's view shows the end too
        while 'id="rerun"' not in (ended := operator.get(f"/workflows/{workflow_id}").text):
            assert time.monotonic() < deadline, "no Re-submit once the workflow ended"
            time.sleep(0.1)
    assert 'id="cancel"' in running
    assert 'id="rerun"' not in running
    assert 'id="cancel"' not in ended
