"""The store's tables, and the column types that keep values the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

#: PostgreSQL advisory lock keys ("newsag" and a number), all here so that no two kinds of
#: exclusive work share one: creating the schema (migrate.py), clustering and building stories
#: and sending the alert digest (``Store.exclusive``), registering the feed list (feeds.py).
ADVISORY_LOCKS = {
    "schema": 0x6E6577736167_01,
    "clusters": 0x6E6577736167_02,
    "feed_list": 0x6E6577736167_03,
    "alerts": 0x6E6577736167_04,
    "claims": 0x6E6577736167_05,
}
#: The advisory lock class of an outlet's template counts (templates.py), whose second key is
#: the hash of the outlet: two 32-bit keys, a key space apart from the 64-bit ones above.
TEMPLATE_LOCK_CLASS = 0x6E650004


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class CleanText(sa.types.TypeDecorator[str]):
    """Text without NUL characters: PostgreSQL refuses them in text, so neither database gets them."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else value.replace("\x00", "")


metadata = sa.MetaData()

feeds = sa.Table(
    "feeds",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("name", CleanText, nullable=False),
    sa.Column("url", CleanText, nullable=False),
    # What the feed is known by (urls.feed_url_key): a feed list is matched to the stored feeds by
    # it, whatever their names or order. NULL: a stale row of a store from before it, whose URL
    # another row of the feed list holds (revision 0002).
    sa.Column("url_key", CleanText, unique=True, index=True),
    sa.Column("language", sa.String(20)),
    sa.Column("tags", sa.JSON, nullable=False, default=list),
    sa.Column("poll_interval", sa.Integer),
    sa.Column("etag", CleanText),
    sa.Column("last_modified", CleanText),
    sa.Column("status", sa.String(20), nullable=False, default="active"),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", CleanText),
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("last_success_at", UTCDateTime),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("entries_seen", sa.Integer, nullable=False, default=0),
    # Feed health and adaptive polling (stores created before these columns gain them on open).
    sa.Column("failure_score", sa.Float, nullable=False, default=0.0, server_default="0"),
    sa.Column("learned_interval", sa.Integer),
    sa.Column("last_new_entry_at", UTCDateTime),
    sa.Column("alerted_status", sa.String(20)),
    # One scheduled poll is one attempt however often Airflow retries it (runner.feeds._record_poll).
    sa.Column("attempt_key", CleanText),
    # What that poll did (FeedOutcome fields but the id), so the report of a DAG run lists the
    # feeds polled by a try that failed or a run since cleared, whose outcomes no XCom holds (0008).
    sa.Column("attempt_outcome", sa.JSON),
    sa.Column("failing_since", UTCDateTime),
    # Sitemap sources (pipeline.feeds.sitemaps): how the list names the source ("feed" or "sitemap"),
    # whether URLs on other hosts are kept, and the newest URL date taken so far.
    sa.Column("kind", sa.String(20), nullable=False, default="feed", server_default="feed"),
    sa.Column("cross_host", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("high_water", UTCDateTime),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("url", CleanText, primary_key=True),
    sa.Column("feed_id", sa.String(200), nullable=False),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("summary", CleanText),
    sa.Column("content", CleanText),
    sa.Column("author", CleanText),
    sa.Column("published", UTCDateTime),
    sa.Column("guid", CleanText),
    sa.Column("discovered_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(20), nullable=False, default="pending", index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", CleanText),
    # The worker fetching the entry's page now, until lease_until; an expired lease is free to
    # take (its worker died). A worker keeps its name on entries it deferred, so it does not
    # take them again in the same pass.
    sa.Column("claimed_by", sa.String(80)),
    sa.Column("lease_until", UTCDateTime),
    # The entry's update time in its feed: a later one queues the entry again as a revisit (a
    # correction), its page fetched with the validators of the last fetch (etag, last_modified).
    sa.Column("updated", UTCDateTime),
    sa.Column("revisit", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("etag", CleanText),
    sa.Column("last_modified", CleanText),
    # Each feed's queue in claim order: a claim reads each feed's first few pending entries,
    # whatever the size of the backlog (and the lookups by feed alone use its first column).
    sa.Index("ix_entries_feed_queue", "feed_id", "state", "discovered_at", "url"),
    # The entries under a lease by worker: renewed at each of its claims, released at the end of
    # its pass or, its process dead, at the start of the next pass.
    sa.Index("ix_entries_claimed_by", "claimed_by", sqlite_where=sa.text("lease_until IS NOT NULL"),
             postgresql_where=sa.text("lease_until IS NOT NULL")),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("url", CleanText, nullable=False, unique=True),
    sa.Column("feed_id", sa.String(200)),
    sa.Column("outlet", CleanText, nullable=False),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("text", CleanText, nullable=False),
    sa.Column("author", CleanText),
    sa.Column("published", UTCDateTime),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("arrived_at", UTCDateTime, nullable=False, index=True),
    sa.Column("language", sa.String(20)),
    sa.Column("text_source", sa.String(20), nullable=False, index=True),  # indexed: metrics count by it
    sa.Column("text_source_reason", CleanText),
    sa.Column("tags", sa.JSON),  # its feed's tags
    # The wire agency it credits (pipeline.agency): the agency, "full" or
    # "contributor", the rule that found the credit and the line carrying it.
    sa.Column("agency", sa.String(40)),
    sa.Column("agency_credit", sa.String(20)),
    sa.Column("agency_rule", sa.String(40)),
    sa.Column("agency_evidence", CleanText),
    # The dates `published` was chosen from: the page's publication and update dates as
    # found (trusted or not) and the feed entry's; NULL for articles stored before them.
    sa.Column("page_published", UTCDateTime),
    sa.Column("page_modified", UTCDateTime),
    sa.Column("feed_published", UTCDateTime),
    sa.Column("paywalled", sa.Boolean),
    # Its page's response record in the WARC archive (pipeline.archive): the file (a name in the
    # archive directory, or the path of an imported WARC file), the record's offset and length.
    # NULL: no archived page (archive off, a feed-only article, or its file was deleted by retention).
    sa.Column("warc_file", CleanText),
    sa.Column("warc_offset", sa.BigInteger),
    sa.Column("warc_length", sa.BigInteger),
    # The outlet's template blocks taken out of the text (pipeline.templates): [{"text", "articles"}].
    sa.Column("template_stripped", sa.JSON(none_as_null=True)),
    # The river filtered by outlet finds the outlet's stories from its articles.
    sa.Index("ix_articles_outlet", "outlet", "id"),
)

# How far `newsagg import-warc` got in each WARC file, so a killed import resumes there. A file
# is known by a digest of its first bytes (its warcinfo record names it), not its path.
warc_imports = sa.Table(
    "warc_imports",
    metadata,
    sa.Column("file_key", sa.String(64), primary_key=True),
    sa.Column("path", CleanText, nullable=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),  # where the first record not yet imported starts
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Earlier texts of corrected articles: every revision, the latest too (the article row holds it),
# written from the first correction on (an article never corrected has none).
article_revisions = sa.Table(
    "article_revisions",
    metadata,
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("text", CleanText, nullable=False),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("reason", CleanText, nullable=False),
)

# Per outlet (registrable domain and feed name), the paragraphs seen on its articles
# (pipeline.templates): on how many distinct articles, and that count decayed to last_seen (weight).
template_blocks = sa.Table(
    "template_blocks",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("outlet", CleanText, primary_key=True),
    sa.Column("fingerprint", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("articles", sa.Integer, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False, index=True),
)

signatures = sa.Table(
    "signatures",
    metadata,
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("cluster_id", sa.String(64), nullable=False, index=True),
    sa.Column("matched_article_id", sa.String(64)),
    sa.Column("jaccard", sa.Float),
    sa.Column("containment", sa.Float),
)

cluster_aliases = sa.Table(
    "cluster_aliases",
    metadata,
    sa.Column("absorbed_id", sa.String(64), primary_key=True),
    sa.Column("survivor_id", sa.String(64), nullable=False, index=True),  # a merge repoints the aliases of what it absorbs
)

# Articles to cluster (without a membership), in arrival order: written with a new article, and
# with a revision or re-extraction that takes an article's membership; deleted with the membership
# clustering writes. A clustering batch reads its articles here: found by an anti-join of articles
# and memberships, each batch read every article stored.
unclustered = sa.Table(
    "unclustered",
    metadata,
    sa.Column("article_id", sa.String(64), primary_key=True),
    sa.Column("arrived_at", UTCDateTime, nullable=False),  # the article's
    sa.Index("ix_unclustered_arrived_at", "arrived_at", "article_id"),
)

# Clusters whose merged story must be rebuilt; written with the memberships that changed them.
dirty_clusters = sa.Table(
    "dirty_clusters",
    metadata,
    sa.Column("cluster_id", sa.String(64), primary_key=True),
)

stories = sa.Table(
    "stories",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("title", CleanText, nullable=False),
    sa.Column("text", CleanText, nullable=False),
    sa.Column("summary", CleanText, nullable=False),
    sa.Column("sources", sa.JSON, nullable=False),
    sa.Column("article_count", sa.Integer, nullable=False),
    sa.Column("outlet_count", sa.Integer, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False, index=True),
    sa.Column("language", sa.String(20)),
    sa.Column("agency", sa.String(40)),
    sa.Column("tags", sa.JSON),  # the union of its articles' tags
    # The river filtered by agency or language, newest first: a seek, not a walk through
    # every story (reading each wide row) until a page of them is found.
    sa.Index("ix_stories_agency_last_seen", "agency", "last_seen"),
    sa.Index("ix_stories_language_last_seen", "language", "last_seen"),
    # The clusters listed largest and newest first (`newsagg clusters list`), read backwards (then
    # by id among the few that tie on both): every page after the first sorted every story.
    sa.Index("ix_stories_listing", "article_count", "last_seen", "id"),
)

# What the search index still has to receive. `seq` is the number of the transaction that last
# queued the document (from outbox_seq): it grows with every change of a document, across
# deliveries, so a document changed again while a batch was in flight is not dropped when that
# batch completes, and the search index, which stores it as the document's version, refuses an
# older write that arrives after a newer one.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),  # refusals of this version
    sa.Column("last_error", CleanText),
)

# When the last alert digest went to each webhook (keyed by a hash of its URL, a secret),
# so digests to one destination are spaced by `alert_digest_interval`.
alert_digests = sa.Table(
    "alert_digests",
    metadata,
    sa.Column("destination", sa.String(64), primary_key=True),
    sa.Column("sent_at", UTCDateTime, nullable=False),
)

# The last outbox sequence number handed out: one row (id 1), see StoreBase._next_seq.
outbox_seq = sa.Table(
    "outbox_seq",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last", sa.BigInteger, nullable=False),
)

# Outbox items the search index refused outbox.max_attempts times: kept aside, not retried
# until `newsagg outbox retry` queues them again.
dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("doc_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", CleanText),
    sa.Column("failed_at", UTCDateTime, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trigger", sa.String(40), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("stats", sa.JSON),
    # Who runs it (host and process id) and when it last showed signs of life, so the next run can
    # tell a run that was killed from one still at work.
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("heartbeat_at", UTCDateTime),
    # The Airflow run id of a DAG run: its tasks, run in processes of their own and retried, all
    # find this one row by it. NULL for runs of `newsagg run`.
    sa.Column("airflow_run", sa.String(250), unique=True, index=True),
)

# The earliest time (seconds since the epoch) the next request to a registrable domain may start,
# shared by every process on the store so the politeness delay holds across workers.
domain_clock = sa.Table(
    "domain_clock",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("next_start", sa.Float, nullable=False),
)
