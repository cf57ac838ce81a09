"""PostgreSQL connections ended under a command (a restart, a failover, ``pg_terminate_backend``).

The transaction in progress rolls back and the command ends with one clear line, never a
traceback; the next command finds the store as the last commit left it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest
import sqlalchemy as sa

from faultkit import wait_until
from pipeline.errors import StoreError
from pipeline.models import FeedSource
from pipeline.storage import Store
from pipeline.storage.schema import feeds
from services import postgres_database



def waiting(store: Store) -> int | None:
    """The process id of a session of the store's database waiting for a lock, if one is."""
    with store.engine.connect() as conn:  # a transaction of its own: the activity is read once per transaction
        return conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND wait_event_type = 'Lock'")).scalar()


@pytest.fixture
def store_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def test_a_connection_ended_while_feeds_are_registered_is_one_store_error(store_url: str) -> None:
    # Registering the feed list (every run, `feeds add`) looks for the feed the database refuses
    # when its writes fail, row by row; a connection that ended is no refused feed, and asking
    # again on it raised SQLAlchemy's PendingRollbackError, a traceback (found by bench/soak.py).
    ledger = FeedSource(id="ledger", name="Ledger", url="https://ledger.example/feed.xml")
    with closing(Store(store_url)) as store:
        store.sync_feeds([ledger])
        with store.engine.connect() as other, ThreadPoolExecutor(1) as pool:
            with other.begin():
                # Another transaction holds the feed's row: the renaming waits for it, in its writes.
                other.execute(sa.select(feeds.c.id).where(feeds.c.id == "ledger").with_for_update())
                renaming = pool.submit(store.sync_feeds, [FeedSource(id="ledger", name="The Ledger", url=ledger.url)])
                wait_until(lambda: waiting(store) is not None, 30)
                with store.engine.connect() as killer:
                    killer.execute(sa.select(sa.func.pg_terminate_backend(waiting(store))))
                with pytest.raises(StoreError, match="terminating connection due to administrator command"):
                    renaming.result(30)
        # Nothing was written; the store answers the next command.
        def name() -> str | None:
            found = store.find_feed(ledger.url)
            return found.source.name if found else None

        assert name() == "Ledger"
        assert store.sync_feeds([FeedSource(id="ledger", name="The Ledger", url=ledger.url)])[0].id == "ledger"
        assert name() == "The Ledger"
