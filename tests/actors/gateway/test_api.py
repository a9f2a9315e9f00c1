"""The HTTP API end to end against ``troupe up``: submit, follow (SSE, WebSocket), resume, trace."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from actors.runtime.credentials import password_path
from tests.actors.gateway.conftest import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.processes]

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "rejected"}


def _sse(
    client: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Read an SSE stream to its end; return each event's ``{"id", "event", "data"}``."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with client.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append(current)
                current = {}
            elif line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
    return events


def _submit(client: httpx.Client, **extra: Any) -> dict[str, Any]:
    body = {"template": "hello", "params": {"who": "gateway"}, **extra}
    response = client.post("/api/v1/workflows", json=body)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _known(client: httpx.Client, workflow_id: str, within: float = 60.0) -> None:
    """Wait until the status tracker knows ``workflow_id`` (bounded)."""
    deadline = time.monotonic() + within
    while client.get(f"/api/v1/workflows/{workflow_id}").status_code != 200:
        assert time.monotonic() < deadline, f"workflow {workflow_id} never became known"
        time.sleep(0.1)


def _ended(client: httpx.Client, workflow_id: str, within: float = 60.0) -> dict[str, Any]:
    """Wait until the tracker's view of ``workflow_id`` is final (bounded); return it."""
    deadline = time.monotonic() + within
    while True:
        response = client.get(f"/api/v1/workflows/{workflow_id}")
        if response.status_code == 200 and response.json()["state"] in TERMINAL:
            view: dict[str, Any] = response.json()
            return view
        assert time.monotonic() < deadline, f"workflow {workflow_id} did not end: {response.text}"
        time.sleep(0.1)


def _states(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["data"]["event"]["state"]
        for e in events
        if e["data"]["event"]["type"] == "troupe.status.v1.transition"
    ]


def test_a_workflow_submitted_over_http_succeeds_in_the_callers_trace(gateway: Gateway) -> None:
    """Submit with a traceparent: the workflow succeeds and carries the caller's trace id."""
    trace_id = secrets.token_hex(16)
    with gateway.client(gateway.operator) as client:
        client.headers["traceparent"] = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        submitted = _submit(client)
        assert submitted["trace_id"] == trace_id
        events = _sse(client, f"/api/v1/workflows/{submitted['workflow_id']}/events")
        # The view is the tracker's, derived from those events: it follows them closely.
        view = _ended(client, submitted["workflow_id"])
    assert _states(events)[-1] == "succeeded"
    assert view["state"] == "succeeded"
    assert view["trace_id"] == trace_id


def test_sse_sees_every_transition_in_order_and_the_final_state(gateway: Gateway) -> None:
    """The SSE stream equals the stored history, ids rising, ending with the final state."""
    with gateway.client(gateway.operator) as client:
        workflow_id = _submit(client)["workflow_id"]
        events = _sse(client, f"/api/v1/workflows/{workflow_id}/events")
        history = client.get(f"/api/v1/workflows/{workflow_id}/history").json()["items"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [e["data"] for e in events] == history[: len(events)]
    states = _states(events)
    assert states[0] == "submitted"
    assert states[-1] == "succeeded"
    assert "running" in states


def test_websocket_sees_the_same_events_as_sse(gateway: Gateway) -> None:
    """A WebSocket follower gets the same events, then a normal close."""
    with gateway.client(gateway.operator) as client:
        workflow_id = _submit(client)["workflow_id"]
        sse = _sse(client, f"/api/v1/workflows/{workflow_id}/events")
    ws_url = gateway.url.replace("http://", "ws://") + f"/api/v1/workflows/{workflow_id}/events"
    received = []
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {gateway.operator}"}) as ws:
        for message in ws:
            received.append(json.loads(message))
    assert received == [e["data"] for e in sse]
    assert received[-1]["event"]["state"] == "succeeded"


def test_reconnecting_with_last_event_id_resumes_without_a_gap(gateway: Gateway) -> None:
    """Resuming after any event id yields exactly the events after it."""
    with gateway.client(gateway.operator) as client:
        workflow_id = _submit(client)["workflow_id"]
        full = _sse(client, f"/api/v1/workflows/{workflow_id}/events")
        for cut in range(len(full) - 1):
            resumed = _sse(
                client,
                f"/api/v1/workflows/{workflow_id}/events",
                headers={"Last-Event-ID": str(full[cut]["id"])},
            )
            assert resumed == full[cut + 1 :]


def test_the_firehose_resumes_across_workflows(gateway: Gateway) -> None:
    """The firehose from an id streams later events of every workflow in stream order."""
    with gateway.client(gateway.operator) as client:
        first = _submit(client)["workflow_id"]
        done = _sse(client, f"/api/v1/workflows/{first}/events")
        start = done[0]["id"] - 1
        ws_url = gateway.url.replace("http://", "ws://") + f"/api/v1/events?after={start}"
        with connect(
            ws_url, additional_headers={"Authorization": f"Bearer {gateway.operator}"}
        ) as ws:
            seen = [json.loads(ws.recv(timeout=30)) for _ in range(len(done))]
    ours = [e for e in seen if e["event"]["workflow_id"] == first]
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    assert ours == [e["data"] for e in done][: len(ours)]


def test_an_idempotency_key_submits_once(gateway: Gateway) -> None:
    """The same Idempotency-Key twice: one workflow, the second answer marked duplicate."""
    key = f"http-{secrets.token_hex(6)}"
    with gateway.client(gateway.operator) as client:
        first = client.post(
            "/api/v1/workflows", json={"template": "hello"}, headers={"Idempotency-Key": key}
        ).json()
        again = client.post("/api/v1/workflows", json={"template": "hello", "idempotency_key": key})
    assert first == {**first, "workflow_id": key, "duplicate": False}
    assert again.json()["duplicate"] is True
    assert again.json()["workflow_id"] == key


def test_result_logs_rerun_and_cancel(gateway: Gateway) -> None:
    """A finished workflow's result and step logs; a re-run links back and can be cancelled."""
    with gateway.client(gateway.operator) as client:
        workflow_id = _submit(client)["workflow_id"]
        _sse(client, f"/api/v1/workflows/{workflow_id}/events")
        _ended(client, workflow_id)  # the tracker's view follows the events it derives from
        result = client.get(f"/api/v1/workflows/{workflow_id}/result").json()
        step = result["steps"][0]["name"]
        logs = client.get(f"/api/v1/workflows/{workflow_id}/steps/{step}/logs").json()
        rerun = client.post(f"/api/v1/workflows/{workflow_id}/rerun")
        again = rerun.json()["workflow_id"]
        # A re-run is accepted into the task stream; it can be cancelled once the task
        # manager has taken it (before that its id is unknown: 404).
        _known(client, again)
        cancelled = client.post(f"/api/v1/workflows/{again}/cancel", json={"reason": "test"})
        missing = client.get("/api/v1/workflows/no-such-workflow")
    assert result["state"] == "succeeded"
    assert logs["step"] == step
    assert logs["state"] == "succeeded"
    assert rerun.status_code == 202
    assert rerun.json()["rerun_of"] == workflow_id
    assert cancelled.status_code == 202
    assert cancelled.json()["workflow_id"] == again
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_a_workflow_submitted_by_the_cli_is_rerun_over_http(gateway: Gateway) -> None:
    """``POST .../rerun`` repeats the inputs the task manager kept of a ``troupe submit``."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "actors",
            "submit",
            "hello",
            "-p",
            "who=cli",
            "--label",
            "origin=cli",
            "--nats-url",
            gateway.nats_url,
            "--user",
            "operator",
            "--password-file",
            str(password_path(gateway.state_dir, "operator")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    workflow_id = done.stdout.strip().splitlines()[-1]
    with gateway.client(gateway.operator) as client:
        _known(client, workflow_id)
        rerun = client.post(f"/api/v1/workflows/{workflow_id}/rerun")
        assert rerun.status_code == 202, rerun.text
        again = rerun.json()["workflow_id"]
        view = _ended(client, again)
        logs = client.get(f"/api/v1/workflows/{again}/steps/shout/logs").json()
    assert rerun.json()["rerun_of"] == workflow_id
    assert view["state"] == "succeeded"
    assert view["labels"] == {"origin": "cli", "rerun_of": workflow_id}
    assert "HELLO, CLI" in logs["stdout"]


def test_bodies_over_the_limit_and_bad_json_get_typed_errors(gateway: Gateway) -> None:
    """413 too_large, 400 bad_request, 404 for an unknown route: all ApiError bodies."""
    with gateway.client(gateway.operator) as client:
        big = client.post(
            "/api/v1/workflows",
            content=b'{"template": "' + b"x" * (2 * 1024 * 1024) + b'"}',
            headers={"content-type": "application/json"},
        )
        bad = client.post(
            "/api/v1/workflows", content=b"{nope", headers={"content-type": "application/json"}
        )
        both = client.post("/api/v1/workflows", json={})
        nowhere = client.get("/api/v1/nowhere")
    assert (big.status_code, big.json()["code"]) == (413, "too_large")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")
    assert (both.status_code, both.json()["code"]) == (400, "bad_request")
    assert (nowhere.status_code, nowhere.json()["code"]) == (404, "not_found")


def test_the_openapi_document_is_3_1_and_lists_every_operation(gateway: Gateway) -> None:
    """``/api/openapi.json`` is OpenAPI 3.1 with the workflow, event and token paths."""
    document = httpx.get(f"{gateway.url}/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    for path in ("/api/v1/workflows", "/api/v1/workflows/{workflow_id}/events", "/api/v1/tokens"):
        assert path in document["paths"]
    assert "WorkflowView" in document["components"]["schemas"]


def test_cors_is_off_unless_configured(gateway: Gateway) -> None:
    """A cross-origin preflight gets no CORS headers from a default gateway."""
    response = httpx.options(
        f"{gateway.url}/api/v1/workflows",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_live_logs_stream_a_running_steps_lines_until_the_workflow_ends(gateway: Gateway) -> None:
    """``GET .../logs`` (SSE) sends each line the step prints, then ends with the workflow."""
    # The step may run as an unprivileged user: the gate is where it can see it.
    shared = Path(tempfile.mkdtemp(prefix="troupe-logs-"))
    shared.chmod(0o755)
    gate = shared / "gate"
    run = f"while [ ! -e {gate} ]; do echo tick; sleep 0.05; done; echo bye"
    pipeline = {"name": "ticker", "steps": [{"name": "talk", "run": run, "backend": "local"}]}
    lines: list[dict[str, Any]] = []
    with gateway.client(gateway.operator) as client:
        response = client.post("/api/v1/workflows", json={"pipeline": pipeline})
        assert response.status_code == 202, response.text
        workflow_id = response.json()["workflow_id"]
        missing = client.get("/api/v1/workflows/no-such-workflow/logs")
        assert missing.status_code == 404
        # Logs are followed for a workflow the tracker knows (before that: 404).
        _known(client, workflow_id)
        with client.stream("GET", f"/api/v1/workflows/{workflow_id}/logs?step=talk") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kinds = set()
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kinds.add(line[7:])
                elif line.startswith("data: "):
                    lines.append(json.loads(line[6:]))
                    gate.touch()
        view = _ended(client, workflow_id)
    assert kinds == {"troupe.pipelines.v1.output"}
    assert lines[0]["line"] == "tick"
    assert lines[-1]["line"] == "bye"
    assert {(item["workflow_id"], item["step"]) for item in lines} == {(workflow_id, "talk")}
    assert view["state"] == "succeeded"
    shutil.rmtree(shared)


def test_a_multi_megabyte_artifact_streams_byte_identical_with_its_digest(
    gateway: Gateway,
) -> None:
    """The artifact route streams a several-chunk output whole; its Digest header matches."""
    step = {
        "name": "big",
        "run": "head -c 3500000 /dev/urandom > big.bin && sha256sum big.bin",
        "outputs": ["big.bin"],
    }
    body = {"pipeline": {"name": "big-artifact", "backend": "local", "steps": [step]}}
    with gateway.client(gateway.operator) as client:
        response = client.post("/api/v1/workflows", json=body)
        assert response.status_code == 202, response.text
        workflow_id = response.json()["workflow_id"]
        events = _sse(client, f"/api/v1/workflows/{workflow_id}/events")
        assert _states(events)[-1] == "succeeded", events[-1]
        logs = client.get(f"/api/v1/workflows/{workflow_id}/steps/big/logs").json()
        with client.stream("GET", f"/api/v1/workflows/{workflow_id}/artifacts/big.bin") as got:
            assert got.status_code == 200
            content = b"".join(got.iter_bytes())
            digest = got.headers["digest"]
    printed = logs["stdout"].split()[0]
    assert len(content) == 3_500_000
    assert hashlib.sha256(content).hexdigest() == printed
    assert digest == f"sha-256={printed}"
