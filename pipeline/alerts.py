"""Alerts when a feed's health changes: it starts failing, is retired, or recovers.

Each change is reported once: the store remembers the status the last alert reported
(``FeedState.alerted_status``), and a feed that keeps failing run after run raises no
new alert. An alert is always logged; when ``alert_webhook_url`` is set it is also
POSTed there as JSON. A webhook that cannot take it makes ``send_alert`` return False,
and the caller leaves the change unreported so the next poll of the feed tries again.

The webhook is an endpoint the operator configured, not a publisher, so it is called
with plain httpx (timeouts, TLS verification, no redirects) rather than through
the publisher-facing address guard of ``pipeline.fetching``. Its URL often embeds a
token, so it is never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx

from pipeline.urls import redact_url
from pipeline.settings import Settings
from pipeline.storage import FeedState

log = logging.getLogger(__name__)

AlertKind = Literal["failing", "retired", "recovered"]


@dataclass(frozen=True, slots=True)
class FeedAlert:
    """One change of a feed's health, as logged and sent to the webhook."""

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


def send_alert(alert: FeedAlert, settings: Settings) -> bool:
    """Log the alert and POST it to ``alert_webhook_url`` when set.

    Returns:
        True when the alert was delivered (or there is no webhook), False when the
        webhook could not be reached or refused it (logged; never raised).
    """
    log.log(logging.INFO if alert.kind == "recovered" else logging.WARNING, "alert: %s", alert.message)
    if settings.alert_webhook_url is None:
        return True
    # The transport, not a Client: httpx.Client logs every request URL at INFO, and this
    # URL is a secret. No redirects are followed; TLS is verified.
    request = httpx.Request(
        "POST",
        settings.alert_webhook_url.get_secret_value(),
        json=alert.as_json(),
        headers={"User-Agent": settings.fetch.user_agent},
        extensions={"timeout": httpx.Timeout(settings.alert_webhook_timeout).as_dict()},
    )
    try:
        with httpx.HTTPTransport(retries=0) as transport:
            response = transport.handle_request(request)
            response.read()
            response.close()
    except Exception as exc:  # an alert must never break polling; the message may quote the URL, so omit it
        log.error("alert webhook unreachable (%s); the alert for feed %s is sent again at its next poll",
                  type(exc).__name__, alert.feed_id)
        return False
    if not 200 <= response.status_code < 300:
        log.error("alert webhook answered HTTP %d; the alert for feed %s is sent again at its next poll",
                  response.status_code, alert.feed_id)
        return False
    return True


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
