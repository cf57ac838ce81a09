"""The one HTTP layer every stage uses: guarded, polite, bounded.

``Fetcher.fetch`` GETs one URL and returns a ``Fetched`` (a 2xx body, or a 304
for a conditional GET) or raises a ``FetchError`` subclass; ``Fetcher.fetch_all``
does many through a thread pool. What it protects against, and where:

* hostile addresses: every hop's host is resolved and checked by
  ``pipeline.addresses`` inside the connection layer (``transport``), and
  the socket is opened to exactly the checked address, so DNS rebinding between
  check and connect is impossible;
* slow or endless servers: connect/read timeouts, plus a total budget per response
  (each redirect hop has its own) enforced on every socket operation
  (``transport.DEADLINE``), so header bytes trickled one by one are cut off too;
* large bodies and compression bombs: we decode gzip/deflate ourselves with a
  bounded output size, so the cap counts decompressed bytes and memory never
  exceeds it;
* impoliteness: requests are spaced and bounded per registrable domain
  (``politeness``) and robots.txt is honoured on request.
"""

from __future__ import annotations

from pipeline.addresses import check_address
from pipeline.fetching.client import Fetcher, parse_retry_after
from pipeline.fetching.politeness import registrable_domain
from pipeline.urls import redact_url

__all__ = ["Fetcher", "check_address", "parse_retry_after", "redact_url", "registrable_domain"]
