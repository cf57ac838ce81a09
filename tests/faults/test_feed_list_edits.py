"""The feed list edited (`newsagg feeds add|remove|move`) while a run reads and registers it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from services import postgres_database

import pipeline.runner.feeds
from pipeline.feeds import load_feed_list
from pipeline.feeds.lists import write_feed_list
from pipeline.feeds.subscriptions import add_feed, remove_feed
from pipeline.models import FeedSource
from pipeline.runner import Pipeline
from pipeline.settings import Settings
from pipeline.storage import Store

KEPT = "https://kept.example/feed.xml"
EDITED = "https://edited.example/feed.xml"


def _feed(url: str) -> FeedSource:
    return FeedSource(id="", name=url.split("/")[2], url=url)


def _edit_while_the_run_reads(settings: Settings, edit: Callable[[Store], object]) -> None:
    """A run reads the feed list; ``edit`` (another process's command: a store of its own) runs before it registers it."""
    read, edited = threading.Event(), threading.Event()
    real = pipeline.runner.feeds.load_feed_list

    def read_then_pause(path: Path) -> list[FeedSource]:
        feeds = real(path)
        read.set()
        edited.wait(2)  # before the fix the edit was done here; after it, it waits for the registration
        return feeds

    with Pipeline(settings) as run, pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.runner.feeds, "load_feed_list", read_then_pause)
        running = threading.Thread(target=run.load_feeds)
        running.start()
        assert read.wait(10)
        store = Store(settings.resolved_store_url)
        try:
            edit(store)
        finally:
            store.close()
        edited.set()
        running.join(10)


@pytest.mark.parametrize("backend", ["embedded", "postgresql"])
def test_a_feed_added_or_removed_while_a_run_reads_the_list_stays_so(tmp_path: Path, backend: str) -> None:
    # The run registered the list it had read, a whole list: the feed added meanwhile was marked
    # removed, and the one removed meanwhile came back, until the next run read the list again.
    feeds = tmp_path / "feeds.yaml"
    write_feed_list(feeds, [_feed(KEPT)])
    with contextlib.ExitStack() as stack:
        store_url = {} if backend == "embedded" else {"store_url": stack.enter_context(postgres_database())}
        settings = Settings(data_dir=tmp_path / "data", feeds_file=feeds, **store_url)  # type: ignore[arg-type]
        with Pipeline(settings) as first:
            first.load_feeds()

        _edit_while_the_run_reads(settings, lambda store: add_feed(store, feeds, EDITED))
        assert [f.url for f in load_feed_list(feeds)] == [KEPT, EDITED]
        with Pipeline(settings) as check:
            added = check.store.find_feed(EDITED)
            assert added is not None and added.status == "active", added

        _edit_while_the_run_reads(settings, lambda store: remove_feed(store, feeds, EDITED))
        assert [f.url for f in load_feed_list(feeds)] == [KEPT]
        with Pipeline(settings) as check:
            removed = check.store.find_feed(EDITED)
            assert removed is not None and removed.status == "removed", removed


def test_an_opml_import_while_another_command_edits_the_list_loses_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `feeds import-opml` read and wrote the list without the feed-list lock: a `feeds add` (or a
    # second import) editing it at the same time wrote the list it had read, and the imported feeds
    # were gone from it.
    from pipeline.cli import main

    feeds, opml = tmp_path / "feeds.yaml", tmp_path / "subs.opml"
    write_feed_list(feeds, [_feed(KEPT)])
    opml.write_text('<?xml version="1.0"?><opml version="2.0"><body>'
                    '<outline text="Imported" type="rss" xmlUrl="https://imported.example/rss.xml"/></body></opml>')
    settings = Settings(data_dir=tmp_path / "data", feeds_file=feeds)
    holding = threading.Event()

    def add_slowly() -> None:  # feeds add: the list read and written under the lock, slowly
        store = Store(settings.resolved_store_url)
        try:
            with store.exclusive("feed_list"):
                listed = load_feed_list(feeds)
                holding.set()
                threading.Event().wait(1.5)
                write_feed_list(feeds, [*listed, _feed(EDITED)])
        finally:
            store.close()

    adding = threading.Thread(target=add_slowly)
    adding.start()
    assert holding.wait(10)
    code = main(["--data-dir", str(tmp_path / "data"), "feeds", "import-opml", str(opml), "--feeds", str(feeds)])
    adding.join(10)
    assert code == 0, capsys.readouterr().err
    assert [f.url for f in load_feed_list(feeds)] == [KEPT, EDITED, "https://imported.example/rss.xml"]
