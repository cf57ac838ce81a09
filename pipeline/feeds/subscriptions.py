"""Subscribing and unsubscribing: ``newsagg feeds import-opml|add|remove|reactivate|move``.

Each edits the YAML feed list (the one ``newsagg run`` reads) and the store together, so
a feed's history follows it: the store knows a feed by its URL (``urls.feed_url_key``),
keeps a removed feed's history for when it is added again, and ``move`` carries a feed's
history over to its new URL, where editing the URL in the list would start a new feed.
Each edit of the list and the store holds the store's feed-list lock, as a run does while
it reads and registers the list (``Pipeline.load_feeds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Literal

from pipeline.errors import ConfigError
from pipeline.feeds.lists import host_name, is_opml, load_feed_list, merge_feed_lists, polled_url, write_feed_list
from pipeline.models import FeedSource
from pipeline.storage import FeedState, Store
from pipeline.urls import feed_url_key


def add_feed(
    store: Store,
    path: Path,
    url: str,
    *,
    name: str | None = None,
    kind: Literal["feed", "sitemap"] = "feed",
    language: str | None = None,
) -> tuple[FeedSource, bool]:
    """Add a feed to the list (created if missing) and register it; a feed removed before comes back with its history.

    Args:
        store: the store.
        path: the YAML feed list.
        url: the feed's URL.
        name: its name; default: the name it had in the store, else the URL's host.
        kind: "sitemap" for a sitemap (written as ``type: sitemap``).
        language: its language; default: the one it had in the store.

    Returns:
        The feed as registered (with the store's id), and whether it was new to the list.
    """
    to_poll = polled_url(url)
    with store.exclusive("feed_list"):
        feeds = _editable(path)
        listed = _find(feeds, to_poll)
        if listed is not None:
            return store.sync_feeds([listed])[0], False
        known = store.find_feed(to_poll)
        label = (name or "").strip() or (known.source.name if known else host_name(to_poll))
        new = FeedSource(
            id="",  # given by merge_feed_lists, as load_feed_list will
            name=label,
            url=to_poll,
            language=language or (known.source.language if known else None),
            tags=known.source.tags if known else (),
            poll_interval=known.source.poll_interval if known else None,
            kind=kind,
            cross_host=known.source.cross_host if known else False,
        )
        merged = merge_feed_lists(feeds, [new])
        write_feed_list(path, merged)
        return store.sync_feeds([merged[-1]])[0], True


def remove_feed(store: Store, path: Path, url_or_id: str) -> FeedSource:
    """Take a feed out of the list; the store keeps it, marked removed, with its history.

    Returns:
        The feed removed.

    Raises:
        ConfigError: no such feed in the list or the store, or one removed before.
    """
    with store.exclusive("feed_list"):
        feeds = _editable(path)
        known = store.find_feed(url_or_id)
        listed = _find(feeds, known.source.url if known else url_or_id)
        if listed is None and known is None:
            raise ConfigError(f"no feed {url_or_id!r} in {path} or the store (see `newsagg feeds status`)")
        if listed is None and known is not None and known.status == "removed":
            raise ConfigError(f"feed {known.source.id} ({known.source.url}) is not in {path}: it was removed before")
        if listed is not None:
            write_feed_list(path, [feed for feed in feeds if feed is not listed])
        if known is not None:
            store.remove_feed(known.source.id)
            return known.source
        assert listed is not None
        return listed


def reactivate_feed(store: Store, url_or_id: str) -> FeedState:
    """Make a failing or retired feed active again, without its failures, to be polled on the next run.

    Raises:
        ConfigError: no such feed in the store, or it was removed from the list.
    """
    known = store.find_feed(url_or_id)
    if known is None:
        raise ConfigError(f"no feed {url_or_id!r} in the store (see `newsagg feeds status`)")
    if known.status == "removed":
        raise ConfigError(f"feed {known.source.id} is not in the feed list: "
                          f"`newsagg feeds add {known.source.url}` brings it back with its history")
    store.reactivate_feed(known.source.id)
    state = store.feed_state(known.source.id)
    assert state is not None
    return state


def move_feed(store: Store, path: Path, old_url: str, new_url: str) -> FeedSource:
    """Give a feed a new URL in the list and the store, keeping its id and history.

    Its validators and failures belonged to the old URL and are cleared.

    Returns:
        The feed at its new URL.

    Raises:
        ConfigError: the old URL is not in the list, or the new one names a feed already.
    """
    to_poll = polled_url(new_url)
    with store.exclusive("feed_list"):
        feeds = _editable(path)
        listed = _find(feeds, old_url)
        if listed is None:
            raise ConfigError(f"{old_url} is not in {path}")
        if feed_url_key(to_poll) == feed_url_key(listed.url):
            raise ConfigError(f"{old_url} and {new_url} are the same feed")
        if _find(feeds, to_poll) is not None:
            raise ConfigError(f"{to_poll} is already in {path}")
        taken = store.find_feed(to_poll)
        if taken is not None:
            raise ConfigError(f"{to_poll} is already feed {taken.source.id} in the store, with a history of its own "
                              f"(`newsagg feeds status`)")
        known = store.find_feed(listed.url)
        if known is not None:
            store.move_feed(known.source.id, to_poll)
        write_feed_list(path, [replace(feed, url=to_poll) if feed is listed else feed for feed in feeds])
        return replace(listed, id=known.source.id if known else listed.id, url=to_poll)


def import_subscriptions(path: Path, imported: Sequence[FeedSource], store: Store | None = None) -> int:
    """Add the feeds of an OPML export to the YAML list ``path`` (created if missing); returns how many were new to it.

    The next run registers them. With the ``store``, the list is edited under its feed-list
    lock, as by ``add_feed``; without (none was made yet), no run or edit can hold it.
    """
    with store.exclusive("feed_list") if store is not None else nullcontext():
        feeds = _editable(path)
        merged = merge_feed_lists(feeds, imported)
        if len(merged) > len(feeds) or not path.exists():  # nothing new: the list keeps its comments and layout
            write_feed_list(path, merged)
    return len(merged) - len(feeds)


def _editable(path: Path) -> list[FeedSource]:
    """The feeds of a YAML list (none if it does not exist yet); an OPML list is not rewritten as YAML."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read feed list: {exc.strerror}") from None
    if is_opml(data):
        raise ConfigError(f"{path} is an OPML file, which newsagg reads but does not edit: copy it into a YAML list "
                          f"(`newsagg feeds import-opml {path} --feeds feeds.yaml`) and name that one in the settings")
    return load_feed_list(path)


def _find(feeds: list[FeedSource], url: str) -> FeedSource | None:
    key = feed_url_key(url)
    return next((feed for feed in feeds if key is not None and feed_url_key(feed.url) == key), None)

