"""Hand-written baselines the benchmark measures ievents against, one child process each.

    python benchmarks/baselines.py KIND --events N [--concurrency C] [--user-prefix P]

KIND is one of ``httpx-seq`` (a plain sequential httpx loop), ``httpx-async`` (asyncio +
httpx.AsyncClient with C requests in flight), ``sdk-seq`` (the official SDK in a loop) and
``sdk-async`` (the official SDK's async client with C in flight). Each reads
INTERCOM_BASE_URL and INTERCOM_ACCESS_TOKEN, sends N events and prints one JSON line:
``{"sent": N, "accepted": K, "statuses": {...}}``. Nothing retries: this is what a user's
own loop does, and the SDK does not retry by default either.

``parse-floor FILE`` reads an NDJSON file with nothing but ``json.loads`` per line (the
floor for a validating reader in Python); it prints ``{"lines": N}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from typing import Any

BASE_CREATED_AT = 1_700_000_000


def event_body(index: int, prefix: str) -> dict[str, Any]:
    """The same event shape every tool sends: a user id, a time and two metadata values."""
    return {
        "event_name": "bench-event",
        "created_at": BASE_CREATED_AT + index,
        "user_id": f"{prefix}{index}",
        "metadata": {"plan": "pro", "seats": "3"},
    }


def run_httpx_seq(url: str, token: str, events: int, prefix: str) -> Counter[str]:
    import httpx

    statuses: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for i in range(events):
            try:
                statuses[str(client.post("/events", json=event_body(i, prefix)).status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
    return statuses


def run_httpx_async(
    url: str, token: str, events: int, prefix: str, concurrency: int
) -> Counter[str]:
    import asyncio

    import httpx

    statuses: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=30, limits=limits
        ) as client:
            indexes = iter(range(events))

            async def worker() -> None:
                for i in indexes:
                    try:
                        reply = await client.post("/events", json=event_body(i, prefix))
                        statuses[str(reply.status_code)] += 1
                    except httpx.HTTPError as exc:
                        statuses[type(exc).__name__] += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())
    return statuses


def _sdk_status(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    return str(status) if status is not None else type(exc).__name__


def run_sdk_seq(url: str, token: str, events: int, prefix: str) -> Counter[str]:
    from intercom import Intercom

    statuses: Counter[str] = Counter()
    client = Intercom(token=token, base_url=url)
    for i in range(events):
        try:
            client.events.create(request=event_body(i, prefix))
            statuses["202"] += 1
        except Exception as exc:  # the SDK raises its own ApiError and httpx errors
            statuses[_sdk_status(exc)] += 1
    return statuses


def run_sdk_async(url: str, token: str, events: int, prefix: str, concurrency: int) -> Counter[str]:
    import asyncio

    from intercom import AsyncIntercom

    statuses: Counter[str] = Counter()

    async def main() -> None:
        client = AsyncIntercom(token=token, base_url=url)
        indexes = iter(range(events))

        async def worker() -> None:
            for i in indexes:
                try:
                    await client.events.create(request=event_body(i, prefix))
                    statuses["202"] += 1
                except Exception as exc:
                    statuses[_sdk_status(exc)] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())
    return statuses


def parse_floor(path: str) -> int:
    lines = 0
    with open(path, "rb") as handle:
        for raw in handle:
            if raw.strip():
                json.loads(raw)
                lines += 1
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "kind", choices=["httpx-seq", "httpx-async", "sdk-seq", "sdk-async", "parse-floor"]
    )
    parser.add_argument("file", nargs="?", help="NDJSON file (parse-floor only)")
    parser.add_argument("--events", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--user-prefix", default="bench-")
    args = parser.parse_args(argv)

    if args.kind == "parse-floor":
        if not args.file:
            parser.error("parse-floor needs a FILE")
        print(json.dumps({"lines": parse_floor(args.file)}))
        return 0

    url = os.environ["INTERCOM_BASE_URL"]
    token = os.environ["INTERCOM_ACCESS_TOKEN"]
    started = time.perf_counter()
    if args.kind == "httpx-seq":
        statuses = run_httpx_seq(url, token, args.events, args.user_prefix)
    elif args.kind == "httpx-async":
        statuses = run_httpx_async(url, token, args.events, args.user_prefix, args.concurrency)
    elif args.kind == "sdk-seq":
        statuses = run_sdk_seq(url, token, args.events, args.user_prefix)
    else:
        statuses = run_sdk_async(url, token, args.events, args.user_prefix, args.concurrency)
    summary = {
        "sent": sum(statuses.values()),
        "accepted": statuses.get("202", 0),
        "statuses": dict(statuses),
        "elapsed_s": round(time.perf_counter() - started, 4),
    }
    print(json.dumps(summary))
    return 0 if summary["accepted"] == args.events else 1


if __name__ == "__main__":
    sys.exit(main())
