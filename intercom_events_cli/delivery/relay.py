"""The relay behind ``ievents flush --watch``: deliver new events as they arrive.

A relay is the flush engine (:class:`~.engine.Deliverer`) kept running: when it has
nothing left to do it waits for a sign of new rows instead of ending.

The sign comes from the outbox's own :meth:`~.outbox.store.OutboxStore.waker` (PostgreSQL
``LISTEN``, SQLite's ``PRAGMA data_version``: each backend knows its own). Either way it
also looks every :data:`~.timings.IDLE_LOOK_S` without a sign, for rows whose
retry time has come. Pacing, retries, dead letters and the handling of a rejected token
are the engine's. Around it, the relay:

- keeps going through outages: a run the engine ends (Intercom unavailable, token
  rejected, internal error) is followed by another after a pause;
- reconnects when the database goes away (:class:`~.errors.OutboxUnavailable`),
  waiting and trying again; rows it held are taken back by the next claim;
- stops on ``stop`` (SIGTERM / Ctrl-C): rows not answered yet go back to pending.

Nothing here prints: ``on_notice`` gets a line for each thing worth telling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ExitCode, IeventsError, OutboxBusy, OutboxError, OutboxUnavailable
from .timings import RelayTimings

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..http.client import AttemptLog
    from ..outbox.store import OutboxLocation, OutboxStore, Waker
    from .engine import Deliverer, Delivery, FlushReport

# The engine's look at its senders while a relay runs (not one of the relay's timings).
ENGINE_POLL_S = 0.02


@dataclass
class RelayReport:
    """Totals of a relay's life, and its exit code."""

    runs: int = 0
    delivered: int = 0
    dead: int = 0
    refused: int = 0  # of the dead: invalid as stored, never sent
    deferred: int = 0
    released: int = 0
    reconnects: int = 0
    last_run: FlushReport | None = None
    exit_code: ExitCode = ExitCode.OK
    notices: list[str] = field(default_factory=list)


class Relay:
    """Run the flush engine until ``stop``, waking on new rows; see the module doc.

    ``open_store`` opens the outbox (called again after the database went away).
    ``engine_options`` go to each :class:`~.engine.Deliverer` (concurrency, retries,
    timeout, ...). ``on_store`` sees each store opened (for metrics).

    One relay of several (one per workspace, :mod:`.delivery_lanes`): ``profile_name``
    is the profile its token came from (remembered with the workspace, for SQL enqueue);
    ``on_learned`` hears the workspace once learned and returns False when another relay
    of the process serves it already (this one then ends); ``beat_code`` turns this
    relay's heartbeat code into the process's (the most severe over its relays);
    ``tell_elsewhere`` False leaves telling of other workspaces' rows to the caller.
    """

    def __init__(
        self,
        location: OutboxLocation,
        settings: Settings,
        open_store: Callable[[], OutboxStore],
        *,
        stop: threading.Event | None = None,
        on_result: Callable[[Delivery], None] | None = None,
        on_attempt: Callable[[AttemptLog], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        on_store: Callable[[OutboxStore | None], None] | None = None,
        timings: RelayTimings | None = None,
        profile_name: str | None = None,
        on_learned: Callable[[str], bool] | None = None,
        beat_code: Callable[[ExitCode], ExitCode] | None = None,
        tell_elsewhere: bool = True,
        reload_settings: Callable[[], Settings] | None = None,
        **engine_options: Any,
    ) -> None:
        self.location = location
        self.settings = settings
        self.open_store = open_store
        self.stop = stop or threading.Event()
        self.on_result = on_result
        self.on_attempt = on_attempt
        self.on_notice = on_notice
        self.on_store = on_store
        self.timings = timings or RelayTimings()
        self.engine_options = engine_options
        self.report = RelayReport()
        self.store: OutboxStore | None = None
        # The next wait for the database (doubling to timings.reconnect_max_s).
        self._backoff = self._first_backoff()
        self._waker: Waker | None = None  # the first store opened makes it
        self._engine: Deliverer | None = None  # the engine running now
        self._last_beat = -float("inf")
        # A run the engine ended (token rejected, Intercom unavailable): its code, which
        # the heartbeats during the pause after it keep saying.
        self._paused_code: ExitCode | None = None
        self._workspace_known = False  # the token's workspace is in the outbox
        self.profile_name = profile_name
        self.on_learned = on_learned
        self.beat_code = beat_code
        self.tell_elsewhere = tell_elsewhere
        # How the settings were made (the command line's options): made again to read a
        # token file anew (settings.token_file), every timings.token_look_s, for a rotation.
        self.reload_settings = reload_settings
        self._token_looked_at = time.monotonic()
        self.workspace: str | None = None  # learned (GET /me), or None
        self.retired = False  # another relay of this process serves the same workspace
        self._learn_tried_at = -float("inf")
        self._learn_wait = self.timings.learn_retry_s
        self._learn_done = False
        self._told_learn_failure = False  # said once until the workspace is learned
        self._learn_failure: IeventsError | None = None  # GET /me's refusal, if any

    @property
    def learn_tried(self) -> bool:
        """Whether this relay has had its first answer to GET /me (or found its token's
        workspace in the outbox), whatever it was."""
        return self._learn_done

    def _notice(self, text: str) -> None:
        self.report.notices.append(text)
        del self.report.notices[:-20]
        if self.on_notice is not None:
            self.on_notice(text)

    def _keep_going(self) -> bool:
        # Called by the engine when it has nothing in hand: wait for a sign, then look.
        if self.stop.is_set():
            return False
        self._tell_learn_failure()
        if self._beat(raising=True):
            self._rebind()
        if self._new_token():
            self._end_run()  # the next run delivers (and learns) with it
            return False
        if (
            not self._workspace_known
            and self.settings.token
            and time.monotonic() - self._learn_tried_at >= self._learn_wait
        ):
            self._learn_wait = min(self._learn_wait * 2, self.timings.pause_auth_s)
            self._end_run()  # the next run asks GET /me again first
            return False
        if self._waker is not None:
            self._waker.wait(self.timings.idle_look_s)
        else:
            self.stop.wait(self.timings.idle_look_s)
        return not self.stop.is_set()

    def _rebind(self) -> None:
        """With each heartbeat while idle: bind to the workspace what a capture bound to
        one of its tokens as the workspace was learned (bound, then stored: the learn
        between the two steps missed it), which nothing would claim otherwise."""
        store, workspace = self.store, self.workspace
        if store is None or workspace is None or not self._workspace_known:
            return
        # Its errors are the engine's (raised through keep_going): a database gone or an
        # outbox dropped is told and reconnected to as when a claim meets it.
        store.learn(self.settings, workspace, self.profile_name)

    def _tick(self) -> None:
        """Between the engine's steps while it has rows in hand: beat, and look at the
        token file (a busy relay never idles): a new token ends the run, the rows in
        flight are answered, and the next run sends the rest with it. Its heartbeat keeps
        an outbox error to itself: raised here it would end the run with requests on the
        wire, whose rows would be sent again; the engine's next statement meets it."""
        self._beat()
        if self._new_token():
            self._end_run()

    def _end_run(self) -> None:
        """End the engine's run at once, for the next to begin with what changed: neither
        its last look for new rows nor another round of retries, which would go out with
        the old token (revoked, perhaps: a 401, and a pause, for a token never tried)."""
        if self._engine is not None:
            self._engine.finish()

    def _beat(self, *, final: ExitCode | None = None, raising: bool = False) -> bool:
        """Every ``timings.heartbeat_s`` (and at the end, with ``final``): record in the outbox
        that this relay is alive, as a flush with the code of what it did since the last
        beat; whether it did. Runs on the engine's thread, the only one using the store.

        ``raising`` (the engine idle, asking keep_going): an outbox error goes up as a
        claim's would, to be told and reconnected to. Otherwise (a pause, the end, a busy
        run) it is left for the next statement to meet: one the error dropped the session
        of opens a new one, which for a dropped schema makes it anew without a word."""
        now = time.monotonic()
        store = self.store
        if store is None or (final is None and now - self._last_beat < self.timings.heartbeat_s):
            return False
        engine = self._engine
        code = engine.report.take_recent_code() if engine is not None else ExitCode.OK
        if self._paused_code is not None:
            code = self._paused_code
        if final is not None:
            code = final
        if self.beat_code is not None:
            code = self.beat_code(code)
        try:
            store.note_flush(int(code), relay=final is None, relay_stopped=final is not None)
        except OutboxError:
            if raising:
                raise
            return False  # the database is away: the next run meets it, the relay reconnects
        self._last_beat = now
        return True

    def _set_store(self, store: OutboxStore | None) -> None:
        self.store = store
        if store is not None and self._waker is None:
            # On a connection of its own: it outlives this store (and reconnections).
            self._waker = store.waker(self.stop)
        if self.on_store is not None:
            self.on_store(store)

    def run(self) -> RelayReport:
        """Deliver until ``stop``; returns the totals (exit 0, or 78 for a configuration
        that cannot work, such as a wrong database password)."""
        self._backoff = self._first_backoff()
        told_elsewhere = False
        try:
            while not self.stop.is_set() and not self.retired:
                if self.store is None and not self._connect():
                    continue
                assert self.store is not None
                if not told_elsewhere and self.tell_elsewhere:
                    told_elsewhere = True
                    self._tell_elsewhere(self.store)
                flush = self._run_engine(self.store)
                if flush is None:
                    continue
                self._backoff = self._first_backoff()  # the database worked through a run
                if self.stop.is_set():
                    break
                self._pause_after(flush)
        except OutboxError as exc:
            if isinstance(exc, OutboxUnavailable):
                raise
            self.report.exit_code = exc.exit_code
            raise
        except KeyboardInterrupt:
            self.report.exit_code = ExitCode.INTERRUPTED  # a second Ctrl-C: forced
            raise
        finally:
            if self._waker is not None:
                self._waker.close()
            self._last_note()
            self._drop_store()
        return self.report

    def _last_note(self) -> None:
        """The outbox's flush record at the end: the relay's own exit code (0 for a clean
        stop), or what its last moments went through (a rejected token, 65, ...)."""
        code = self.report.exit_code
        if code == ExitCode.OK:
            engine = self._engine
            recent = engine.report.take_recent_code() if engine is not None else ExitCode.OK
            code = self._paused_code or recent
        self._beat(final=code)

    def _connect(self) -> bool:
        """Open the outbox; a database that is down: say so, wait (backing off), False."""
        try:
            self._set_store(self.open_store())
        except OutboxUnavailable as exc:
            self._wait_backoff(exc.message)
            return False
        return True

    def _first_backoff(self) -> float:
        return min(0.5, self.timings.reconnect_max_s)

    def _wait_backoff(self, message: str) -> None:
        self._notice(f"{message}; trying again in {self._backoff:g} s")
        self.stop.wait(self._backoff)
        self._backoff = min(self._backoff * 2, self.timings.reconnect_max_s)

    def _run_engine(self, store: OutboxStore) -> FlushReport | None:
        """One engine run until it has nothing to do; None when the outbox failed under it
        (the database went away, or SQLite stayed busy) and the loop should try again."""
        from .engine import Deliverer

        # A rotation during a pause or a reconnection: not even the probe goes with the
        # old token.
        self._new_token(at_once=True)
        engine = Deliverer(
            store,
            self.settings,
            on_result=self.on_result,
            on_attempt=self.on_attempt,
            stop=self.stop,
            keep_going=self._keep_going,
            poll_interval_s=ENGINE_POLL_S,
            # The relay keeps the flush record (_beat): a stop is no interrupted flush.
            note_flush=False,
            on_tick=self._tick,
            **self.engine_options,
        )
        self._engine = engine
        self._paused_code = None
        try:
            self._learn(store)
            if self.retired:
                return None
            flush = engine.run()
        except OutboxUnavailable as exc:
            # Rows this engine held stay in flight under a session that is gone
            # (PostgreSQL) or a lease: the next claim, ours or another relay's,
            # takes them back.
            self.report.reconnects += 1
            self._drop_store()
            # Backing off: a database that accepts connections but not writes (read-only
            # during a failover) would otherwise be reconnected to in a tight loop.
            self._wait_backoff(exc.message)
            return None
        except OutboxBusy as exc:
            # Another process held the outbox past the busy timeout: try again.
            self._wait_backoff(exc.message)
            return None
        finally:
            # Every run counts, the ones the database cut short too: the totals are the
            # relay's whole life (what each run saved to the outbox).
            self._add(engine.report)
        if flush.stopped is not None and not self.stop.is_set():
            self._paused_code = flush.exit_code
        return flush

    def _pause_after(self, flush: FlushReport) -> None:
        """The engine stopped early (token rejected, Intercom unavailable): wait a while."""
        from .engine import StopReason

        if flush.stopped is StopReason.AUTH:
            if self._new_token(at_once=True):
                return  # rotated: the rejected token was the old one
            again = "when the token file changes, or " if self._token_from_file() else ""
            self._notice(
                f"the token was rejected; every event stays pending; trying again {again}in "
                f"{self.timings.pause_auth_s:g} s"
            )
            self._pause(self.timings.pause_auth_s, until=self._new_token)
        elif flush.stopped is not None:
            self._notice(
                f"delivery paused ({flush.stopped.value}); trying again in "
                f"{self.timings.pause_unavailable_s:g} s"
            )
            self._pause(self.timings.pause_unavailable_s)

    def _pause(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Wait ``seconds`` (or a stop, or ``until`` true), beating meanwhile: a paused
        relay is alive."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or (until is not None and until()):
                return
            self._beat()
            self.stop.wait(min(left, self.timings.heartbeat_s))

    def _token_from_file(self) -> bool:
        return self.reload_settings is not None and self.settings.token_file is not None

    def _new_token(self, *, at_once: bool = False) -> bool:
        """Whether the token file holds another token now (a rotation: the old one may be
        revoked at any moment); if so the relay takes it, and learns its workspace before
        delivering with it. Looked at every ``timings.token_look_s`` (``at_once``: now)."""
        if not self._token_from_file():
            return False
        now = time.monotonic()
        if not at_once and now - self._token_looked_at < self.timings.token_look_s:
            return False
        self._token_looked_at = now
        assert self.reload_settings is not None
        try:
            fresh = self.reload_settings()
        except IeventsError:
            return False  # mid-rotation (the file emptied or moved): the next look sees it
        if fresh.token == self.settings.token:
            return False
        self.settings = fresh
        self._workspace_known = False
        self._learn_failure, self._told_learn_failure = None, False
        self._learn_tried_at, self._learn_wait = -float("inf"), self.timings.learn_retry_s
        self._paused_code = None
        self._notice(
            f"the token file {fresh.token_file} holds a new token: delivering with it from now"
        )
        return True

    def _learn(self, store: OutboxStore) -> None:
        """Once per new token: its workspace (GET /me), so that it delivers the rows every
        token of the workspace captured; asked again on the next run until Intercom says."""
        if not self._workspace_known:
            from .workspaces import learn_workspace

            self._learn_tried_at = time.monotonic()
            known = learn_workspace(
                store, self.settings, self.on_attempt, self.profile_name, self._learn_failed
            )
            self._workspace_known = known is not None
            if known is not None:
                self._told_learn_failure, self._learn_failure = False, None
            self.workspace = known
            if known is not None and self.on_learned is not None:
                self.retired = not self.on_learned(known)
            self._learn_done = True

    def _learn_failed(self, exc: IeventsError) -> None:
        """GET /me refused the token (or the base URL is not Intercom's): no event goes
        with it. Its code goes into the heartbeats while it lasts; it is told at the
        engine's first idle moment (:meth:`_tell_learn_failure`)."""
        from .workspaces import token_refused

        if token_refused(exc):
            self._paused_code = exc.exit_code
            self._learn_failure = exc
        # else an outage: asked again; deliveries meet it and say so

    def _tell_learn_failure(self) -> None:
        """Once, when the engine idles with the learning failed: none of the rows was its
        token's, so no delivery met the refusal and said so (one that did, said it)."""
        exc = self._learn_failure
        if exc is None or self._told_learn_failure:
            return
        self._told_learn_failure = True
        from .workspaces import refusal_text

        self._notice(
            f"{refusal_text(exc)} ({exc.message}); no event is delivered with it; asked "
            f"again every {self.timings.pause_auth_s:g} s at most"
        )

    def _tell_elsewhere(self, store: OutboxStore) -> None:
        """Once, at the start: events this relay will not deliver (another workspace)."""
        if not self.settings.token:
            return
        try:
            self._learn(store)
            waiting = store.waiting_elsewhere(store.bind(self.settings))
            unbound = store.waiting_for_workspace()
        except OutboxError:
            return  # the engine meets the same error and says so
        for destination, count in waiting:
            self._notice(
                f"{count} {'event waits' if count == 1 else 'events wait'} for "
                f"{destination.describe()}: run a flush with a token of that workspace, or "
                "ievents outbox move"
            )
        for workspace, count in unbound:
            wait = "event waits" if count == 1 else "events wait"
            self._notice(
                f"{count} {wait} for workspace {workspace}: no token of it used yet"
                if workspace
                else f"{count} {wait} enqueued from SQL with no workspace and no default: "
                "ievents outbox default-workspace"
            )

    def _drop_store(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except OutboxError:
                pass
        self._set_store(None)

    def _add(self, flush: FlushReport) -> None:
        report = self.report
        report.runs += 1
        report.delivered += flush.delivered
        report.dead += flush.dead
        report.refused += flush.refused
        report.deferred += flush.deferred
        report.released += flush.released
        report.last_run = flush
