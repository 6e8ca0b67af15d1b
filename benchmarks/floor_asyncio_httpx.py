"""The floor of issue 22, part 5: a minimal asyncio httpx client posting N events, 16 in flight.

    python benchmarks/floor_asyncio_httpx.py URL[,URL...] EVENTS [--concurrency 16] [--token T]

It posts EVENTS events to ``URL/events`` (a fake that answers at once) with one
``httpx.AsyncClient`` and C workers taking events from a shared counter, and prints one
JSON line: ``{"events", "seconds", "events_per_s", "cpu_s", "cpu_ms_per_event", "statuses"}``.
The time runs from the first request to the last answer (the interpreter's start and the
import of httpx are not counted: the benchmark times the whole process beside it). No
retries, no pacing, no outbox: nothing any real sender could do with less work.

Several URLs (comma-separated: the 10-workspace scenario) spread the events over them,
event ``i`` to URL ``i mod n``, one client per URL, still C in flight in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter


async def post_all(urls: list[str], token: str, events: int, concurrency: int) -> Counter[str]:
    """Post ``events`` events with ``concurrency`` in flight; the count of each status."""
    import contextlib

    import httpx

    statuses: Counter[str] = Counter()
    next_index = iter(range(events))
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30)
            )
            for url in urls
        ]

        async def worker() -> None:
            for index in next_index:
                body = {
                    "event_name": "floor-event",
                    "user_id": f"floor-{index}",
                    "created_at": 1_700_000_000 + index,
                    "metadata": {"plan": "pro", "source": "benchmark"},
                }
                client = clients[index % len(clients)]
                try:
                    answer = await client.post("/events", json=body)
                    statuses[str(answer.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("events", type=int)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--token", default=os.environ.get("INTERCOM_ACCESS_TOKEN", "floor"))
    args = parser.parse_args()
    import httpx  # noqa: F401  (imported before the clock starts)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    urls = args.url.split(",")
    statuses = asyncio.run(post_all(urls, args.token, args.events, args.concurrency))
    seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    print(
        json.dumps(
            {
                "events": args.events,
                "seconds": round(seconds, 4),
                "events_per_s": round(args.events / seconds, 1),
                "cpu_s": round(cpu, 4),
                "cpu_ms_per_event": round(1000 * cpu / max(args.events, 1), 3),
                "statuses": dict(statuses),
            }
        )
    )
    return 0 if statuses.get("202", 0) == args.events else 1


if __name__ == "__main__":
    raise SystemExit(main())
