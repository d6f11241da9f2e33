"""Keeps the launcher's children running: one that exits is logged and started again, with back-off; `stop()`
stops them all.

One watcher thread per child polls its process (which also reaps it: no defunct children). After an exit it
waits 1 s, then 2, 4 … at most 30 s before each new try; a child that stayed up for a minute starts again at
1 s. While a child is down, `restarting()` names it for `/ready` (api/health.py).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field

from launcher.services import Service, StartError, stop_all, wait_ready

log = logging.getLogger("launcher")

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # seconds up after which the next exit starts the back-off from FIRST_DELAY again
POLL = 0.5


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


@dataclass
class Child:
    part: str  # its name in /ready: "redis", "chroma", "llm:<url>"
    service: Service
    up_since: float = field(default_factory=time.monotonic)
    down_since: float | None = None
    restarts: int = 0  # in a row, without a minute up in between


class Supervisor:
    """Watches children added with `add`; restarts one that exits until `stop()`."""

    def __init__(self, first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.children: list[Child] = []
        self._stopping = threading.Event()
        self._spawning = threading.Lock()  # held while a process is replaced: stop() never misses a new one
        self._threads: list[threading.Thread] = []

    def add(self, part: str, service: Service) -> Service:
        """Watch `service` (already started and ready) from now on."""
        child = Child(part, service)
        self.children.append(child)
        thread = threading.Thread(target=self._watch, args=(child,), name=f"watch-{service.name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return service

    def restarting(self) -> dict[str, dict[str, float | int]]:
        """The parts that exited and are not back yet: restarts in a row, seconds down."""
        now = time.monotonic()
        return {
            child.part: {"restarts": child.restarts, "down_s": round(now - child.down_since, 1)}
            for child in self.children
            if child.down_since is not None
        }

    def stop(self, timeout: float = 10.0) -> None:
        """No more restarts; SIGTERM to every child at once, SIGKILL to any still running after `timeout`."""
        self._stopping.set()
        with self._spawning:  # a process being spawned now is in `children` once this returns
            pass
        for thread in self._threads:
            thread.join(5)
        stop_all([child.service for child in self.children], timeout)

    def _watch(self, child: Child) -> None:
        while not self._stopping.wait(POLL):
            code = child.service.process.poll()
            if code is None:
                continue
            try:
                self._revive(child, code)
            except Exception:  # a bug here must not end the watch: the next exit is still seen
                log.exception("supervising %s", child.service.name)

    def _revive(self, child: Child, code: int) -> None:
        now = time.monotonic()
        service = child.service
        if child.down_since is None:
            child.down_since = now
            if now - child.up_since >= STABLE_AFTER:
                child.restarts = 0
        delay = min(self.first_delay * 2**child.restarts, self.max_delay)
        child.restarts += 1
        log.warning(
            "%s (pid %d) exited with %s; restarting in %.0f s (restart %d in a row; log: %s)",
            service.name,
            service.process.pid,
            exit_reason(code),
            delay,
            child.restarts,
            service.log_path,
        )
        if self._stopping.wait(delay) or service.spawn is None or service.ready is None:
            return
        with self._spawning:
            if self._stopping.is_set():
                return
            service.process = service.spawn()
        try:
            wait_ready(service, service.ready, service.ready_timeout, cancelled=self._stopping.is_set)
        except StartError as error:
            if not self._stopping.is_set():
                log.error("%s did not come back: %s", service.name, str(error).splitlines()[0])
            return  # the process is stopped: the next poll sees it and backs off further
        child.up_since = time.monotonic()
        log.info(
            "%s is back at %s (pid %d) after %.1f s down",
            service.name,
            service.url,
            service.process.pid,
            child.up_since - (child.down_since or now),
        )
        child.down_since = None
