"""Benchmark scenario 8 (issue 21, finding 3): what a scrape storm costs a relay's delivery.

A relay (``flush --watch --metrics-port``) delivers events already queued to the fake
Intercom (50 ms a request), in an outbox that also holds a ledger of delivered events
(250,000 in a full run: the summary a scrape asks for counts them all). Runs alternate
between no scraper and a storm (``benchmarks/scraper.py``: 8 threads in a process of
their own, each scraping ``/metrics`` in a loop as fast as answers come, on loopback).
The time measured is the relay's delivery: from the fake's first 202 to its last. The
ratio storm / none is the target (<= 1.10), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import REPO_ROOT
from outbox_bench import NO_PG, TimingIntercom, postgres

if TYPE_CHECKING:
    from run import Context, Row

SCRAPER = Path(__file__).resolve().parent / "scraper.py"
LATENCY_S = 0.05
STORM_SCRAPERS = 8

_LEDGER_SQLITE = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    "INSERT INTO events (dedup_key, payload, event_name, state, attempts, last_status, "
    "created, updated, next_attempt_at) SELECT 'ledger-' || i, "
    '\'{"created_at":\' || (1600000000 + i) || \',"event_name":"ledger","user_id":"l\' '
    "|| i || '\"}', 'ledger', 'delivered', 1, 202, 1600000000 + i, 1600000000 + i, "
    "1600000000 + i FROM n"
)
_LEDGER_PG = (
    "INSERT INTO ievents.events (dedup_key, payload, event_name, state, attempts, "
    "last_status, created, updated, next_attempt_at) SELECT 'ledger-' || i, "
    '\'{"created_at":\' || (1600000000 + i) || \',"event_name":"ledger","user_id":"l\' '
    "|| i || '\"}', 'ledger', 'delivered', 1, 202, 1600000000 + i, 1600000000 + i, "
    "1600000000 + i FROM generate_series(1, {n}) AS i"
)


def write_events(path: Path, count: int) -> None:
    """``count`` events with distinct user ids (the fake notes each one's 202)."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            record = {"event_name": "storm", "user_id": f"s{i}", "created_at": 1_700_000_000 + i}
            out.write(json.dumps(record) + "\n")


def _create_outbox(location: str) -> None:
    """An empty outbox made by ievents itself (the schema of this checkout)."""
    sys.path.insert(0, str(REPO_ROOT))
    from intercom_events_cli.outbox.store import open_store, resolve_location

    with open_store(resolve_location(location, {}), {}):
        pass


def sqlite_template(ctx: Context, ledger: int) -> Path:
    """An outbox file holding ``ledger`` delivered events, copied for each run."""
    path = ctx.workdir / f"scrape-ledger-{ledger}.sqlite3"
    if not path.exists():
        _create_outbox(str(path))
        with sqlite3.connect(path) as db:
            db.execute(_LEDGER_SQLITE, (ledger,))
        db.close()
    return path


def pg_template(server: Any, ledger: int) -> str:
    """A database holding ``ledger`` delivered events, the template of each run's."""
    name = f"bench_scrape_tmpl_{ledger}"
    if name not in server.psql("SELECT datname FROM pg_database"):
        server.admin(f"CREATE DATABASE {name} TEMPLATE template0")
        uri = str(server.uri(name))
        _create_outbox(uri)
        server.psql(_LEDGER_PG.replace("{n}", str(int(ledger))), name)
        server.psql("VACUUM ANALYZE ievents.events", name)
    return name


def run_once(
    ctx: Context, outbox: str, events_file: Path, events: int, scrapers: int
) -> dict[str, float]:
    """Queue the events, run a relay (scraped or not) until all are accepted."""
    from pg_server import free_port

    with TimingIntercom() as fake:
        fake.latency = LATENCY_S
        env = ctx.env(base_url=fake.url)
        env["IEVENTS_OUTBOX"] = outbox
        rundir = ctx.fresh_dir("scrape")
        subprocess.run(
            [*ctx.ievents, "batch", str(events_file), "--queue", "-q"],
            env=env,
            cwd=rundir,
            check=True,
            timeout=ctx.sizes.timeout,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        relay = subprocess.Popen(
            [*ctx.ievents, "flush", "--watch", "-q", "--metrics-port", str(port)],
            env=env,
            cwd=rundir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        storm = None
        if scrapers:
            storm = subprocess.Popen(
                [sys.executable, str(SCRAPER), str(port), str(scrapers), str(ctx.sizes.timeout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        scrapes = 0.0
        try:
            deadline = time.monotonic() + ctx.sizes.timeout
            while len(fake.accepted_at) < events and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            if storm is not None:
                out, _ = storm.communicate(input="", timeout=60)
                scrapes = float(out.split()[1]) if out.startswith("SCRAPES") else 0.0
            relay.send_signal(signal.SIGTERM)
            try:
                relay.wait(timeout=30)
            except subprocess.TimeoutExpired:
                relay.kill()
        if len(fake.accepted_at) < events:
            raise RuntimeError(f"{events - len(fake.accepted_at)} of {events} not delivered")
        stamps = fake.accepted_at.values()
        seconds = max(stamps) - min(stamps)
        return {"seconds": seconds, "scrapes": scrapes}


def scenario_scrape(ctx: Context, rows: list[Row]) -> None:
    """8. A relay's delivery with 0 and with 8 scrapers hammering its metrics."""
    from run import Row

    events, ledger = ctx.sizes.scrape_events, ctx.sizes.scrape_ledger
    storm_size = STORM_SCRAPERS if ledger >= 100_000 else 2
    name = f"8. scrape storm, {events:,} events, {ledger:,} in the ledger"
    events_file = ctx.workdir / f"storm-{events}.ndjson"
    write_events(events_file, events)
    with postgres() as server:
        for backend in ("SQLite", "PostgreSQL"):
            quiet = Row(
                name, f"flush --watch ({backend}), not scraped", unit_count=events, is_ievents=True
            )
            stormy = Row(
                name,
                f"flush --watch ({backend}), {storm_size} scrapers",
                unit_count=events,
                is_ievents=True,
            )
            rows += [quiet, stormy]
            if backend == "PostgreSQL" and server is None:
                quiet.status = stormy.status = NO_PG
                continue
            ctx.progress(f"{name}: {backend} ledger")
            template = (
                sqlite_template(ctx, ledger) if backend == "SQLite" else pg_template(server, ledger)
            )
            for index in range(ctx.sizes.bulk_repeat):
                for row, scrapers in ((quiet, 0), (stormy, storm_size)):  # taking turns
                    ctx.progress(f"{row.tool}: run {index + 1}")
                    if backend == "SQLite":
                        outbox_path = ctx.fresh_dir("scrape-outbox") / "outbox.sqlite3"
                        shutil.copyfile(template, outbox_path)
                        outbox = str(outbox_path)
                    else:
                        copy = f"bench_scrape_{random.getrandbits(40):x}"
                        server.admin(f"CREATE DATABASE {copy} TEMPLATE {template}")
                        outbox = str(server.uri(copy))
                    try:
                        result = run_once(ctx, outbox, events_file, events, scrapers)
                    except (RuntimeError, subprocess.SubprocessError) as exc:
                        row.failures.append(str(exc)[:80])
                        row.status = "failed"
                        continue
                    row.seconds.append(result["seconds"])
                    if scrapers:
                        rate = result["scrapes"] / max(result["seconds"], 1e-9)
                        row.extra.setdefault("scrapes_per_s", []).append(rate)
    events_file.unlink()


def scrape_targets(rows: list[Row]) -> list[Any]:
    """Issue 21: a scrape storm costs delivery at most 10 %."""
    from run import Target, find, unavailable

    out = []
    for backend in ("SQLite", "PostgreSQL"):
        quiet = find(rows, "8.", f"flush --watch ({backend}), not scraped")
        stormy = next(
            (
                r
                for r in rows
                if r.scenario.startswith("8.")
                and r.tool.startswith(f"flush --watch ({backend}), ")
                and "scrapers" in r.tool
            ),
            None,
        )
        name = f"scrape storm: delivery time, scraped / not ({backend})"
        reason = unavailable(quiet) or unavailable(stormy)
        if reason is not None or quiet is None or stormy is None:
            out.append(Target(name, "-", "<= 1.10", reason or "skipped"))
            continue
        ratio = (stormy.median_s or 0.0) / (quiet.median_s or 1e-9)
        measured = f"{ratio:.2f} ({stormy.median_s:.2f} s / {quiet.median_s:.2f} s)"
        out.append(Target(name, measured, "<= 1.10", "PASS" if ratio <= 1.10 else "MISS"))
    return out
