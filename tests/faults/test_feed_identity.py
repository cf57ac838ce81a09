"""Feed identity: the store knows a feed by its URL, so renaming, reordering or moving it between
YAML and OPML keeps its id, cache validators and history; a new URL is a new feed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import yaml

from faultkit import Handler, Web, fault_settings, rss
from pipeline.feeds import load_feed_list, merge_feed_lists, read_opml, write_feed_list
from pipeline.runner import Pipeline
from pipeline.storage import FeedState

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class CachedFeed:
    """An RSS feed that never changes, with an ETag: 304 to a request that sends it back."""

    def __init__(self, web: Web, name: str) -> None:
        self.body = rss(name, [(f"{name} 1", web.url(f"/{name}/1.html"), "One.")]).encode()
        self.etag = '"%s"' % hashlib.sha256(self.body).hexdigest()[:16]
        self.conditional: list[bool] = []  # per request: did it send the ETag back

    def __call__(self, h: Handler) -> None:
        self.conditional.append(h.headers.get("If-None-Match") == self.etag)
        if self.conditional[-1]:
            h.send_response(304)
            h.send_header("ETag", self.etag)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.reply(200, self.body, "application/rss+xml", ETag=self.etag)


def write_yaml(path: Path, feeds: list[tuple[str, str]]) -> Path:
    path.write_text(yaml.safe_dump({"feeds": [{"name": n, "url": u} for n, u in feeds]}), encoding="utf-8")
    return path


def history(states: list[FeedState]) -> dict[str, tuple[str, int, datetime | None, str | None]]:
    """What `feeds status` shows of each feed's past, by URL."""
    return {s.source.url: (s.source.id, s.entries_seen, s.last_new_entry_at, s.validators.etag) for s in states}


def test_reordering_and_renaming_every_feed_keeps_validators_and_history(web: Web, tmp_path: Path) -> None:
    names = ["alpha", "beta", "gamma"]
    served = {n: CachedFeed(web, n) for n in names}
    for n in names:
        web.routes[f"/{n}.xml"] = served[n]
    # Two feeds share a name: their ids used to depend on which came first.
    feeds = write_yaml(tmp_path / "feeds.yaml", [("Ledger", web.url("/alpha.xml")), ("Ledger", web.url("/beta.xml")),
                                                 ("Gamma", web.url("/gamma.xml"))])
    settings = fault_settings(web, tmp_path, feeds)
    with Pipeline(settings) as pipeline:
        first = pipeline.poll_feeds(pipeline.load_feeds(), now=T0)
        assert [o.status for o in first] == ["ok"] * 3
        before = history(pipeline.store.feed_states())

        # Every feed renamed, the list reversed, one URL spelled differently (same feed).
        write_yaml(feeds, [("Gamma Weekly", web.url("/gamma.xml#latest").replace("http://", "HTTP://")),
                           ("Beta Ledger", web.url("/beta.xml")), ("Alpha Ledger", web.url("/alpha.xml"))])
        sources = pipeline.load_feeds()
        assert {s.url.lower().removesuffix("#latest"): s.id for s in sources} == {u: v[0] for u, v in before.items()}
        second = pipeline.poll_feeds(sources, now=T0)
        assert [o.status for o in second] == ["not_modified"] * 3
        assert all(served[n].conditional == [False, True] for n in names)
        states = pipeline.store.feed_states()
        assert len(states) == 3 and {s.status for s in states} == {"active"}
        after = history(states)
        assert after.pop(sources[0].url) == before.pop(web.url("/gamma.xml"))
        assert after == before
        assert sorted(s.source.name for s in states) == ["Alpha Ledger", "Beta Ledger", "Gamma Weekly"]


def test_moving_the_list_from_yaml_to_opml_keeps_ids_and_importing_it_twice_changes_nothing(
    web: Web, tmp_path: Path
) -> None:
    for n in ("alpha", "beta"):
        web.routes[f"/{n}.xml"] = CachedFeed(web, n)
    yaml_list = write_yaml(tmp_path / "feeds.yaml", [("Alpha", web.url("/alpha.xml")), ("Beta", web.url("/beta.xml"))])
    # A feed reader's export: other titles, folders, the feeds in another order.
    opml = tmp_path / "export.opml"
    opml.write_text(f"""<?xml version="1.0"?>
<opml version="2.0"><body><outline text="News">
  <outline type="rss" text="The Beta" xmlUrl="{web.url('/beta.xml')}"/>
  <outline type="rss" text="Alpha Daily" xmlUrl="{web.url('/alpha.xml')}"/>
</outline></body></opml>""", encoding="utf-8")
    with Pipeline(fault_settings(web, tmp_path, yaml_list)) as pipeline:
        sources = pipeline.load_feeds()
        ids = {s.url: s.id for s in sources}
        assert [o.status for o in pipeline.poll_feeds(sources, now=T0)] == ["ok"] * 2
        with Pipeline(fault_settings(web, tmp_path, opml)) as from_opml:
            sources = from_opml.load_feeds()
            assert {s.url: s.id for s in sources} == ids
            assert [o.status for o in from_opml.poll_feeds(sources, now=T0)] == ["not_modified"] * 2
        imported = yaml_list.with_name("imported.yaml")
        for _ in range(2):
            write_feed_list(imported, merge_feed_lists(load_feed_list(imported) if imported.exists() else [],
                                                       read_opml(opml.read_bytes())))
            assert {s.url: s.id for s in pipeline.load_feeds(imported)} == ids
        assert len(load_feed_list(imported)) == 2 and len(pipeline.store.feed_states()) == 2


def test_a_retired_feed_whose_url_is_corrected_in_the_list_is_a_new_active_feed(web: Web, tmp_path: Path) -> None:
    web.routes["/new.xml"] = CachedFeed(web, "new")
    feeds = write_yaml(tmp_path / "feeds.yaml", [("Ledger", web.url("/old.xml"))])
    with Pipeline(fault_settings(web, tmp_path, feeds)) as pipeline:
        [old] = pipeline.load_feeds()
        pipeline.store.record_feed_failure(old.id, "HTTP 410", now=T0, next_attempt_at=None, retire=True)
        assert pipeline.due_feeds([old], now=T0) == []

        write_yaml(feeds, [("Ledger", web.url("/new.xml"))])
        [new] = pipeline.load_feeds()
        assert new.id != old.id and pipeline.due_feeds([new], now=T0) == [new]
        assert [o.status for o in pipeline.poll_feeds([new], now=T0)] == ["ok"]
        states = {s.source.id: s for s in pipeline.store.feed_states()}
        assert (states[new.id].status, states[new.id].consecutive_failures) == ("active", 0)
        # The old URL's feed is out of the list: removed, its history kept, nothing to alert about.
        assert (states[old.id].status, states[old.id].source.url, states[old.id].last_error) == (
            "removed", web.url("/old.xml"), "HTTP 410")
        assert old.id not in {s.source.id for s in pipeline.store.unalerted_feed_states()}
