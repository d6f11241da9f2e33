"""What a Sentinel failover loses: a ticket written just before the primary is SIGKILLed, with and without
REDIS_WAIT_REPLICAS=1, over N fresh primary+replica+sentinel trios (tests/helpers/sentinel.py).

    .venv/bin/python bench/failover_loss.py --trials 20

Each trial also runs a writer doing INCR as fast as it can while the primary is killed, and prints how many
acknowledged increments the promoted replica lacks (the async-replication window under load).

`--partitioned` replicates through a relay that is cut just before the ticket is written (the replica cut off
from the primary, as by a network partition): what the primary acknowledges from then on never reaches it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.sentinel import start_trio
from tools.redis_client import connect
from tools.tickets import TicketStore


class Link:
    """A TCP relay replica → primary whose `cut` drops everything from then on, both ways."""

    def __init__(self) -> None:
        self.cut = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def __call__(self, primary_port: int) -> int:
        threading.Thread(target=self._accept, args=(primary_port,), daemon=True).start()
        return self.port

    def _accept(self, primary_port: int) -> None:
        with contextlib.suppress(OSError):
            while True:
                replica, _ = self.listener.accept()
                primary = socket.create_connection(("127.0.0.1", primary_port))
                for source, target in ((replica, primary), (primary, replica)):
                    threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not self.cut:
                    target.sendall(data)

    def close(self) -> None:
        self.listener.close()


async def trial(work: Path, wait_replicas: int, partitioned: bool = False) -> tuple[bool, int]:
    link = Link() if partitioned else None
    trio = await asyncio.to_thread(start_trio, work, 1000, link)
    client = connect(trio.url, decode_responses=True)
    try:
        acknowledged = 0

        async def writer() -> None:
            nonlocal acknowledged
            with contextlib.suppress(Exception):
                while True:
                    acknowledged = await client.incr("counter")

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.2)
        store = TicketStore(client, wait_replicas=wait_replicas, wait_timeout_ms=500)
        if link:
            link.cut = True
        ticket, _ = await store.open_or_update("s", reason="refund", transcript=[], sources=[])
        trio.kill_primary()  # right after the write was acknowledged
        seen = acknowledged
        task.cancel()
        await asyncio.to_thread(trio.wait_promoted)
        survived = await store.get(ticket.ticket_id) is not None
        on_replica = int(await client.get("counter") or 0)
        return survived, max(0, seen - on_replica)
    finally:
        await client.aclose()
        trio.stop()
        if link:
            link.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--partitioned", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for wait_replicas in (0, 1):
            results = [
                await trial(Path(work) / f"w{wait_replicas}-{n}", wait_replicas, args.partitioned)
                for n in range(args.trials)
            ]
            kept = sum(survived for survived, _ in results)
            lost = [n for _, n in results]
            mode = "partitioned, " if args.partitioned else ""
            print(
                f"{mode}REDIS_WAIT_REPLICAS={wait_replicas}: tickets kept {kept}/{args.trials}; acknowledged INCRs "
                f"missing on the promoted replica per trial: min {min(lost)}, max {max(lost)}, total {sum(lost)}"
            )


if __name__ == "__main__":
    asyncio.run(main())
