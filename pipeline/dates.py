"""ISO 8601 dates and times as users, feeds, sitemaps and pages write them: one reading for all."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def parse_moment(value: str | None) -> datetime | None:
    """An ISO 8601 date or datetime in its own offset (UTC when it states none); None for anything else."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def until(text: str, moment: datetime) -> datetime:
    """``moment``, read from ``text``, as the end of a range: a date alone means the last instant of that day."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return moment
    return moment + timedelta(days=1) - timedelta(microseconds=1)
