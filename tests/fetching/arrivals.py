"""What the test server's log of arrivals says about how requests were spaced."""

from __future__ import annotations

import statistics


def assert_spaced(gaps: list[float], delay: float) -> None:
    """The gaps between requests' arrivals show them ``delay`` apart.

    Arrivals are measured at the server and jitter with the scheduling of a loaded machine
    (make test runs two test processes beside Elasticsearch and PostgreSQL): one request that
    arrives late shortens one gap (0.09 s of 0.2 s, seen) and lengthens the next. So the median
    gap is the delay, and no gap is near zero, as it is for requests sent together.
    """
    assert statistics.median(gaps) >= delay - 0.02 and min(gaps) > delay / 4, gaps
