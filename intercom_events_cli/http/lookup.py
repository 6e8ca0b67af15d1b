"""Reading from Intercom: who the token belongs to (GET /me) and a contact's events.

Both go through :meth:`EventsClient.request`, so they share its retry policy. Failures
raise :class:`~intercom_events_cli.errors.ApiError` with the exit code they call for.

Listing follows ``pages.next`` only while it points at the same scheme, host and port as
the configured base URL: the client sends the token with every request, so a page link to
any other place is never followed (the listing stops and says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.settings import REGION_BASE_URLS, Settings
from ..errors import ApiError, ExitCode
from ..frozen import frozen
from ..outcome import OutcomeKind, exit_code_for, status_text

if TYPE_CHECKING:
    from .client import EventsClient, Exchange

ME_PATH = "/me"
EVENTS_PATH = "/events"
# The most of one page of listed events read (decoded): a page is data, not an error
# answer (64 KiB elsewhere), yet a hostile or broken server must not fill the memory.
MAX_PAGE_BYTES = 16 * 1024 * 1024
CONTACT_KEYS = ("user_id", "email", "intercom_user_id")

# Region codes ievents uses (config.REGION_BASE_URLS) and the names Intercom reports in
# GET /me (app.region: "US", "Europe", "Australia"; the short forms are accepted too).
REGION_NAMES = {"us": "US", "eu": "Europe", "au": "Australia"}
_REPORTED_REGIONS = {
    "us": "us",
    "usa": "us",
    "united states": "us",
    "eu": "eu",
    "europe": "eu",
    "au": "au",
    "australia": "au",
}


def region_from_report(value: object) -> str | None:
    """The region code (us/eu/au) for a region name as Intercom reports it, else None."""
    if not isinstance(value, str):
        return None
    return _REPORTED_REGIONS.get(value.strip().lower())


def region_of_base_url(base_url: str) -> str | None:
    """The region whose Intercom host ``base_url`` points at; None for any other host."""
    host = _origin(base_url)
    for code, url in REGION_BASE_URLS.items():
        if host is not None and host == _origin(url):
            return code
    return None


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) as httpx, which sends the request, understands the URL."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if not parsed.scheme or not parsed.host:
        return None
    default_port = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host.lower(), parsed.port or default_port


def same_origin(url: str, base_url: str) -> bool:
    """True when ``url`` has the scheme, host and port of ``base_url`` (default ports count)."""
    origin = _origin(url)
    return origin is not None and origin == _origin(base_url)


def origin_text(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, for messages (never the path or query)."""
    origin = _origin(url)
    if origin is None:
        return "an unparseable URL"
    scheme, host, port = origin
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def api_failure(exchange: Exchange, what: str, exit_code: ExitCode | None = None) -> ApiError:
    """An :class:`ApiError` for a failed request: status, API error, request id, attempts."""
    if exchange.status is None:
        detail = exchange.error_message or exchange.error_code or "no response"
        tries = f" after {exchange.attempts} attempt{'s' if exchange.attempts != 1 else ''}"
        message = f"{what} failed{tries}: {detail}"
    else:
        status = status_text(exchange.status)
        detail = ": ".join(p for p in (exchange.error_code, exchange.error_message) if p)
        message = f"{what} failed: {status}" + (f": {detail}" if detail else "")
    if exchange.request_id:
        message += f" (request {exchange.request_id})"
    return ApiError(
        message,
        status=exchange.status,
        code=exchange.error_code,
        request_id=exchange.request_id,
        exit_code=exit_code
        or (
            exit_code_for(exchange.kind)
            if exchange.kind is not OutcomeKind.DELIVERED
            else ExitCode.TEMPORARY
        ),
    )


def _unexpected_body(
    exchange: Exchange, what: str, exit_code: ExitCode = ExitCode.TEMPORARY
) -> ApiError:
    return ApiError(
        f"{what}: the answer ({exchange.status}) is not the JSON object Intercom sends",
        status=exchange.status,
        code="unexpected_response",
        request_id=exchange.request_id,
        exit_code=exit_code,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@frozen
class TokenOwner:
    """The admin and workspace (app) behind the token, as GET /me reports them.

    ``expected_region`` is the region ievents is set up for: the region of the base URL's
    host when it is one of Intercom's, else (a proxy, a test server) the configured
    ``--region`` / ``INTERCOM_REGION``.
    """

    admin_name: str | None
    admin_email: str | None
    app_name: str | None
    app_id_code: str | None
    reported_region: str | None
    api_base: str
    api_version: str
    configured_region: str
    expected_region: str
    base_is_intercom: bool

    @property
    def workspace_region(self) -> str | None:
        """The workspace's region code (us/eu/au), or None when the report is unknown."""
        return region_from_report(self.reported_region)

    @property
    def region_mismatch(self) -> bool:
        """True when the workspace lives in another region than the one configured."""
        actual = self.workspace_region
        return actual is not None and actual != self.expected_region

    def region_fix(self) -> str | None:
        """How to point ievents at the workspace's region, or None when it already is."""
        actual = self.workspace_region
        if actual is None or not self.region_mismatch:
            return None
        right_url = REGION_BASE_URLS[actual]
        if not self.base_is_intercom:
            return (
                f"use --region {actual} (or set INTERCOM_REGION={actual}), and make sure "
                f"{self.api_base} forwards to {right_url}"
            )
        if self.api_base == REGION_BASE_URLS[self.configured_region]:
            return f"use --region {actual} (or set INTERCOM_REGION={actual})"
        # The base URL was set explicitly (it is not the configured region's host).
        return (
            f"use --base-url {right_url} (or set INTERCOM_BASE_URL={right_url}), or drop the "
            f"base URL and use --region {actual}"
        )

    def warnings(self) -> list[str]:
        """Problems worth telling the user about (a region mismatch, with its fix)."""
        actual = self.workspace_region
        if actual is None or not self.region_mismatch:
            return []
        expected = REGION_NAMES[self.expected_region]
        setup = (
            self.api_base
            if self.base_is_intercom
            else f"region {self.expected_region} from --region or INTERCOM_REGION, with the "
            f"base URL {self.api_base}"
        )
        return [
            f"the workspace is in {REGION_NAMES[actual]} (Intercom reports region "
            f"{self.reported_region!r}), but ievents is set up for {expected} ({setup}): "
            f"{self.region_fix()}"
        ]

    def as_json(self) -> dict[str, Any]:
        """The ``check --json`` object."""
        return {
            "ok": True,
            "admin": {"name": self.admin_name, "email": self.admin_email},
            "app": {
                "name": self.app_name,
                "id_code": self.app_id_code,
                "region": self.reported_region,
            },
            "api_base": self.api_base,
            "api_version": self.api_version,
            "warnings": self.warnings(),
        }


def get_me(client: EventsClient) -> TokenOwner:
    """GET /me: who the token belongs to, and whether the region matches the host.

    A 404, another refusal that is not about the token, or an answer that is not JSON
    means the base URL or the API version is wrong: a configuration error (78).
    """
    settings: Settings = client.settings
    exchange = client.request("GET", ME_PATH)
    if exchange.kind is not OutcomeKind.DELIVERED:
        code = (
            exit_code_for(exchange.kind)
            if exchange.kind in (OutcomeKind.AUTH, OutcomeKind.TEMPORARY)
            else ExitCode.CONFIG
        )
        raise api_failure(exchange, f"GET {ME_PATH}", code)
    body = exchange.body
    if not isinstance(body, dict):
        # Not Intercom's answer (a portal, a wrong proxy): the base URL is the suspect.
        raise _unexpected_body(exchange, f"GET {ME_PATH}", ExitCode.CONFIG)
    raw_app = body.get("app")
    app: dict[str, Any] = raw_app if isinstance(raw_app, dict) else {}
    host_region = region_of_base_url(settings.base_url)
    return TokenOwner(
        admin_name=_text(body.get("name")),
        admin_email=_text(body.get("email")),
        app_name=_text(app.get("name")),
        app_id_code=_text(app.get("id_code")),
        reported_region=_text(app.get("region")),
        api_base=settings.base_url,
        api_version=settings.api_version,
        configured_region=settings.region,
        expected_region=host_region or settings.region,
        base_is_intercom=host_region is not None,
    )


@frozen
class Contact:
    """Which contact to list: ``key`` is user_id, email or intercom_user_id."""

    key: str
    value: str

    def __post_init__(self) -> None:
        if self.key not in CONTACT_KEYS:
            raise ValueError(f"contact key must be one of {CONTACT_KEYS}, not {self.key!r}")

    def __str__(self) -> str:
        return f"{self.key} {self.value}"

    def params(self) -> dict[str, str]:
        """The query parameters selecting this contact (httpx URL-encodes them)."""
        return {"type": "user", self.key: self.value}


@dataclass
class EventListing:
    """A contact's events, newest first, fetched page by page while iterating.

    After iteration: ``pages`` fetched, ``foreign_next`` (the origin of a next page that
    was not followed because it is on another host), ``more_available`` (``limit`` cut
    the listing short while Intercom had more), ``repeated_next`` (a next page pointed
    back at a page already read, so the listing stopped instead of looping).
    """

    client: EventsClient
    contact: Contact
    per_page: int | None = None
    limit: int | None = None
    pages: int = 0
    foreign_next: str | None = None
    more_available: bool = False
    repeated_next: bool = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import httpx

        base_url = self.client.settings.base_url
        what = f"GET {EVENTS_PATH} for {self.contact}"
        params = self.contact.params()
        if self.per_page is not None:
            params["per_page"] = str(self.per_page)
        url = str(httpx.URL(base_url + EVENTS_PATH, params=params))
        visited = {url}
        yielded = 0
        while True:
            exchange = self.client.request("GET", url, max_body_bytes=MAX_PAGE_BYTES)
            if exchange.kind is not OutcomeKind.DELIVERED:
                raise api_failure(exchange, what)
            body = exchange.body
            if not isinstance(body, dict):
                raise _unexpected_body(exchange, what)
            self.pages += 1
            events = body.get("events")
            events = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
            if not events:
                return
            link = _next_link(body)
            for position, event in enumerate(events, start=1):
                yield event
                yielded += 1
                if self.limit is not None and yielded >= self.limit:
                    self.more_available = position < len(events) or link is not None
                    return
            if link is None:
                return
            # A relative link is resolved against the events URL (it stays on our host).
            next_url = str(httpx.URL(base_url + EVENTS_PATH).join(link))
            if not same_origin(next_url, base_url):
                self.foreign_next = origin_text(next_url)
                return
            if next_url in visited:
                self.repeated_next = True  # stop rather than loop over the same pages
                return
            visited.add(next_url)
            url = next_url


def _next_link(body: dict[str, Any]) -> str | None:
    pages = body.get("pages")
    link = pages.get("next") if isinstance(pages, dict) else None
    return link if isinstance(link, str) and link.strip() else None


def list_events(
    client: EventsClient,
    contact: Contact,
    *,
    per_page: int | None = None,
    limit: int | None = None,
) -> EventListing:
    """A contact's events (iterate the result); see :class:`EventListing`."""
    return EventListing(client, contact, per_page=per_page, limit=limit)


def get_summaries(
    client: EventsClient, contact: Contact, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Event summaries of a contact: ``name``, ``count``, ``first``, ``last`` per event name.

    GET /events with ``summary=true`` (the contract's ``summary`` flag): one answer covers
    every event name, including events older than the 90 days that listing is limited to.
    """
    params = {**contact.params(), "summary": "true"}
    exchange = client.request("GET", EVENTS_PATH, params=params, max_body_bytes=MAX_PAGE_BYTES)
    what = f"GET {EVENTS_PATH}?summary=true for {contact}"
    if exchange.kind is not OutcomeKind.DELIVERED:
        raise api_failure(exchange, what)
    body = exchange.body
    if not isinstance(body, dict):
        raise _unexpected_body(exchange, what)
    events = body.get("events")
    summaries = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
    if summaries and not any("name" in item and "count" in item for item in summaries):
        # Events without a name and count are not summaries (an API or proxy that ignored
        # summary=true): empty rows and exit 0 would pass for an answer.
        settings = client.settings
        raise ApiError(
            f"{what}: the answer ({exchange.status}) has no event summaries (no name and "
            "count), only events",
            status=exchange.status,
            code="no_summaries",
            request_id=exchange.request_id,
            exit_code=ExitCode.CONFIG,
            hint=f"{settings.base_url} (API version {settings.api_version}) did not summarise; "
            "check --base-url and --api-version, or list the events without --summary",
        )
    return summaries if limit is None else summaries[:limit]
