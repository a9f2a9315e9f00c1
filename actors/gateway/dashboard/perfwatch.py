"""The gateway's watch of the workflows bucket, held only while the performance page is read.

The performance page draws from :class:`~actors.gateway.dashboard.perfdata.RecentViews`,
the newest workflow views kept live by a watch of the workflows bucket. Such a
watch decodes every view the status tracker writes (several per workflow), so
:class:`PerfWatch` runs it only while someone reads the page: the first read
starts it (that read, and any until the watch has caught up, are answered by
the status tracker), and :attr:`PerfWatch.idle_s` of the injected clock after
the last read it stops and its views are dropped; the next read starts it
again. A gateway nobody looks at receives none of the workflows' views.
"""

from __future__ import annotations

import asyncio
import logging

from actors.gateway.config import DEFAULT_PERF_IDLE_S
from actors.gateway.dashboard.perfdata import MAX_VIEWS, PerfView, RecentViews
from actors.runtime.actor import Actor
from actors.runtime.clock import Clock, system_clock
from actors.runtime.handlers import WatchSpec
from actors.runtime.topology import BucketSpec

__all__ = ["WATCH_NAME", "PerfWatch"]

log = logging.getLogger(__name__)

WATCH_NAME = "watch-workflows"
"""The watch's name in the gateway's ``$SRV.INFO`` while it runs."""


class PerfWatch:
    """The newest workflow views from a watch that runs while the performance page is read.

    The watch is a handler of ``host`` and its idle timer a background task of
    ``host``: stopping the actor ends both.

    Args:
        host: the actor running the watch.
        bucket: the workflows bucket.
        clock: time source of the idle period.
        idle_s: seconds the watch is kept after the last read.
        keep: views kept (see :class:`~actors.gateway.dashboard.perfdata.RecentViews`).

    Raises:
        ValueError: ``idle_s`` is not positive or ``keep`` is less than 1.
    """

    def __init__(
        self,
        host: Actor,
        bucket: BucketSpec,
        *,
        clock: Clock = system_clock,
        idle_s: float = DEFAULT_PERF_IDLE_S,
        keep: int = MAX_VIEWS,
    ) -> None:
        if not idle_s > 0:
            raise ValueError("idle_s must be positive")
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.idle_s = idle_s
        self.keep = keep
        self._host = host
        self._bucket = bucket
        self._clock = clock
        self._spec: WatchSpec | None = None
        self._views: RecentViews | None = None
        self._last_read = float("-inf")
        self._changing = asyncio.Lock()

    @property
    def watching(self) -> bool:
        """Whether the watch runs now."""
        return self._spec is not None

    @property
    def views(self) -> RecentViews | None:
        """The views the running watch keeps (maybe not caught up yet); ``None`` when stopped."""
        return self._views

    async def live(self) -> RecentViews | None:
        """Count a read of the page; return the kept views once the watch has caught up.

        Starts the watch if it does not run (and the host does).

        Returns:
            The views, or ``None`` while the watch catches up, could not start
            or the host does not run: the caller asks the status tracker then.
        """
        self._last_read = self._clock.monotonic()
        if self._spec is None:
            await self._start()
        views = self._views
        return views if views is not None and views.ready else None

    async def _start(self) -> None:
        async with self._changing:
            if self._spec is not None or not self._host.is_running:
                return
            views = RecentViews(self.keep)
            try:
                spec = await self._host.add_watch(
                    self._bucket,
                    views.mirror,
                    value_type=PerfView,
                    name=WATCH_NAME,
                    on_caught_up=views.caught_up,
                )
            except Exception as exc:  # noqa: BLE001 - the page is read from the tracker instead
                log.warning("gateway: cannot watch %s: %s", self._bucket.name, exc)
                return
            self._spec, self._views = spec, views
            try:
                self._host.spawn(self._expire(), name="perf-watch-idle")
            except RuntimeError:  # the actor began stopping: its stop ends the watch
                self._spec = self._views = None

    async def _expire(self) -> None:
        """Stop the watch once ``idle_s`` passed since the last read."""
        while True:
            left = self._last_read + self.idle_s - self._clock.monotonic()
            if left > 0:
                await self._clock.sleep(left)
                continue
            async with self._changing:
                if self._last_read + self.idle_s > self._clock.monotonic():
                    continue  # read while the lock was awaited
                spec, self._spec, self._views = self._spec, None, None
                if spec is not None:
                    await self._host.remove_handler(spec)
                return
