"""The floor for a durable one-step workflow: the same work written with raw nats-py only.

A client publishes each task to a work-queue stream (``Nats-Msg-Id`` = task
id, file storage, like troupe's submit stream); one worker process pulls with
a durable consumer, spawns the step (``true``, with the task's own
environment), stores the result in a KV bucket and acknowledges; the client
waits for the result's key to be written. No validation, no status history, no
breaker, no cache, no trace: what is left is what this durability costs on
this server.

Worker: ``python -m benchmarks.durable_baseline URL`` with the admin password in
``BENCH_NATS_PASSWORD`` (user ``admin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import msgspec
import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType

__all__ = ["BUCKET", "STREAM", "SUBMIT", "Baseline", "worker"]

STREAM = "BENCH_BASE_WORK"
SUBMIT = "bench.base.submit"
BUCKET = "bench-base-results"
DURABLE = "bench-base-worker"
CONCURRENCY = 32


class Task(msgspec.Struct, frozen=True):
    """What a client submits."""

    task_id: str
    run: list[str]
    env: dict[str, str]


class Result(msgspec.Struct, frozen=True):
    """What the worker stores."""

    task_id: str
    exit_code: int


async def _connect(url: str) -> Client:
    return await nats.connect(url, user="admin", password=os.environ["BENCH_NATS_PASSWORD"])


async def setup(nc: Client) -> None:
    """Create the stream, its durable consumer and the result bucket (file storage)."""
    js = nc.jetstream()
    await js.add_stream(
        name=STREAM,
        subjects=[SUBMIT],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120.0,
    )
    await js.add_consumer(
        STREAM, ConsumerConfig(durable_name=DURABLE, ack_wait=30.0, max_ack_pending=1000)
    )
    await js.create_key_value(bucket=BUCKET, storage=StorageType.FILE)


async def worker(url: str) -> None:
    """Pull tasks, spawn each step, store its result, acknowledge; for ever."""
    nc = await _connect(url)
    js = nc.jetstream()
    kv = await js.key_value(BUCKET)
    sub = await js.pull_subscribe_bind(durable=DURABLE, stream=STREAM)
    slots = asyncio.Semaphore(CONCURRENCY)
    decoder = msgspec.msgpack.Decoder(Task)
    encoder = msgspec.msgpack.Encoder()
    running: set[asyncio.Task[None]] = set()

    async def handle(msg: Msg) -> None:
        try:
            task = decoder.decode(msg.data)
            proc = await asyncio.create_subprocess_exec(
                *task.run, env=task.env, stdin=subprocess.DEVNULL
            )
            code = await proc.wait()
            await kv.put(task.task_id, encoder.encode(Result(task.task_id, code)))
            await msg.ack()
        finally:
            slots.release()

    while True:
        await slots.acquire()
        batch = 1
        while batch < CONCURRENCY and not slots.locked():
            await slots.acquire()
            batch += 1
        msgs: list[Msg] = []
        # nats-py raises either its own TimeoutError or asyncio's (the builtin one).
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            msgs = await sub.fetch(batch, timeout=0.5)
        for _ in range(batch - len(msgs)):
            slots.release()
        for msg in msgs:
            t = asyncio.create_task(handle(msg))
            running.add(t)
            t.add_done_callback(running.discard)


class Baseline:
    """The client side: submit a task, wait for its result.

    Args:
        nc: a connection logged in as admin on the troupe's server.
    """

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.done: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._encoder = msgspec.msgpack.Encoder()
        self._prefix = f"$KV.{BUCKET}."

    async def start(self) -> None:
        """Follow result writes (the KV bucket's subject, as a watch would)."""
        await self.nc.subscribe(f"{self._prefix}>", cb=self._on_result)
        await self.nc.flush()

    async def _on_result(self, msg: Msg) -> None:
        key = msg.subject[len(self._prefix) :]
        self.done[key] = asyncio.get_running_loop().time()
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, task_id: str, timeout: float = 120.0) -> None:
        """Submit one task (durably) and wait until its result is stored."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[task_id] = waiter
        task = Task(task_id=task_id, run=["true"], env={"BENCH_ID": task_id})
        await self.js.publish(
            SUBMIT, self._encoder.encode(task), headers={"Nats-Msg-Id": task_id}, timeout=10.0
        )
        if task_id not in self.done:
            await asyncio.wait_for(waiter, timeout)


@contextlib.contextmanager
def worker_process(url: str, password: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run :func:`worker` in its own process for the duration of the block."""
    env = {**os.environ, "BENCH_NATS_PASSWORD": password}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.durable_baseline", url], env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(worker(sys.argv[1]))
