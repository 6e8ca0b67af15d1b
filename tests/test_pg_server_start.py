"""The tests' own PostgreSQL (tests/pg_server.py): a server whose port another process
took between free_port() and its bind starts on another port (a suite run under load
once lost a worker's 51 PostgreSQL tests to a server that did not start)."""

from __future__ import annotations

import socket
from typing import Any

from pg_server import PostgresServer, find_binaries, run_shared_folder


def test_a_server_whose_port_was_taken_starts_on_another(pg_server: Any) -> None:
    # pg_server: the binaries are there (else skipped, or failed under CI=true), and under
    # xdist the run's cluster template exists to start from.
    bin_dir, _ = find_binaries()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    taken = server.port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        try:
            server.setup(run_shared_folder())
            assert server.port != taken
            server.admin("SELECT 1")
        finally:
            server.close()
