"""Alerts when feeds' health changes: a feed starts failing, is retired, or recovers.

Each change is reported once: the store remembers the status the last alert reported
(``FeedState.alerted_status``), and a feed that keeps failing run after run raises no
new alert. The changes not yet reported go out together, as one digest per run
(``send_digest``, called once polling is over: by ``Pipeline.run`` and by the Airflow
DAG's report task), with counts per kind. The digest is logged (one line at INFO, each
change at DEBUG); when ``alert_webhook_url`` is set it is also POSTed there as JSON, at
most once per ``alert_digest_interval``. A change that is not delivered, because the
webhook is in its quiet period or could not take the digest, stays unreported and goes
out with the next digest: nothing is lost, and a change undone in between (a feed that
failed and recovered) is not reported at all, since each digest reports the feeds'
status now.

The webhook is an endpoint the operator configured, not a publisher, so it is called
with plain httpx (timeouts, TLS verification, no redirects) rather than through
the publisher-facing address guard of ``pipeline.fetching``. Its URL often embeds a
token, so it is never logged, nor stored (its hash keys the quiet period).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from pipeline.urls import redact_url
from pipeline.settings import Settings
from pipeline.storage import FeedState, Store

log = logging.getLogger(__name__)

AlertKind = Literal["failing", "retired", "recovered"]
#: Changes a digest's ``text`` spells out; the rest are counted (all are in ``changes``).
DIGEST_LINES = 20


@dataclass(frozen=True, slots=True)
class FeedAlert:
    """One change of a feed's health: one item of a digest."""

    kind: AlertKind
    feed_id: str
    feed_name: str
    feed_url: str  # without userinfo
    status: str  # the feed's status now: active, failing or retired
    previous: str  # the status the previous alert reported
    error: str | None
    consecutive_failures: int
    last_success_at: datetime | None
    next_attempt_at: datetime | None
    at: datetime

    @property
    def message(self) -> str:
        """One line for people: what happened to which feed, and what happens next."""
        feed = f"feed {self.feed_name!r} ({self.feed_id})"
        if self.kind == "recovered":
            return f"{feed} recovered: polled successfully after being {self.previous}"
        if self.kind == "retired":
            return (
                f"{feed} retired after {self.consecutive_failures} failed poll(s), no longer polled "
                f"(re-enable with `newsagg run --force`): {self.error}"
            )
        when = self.next_attempt_at.isoformat(timespec="minutes") if self.next_attempt_at else "later"
        return f"{feed} is failing ({self.consecutive_failures} in a row), next try {when}: {self.error}"

    def as_json(self) -> dict[str, Any]:
        """The webhook's body; ``text`` is what chat webhooks (Slack, Mattermost) display."""
        return {
            "event": f"newsagg.feed.{self.kind}",
            "text": f"newsagg: {self.message}",
            "feed": {"id": self.feed_id, "name": self.feed_name, "url": self.feed_url},
            "status": self.status,
            "previous_status": self.previous,
            "error": self.error,
            "consecutive_failures": self.consecutive_failures,
            "last_success_at": _iso(self.last_success_at),
            "next_attempt_at": _iso(self.next_attempt_at),
            "at": _iso(self.at),
        }


def alert_for(state: FeedState, now: datetime) -> FeedAlert | None:
    """The alert ``state`` calls for, or None when its status is the one last reported.

    A feed never alerted about counts as reported ``active``: a healthy new feed
    raises nothing.
    """
    reported = state.alerted_status or "active"
    if state.status == reported:
        return None
    kind: AlertKind = "recovered" if state.status == "active" else "retired" if state.status == "retired" else "failing"
    return FeedAlert(
        kind=kind,
        feed_id=state.source.id,
        feed_name=state.source.name,
        feed_url=redact_url(state.source.url),
        status=state.status,
        previous=reported,
        error=state.last_error if kind != "recovered" else None,
        consecutive_failures=state.consecutive_failures,
        last_success_at=state.last_success_at,
        next_attempt_at=state.next_attempt_at,
        at=now,
    )


@dataclass(frozen=True, slots=True)
class Digest:
    """The changes of feed health not reported yet, as one message."""

    alerts: tuple[FeedAlert, ...]
    at: datetime

    @property
    def counts(self) -> dict[AlertKind, int]:
        found = Counter(a.kind for a in self.alerts)
        return {"failing": found["failing"], "retired": found["retired"], "recovered": found["recovered"]}

    @property
    def summary(self) -> str:
        counts = self.counts
        return (f"{counts['failing']} feed(s) started failing, {counts['retired']} retired, "
                f"{counts['recovered']} recovered")

    def as_json(self) -> dict[str, Any]:
        """The webhook's body; ``text`` is what chat webhooks (Slack, Mattermost) display."""
        lines = [f"newsagg: {self.summary}", *(f"- {a.message}" for a in self.alerts[:DIGEST_LINES])]
        if len(self.alerts) > DIGEST_LINES:
            lines.append(f"... and {len(self.alerts) - DIGEST_LINES} more (`newsagg feeds status`)")
        return {
            "event": "newsagg.feeds.digest",
            "text": "\n".join(lines),
            "counts": self.counts,
            "changes": [a.as_json() for a in self.alerts],
            "at": _iso(self.at),
        }


def send_digest(store: Store, settings: Settings, now: datetime | None = None) -> Digest | None:
    """Report every change of feed health not reported yet, as one digest.

    Returns:
        The digest delivered (logged, and accepted by the webhook when one is set), or
        None when there was nothing to report or it was held back: the webhook's quiet
        period (``alert_digest_interval`` since the last digest to it) or a webhook that
        could not take it (logged; never raised). What was held back stays unreported and
        goes out with the next digest.
    """
    # Two runs finishing their polls at once (cron and Airflow, two workers) would both read the
    # changes not reported yet and both send them: one reads, sends and records at a time.
    with store.exclusive("alerts"):
        return _send_digest(store, settings, now or datetime.now(UTC))


def _send_digest(store: Store, settings: Settings, now: datetime) -> Digest | None:
    found = (alert_for(state, now) for state in store.unalerted_feed_states())
    digest = Digest(tuple(a for a in found if a is not None), now)
    if not digest.alerts:
        return None
    statuses = {a.feed_id: a.status for a in digest.alerts}
    if settings.alert_webhook_url is None:
        _log(digest, "")
        store.record_feeds_alerted(statuses)
        return digest
    url = settings.alert_webhook_url.get_secret_value()
    destination = hashlib.sha256(url.encode()).hexdigest()
    last = store.alert_digest_sent_at(destination)
    if last is not None and now < last + timedelta(seconds=settings.alert_digest_interval):
        log.info("alerts held for the webhook's next digest (one went %s): %s",
                 last.isoformat(timespec="seconds"), digest.summary)
        return None
    if not _post(url, digest.as_json(), settings):
        return None
    _log(digest, "; sent to the webhook")
    store.record_feeds_alerted(statuses, destination=destination, at=now)
    return digest


def _log(digest: Digest, where: str) -> None:
    log.info("alerts: %s%s", digest.summary, where)
    for alert in digest.alerts:
        log.debug("alert: %s", alert.message)


def _post(url: str, body: dict[str, Any], settings: Settings) -> bool:
    """POST ``body`` to the webhook; False (logged) when it cannot be reached or refuses it."""
    # The transport, not a Client: httpx.Client logs every request URL at INFO, and this
    # URL is a secret. No redirects are followed; TLS is verified.
    request = httpx.Request(
        "POST",
        url,
        json=body,
        headers={"User-Agent": settings.fetch.user_agent},
        extensions={"timeout": httpx.Timeout(settings.alert_webhook_timeout).as_dict()},
    )
    try:
        with httpx.HTTPTransport(retries=0) as transport:
            response = transport.handle_request(request)
            response.read()
            response.close()
    except Exception as exc:  # an alert must never break a run; the message may quote the URL, so omit it
        log.error("alert webhook unreachable (%s); its changes go out with the next digest", type(exc).__name__)
        return False
    if not 200 <= response.status_code < 300:
        log.error("alert webhook answered HTTP %d; its changes go out with the next digest", response.status_code)
        return False
    return True


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
