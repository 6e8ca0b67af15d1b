"""Benchmark scenarios of issue 11: a PostgreSQL outbox and the relay (``flush --watch``).

6. ``batch --queue`` of an NDJSON file into PostgreSQL (COPY), events/s and peak memory
   of the ievents process (the server's own memory is not counted).
7. Relay latency: events captured one by one with ``send --queue`` while a relay
   (``flush --watch``) runs; latency is from the row's capture time (stamped by
   ``send --queue`` in the outbox) to the fake Intercom's 202, per event; p95 reported.

The PostgreSQL server is the test suite's (``tests/pg_server.py``): the machine's
binaries or pgserver's. Without one, the PostgreSQL rows say so and are skipped.
"""

from __future__ import annotations

import atexit
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from harness import BENCH_TOKEN, REPO_ROOT, run_measured

sys.path.insert(0, str(REPO_ROOT / "tests"))

from fake_intercom import FakeIntercom  # noqa: E402

if TYPE_CHECKING:
    from run import Context, Row

NO_PG = "skipped (no PostgreSQL server binaries: install PostgreSQL or pgserver)"


_servers: list[Any] = []


@contextmanager
def postgres() -> Iterator[Any]:
    """The run's PostgreSQL server, or None: started on first use, stopped at exit.

    Scenarios 6 and 7 share it (each makes a fresh database): one initdb a run, not two.
    """
    from pg_server import PostgresServer, find_binaries, run_shared_folder

    if not _servers:
        folder, _origin = find_binaries()
        if folder is None:
            yield None
            return
        server = PostgresServer(folder)
        try:
            # Run by the test suite (its smoke test), from the run's cluster template, as
            # each test worker's server (tests/pg_server.py).
            server.setup(run_shared_folder())
        except BaseException:
            server.close()
            raise
        atexit.register(server.close)
        _servers.append(server)
    yield _servers[0]


def fresh_database(server: Any, label: str) -> str:
    name = f"bench_{label}_{random.getrandbits(40):x}"
    server.admin(f"CREATE DATABASE {name} TEMPLATE template0")
    return str(server.uri(name))


def scenario_postgres(ctx: Context, rows: list[Row]) -> None:
    """6. NDJSON into PostgreSQL with ``batch --queue``."""
    from run import Row, write_ndjson

    n = ctx.sizes.ndjson_lines
    row = Row(
        f"6. {n:,}-line NDJSON into PostgreSQL",
        "ievents batch --queue (PostgreSQL)",
        unit_count=n,
        is_ievents=True,
    )
    rows.append(row)
    source = ctx.workdir / "events.ndjson"
    write_ndjson(source, n)
    with postgres() as server:
        if server is None:
            row.status = NO_PG
            return
        for index in range(ctx.sizes.bulk_repeat):
            uri = fresh_database(server, "batch")
            rundir = ctx.fresh_dir("pg-batch")
            env = ctx.env(outbox=None)
            env["IEVENTS_OUTBOX"] = uri
            ctx.progress(f"{row.scenario}: run {index + 1}")
            result = run_measured(
                [*ctx.ievents, "batch", str(source), "--queue", "--json"],
                env=env,
                cwd=rundir,
                timeout=ctx.sizes.timeout,
            )
            stored = server.psql("SELECT count(*) FROM ievents.events", uri.rsplit("/", 1)[1])
            if not result.ok or int(stored.strip() or 0) != n:
                row.failures.append(result.failure_summary() + f" ({stored.strip()} stored)")
                row.status = "failed"
                continue
            row.seconds.append(result.seconds)
            row.peak_rss_mib.append(result.peak_rss_mib)
    source.unlink()


class TimingIntercom(FakeIntercom):
    """The fake Intercom, noting the wall-clock time of each 202 by user id."""

    def __init__(self) -> None:
        super().__init__(expected_token=BENCH_TOKEN)
        self.accepted_at: dict[str, float] = {}

    def _post_event(self, rec: Any) -> Any:
        status, body, headers = super()._post_event(rec)
        if status == 202:
            self.accepted_at.setdefault(str(rec.json().get("user_id")), time.time())
        return status, body, headers


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def relay_latencies(ctx: Context, outbox: str, events: int) -> list[float]:
    """Run a relay, capture ``events`` one by one, return capture-to-202 latencies."""
    sys.path.insert(0, str(REPO_ROOT))
    from intercom_events_cli.outbox import State
    from intercom_events_cli.outbox.store import open_store, resolve_location

    with TimingIntercom() as fake:
        env = ctx.env(base_url=fake.url)
        env["IEVENTS_OUTBOX"] = outbox
        rundir = ctx.fresh_dir("relay")
        relay = subprocess.Popen(
            [*ctx.ievents, "flush", "--watch", "-q"],
            env=env,
            cwd=rundir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(1.0)  # the relay is up and idle
            pacing = random.Random(7)
            for n in range(events):
                subprocess.run(
                    [*ctx.ievents, "send", "relay", "--user-id", f"r{n}", "--queue", "-q"],
                    env=env,
                    cwd=rundir,
                    check=True,
                    timeout=60,
                )
                time.sleep(pacing.uniform(0, 0.05))
            deadline = time.monotonic() + 60
            while len(fake.accepted_at) < events and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            relay.send_signal(signal.SIGTERM)
            try:
                relay.wait(timeout=30)
            except subprocess.TimeoutExpired:
                relay.kill()
        with open_store(resolve_location(outbox, {}), {}) as store:
            captured = {
                str(row.payload.get("user_id")): row.created
                for row in store.iter_rows([State.DELIVERED, State.PENDING, State.IN_FLIGHT])
            }
        missing = events - len(fake.accepted_at)
        if missing:
            raise RuntimeError(f"{missing} of {events} events not delivered within 60 s")
        return [fake.accepted_at[user] - captured[user] for user in fake.accepted_at]


def scenario_relay(ctx: Context, rows: list[Row]) -> None:
    """7. Relay latency on SQLite and PostgreSQL."""
    from run import Row

    n = ctx.sizes.relay_events
    name = f"7. relay latency, {n} events"
    sqlite_row = Row(name, "ievents flush --watch (SQLite), p95", is_ievents=True)
    pg_row = Row(name, "ievents flush --watch (PostgreSQL), p95", is_ievents=True)
    rows += [sqlite_row, pg_row]
    with postgres() as server:
        for row in (sqlite_row, pg_row):
            if row is pg_row and server is None:
                row.status = NO_PG
                continue
            for index in range(ctx.sizes.bulk_repeat):
                ctx.progress(f"{row.tool}: run {index + 1}")
                outbox = (
                    fresh_database(server, "relay")
                    if row is pg_row
                    else str(ctx.fresh_dir("relay-sqlite") / "outbox.sqlite3")
                )
                try:
                    latencies = relay_latencies(ctx, outbox, n)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    row.failures.append(str(exc)[:80])
                    row.status = "failed"
                    continue
                row.seconds.append(percentile(latencies, 0.95))
                row.extra.setdefault("p50", []).append(percentile(latencies, 0.5))
                row.extra.setdefault("max", []).append(max(latencies))
