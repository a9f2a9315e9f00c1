"""A client that speaks only JSON: nats-py and the standard library, nothing of troupe.

Run by ``tests/actors/test_json_client.py`` as its own process, so the absence
of troupe and MessagePack is real. It uses only subjects and shapes the README
and ``troupe schema`` document, and prints one JSON report on stdout.

Usage: python json_client.py NATS_URL AGENT_USER AGENT_PASSWORD
"""

import asyncio
import json
import sys
import time
import uuid

import nats

JSON = {"Content-Type": "application/json"}
TERMINAL = {"succeeded", "failed", "rejected", "cancelled", "timed_out"}


def body(message: dict) -> bytes:
    return json.dumps(message).encode()


async def micro(nc, verb: str) -> list:
    """Every answer to $SRV.<verb>: gathered until 1 s passes without a new one (10 s at most)."""
    answers = []
    arrived = asyncio.Event()
    inbox = nc.new_inbox()

    async def collect(msg) -> None:
        answers.append(json.loads(msg.data))
        arrived.set()

    sub = await nc.subscribe(inbox, cb=collect)
    await nc.publish(f"$SRV.{verb}", b"", reply=inbox)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), 1.0 if answers else end - time.monotonic())
        except TimeoutError:
            break
    await sub.unsubscribe()
    return answers


async def request(nc, subject: str, message: dict) -> tuple:
    """Send a JSON request; return (content type, error code or None, decoded answer)."""
    reply = await nc.request(subject, body(message), headers=JSON, timeout=5)
    headers = reply.headers or {}
    return (
        headers.get("Content-Type"),
        headers.get("Nats-Service-Error-Code"),
        json.loads(reply.data),
    )


async def submit(nc, task: dict) -> None:
    await nc.jetstream().publish(
        "troupe.tasks.submit",
        body(task),
        headers={**JSON, "Nats-Msg-Id": task["task_id"]},
    )


async def poll(nc, workflow_id: str, deadline: float = 60) -> dict:
    end = time.monotonic() + deadline
    answer: dict = {}
    while time.monotonic() < end:
        _, error, answer = await request(nc, "troupe.status.get", {"workflow_id": workflow_id})
        if error is None and answer["state"] in TERMINAL:
            return answer
        await asyncio.sleep(0.2)
    return answer


async def follow_live(nc, report: dict) -> str:
    """Subscribe to a workflow's updates, then submit it: every update must be JSON."""
    workflow_id = f"json-live-{uuid.uuid4().hex[:8]}"
    updates: asyncio.Queue = asyncio.Queue()
    sub = await nc.subscribe(f"troupe.status.updates.{workflow_id}", cb=updates.put)
    await nc.flush()
    await submit(nc, {"task_id": workflow_id, "template": "hello", "params": {"who": "json"}})
    states, content_types, progress = [], set(), []
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            msg = await asyncio.wait_for(updates.get(), max(0.1, end - time.monotonic()))
        except TimeoutError:
            break
        content_types.add((msg.headers or {}).get("Content-Type"))
        view = json.loads(msg.data)
        states.append(view["state"])
        progress.append(view["progress"])
        if view["state"] in TERMINAL:
            break
    await sub.unsubscribe()
    report["live"] = {"states": states, "content_types": sorted(map(str, content_types))}
    report["live"]["progress_rose"] = progress == sorted(progress)
    return workflow_id


async def inline(nc, report: dict) -> None:
    workflow_id = f"json-inline-{uuid.uuid4().hex[:8]}"
    pipeline = {
        "name": "inline-json",
        "backend": "local",
        "steps": [
            {"name": "one", "run": "echo one > one.txt", "outputs": ["one.txt"]},
            {"name": "two", "run": "cat one.txt", "needs": ["one"], "inputs": ["one.txt"]},
        ],
    }
    await submit(nc, {"task_id": workflow_id, "pipeline": pipeline})
    report["inline"] = (await poll(nc, workflow_id)).get("state")


async def errors(nc, report: dict) -> None:
    found = {}
    _, code, answer = await request(nc, "troupe.status.get", {"workflow_id": "no such id!"})
    found["bad_id"] = [code, answer.get("code")]
    _, code, answer = await request(nc, "troupe.status.get", {"workflow_id": "never-submitted"})
    found["unknown"] = [code, answer.get("code")]
    _, code, answer = await request(nc, "troupe.pipelines.result", {"workflow_id": 7})
    found["wrong_type"] = [code, answer.get("code")]
    bad = f"json-bad-{uuid.uuid4().hex[:8]}"
    await submit(nc, {"task_id": bad, "template": "hello", "params": {"who": ["not", "a", "str"]}})
    view = await poll(nc, bad)
    found["invalid_submit"] = [view.get("state"), view.get("reason", "").split(":")[0]]
    report["errors"] = found


async def register_agent(url: str, name: str, password: str, client, report: dict) -> None:
    """As the agent issued as ``name``, write JSON heartbeats; as a client, see it listed."""
    agent_id = name
    user = f"agent-{name}"
    agent = await nats.connect(url, user=user, password=password, inbox_prefix=f"_INBOX_{user}")
    started = time.time()
    listed: list = []
    try:
        for _ in range(50):
            now = time.time()
            heartbeat = {
                "agent_id": agent_id,
                "name": "JSON agent",
                "capabilities": [{"name": "json.echo", "version": "1.0"}],
                "inbox": f"troupe.agents.inbox.{agent_id}",
                "started_at": started,
                "heartbeat_at": now,
                "interval_s": 1.0,
                "ttl_s": 3.0,
            }
            await agent.jetstream().publish(
                f"$KV.troupe-agents.{agent_id}",
                body(heartbeat),
                headers={**JSON, "Nats-TTL": "3"},
            )
            _, _, answer = await request(client, "troupe.agents.list", {})
            listed = [view["info"]["agent_id"] for view in answer.get("agents", [])]
            if agent_id in listed:
                break
            await asyncio.sleep(0.2)
        _, _, found = await request(client, "troupe.agents.find", {"capability": "json.echo"})
        report["agent"] = {
            "listed": agent_id in listed,
            "found": [v["info"]["agent_id"] for v in found.get("agents", [])] == [agent_id],
        }
    finally:
        await agent.close()


async def main(url: str, client_password: str, agent: str, agent_password: str) -> dict:
    report: dict = {}
    nc = await nats.connect(url, user="client", password=client_password)
    try:
        for verb in ("PING", "INFO", "STATS"):
            report[verb] = await micro(nc, verb)
        workflow_id = await follow_live(nc, report)
        ctype, code, result = await request(
            nc, "troupe.pipelines.result", {"workflow_id": workflow_id}
        )
        report["result"] = {
            "content_type": ctype,
            "error": code,
            "type": result.get("type"),
            "state": result.get("state"),
            "steps": [step["name"] for step in result.get("steps", [])],
        }
        await inline(nc, report)
        await errors(nc, report)
        await register_agent(url, agent, agent_password, nc, report)
    finally:
        await nc.close()
    report["modules"] = sorted(
        name for name in ("actors", "protocols", "msgpack", "msgspec") if name in sys.modules
    )
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
