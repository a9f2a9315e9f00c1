"""Submit a task to troupe from plain nats-py, without importing troupe, and wait for it.

Usage: python examples/raw_client.py [NATS_URL]

Any NATS client in any language can do the same: publish JSON with the header
``Content-Type: application/json`` and answers come back as JSON.
"""

import asyncio
import json
import sys
import time
import uuid

import nats


async def main(url: str) -> str:
    nc = await nats.connect(url)
    try:
        task_id = f"raw-{uuid.uuid4().hex[:12]}"
        # Submit: a JetStream publish; Nats-Msg-Id makes a re-send harmless.
        ack = await nc.jetstream().publish(
            "troupe.tasks.submit",
            json.dumps(
                {"type": "troupe.tasks.v1.submit", "task_id": task_id, "template": "hello"}
            ).encode(),
            headers={"Content-Type": "application/json", "Nats-Msg-Id": task_id},
        )
        print(f"submitted {task_id} (stream {ack.stream}, seq {ack.seq})")
        # Follow: ask the status tracker until the workflow reaches a final state.
        state = "submitted"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = await nc.request(
                "troupe.status.get",
                json.dumps({"workflow_id": task_id}).encode(),
                headers={"Content-Type": "application/json"},
                timeout=5,
            )
            answer = json.loads(reply.data)
            if "state" in answer:  # an error reply ({"code": "not_found", ...}) until known
                state = answer["state"]
                if state in {"succeeded", "failed", "rejected", "cancelled", "timed_out"}:
                    break
            await asyncio.sleep(0.2)
        print(f"{task_id}: {state}")
        return state
    finally:
        await nc.close()


if __name__ == "__main__":
    final = asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222"))
    sys.exit(0 if final == "succeeded" else 1)
