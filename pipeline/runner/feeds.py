"""Polling feeds: the feed list registered, the feeds due, their conditional GETs, their documents parsed
(on the worker processes when there are many), what each poll did recorded, and the alerts of their health."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pipeline import alerts, polling
from pipeline.errors import FeedParseError, FetchError
from pipeline.feeds import load_feed_list, parse_feed
from pipeline.feeds.sitemaps import is_sitemap, read_sitemap
from pipeline.fetching import Fetcher, redact_url
from pipeline.models import Fetched, FeedSource, ParsedFeed
from pipeline.pool import WorkerPool
from pipeline.runner.base import PipelineBase
from pipeline.storage import FeedState

# One logger name for all the runner's modules: operators know its lines by it, and filter them
# so ("WARNING pipeline.runner: feed ... failed"), whichever module a line now comes from.
log = logging.getLogger("pipeline.runner")

#: Polls of fewer feeds parse them in this process: starting worker processes would cost more.
MIN_PARALLEL_FEEDS = 32


@dataclass(slots=True)
class FeedOutcome:
    """What polling one feed did."""

    feed_id: str
    status: Literal["ok", "not_modified", "failed", "retired"]
    new_entries: int = 0
    error: str | None = None
    transient: bool = False  # a failure that polling again later may cure (timeout, 429, 5xx)


class FeedStages(PipelineBase):
    """The stages of the feeds: ``load_feeds``, ``poll_feeds`` (or ``poll_feed``) and ``send_alerts``."""

    def load_feeds(self, path: Path | None = None) -> list[FeedSource]:
        """Read the feed list (YAML or OPML) and register its feeds in the store; returns them with the store's ids.

        The store knows a feed by its URL, so renaming or reordering feeds keeps their
        ids and history (``Store.sync_feeds``). Stored feeds missing from the configured
        list are marked removed; another list (``path``, polled once) removes nothing.
        The list is read and registered under the store's feed-list lock, which
        ``newsagg feeds add|remove|move|import-opml`` hold while they edit it: a list read before such
        an edit and registered after it would undo it.
        """
        configured = self.settings.resolved_feeds_file
        path = path or configured
        whole_list = path.resolve() == configured.resolve()
        with self.store.exclusive("feed_list"):
            return self.store.sync_feeds(load_feed_list(path), whole_list=whole_list)

    def due_feeds(
        self,
        sources: Sequence[FeedSource],
        now: datetime | None = None,
        *,
        force: bool = False,
        attempt: str | None = None,
    ) -> list[FeedSource]:
        """The feeds to poll now: those whose next poll is due (retired feeds never are), or all with ``force``.

        A feed that the scheduled poll ``attempt`` already polled (this is Airflow
        retrying that poll) waits for its next poll time even when forced, so a retry
        never contacts a publisher before its Retry-After or backoff has passed.
        """
        now = now or datetime.now(UTC)
        states = {s.source.id: s for s in self.store.feed_states([f.id for f in sources])}
        return [
            f
            for f in sources
            if (state := states.get(f.id)) is None
            or (force and (attempt is None or state.attempt_key != attempt))
            or (state.status != "retired" and (state.next_attempt_at is None or state.next_attempt_at <= now))
        ]

    def poll_feed(self, feed_id: str, *, now: datetime | None = None, attempt: str | None = None) -> FeedOutcome:
        """Fetch one feed (conditional GET) and queue its new entries; failures are recorded, not raised.

        ``attempt`` names the scheduled poll (an Airflow run id): however often it is
        retried, it counts as one failed poll at most. A change of the feed's health (it
        starts failing, is retired, recovers) is reported by the next ``send_alerts``.
        """
        now = now or datetime.now(UTC)
        state = self.store.feed_state(feed_id)
        if state is None:
            return FeedOutcome(feed_id, "failed", error="unknown feed (not in the feed list)")
        fetched, parsed = self._download(state, self.fetcher, now)
        if parsed is None and isinstance(fetched, Fetched) and not fetched.not_modified:  # a feed document
            parsed = self._parse(state.source, fetched, now)
        return self._record_poll(state, now, fetched, parsed, attempt)

    def _download(
        self, state: FeedState, fetcher: Fetcher, now: datetime
    ) -> tuple[Fetched | FetchError, ParsedFeed | FeedParseError | None]:
        """The conditional GET of a source, and a sitemap read at once (it may fetch child sitemaps);
        a feed document is parsed later (None). Safe in any thread."""
        try:
            fetched = fetcher.fetch(state.source.url, validators=state.validators)
        except FetchError as exc:
            return exc, None
        if not fetched.not_modified:
            self._archive(fetched)
        max_bytes = self.settings.fetch.max_body_bytes
        if fetched.not_modified or (state.source.kind != "sitemap" and not is_sitemap(fetched.body, max_bytes)):
            return fetched, None
        def fetch_child(url: str) -> Fetched:
            child = fetcher.fetch(url)
            self._archive(child)  # the children are documents of this source as much as the index
            return child

        try:
            return fetched, read_sitemap(
                state.source, fetched, fetch_child, settings=self.settings.feeds, max_bytes=max_bytes,
                high_water=state.high_water, now=now,
            )
        except FeedParseError as exc:
            return fetched, exc

    def _parse(self, feed: FeedSource, fetched: Fetched, now: datetime) -> ParsedFeed | FeedParseError:
        return _parse_document(feed, fetched, self.settings.feeds.max_entries_per_feed, now)

    def _record_poll(
        self,
        state: FeedState,
        now: datetime,
        fetched: Fetched | FetchError,
        parsed: ParsedFeed | FeedParseError | None,
        attempt: str | None,
    ) -> FeedOutcome:
        feed = state.source
        if isinstance(fetched, Fetched) and fetched.not_modified:
            interval = self._learned_interval(state, 0, now)
            next_at = polling.next_poll_after_success(feed, fetched, self.settings.feeds, now, interval=interval)
            self.store.record_feed_fetched(
                feed.id, [], state.validators, now=now, next_attempt_at=next_at, learned_interval=interval, attempt=attempt,
                not_modified=True,
            )
            return FeedOutcome(feed.id, "not_modified")
        exc = fetched if isinstance(fetched, FetchError) else parsed if isinstance(parsed, FeedParseError) else None
        if exc is not None:
            # A retry of a scheduled poll that already failed is the same attempt: counted once.
            counted = attempt is None or state.attempt_key != attempt or state.consecutive_failures == 0
            failures = state.consecutive_failures + (1 if counted else 0)
            weight = polling.failure_weight(exc, self.settings.feeds)
            score = state.failure_score + (weight if counted else 0.0)
            failing_for = now - (state.failing_since or now)
            retire = polling.should_retire(exc, score, failing_for, self.settings.feeds)
            next_at = polling.next_poll_after_failure(feed, exc, failures, self.settings.feeds, now)
            error = exc.reason  # without the feed or URL: whoever shows it names the feed
            self.store.record_feed_failure(
                feed.id, error, now=now, next_attempt_at=next_at, retire=retire, weight=weight, attempt=attempt,
                counted=counted, transient=exc.transient,
            )
            # One line per failed feed; the rest for -v.
            log.warning("feed %s failed (%d in a row%s%s): %s", feed.id, failures, "" if counted else ", not counted again",
                        ", retired" if retire else "", error)
            log.debug("feed %s (%s): %s; next poll %s", feed.id, redact_url(feed.url), type(exc).__name__,
                      "never (retired)" if retire else next_at.isoformat())
            return FeedOutcome(feed.id, "retired" if retire else "failed", error=error, transient=exc.transient)
        assert isinstance(fetched, Fetched) and isinstance(parsed, ParsedFeed)
        if parsed.error:
            log.info("feed %s is malformed but usable: %s", feed.id, parsed.error)
        interval = self._learned_interval(state, self.store.unseen_entry_count(e.url for e in parsed.entries), now)
        next_at = polling.next_poll_after_success(
            feed, fetched, self.settings.feeds, now, ttl_minutes=parsed.ttl_minutes, interval=interval
        )
        added = self.store.record_feed_fetched(
            feed.id,
            parsed.entries,
            fetched.validators,
            now=now,
            next_attempt_at=next_at,
            error=parsed.error,
            learned_interval=interval,
            attempt=attempt,
            high_water=parsed.high_water,
        )
        log.info("feed %s: %d entries, %d new; next poll %s", feed.id, len(parsed.entries), added, next_at.isoformat())
        return FeedOutcome(feed.id, "ok", new_entries=added)

    def _learned_interval(self, state: FeedState, new_entries: int, now: datetime) -> int:
        return polling.adapt_interval(
            state.source,
            self.settings.feeds,
            current=state.learned_interval,
            new_entries=new_entries,
            now=now,
            last_success_at=state.last_success_at,
            last_new_entry_at=state.last_new_entry_at,
        )

    def poll_feeds(
        self, sources: Sequence[FeedSource], now: datetime | None = None, *, attempt: str | None = None
    ) -> list[FeedOutcome]:
        """Poll many feeds: what `poll_feed` does for each, with the waiting and the parsing overlapped.

        Up to ``fetch.concurrency`` conditional GETs are in flight at once (threads; the
        fetcher's per-domain limits still apply), feed documents are parsed by
        the run's worker processes (in this process for fewer than
        ``MIN_PARALLEL_FEEDS`` feeds unless the workers are running already), and this thread records each result in the store as
        it arrives, so the store is written from one thread only. ``attempt`` names the
        scheduled poll, as for `poll_feed`.

        Returns:
            One outcome per feed, in the order of ``sources``.
        """
        states = {s.source.id: s for s in self.store.feed_states([f.id for f in sources])}
        outcomes: list[FeedOutcome] = [
            FeedOutcome(f.id, "failed", error="unknown feed (not in the feed list)") for f in sources
        ]
        queue = iter([(i, states[f.id]) for i, f in enumerate(sources) if f.id in states])
        concurrency = self.settings.fetch.concurrency
        fetcher = self.fetcher  # built here, not by several download threads at once
        parsers = _Parsers(self.pool if len(states) >= MIN_PARALLEL_FEEDS or self.pool.running else None)
        downloading: dict[
            Future[tuple[Fetched | FetchError, ParsedFeed | FeedParseError | None]], tuple[int, FeedState, datetime]
        ] = {}
        parsing: dict[Future[ParsedFeed], tuple[int, FeedState, datetime, Fetched]] = {}
        try:
            with self._bar(len(sources), "feeds") as bar, self._downloading("newsagg-poll", concurrency) as downloads:
                bar.update(len(sources) - len(states))
                while True:
                    # Bounded: few bodies wait for a parser, and closing early cancels little.
                    while len(downloading) < 2 * concurrency and len(parsing) < 4 * parsers.workers:
                        if (item := next(queue, None)) is None:
                            break
                        i, state = item
                        at = now or datetime.now(UTC)
                        downloading[downloads.submit(self._download, state, fetcher, at)] = (i, state, at)
                    if not downloading and not parsing:
                        break
                    waiting: list[Future[Any]] = [*downloading, *parsing]
                    for future in wait(waiting, return_when=FIRST_COMPLETED).done:
                        if future in downloading:
                            i, state, at = downloading.pop(future)
                            fetched, read = future.result()
                            if read is None and isinstance(fetched, Fetched) and not fetched.not_modified:
                                parsed_later = parsers.submit(state.source, fetched, self.settings.feeds.max_entries_per_feed, at)
                                parsing[parsed_later] = (i, state, at, fetched)
                                continue
                            outcomes[i] = self._record_poll(state, at, fetched, read, attempt)
                        else:
                            i, state, at, fetched = parsing.pop(future)
                            try:
                                parsed = future.result()
                            except FeedParseError as exc:
                                parsed = exc
                            except BrokenProcessPool:  # a worker died (out of memory?): parse here from now on
                                log.warning("a feed parser process died; parsing %s in this process", state.source.id)
                                parsers.broken()
                                parsed = self._parse(state.source, fetched, at)
                            outcomes[i] = self._record_poll(state, at, fetched, parsed, attempt)
                        bar.update()
                    self._beat()
        finally:
            for pending in downloading:
                pending.cancel()
        return outcomes

    def send_alerts(self, now: datetime | None = None) -> alerts.Digest | None:
        """Report the feeds' changes of health not reported yet, as one digest (see ``pipeline.alerts``)."""
        return alerts.send_digest(self.store, self.settings, now)


def _parse_document(feed: FeedSource, fetched: Fetched, max_entries: int, now: datetime) -> ParsedFeed | FeedParseError:
    """``parse_feed`` with its expected failure as a value."""
    try:
        return parse_feed(feed, fetched, max_entries=max_entries, now=now)
    except FeedParseError as exc:
        return exc


class _Parsers:
    """Where `poll_feeds` parses feed documents: the pool's workers, or this process.

    The pool is started here, before any download thread starts, so that its workers
    are forked when nothing else runs (see ``pipeline.pool.start_method``).
    """

    def __init__(self, pool: WorkerPool | None) -> None:
        self._pool = pool
        self._executor: ProcessPoolExecutor | None = pool.executor() if pool is not None else None
        self.workers = pool.workers if pool is not None and self._executor is not None else 1

    def submit(self, feed: FeedSource, fetched: Fetched, max_entries: int, now: datetime) -> Future[ParsedFeed]:
        """``parse_feed`` on a worker, or here; the future raises what it raises."""
        if self._executor is not None:
            try:
                return self._executor.submit(parse_feed, feed, fetched, max_entries=max_entries, now=now)
            except RuntimeError:  # BrokenProcessPool: a worker died
                self.broken()
        done: Future[ParsedFeed] = Future()
        try:
            done.set_result(parse_feed(feed, fetched, max_entries=max_entries, now=now))
        except FeedParseError as exc:
            done.set_exception(exc)
        return done

    def broken(self) -> None:
        """A worker died: the pool is discarded (the next stage starts a fresh one) and this poll parses here."""
        if self._pool is not None and self._executor is not None:
            self._pool.discard(self._executor)
        self._executor = None
        self.workers = 1
