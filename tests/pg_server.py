"""A real PostgreSQL server for the tests, started in a temporary folder.

Where the binaries come from, first found wins:

1. ``IEVENTS_TEST_PG_BIN`` (a folder holding ``initdb``, ``pg_ctl`` and ``postgres``);
2. the machine's own PostgreSQL (``/usr/lib/postgresql/*/bin``, or ``pg_ctl`` on PATH);
3. the ``pgserver`` package from PyPI (test extras), which ships the binaries.

PostgreSQL refuses to run as root, so when the tests run as root (CI, containers) the
server runs as the ``postgres`` user (else ``nobody``), in a folder handed to that user.
It listens on a free loopback port, and on a Unix socket in its folder; ``trust``
authentication for a superuser ``ievents_test`` and a password for ``ievents_app``.

Each pytest-xdist worker runs its own server (some tests stop or restart theirs), but
``initdb`` and the set-up run once per test run: the first worker saves its stopped,
set-up cluster as a template in a folder all workers share, the others copy it (0.8 s of
CPU for initdb, against a few milliseconds for the copy).
"""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Set by the test run's xdist controller (conftest.py): a folder all its workers, and the
# processes they start, share for the run; the cluster template goes there.
SHARED_DIR_VARIABLE = "IEVENTS_TEST_SHARED_DIR"

SUPERUSER = "ievents_test"
APP_USER = "ievents_app"
APP_PASSWORD = "app-pw-Zq81x"
DATABASE = "ievents_test"


def find_binaries() -> tuple[Path | None, str]:
    """The folder holding initdb/pg_ctl/postgres, and where it came from (for messages)."""
    wanted = ("initdb", "pg_ctl", "postgres")

    def complete(folder: Path) -> bool:
        return all((folder / name).is_file() for name in wanted)

    given = os.environ.get("IEVENTS_TEST_PG_BIN")
    if given:
        return (Path(given), "IEVENTS_TEST_PG_BIN") if complete(Path(given)) else (None, given)
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if complete(Path(folder)):
            return Path(folder), "the machine's PostgreSQL"
    on_path = shutil.which("pg_ctl")
    if on_path and complete(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent, "the machine's PostgreSQL"
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if complete(folder):
            return folder, "pgserver (PyPI)"
    return None, ""


def run_shared_folder() -> Path | None:
    """The folder this test run's workers share, when running under one (else None)."""
    folder = os.environ.get(SHARED_DIR_VARIABLE)
    return Path(folder) if folder and os.environ.get("PYTEST_XDIST_WORKER") else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL cluster: :meth:`start`, :meth:`stop`, :meth:`restart`, :meth:`uri`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="ievents-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "server.log"
        self._user: pwd.struct_passwd | None = None
        self._admin: Any = None  # psycopg connection for admin(), opened on first use
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self._user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            if self._user is None:
                raise RuntimeError("running as root and no postgres or nobody user to run as")
            os.chmod(self.root, 0o755)
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)

    def _run(self, args: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._user is not None:
            command = [
                "setpriv",
                f"--reuid={self._user.pw_uid}",
                f"--regid={self._user.pw_gid}",
                "--clear-groups",
                "--",
                *command,
            ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            command,
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            check=True,
            **kwargs,
        )

    def initdb(self) -> None:
        """Create the cluster: a superuser with trust auth on the socket and loopback."""
        self._run(
            [
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            timeout=120,
        )
        hba = self.data / "pg_hba.conf"
        # The app user must give its password; everyone else is trusted (tests only).
        hba.write_text(
            f"local all {APP_USER} scram-sha-256\n"
            f"host all {APP_USER} 127.0.0.1/32 scram-sha-256\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        if self._user is not None:
            os.chown(hba, self._user.pw_uid, self._user.pw_gid)

    def start_first(self) -> None:
        """The first start: on another free port when another process took this one
        between :func:`free_port` and the server's bind (seen once under load)."""
        for attempt in range(1, 4):
            try:
                self.start()
                return
            except RuntimeError as exc:
                if attempt == 3 or "already in use" not in str(exc):
                    raise
                self.port = free_port()

    def start(self) -> None:
        """Start (or start again) the server on the same port; waits until it answers.
        Raises RuntimeError with the end of the server's log when it does not start."""
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        try:
            self._run(
                ["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"],
                timeout=60,
            )
        except subprocess.CalledProcessError as exc:
            try:
                log = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            except OSError:
                log = []
            raise RuntimeError(
                f"pg_ctl start failed ({exc.returncode}); the server's log ends: " + " | ".join(log)
            ) from exc

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` ends every session, as a restart does)."""
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"], timeout=60)

    def restart(self) -> None:
        """Stop and start again: every connection is cut."""
        self.stop()
        self.start()

    def uri(self, database: str = DATABASE, user: str = SUPERUSER, password: str = "") -> str:
        """A ``postgresql://`` URI for loopback TCP."""
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser in ``database`` and return what psql printed."""
        done = self._run(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
            timeout=60,
        )
        return done.stdout

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser on one kept connection (no psql process).

        After a restart (the relay tests make some) the kept connection is dead: it is
        opened again once.
        """
        import psycopg

        for attempt in (1, 2):
            if self._admin is None or self._admin.closed:
                self._admin = psycopg.connect(
                    host=str(self.root),
                    port=self.port,
                    user=SUPERUSER,
                    dbname="postgres",
                    autocommit=True,
                )
            try:
                self._admin.execute(sql.encode())
                return
            except psycopg.OperationalError:
                self._admin.close()
                if attempt == 2:
                    raise

    def setup(self, shared: Path | None = None) -> None:
        """initdb, start, and make the test database and the password-protected app role.

        With ``shared`` (a folder every worker of the run sees), the first server set up
        is saved there as a stopped cluster, and later ones start from a copy of it.
        """
        if shared is None:
            self._set_up_fresh()
            return
        template = shared / "pg-template"
        with open(shared / "pg-template.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (template / "PG_VERSION").exists():
                self._set_up_fresh()
                self.stop()  # a clean shutdown: the saved files are consistent
                partial = shared / "pg-template.partial"
                shutil.rmtree(partial, ignore_errors=True)
                shutil.copytree(self.data, partial, symlinks=True)
                partial.rename(template)
            else:
                shutil.copytree(template, self.data, symlinks=True)
                if self._user is not None:
                    for path in [self.data, *self.data.rglob("*")]:
                        os.chown(path, self._user.pw_uid, self._user.pw_gid, follow_symlinks=False)
        self.start_first()

    def _set_up_fresh(self) -> None:
        self.initdb()
        self.start_first()
        self.admin(f"CREATE DATABASE {DATABASE}")
        self.admin(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
        self.admin(f"GRANT CREATE ON DATABASE {DATABASE} TO {APP_USER}")

    def close(self) -> None:
        """Stop the server (if running) and delete its folder."""
        if self._admin is not None:
            self._admin.close()
        try:
            self.stop("immediate")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server accepts TCP connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not come up")
