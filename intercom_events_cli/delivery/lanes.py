"""One flush, or one relay, for several workspaces: a lane per workspace.

``flush --all-profiles`` (or ``--profile A --profile B``) delivers each workspace's rows
with its own profile's token. Each lane is the engine of one workspace, run on a thread
of its own: its own :class:`~.delivery.Deliverer` (so its own client, RateLimitPacer,
probe after an outage, unavailable streak and stop reason) or, with ``--watch``, its own
:class:`~.relay.Relay` (its own pauses, GET /me retries, waker and store connection).
Nothing one lane meets (a 5xx, a refused connection, a 429, a revoked token) halts,
pauses or paces another.

- A lane's workspace is learned with GET /me (:func:`~.workspaces.learn_workspace`) on
  its own thread, so a workspace whose Intercom is down at start does not hold up the
  others; a relay's lane asks again while it idles (:data:`~.timings.LEARN_RETRY_S`).
- Two profiles of one workspace (or with one token) share one lane: the first to learn
  it serves it, the other ends (``served_by``). Rows are never claimed twice anyway (each
  claim is atomic); this keeps one pacer per workspace, as Intercom's limit is.
- Rows of a workspace no lane serves wait, and are named by workspace and region.
- ``--concurrency`` is the run's, shared among the lanes (:func:`lane_concurrency`).
- The run's exit code is the most severe over every lane (78, 77, 65, 67, 75, 0); 130
  when interrupted, 1 for a bug.

Nothing here prints; the words are the command's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ..errors import ExitCode, IeventsError, most_severe
from ..frozen import frozen
from .destination import Destination

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..outbox.store import OutboxStore
    from .engine import Delivery, FlushReport
    from .relay import Relay, RelayReport

# The main thread looks at its lanes this often (and so sees a signal's stop).
JOIN_SLICE_S = 0.2
# Rows a lane holds claimed ahead of its few senders: claims (and their statements) of 16
# rows rather than of 2 to 4, as a one-workspace flush of 16 senders makes.
LANE_CLAIM_AHEAD = 32


@frozen
class LaneConfig:
    """One profile's delivery settings, as named on the command line."""

    profile: str
    settings: Settings
    # Makes the settings again: a relay reads its token file anew (a rotation).
    reload: Callable[[], Settings] | None = None


@dataclass
class Lane:
    """One lane: the profile(s) it came from, its workspace once learned, its result."""

    profile: str
    settings: Settings
    workspace: str | None = None
    served_by: str | None = None  # another profile's lane serves the same workspace
    report: FlushReport | None = None
    # GET /me's refusal of the token (77, or 78 for a base URL that is not Intercom's)
    # when the lane claimed nothing: no delivery met it, so nothing else says it.
    refused: IeventsError | None = None

    @property
    def base_url(self) -> str:
        """The API host it delivers to."""
        return self.settings.base_url.rstrip("/")

    @property
    def region(self) -> str:
        """``US``, ``Europe``, ``Australia``, or the base URL (a proxy, a test server)."""
        return Destination(self.base_url, "", "", "").region

    def exit_code(self) -> ExitCode:
        """This lane's code (0 when it did nothing, or another lane served it)."""
        return self.report.exit_code if self.report is not None else ExitCode.OK


def lane_concurrency(total: int, lanes: int) -> int:
    """Requests in flight per lane: ``--concurrency`` is the whole run's, shared evenly
    among the lanes, at least 2 each (so that one slow workspace holds only its share, and
    ten workspaces do not mean ten times the threads)."""
    return max(2, -(-total // max(1, lanes)))


def combined_code(codes: Sequence[ExitCode]) -> ExitCode:
    """The run's code over its lanes: 130 when interrupted, 1 for a bug, else the most
    severe (78, 77, 65, 67, 75, 0)."""
    if ExitCode.INTERRUPTED in codes:
        return ExitCode.INTERRUPTED
    if ExitCode.INTERNAL in codes:
        return ExitCode.INTERNAL
    return most_severe(list(codes))


class _Registry:
    """Which lane serves which workspace (or, not yet learned, which token's destination)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._served: dict[tuple[str, str], str] = {}

    def claim(self, key: tuple[str, str], profile: str) -> str | None:
        """Serve ``key`` as ``profile``; returns the profile already serving it, or None."""
        with self._lock:
            other = self._served.setdefault(key, profile)
        return None if other == profile else other


@dataclass
class LanesReport:
    """A flush over several lanes: each lane's report, and what no lane serves."""

    lanes: list[Lane]
    waiting_elsewhere: list[tuple[Destination, int]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        """The most severe over every lane (see :func:`combined_code`)."""
        return combined_code([lane.exit_code() for lane in self.lanes])

    def total(self, name: str) -> int:
        """The sum of one counter (``delivered``, ``dead``, ...) over the lanes."""
        return sum(int(getattr(lane.report, name)) for lane in self.lanes if lane.report)


def _run_threads(targets: Sequence[Callable[[], None]], stop: threading.Event) -> None:
    """Run each target on a thread; the first exception sets ``stop`` and is raised
    once every thread has ended."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=guarded, args=(target,), name=f"ievents-lane-{n}", daemon=True)
        for n, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(JOIN_SLICE_S)
    if errors:
        raise errors[0]


def flush_lanes(
    store: OutboxStore,
    configs: Sequence[LaneConfig],
    *,
    stop: threading.Event,
    on_attempt: Any = None,
    on_result: Callable[[Lane, Delivery], None] | None = None,
    open_lane_store: Callable[[], OutboxStore] | None = None,
    **engine_options: Any,
) -> LanesReport:
    """Deliver every lane's due rows at once, one engine per workspace, on ``store``
    (shared: the stores serialise their own use), or each lane on a store of its own from
    ``open_lane_store`` (PostgreSQL: a connection each, so that one lane's statements do
    not wait for another's). ``engine_options`` go to each :class:`~.delivery.Deliverer`.
    The outbox's flush record gets the combined code."""
    from .engine import Deliverer
    from .workspaces import learn_workspace

    registry = _Registry()
    lanes = [Lane(config.profile, config.settings) for config in configs]
    started = time.monotonic()

    def run_lane(lane: Lane) -> None:
        failures: list[IeventsError] = []
        lane.workspace = learn_workspace(
            store, lane.settings, on_attempt, lane.profile, failures.append
        )
        lane.served_by = registry.claim(_key(store, lane), lane.profile)
        if lane.served_by is not None:
            return
        own = open_lane_store() if open_lane_store is not None else None
        try:
            engine = Deliverer(
                own or store,
                lane.settings,
                stop=stop,
                on_attempt=on_attempt,
                on_result=_bound(on_result, lane),
                note_flush=False,
                claim_ahead=LANE_CLAIM_AHEAD,
                **engine_options,
            )
            lane.report = engine.run()
            lane.refused = refused_token(failures, lane.report)
            if lane.refused is not None:
                # The engine saw no row of this token's, so it noted 0: the lane's code
                # (and the run's, and the outbox's flush record) is the refusal's.
                lane.report.note_code(lane.refused.exit_code)
        finally:
            if own is not None:
                own.close()

    _run_threads([_call(run_lane, lane) for lane in lanes], stop)
    report = LanesReport(lanes, elapsed_s=time.monotonic() - started)
    report.waiting_elsewhere = _waiting_for_nobody(
        [lane.report for lane in lanes if lane.report is not None]
    )
    from ..errors import OutboxError

    try:
        store.note_flush(int(report.exit_code))
    except OutboxError:
        pass  # the heartbeat is not worth failing a run whose results are saved
    return report


def refused_token(failures: Sequence[IeventsError], report: FlushReport) -> IeventsError | None:
    """GET /me's refusal of the token (77, or 78 for a base URL that is not Intercom's)
    when the run tried none of its events (else the delivery met it and said it)."""
    from .workspaces import token_refused

    if report.claimed:
        return None
    return next((failure for failure in failures if token_refused(failure)), None)


def _key(store: OutboxStore, lane: Lane) -> tuple[str, str]:
    """What a lane serves: its workspace on its API host, else its token's destination."""
    if lane.workspace is not None:
        return (lane.base_url, lane.workspace)
    if not lane.settings.token:
        return ("no token", lane.profile)
    return ("destination", str(store.bind(lane.settings)))


def _waiting_for_nobody(reports: Sequence[FlushReport]) -> list[tuple[Destination, int]]:
    """Destinations every lane saw as another's: no lane of this run serves them."""
    if not reports:
        return []

    def key(destination: Destination) -> tuple[str, str, str]:
        return (destination.base_url, destination.api_version, destination.token_fingerprint)

    common = set.intersection(*({key(d) for d, _ in r.waiting_elsewhere} for r in reports))
    return [(d, n) for d, n in reports[0].waiting_elsewhere if key(d) in common]


class LaneRelays:
    """``flush --watch`` for several profiles: one :class:`~.relay.Relay` per lane, each on
    its own thread and its own store connection, until ``stop``.

    ``open_store`` opens each lane's connection. ``on_result(lane, delivery)`` and
    ``on_notice(lane, text)`` say which lane speaks; ``on_store`` sees each store opened.
    ``relay_options`` go to each relay (and through it to each engine).
    """

    def __init__(
        self,
        location: Any,
        configs: Sequence[LaneConfig],
        open_store: Callable[[], OutboxStore],
        *,
        stop: threading.Event,
        on_result: Callable[[Lane, Delivery], None] | None = None,
        on_notice: Callable[[Lane, str], None] | None = None,
        **relay_options: Any,
    ) -> None:
        from .relay import Relay

        self.stop = stop
        self.lanes = [Lane(config.profile, config.settings) for config in configs]
        self._registry = _Registry()
        self._codes: dict[int, ExitCode] = {}
        self._codes_lock = threading.Lock()
        self.relays: list[Relay] = []
        for number, (lane, config) in enumerate(zip(self.lanes, configs, strict=True)):
            self.relays.append(
                Relay(
                    location,
                    lane.settings,
                    open_store,
                    stop=stop,
                    on_result=_bound(on_result, lane),
                    on_notice=_bound(on_notice, lane),
                    profile_name=lane.profile,
                    on_learned=self._learned(lane),
                    beat_code=self._beat_code(number),
                    tell_elsewhere=False,
                    claim_ahead=LANE_CLAIM_AHEAD,
                    reload_settings=config.reload,
                    **relay_options,
                )
            )

    def _learned(self, lane: Lane) -> Callable[[str], bool]:
        def learned(workspace: str) -> bool:
            lane.workspace = workspace
            lane.served_by = self._registry.claim((lane.base_url, workspace), lane.profile)
            return lane.served_by is None

        return learned

    def _beat_code(self, number: int) -> Callable[[ExitCode], ExitCode]:
        def combine(code: ExitCode) -> ExitCode:
            # The outbox keeps one flush record: the most severe over the lanes' last words.
            with self._codes_lock:
                self._codes[number] = code
                return combined_code(list(self._codes.values()))

        return combine

    def learned_all(self) -> bool:
        """Whether every lane has asked GET /me at least once (or has ended)."""
        return all(relay.learn_tried or relay.retired for relay in self.relays)

    def waiting_for_nobody(self, store: OutboxStore) -> list[tuple[Destination, int]]:
        """Undelivered rows of destinations no lane serves (by workspace and region)."""
        served = {(lane.base_url, lane.workspace) for lane in self.lanes if lane.workspace}
        return [
            (destination, count)
            for destination, count in store.waiting_elsewhere(-1)
            if (destination.base_url, destination.workspace_id) not in served
        ]

    def run(self, on_learned: Callable[[], None] | None = None) -> list[RelayReport]:
        """Run every lane until ``stop``; each relay's totals, in the lanes' order.

        ``on_learned`` is called once (on a thread of its own) when every lane has asked
        GET /me once: what no lane serves can be told then."""
        from .relay import Relay

        targets = [_call(Relay.run, relay) for relay in self.relays]
        if on_learned is not None:

            def tell_when_learned() -> None:
                while not self.learned_all():
                    if self.stop.wait(JOIN_SLICE_S):
                        return
                on_learned()

            threading.Thread(target=tell_when_learned, name="ievents-lanes", daemon=True).start()
        _run_threads(targets, self.stop)
        return [relay.report for relay in self.relays]


class _Unclosed:
    """A store shared by every lane's relay: a lane letting go of it does not close it."""

    def __init__(self, store: OutboxStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def close(self) -> None:
        """Nothing: the store's opener closes it once every lane has ended."""


class SharedStore:
    """One store for every lane's relay (where writers take turns anyway: SQLite).

    :meth:`open` is each lane's opener: the same store, unless its location names another
    outbox now (a SQLite file moved aside or replaced): then a new one, once for all the
    lanes (each meets the old one's OutboxUnavailable and opens again). :meth:`close`
    closes every store it opened, once every lane has ended.
    """

    def __init__(self, open_store: Callable[[], OutboxStore]) -> None:
        self._open_store = open_store
        self._lock = threading.Lock()
        self._stores = [open_store()]

    def open(self) -> OutboxStore:
        """The store in use, wrapped so that a lane letting go of it does not close it."""
        with self._lock:
            if self._stores[-1].replaced():
                self._stores.append(self._open_store())
            return cast("OutboxStore", _Unclosed(self._stores[-1]))

    def close(self) -> None:
        """Close every store opened."""
        for store in self._stores:
            store.close()


def _bound(callback: Callable[[Lane, Any], None] | None, lane: Lane) -> Any:
    return None if callback is None else (lambda value: callback(lane, value))


def _call(function: Callable[[Any], object], argument: Any) -> Callable[[], None]:
    def call() -> None:
        function(argument)

    return call
