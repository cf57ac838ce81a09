"""`newsagg`: the command line. Parses, builds the pipeline, calls the library, maps errors to exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline.dates import parse_moment, until
from pipeline.errors import ConfigError, NewsaggError
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from pipeline.demo.run import DemoResult
    from pipeline.models import AgencyCredit
    from pipeline.storage import Store

log = logging.getLogger("pipeline.cli")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # Both log every refused page or connection retry with a traceback; our own
        # messages already say what happened, in one line.
        for noisy in ("trafilatura", "elastic_transport"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except ConfigError as exc:
        print(f"newsagg: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NewsaggError as exc:
        print(f"newsagg: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("newsagg: interrupted; run again to resume where it stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`newsagg export articles | head`): stop quietly, and keep Python
        # from failing again on flushing standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(args.config, **overrides)


def _store(settings: Settings) -> closing[Store]:
    """The store the settings name, closed when the command is done."""
    from pipeline.storage import Store

    return closing(Store(settings.resolved_store_url))


def _feed_list(args: argparse.Namespace, settings: Settings) -> Path:
    """The feed list a command edits: ``--feeds``, else the settings' one."""
    path: Path = args.feeds or settings.resolved_feeds_file
    return path


def _progress() -> bool:
    return sys.stderr.isatty()


# -- run / demo -----------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.runner import Pipeline

    settings = _settings(args)
    with Pipeline(settings, progress=_progress()) as pipeline:
        report = pipeline.run(args.feeds, force=args.force)
    if args.json:
        _print_json(report.as_dict())
    else:
        ok = sum(1 for f in report.feeds if f.status in ("ok", "not_modified"))
        print(
            f"feeds {ok}/{len(report.feeds)} ok · articles +{report.articles_added}"
            f" ({report.articles_failed} failed, {report.pages_deferred} deferred)"
            f" · clustered {report.clustered} ({report.clusters_merged} merges)"
            f" · stories {report.stories_built} updated · indexed {report.indexed}"
        )
        if report.index_error:
            print(f"  search index unavailable ({report.outbox_left} documents kept for the next run): "
                  f"{report.index_error}", file=sys.stderr)
    return EXIT_OK if report.index_error is None else EXIT_FAILURE


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo.run import run_demo

    demo = run_demo(args.data_dir, progress=_progress())
    if args.json:
        _print_json({"report": demo.report.as_dict(), "stories": demo.stories, "query": demo.query,
                     "search": demo.results})
        return EXIT_OK
    print_demo(demo, sys.stdout)
    if args.data_dir is not None:
        print(f"\nData kept in {args.data_dir}. Look at it with:")
        print_demo_commands(args.data_dir, demo.query, sys.stdout)
    return EXIT_OK


def print_demo_commands(data_dir: Path, query: str, out: TextIO) -> None:
    """The exact commands that show a demo's data (also used by scripts/airflow-demo)."""
    def shown(path: Path) -> str:  # relative to where the user is, when inside it
        relative = os.path.relpath(path.resolve())
        return shlex.quote(str(path.resolve()) if relative.startswith("..") else relative)

    installed = Path(sys.executable).parent / "newsagg"  # this environment's newsagg, on PATH or not
    newsagg = f"{shown(installed)} --data-dir {shown(data_dir)}" if installed.exists() else f"newsagg --data-dir {shown(data_dir)}"
    print(f"  {newsagg} clusters list", file=out)
    print(f"  {newsagg} search {shlex.quote(query)}", file=out)
    print(f"  {newsagg} export stories", file=out)
    print(f"  {newsagg} serve    # then open http://127.0.0.1:8000/", file=out)


def print_demo(demo: DemoResult, out: TextIO) -> None:
    """The demo's stories, with the outlets of each, and its example search (also used by scripts/airflow-demo)."""
    report = demo.report
    print(f"Demo run: {len(report.feeds)} feeds, {report.articles_added} articles, {report.clustered} clustered "
          f"into {len(demo.stories)} stories, {report.indexed} documents indexed.", file=out)
    merged = [s for s in demo.stories if s.article_count > 1]
    print(f"\n{len(merged)} stories ran in more than one outlet:", file=out)
    for story in merged:
        wire = f" · wire: {story.agency}" if story.agency else ""
        print(f"\n  {story.title}  [{story.id}]{wire}", file=out)
        for source in story.sources:
            print(f"    - {source.outlet}: {source.title}", file=out)
    print(f"\n…and {len(demo.stories) - len(merged)} stories from a single outlet.", file=out)
    print(f'\nExample search: newsagg search "{demo.query}"', file=out)
    print_search_results(demo.results, out)


# -- search and clusters ---------------------------------------------------------------------


def _cmd_search(args: argparse.Namespace) -> int:
    from pipeline.models import SearchQuery
    from pipeline.search import open_index

    settings = _settings(args)
    query = SearchQuery(
        text=args.query,
        since=args.since,
        until=args.until,
        outlet=args.outlet,
        language=args.language,
        agency=args.agency,
        tag=args.tag,
        sort=args.sort,
        limit=args.limit,
    )
    with closing(open_index(settings)) as index:
        index.setup()
        results = index.search(query)
    if args.json:
        _print_json(results)
        return EXIT_OK
    print_search_results(results, sys.stdout)
    return EXIT_OK


def print_search_results(results: Any, out: TextIO) -> None:
    print(f"{results.total} {'story' if results.total == 1 else 'stories'}", file=out)
    for hit in results.hits:
        outlets = ", ".join(hit.outlets)
        print(f"\n{hit.title}  [{hit.story_id}]", file=out)
        tags = f" · tags: {', '.join(hit.tags)}" if hit.tags else ""
        print(f"  {hit.article_count} articles · {outlets} · {hit.first_seen:%Y-%m-%d}{tags}", file=out)
        print(f"  {_terminal_highlight(' '.join(hit.snippet.split()), out)}", file=out)


def _terminal_highlight(snippet: str, out: TextIO) -> str:
    if out.isatty():
        return snippet.replace("[[", "\033[1m").replace("]]", "\033[0m")
    return snippet


def _cmd_clusters_list(args: argparse.Namespace) -> int:
    from pipeline.storage import ClusterSummary

    with _store(_settings(args)) as store:
        clusters: Iterable[ClusterSummary]
        if args.all:
            clusters, next_cursor = store.all_cluster_summaries(args.min_articles, args.after), None
        else:
            page = store.cluster_page(args.limit, args.min_articles, args.after)
            clusters, next_cursor = page.clusters, page.next
        if args.json:
            # Written a cluster at a time: with --all the listing may be long.
            sys.stdout.write('{"clusters": [')
            for n, c in enumerate(clusters):
                sys.stdout.write(("," if n else "") + "\n  " + json.dumps(c, ensure_ascii=False, default=_json_default))
            sys.stdout.write(f"\n], \"next\": {json.dumps(next_cursor)}}}\n")
            return EXIT_OK
        for c in clusters:
            agency = f" · {c.agency}" if c.agency else ""
            print(f"{c.id}  {c.article_count:>3} articles {c.outlet_count:>3} outlets{agency}  {c.title}")
    if next_cursor is not None:
        print(f"(more: --after {next_cursor}, or --all)")
    return EXIT_OK


def _cluster_cursor_arg(text: str) -> str:
    from pipeline.storage.stories import parse_cluster_cursor

    try:
        parse_cluster_cursor(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a cursor from `clusters list`: {text!r}") from None
    return text


def _cmd_clusters_show(args: argparse.Namespace) -> int:
    from pipeline.urls import link_of

    with _store(_settings(args)) as store:
        cluster_id = store.resolve_cluster(args.id)
        story = store.story(cluster_id)
        members = store.memberships_of(cluster_id)
        articles = store.articles_by_id(m.article_id for m in members)
    if story is None or not members:
        raise NewsaggError(f"no cluster {args.id!r} (see `newsagg clusters list`)")
    rows = [
        {
            "article_id": m.article_id,
            "outlet": articles[m.article_id].outlet,
            "title": articles[m.article_id].title,
            "url": link_of(articles[m.article_id].url),  # None: text from a feed entry without a link
            "published": articles[m.article_id].published,
            "text_source": articles[m.article_id].text_source.value,
            "credit": articles[m.article_id].credit,
            "matched_article_id": m.matched_article_id,
            "jaccard": m.jaccard,
            "containment": m.containment,
        }
        for m in members
    ]
    if args.json:
        _print_json({"id": cluster_id, "requested_id": args.id, "story": story, "members": rows})
        return EXIT_OK
    if cluster_id != args.id:
        print(f"({args.id} was merged into {cluster_id})")
    print(f"{story.title}  [{cluster_id}]")
    print(f"{story.article_count} articles from {story.outlet_count} outlets"
          f"{' · wire: ' + story.agency if story.agency else ''}"
          f" · {story.first_seen:%Y-%m-%d %H:%M} – {story.last_seen:%Y-%m-%d %H:%M}")
    for row in rows:
        if row["matched_article_id"] is None:
            how = "founded the cluster"
        else:
            how = (f"matched {row['matched_article_id']} "
                   f"(jaccard {row['jaccard']:.2f}, containment {row['containment']:.2f})")
        print(f"  {row['article_id']}  {row['outlet']}: {row['title']}")
        print(f"      {row['url'] or '(no link)'}\n      {how}; text from {row['text_source']}")
        if (credit := articles[str(row["article_id"])].credit) is not None:
            print(f"      {_credit_line(credit)}")
    return EXIT_OK


def _credit_line(credit: AgencyCredit) -> str:
    return f"credits {credit.agency} ({credit.kind} credit, rule {credit.rule}): {credit.evidence}"


def _cmd_articles_show(args: argparse.Namespace) -> int:
    from textwrap import shorten

    from pipeline.templates import site_of
    from pipeline.urls import article_id, canonicalize, link_of

    key = args.key
    if "://" in key:  # a URL: stored under its canonical form
        key = article_id(canonicalize(key) or key)
    elif key.startswith("urn:"):  # the key of a feed entry without a link
        key = article_id(key)
    with _store(_settings(args)) as store:
        article = store.articles_by_id([key]).get(key)
        member = store.membership(key) if article else None
        stripped = store.stripped_blocks(key) if article else []
        revisions = store.article_revisions(key) if article else []
    if article is None:
        raise NewsaggError(f"no article {args.key!r} (an article id or URL; see `newsagg clusters show`)")
    if args.json:
        _print_json({"article": article, "cluster_id": member.cluster_id if member else None,
                     "template_stripped": stripped, "revisions": revisions})
        return EXIT_OK
    print(f"{article.title}  [{article.id}]")
    print(f"  {article.outlet} · {link_of(article.url) or '(no link)'}")
    when = f"{article.published:%Y-%m-%d %H:%M}" if article.published else "no date"
    print(f"  published {when} · fetched {article.fetched_at:%Y-%m-%d %H:%M}"
          f" · language {article.language or 'unknown'} · author {article.author or 'none'}")
    reason = f" ({article.text_source_reason})" if article.text_source_reason else ""
    print(f"  text from {article.text_source.value}{reason}, {len(article.text)} characters")
    print(f"  {_credit_line(article.credit) if article.credit else 'credits no wire agency'}")
    print(f"  cluster {member.cluster_id if member else '(not clustered yet)'}")
    site = site_of(article.url, article.outlet)
    for block in stripped:
        where = f"{site.outlet} on {site.domain}" if site else article.outlet
        print(f"  stripped as the template of {where} (on {block.articles} of its articles): "
              f"{shorten(block.text, 100, placeholder='…')}")
    if revisions:
        print(f"  {len(revisions)} revisions:")
    for revision in revisions:
        print(f"    {revision.revision}. {revision.fetched_at:%Y-%m-%d %H:%M} {revision.reason}: "
              f"{shorten(revision.title, 60, placeholder='…')} ({len(revision.text)} characters)")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from pipeline.export import export_records, write_records

    with _store(_settings(args)) as store, _open_output(args.output) as out:
        count = write_records(export_records(store, args.kind, args.since), args.kind, args.format, out)
    print(f"{count} {args.kind} exported", file=sys.stderr)
    return EXIT_OK


# -- extract and dedup -----------------------------------------------------------------------


def _cmd_extract(args: argparse.Namespace) -> int:
    from pipeline.batch import extract_inputs
    from pipeline.pool import WorkerPool

    failures = 0
    settings = _settings(args)
    with WorkerPool(settings.workers) as pool:
        for record in extract_inputs(args.inputs, settings, url=args.url, pool=pool):
            if "error" in record:
                failures += 1
                print(f"newsagg: {record['source']}: {record['error']}", file=sys.stderr)
            else:
                print(json.dumps(record, ensure_ascii=False, default=_json_default))
    return EXIT_OK if failures == 0 else EXIT_FAILURE


def _cmd_dedup(args: argparse.Namespace) -> int:
    # OpenBLAS starts a thread when numpy is imported, and a process with a second
    # thread spawns its workers (each importing numpy and the pipeline again) instead
    # of forking them; dedup does no linear algebra that needs it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pipeline.dedup import dedup_jsonl
    from pipeline.pool import WorkerPool

    settings = _settings(args)
    with _open_output(args.output) as out, WorkerPool(settings.workers) as pool:
        count, clusters = dedup_jsonl(args.input, out, settings.clustering, pool=pool, progress=_progress())
    print(f"{count} documents, {clusters} clusters", file=sys.stderr)
    return EXIT_OK


# -- the WARC archive: reextract and import-warc ------------------------------------------------


def _cmd_reextract(args: argparse.Namespace) -> int:
    from pipeline.backfill import reextract
    from pipeline.runner import Pipeline

    with Pipeline(_settings(args), progress=_progress()) as pipeline:
        report = reextract(pipeline, since=args.since, outlet=args.outlet, progress=_progress())
    if args.json:
        _print_json(report.as_dict())
    else:
        print(f"{report.examined} archived articles re-extracted · {report.changed} changed"
              f" ({report.unreadable} pages unreadable, {report.failed} without text now)"
              f" · clustered {report.settled.clustered} · stories {report.settled.stories_built} updated"
              f" · indexed {report.settled.indexed}")
    return _settled_exit(report.settled.index_error)


def _cmd_import_warc(args: argparse.Namespace) -> int:
    import glob

    from pipeline.backfill import import_warc
    from pipeline.runner import Pipeline

    paths: list[Path] = []
    for pattern in args.files:
        found = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).is_file() else [])
        if not found:
            raise ConfigError(f"no WARC file matches {pattern}")
        paths.extend(Path(p) for p in found if Path(p).is_file())
    with Pipeline(_settings(args), progress=_progress()) as pipeline:
        try:
            report = import_warc(pipeline, list(dict.fromkeys(paths)), since=args.since, until=args.until,
                                 language=args.language, progress=_progress())
        except OSError as exc:
            raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if args.json:
        _print_json(report.as_dict())
    else:
        skipped = ", ".join(f"{n} {reason}" for reason, n in report.skipped.most_common()) or "none"
        print(f"{report.files} files ({report.files_done_before} imported before) · {report.records} records"
              f" · {report.pages} pages · articles +{report.articles_added} ({report.failed} without text)"
              f" · clustered {report.settled.clustered} · stories {report.settled.stories_built} updated"
              f" · indexed {report.settled.indexed}")
        print(f"  records skipped: {skipped}")
    for failure in report.files_failed:
        print(f"newsagg: not imported: {failure}", file=sys.stderr)
    return _settled_exit(report.settled.index_error) or (EXIT_FAILURE if report.files_failed else EXIT_OK)


def _settled_exit(index_error: str | None) -> int:
    if index_error is not None:
        print(f"  search index unavailable (documents kept for the next run): {index_error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


@contextmanager
def _open_output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        yield handle


# -- feeds -----------------------------------------------------------------------------------


def _cmd_feeds_import_opml(args: argparse.Namespace) -> int:
    from pipeline.feeds import load_feed_list, merge_feed_lists, read_opml, write_feed_list

    settings = _settings(args)
    target = _feed_list(args, settings)
    try:
        imported = read_opml(args.file.read_bytes(), source=str(args.file))
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    existing = load_feed_list(target) if target.exists() else []
    merged = merge_feed_lists(existing, imported)
    write_feed_list(target, merged)
    print(f"{len(merged) - len(existing)} feeds added to {target} ({len(imported)} in the OPML file)")
    return EXIT_OK


def _cmd_feeds_add(args: argparse.Namespace) -> int:
    from pipeline.errors import FetchError
    from pipeline.feeds.discovery import COMMON_PATHS, Found, discover
    from pipeline.feeds.subscriptions import add_feed
    from pipeline.fetching import Fetcher

    settings = _settings(args)
    target = _feed_list(args, settings)
    note = None
    with Fetcher(settings.fetch) as fetcher:
        try:
            found = discover(fetcher, args.url, max_bytes=settings.fetch.max_body_bytes)
        except FetchError as exc:
            # Offline, or the site is down: the user named the feed, so it is added as named.
            found = [Found(args.url, "feed", "the URL itself")]
            note = f"newsagg: could not check {args.url} ({exc.reason}); added as given"
    if not found:
        raise ConfigError(f"found no feed or sitemap at {args.url}: no <link rel=\"alternate\"> feed on the page, "
                          f"none at {', '.join(COMMON_PATHS)}, no Sitemap: line in its robots.txt; "
                          "give the feed's own URL")
    if found[0].via != "the URL itself":
        print(f"found {len(found)} source{'s' if len(found) > 1 else ''} for {args.url}:")
        for candidate in found:
            title = f" ({candidate.title})" if candidate.title else ""
            print(f"  {candidate.kind:7}  {candidate.url}{title}  via {candidate.via}")
    with _store(settings) as store:
        for candidate in found if args.all else found[:1]:
            feed, added = add_feed(store, target, candidate.url, name=args.name or candidate.title,
                                   kind=candidate.kind, language=candidate.language)
            kind = "sitemap" if feed.kind == "sitemap" else "feed"
            print(f"{kind} {feed.id} ({feed.name}, {feed.url}) {'added to' if added else 'already in'} {target}")
    if note:
        print(note, file=sys.stderr)
    return EXIT_OK


def _cmd_feeds_remove(args: argparse.Namespace) -> int:
    from pipeline.feeds.subscriptions import remove_feed

    settings = _settings(args)
    target = _feed_list(args, settings)
    with _store(settings) as store:
        feed = remove_feed(store, target, args.feed)
    print(f"feed {feed.id} ({feed.url}) removed from {target}; the store keeps its history "
          f"(`newsagg feeds add {feed.url}` brings it back)")
    return EXIT_OK


def _cmd_feeds_reactivate(args: argparse.Namespace) -> int:
    from pipeline.feeds.subscriptions import reactivate_feed

    with _store(_settings(args)) as store:
        state = reactivate_feed(store, args.feed)
    print(f"feed {state.source.id} ({state.source.url}) active again, failures cleared; polled on the next run")
    return EXIT_OK


def _cmd_feeds_move(args: argparse.Namespace) -> int:
    from pipeline.feeds.subscriptions import move_feed

    settings = _settings(args)
    target = _feed_list(args, settings)
    with _store(settings) as store:
        feed = move_feed(store, target, args.old_url, args.new_url)
    print(f"feed {feed.id} moved to {feed.url} in {target}, with its history")
    return EXIT_OK


def _cmd_feeds_status(args: argparse.Namespace) -> int:
    import shutil

    from pipeline.polling import STATUS_COLUMNS, status_row

    settings = _settings(args)
    with _store(settings) as store:
        states = store.feed_states()
    if args.json:
        _print_json(states)
        return EXIT_OK
    if not states:
        print("no feeds yet: run `newsagg run` first")
        return EXIT_OK
    now = datetime.now(UTC)
    header = STATUS_COLUMNS
    rows = [status_row(s, settings.feeds, now) for s in states]
    widths = [min(max(len(r[i]) for r in [header, *rows]), 40) for i in range(len(header) - 1)]
    right = {2, 3, 5}  # numbers
    # On a terminal the error is cut to the window's width; piped, it is printed whole.
    room = shutil.get_terminal_size().columns - sum(widths) - 2 * len(widths) if sys.stdout.isatty() else None
    for row in [header, *rows]:
        cells = [row[i][:w].rjust(w) if i in right else row[i][:w].ljust(w) for i, w in enumerate(widths)]
        error = row[-1] if room is None or len(row[-1]) <= room else row[-1][: max(room - 1, 10)] + "…"
        print("  ".join([*cells, error]).rstrip())
    counts = {status: sum(1 for s in states if s.status == status)
              for status in ("active", "failing", "retired", "removed")}
    print(f"{len(states)} feeds: " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + " (times in UTC; score: weighted failures in a row / retirement threshold)")
    return EXIT_OK


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


# -- serve -----------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress
    import socket

    import uvicorn

    from pipeline.web import create_app

    settings = _settings(args)
    host = args.host or settings.web.host
    port = settings.web.port if args.port is None else args.port
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and args.host is None:
        print(f"newsagg: warning: serving on {host} (from the settings), not on loopback: anyone who can reach "
              "this address can read the stories; pass --host to make it explicit", file=sys.stderr)
    try:  # bound here, so the address printed is the one listening (port 0: the port chosen)
        listening = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        raise NewsaggError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    with listening:
        shown = f"[{host}]" if ":" in host else host
        print(f"newsagg: serving the stories of {settings.data_dir if settings.store_url is None else 'the store'} "
              f"on http://{shown}:{listening.getsockname()[1]}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
        uvicorn.run(create_app(settings), fd=listening.fileno(), log_level="debug" if args.verbose else "warning",
                    server_header=False)
    return EXIT_OK


# -- runs ------------------------------------------------------------------------------------


def _cmd_runs_list(args: argparse.Namespace) -> int:

    with _store(_settings(args)) as store:
        records = store.recent_runs(args.limit)
    if args.json:
        _print_json(records)
        return EXIT_OK
    if not records:
        print("no runs yet: run `newsagg run` first")
        return EXIT_OK
    for r in records:
        print(f"{r.id:>5}  {r.status:<9}  {r.trigger:<7}  {_when(r.started_at)} – "
              f"{_when(r.finished_at) if r.finished_at else '...':<16}  {_run_counts(r.stats)}"
              f"{f'  (Airflow run {r.airflow_run})' if r.airflow_run else ''}".rstrip())
    print("(times in UTC)")
    return EXIT_OK


def _run_counts(stats: dict[str, Any]) -> str:
    if not stats:
        return ""
    failed_feeds = len(stats.get("failed_feeds", []))
    return (f"articles +{stats.get('articles_added', 0)} ({stats.get('articles_failed', 0)} failed)"
            f" · clustered {stats.get('clustered', 0)} · stories {stats.get('stories_built', 0)}"
            f" · indexed {stats.get('indexed', 0)} · failed feeds {failed_feeds}")


# -- metrics ---------------------------------------------------------------------------------


def _cmd_metrics(args: argparse.Namespace) -> int:
    from pipeline.metrics import render

    settings = _settings(args)
    with _store(settings) as store:
        sys.stdout.write(render(store, settings))
    return EXIT_OK


# -- store schema ----------------------------------------------------------------------------


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from pipeline.storage import upgrade_schema

    before, after = upgrade_schema(_settings(args).resolved_store_url)
    if before == after:
        print(f"store already at schema revision {after} (the newest)")
    else:
        print(f"store upgraded from {f'schema revision {before}' if before else 'no schema revision'} to {after}")
    return EXIT_OK


def _cmd_db_current(args: argparse.Namespace) -> int:
    from pipeline.storage import schema_revision

    revision, newest = schema_revision(_settings(args).resolved_store_url)
    if revision == newest:
        print(f"{revision} (the newest)")
        return EXIT_OK
    print(f"{revision or 'none'} (this newsagg needs {newest}: run `newsagg db upgrade`)")
    return EXIT_FAILURE


# -- outbox ----------------------------------------------------------------------------------


def _cmd_outbox_list(args: argparse.Namespace) -> int:

    with _store(_settings(args)) as store:
        status = store.outbox_status()
    if args.json:
        _print_json(status)
        return EXIT_OK
    print(f"outbox: {status.waiting} documents wait for the search index"
          f" ({status.retrying} of them refused before)")
    print(f"dead letters: {len(status.dead_letters)}")
    for dead in status.dead_letters:
        print(f"  {dead.kind}:{dead.doc_id}  {dead.attempts} attempts, last {_when(dead.failed_at)}"
              f"{' (delete)' if dead.deleted else ''}: {' '.join((dead.last_error or '').split())}")
    return EXIT_OK


def _cmd_outbox_retry(args: argparse.Namespace) -> int:

    if bool(args.documents) == args.all:
        raise ConfigError("name the dead letters to retry as KIND:ID, or give --all")
    keys = None if args.all else [_outbox_key(text) for text in args.documents]
    with _store(_settings(args)) as store:
        queued = store.retry_dead_letters(keys)
    missing = [key for key in keys or [] if key not in queued]
    print(f"{len(queued)} documents queued again for the search index")
    if missing:
        raise NewsaggError(f"no dead letter {', '.join(f'{k}:{i}' for k, i in missing)} (see `newsagg outbox list`)")
    return EXIT_OK


def _outbox_key(text: str) -> tuple[str, str]:
    kind, _, doc_id = text.partition(":")
    if kind not in ("story", "article") or not doc_id:
        raise ConfigError(f"not a KIND:ID (story:ID or article:ID): {text!r}")
    return kind, doc_id


# -- elasticsearch ---------------------------------------------------------------------------
# These manage Elasticsearch whatever `search_backend` says: a cluster is set up before it is used.


def _cmd_es_setup(args: argparse.Namespace) -> int:
    from pipeline.search.elastic import ElasticsearchIndex

    with closing(ElasticsearchIndex(_settings(args).es)) as index:
        done = index.install()
    for line in done:
        print(line)
    return EXIT_OK


def _cmd_es_reindex(args: argparse.Namespace) -> int:
    from pipeline.search.elastic import FAMILIES, ElasticsearchIndex

    with closing(ElasticsearchIndex(_settings(args).es)) as index:
        reports = index.reindex(FAMILIES if args.kind == "all" else (args.kind,))
    for r in reports:
        print(f"{r.alias}: {r.old_index} -> {r.new_index}, {r.copied} documents copied, {r.old_index} deleted")
    return EXIT_OK


def _cmd_es_check(args: argparse.Namespace) -> int:
    from pipeline.search.elastic import ElasticsearchIndex

    with closing(ElasticsearchIndex(_settings(args).es)) as index:
        checks = index.check()
    for c in checks:
        print(f"{c.alias} -> {', '.join(c.indices) or '(missing)'}: mapping version {c.index_version}, "
              f"template version {c.template_version}: {'ok' if c.ok else 'needs action'}")
    problems = [p for c in checks for p in c.problems]
    for problem in problems:
        print(f"newsagg: error: {problem}", file=sys.stderr)
    return EXIT_OK if not problems else EXIT_FAILURE


# -- kibana ----------------------------------------------------------------------------------


def _cmd_kibana_import(args: argparse.Namespace) -> int:
    from pipeline.kibana import OBJECTS_DIR, install

    settings = _settings(args)
    result = install(settings.kibana, settings.es.index_prefix, args.dir or OBJECTS_DIR, wait=args.wait)
    print(f"{result.success_count} saved objects imported into Kibana at {result.kibana}")
    for kind, object_id in result.objects:
        print(f"  {kind} {object_id}")
    return EXIT_OK


def _cmd_kibana_check(args: argparse.Namespace) -> int:
    from pipeline.kibana import OBJECTS_DIR, check, elasticsearch_mappings, load

    directory = args.dir or OBJECTS_DIR
    objects = load(directory)
    problems = check(objects, elasticsearch_mappings())
    for problem in problems:
        print(f"newsagg: error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{len(objects)} saved objects in {directory} fit the index mappings")
    return EXIT_OK if not problems else EXIT_FAILURE


def _cmd_kibana_export(args: argparse.Namespace) -> int:
    from pipeline.kibana import generate, render

    text = render(generate(_settings(args).es.index_prefix))
    with _open_output(args.output) as out:
        out.write(text)
    return EXIT_OK


# -- output helpers --------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
        for name in ("outlets", "article_count", "outlet_count"):  # derived properties of Story
            if hasattr(value, name) and name not in data:
                data[name] = getattr(value, name)
        return data
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__}")


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default))


def _datetime_arg(text: str) -> datetime:
    parsed = parse_moment(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {text!r}")
    return parsed


def _count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _until_arg(text: str) -> datetime:
    """Like ``_datetime_arg``, but a date alone means the end of that day: ``--until`` includes it."""
    return until(text, _datetime_arg(text))


def _common_options(parser: argparse.ArgumentParser, *, defaults: bool) -> argparse.ArgumentParser:
    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--config", type=Path, default=default(None), help="YAML settings file (also NEWSAGG_CONFIG)")
    parser.add_argument(
        "--data-dir", type=Path, default=default(None),
        help="where the embedded store and index live (NEWSAGG_DATA_DIR)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="log what each stage does")
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsagg",
        description="Fetch news feeds, cluster syndicated copies of the same story, search the merged stories.",
        parents=[_common_options(argparse.ArgumentParser(add_help=False), defaults=True)],
    )
    # Subcommands accept the same options; SUPPRESS keeps them from resetting a value
    # given before the subcommand (`newsagg --data-dir D clusters list`).
    common = _common_options(argparse.ArgumentParser(add_help=False), defaults=False)
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", parents=[common],
        help="run the whole pipeline on the bundled demo corpus (served on 127.0.0.1)",
        description="Serve the bundled demo corpus on a loopback HTTP server, run the pipeline on embedded "
        "defaults into a fresh data directory (a temporary one unless --data-dir), print the merged stories "
        "and an example search; with --data-dir, then the commands that look at the data kept there.",
    )
    demo.add_argument("--json", action="store_true", help="machine-readable output")
    demo.set_defaults(handler=_cmd_demo)

    run = commands.add_parser("run", parents=[common], help="one pass of the pipeline over the configured feeds")
    run.add_argument("--feeds", type=Path, help="feed list, YAML or OPML (default: settings feeds_file, else feeds.yaml in the data dir)")
    run.add_argument("--force", action="store_true", help="poll every feed now, even if its next poll is not due")
    run.add_argument("--json", action="store_true", help="print the run report as JSON")
    run.set_defaults(handler=_cmd_run)

    search = commands.add_parser("search", parents=[common], help="full-text search over merged stories")
    search.add_argument("query", help="words that must all match (title matches rank higher)")
    search.add_argument(
        "--since", type=_datetime_arg, help="stories last seen on or after (ISO date: from its start; or datetime, UTC if no offset)"
    )
    search.add_argument(
        "--until", type=_until_arg, help="stories first seen on or before (ISO date: to its end; or datetime, UTC if no offset)"
    )
    search.add_argument("--outlet", help="only stories this outlet ran")
    search.add_argument("--language", help="only stories in this language (e.g. en)")
    search.add_argument(
        "--agency", help="only stories credited to this wire agency (AP, AFP, Reuters, dpa, EFE, Xinhua, ...; agencies)"
    )
    search.add_argument("--tag", help="only stories with an article from a feed tagged so in the feed list")
    search.add_argument("--sort", choices=["relevance", "recency"], default="relevance")
    search.add_argument("--limit", type=int, default=10, help="hits to show (default 10)")
    search.add_argument("--json", action="store_true", help="hits and facet counts as JSON")
    search.set_defaults(handler=_cmd_search)

    clusters = commands.add_parser("clusters", parents=[common], help="inspect clusters of near-duplicate articles")
    cluster_commands = clusters.add_subparsers(required=True, metavar="SUBCOMMAND")
    listing = cluster_commands.add_parser(
        "list", parents=[common], help="clusters, largest first, a page at a time (or --all)",
        description="Clusters by size, then most recently seen, then id. A page ends with the cursor of the "
        "next (--json: \"next\", null on the last page); --after CURSOR lists the page after it.",
    )
    listing.add_argument("--limit", type=_count_arg, default=50, help="clusters per page (default 50)")
    listing.add_argument("--after", type=_cluster_cursor_arg, metavar="CURSOR",
                         help="the page after this cursor (printed at the end of the previous page)")
    listing.add_argument("--all", action="store_true", help="every cluster (after --after, if given), read a page at a time")
    listing.add_argument("--min-articles", type=int, default=1, help="hide clusters smaller than this")
    listing.add_argument("--json", action="store_true", help='{"clusters": [...], "next": CURSOR or null}')
    listing.set_defaults(handler=_cmd_clusters_list)
    show = cluster_commands.add_parser("show", parents=[common], help="members of one cluster and why they matched")
    show.add_argument("id", help="cluster id (an absorbed id resolves to its survivor)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_cmd_clusters_show)

    articles = commands.add_parser("articles", parents=[common], help="inspect stored articles")
    article_commands = articles.add_subparsers(required=True, metavar="SUBCOMMAND")
    article_show = article_commands.add_parser(
        "show",
        parents=[common],
        help="one article: metadata, where its text came from, the agency it credits, the outlet template blocks "
        "stripped from it, its revisions",
    )
    article_show.add_argument("key", metavar="ID|URL", help="the article's id or its URL")
    article_show.add_argument("--json", action="store_true")
    article_show.set_defaults(handler=_cmd_articles_show)

    export = commands.add_parser(
        "export", parents=[common], help="stories or articles from the store as JSON lines or CSV (streamed)",
        description="Write every story (least recently seen first) or article (in arrival order) as one JSON "
        "object a line, or CSV with a header row (lists and objects as JSON in a cell), read from the store a "
        "chunk at a time. Articles: text, metadata, text source and why, the agency credit, arrival time, cluster "
        "id. Stories: their sources, counts, tags.",
    )
    export.add_argument("kind", choices=["stories", "articles"])
    export.add_argument(
        "--since", type=_datetime_arg,
        help="stories last seen / articles arrived on or after (ISO date: from its start; or datetime, UTC if no offset)",
    )
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="default: jsonl")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: standard output")
    export.set_defaults(handler=_cmd_export)

    extract = commands.add_parser(
        "extract", parents=[common], help="extract article text and metadata from files or URLs, one JSON line each"
    )
    extract.add_argument("inputs", nargs="+", metavar="FILE_OR_URL")
    extract.add_argument("--url", help="the page's URL, for a file input (helps metadata and relative links)")
    extract.set_defaults(handler=_cmd_extract)

    dedup = commands.add_parser(
        "dedup", parents=[common], help="cluster near-duplicates in a JSONL file",
        description='Input lines {"id","title","text"[,"url","source","published"]}; '
        'output lines {"id","cluster_id"}, one per input id, in input order, written once the input is read '
        "(it is streamed: the texts are not kept in memory).",
    )
    dedup.add_argument("input", type=Path, metavar="INPUT.jsonl", help="'-' for standard input")
    dedup.add_argument("-o", "--output", type=Path, metavar="OUT.jsonl", help="default: standard output")
    dedup.set_defaults(handler=_cmd_dedup)

    reextract = commands.add_parser(
        "reextract", parents=[common], help="extract stored articles again from their archived pages (no network)",
        description="Runs extraction again over the archived page of every stored article (see the archive "
        "settings), stores the articles whose text changed, clusters, builds stories and indexes them again. "
        "Safe to kill and repeat: a second pass changes nothing.",
    )
    reextract.add_argument("--since", type=_datetime_arg, metavar="DATE", help="only articles that arrived since then")
    reextract.add_argument("--outlet", help="only this outlet's articles (its name in the feed list)")
    reextract.add_argument("--json", action="store_true", help="print the report as JSON")
    reextract.set_defaults(handler=_cmd_reextract)

    import_warc = commands.add_parser(
        "import-warc", parents=[common], help="store the HTML pages of WARC files as articles (e.g. CC-NEWS)",
        description="Reads WARC files (.warc or .warc.gz, e.g. Common Crawl's CC-NEWS) as a stream, stores an "
        "article for every 200 HTML response (its outlet: the URL's registrable domain), then clusters, builds "
        "stories and indexes. A killed import goes on where it stopped; a file imported to its end is skipped.",
    )
    import_warc.add_argument("files", nargs="+", metavar="FILE_OR_GLOB")
    import_warc.add_argument("--since", type=_datetime_arg, metavar="DATE", help="only pages fetched since then (WARC-Date)")
    import_warc.add_argument("--until", type=_until_arg, metavar="DATE", help="only pages fetched until then (WARC-Date)")
    import_warc.add_argument("--language", metavar="L", help='only articles in this language ("en")')
    import_warc.add_argument("--json", action="store_true", help="print the report as JSON")
    import_warc.set_defaults(handler=_cmd_import_warc)

    feeds = commands.add_parser("feeds", parents=[common], help="manage and inspect feeds")
    feed_commands = feeds.add_subparsers(required=True, metavar="SUBCOMMAND")
    opml = feed_commands.add_parser("import-opml", parents=[common], help="add the subscriptions of an OPML export")
    opml.add_argument("file", type=Path, help="OPML file exported from a feed reader")
    opml.add_argument("--feeds", type=Path, help="feed list to add them to (default: settings feeds_file, else feeds.yaml in the data dir; created if missing)")
    opml.set_defaults(handler=_cmd_feeds_import_opml)
    feeds_option = "feed list to edit (default: settings feeds_file, else feeds.yaml in the data dir)"
    add = feed_commands.add_parser(
        "add", parents=[common],
        help="add a feed or sitemap, or find an outlet's from its home page (a removed feed comes back with its history)",
        description="Add a feed to the YAML feed list `newsagg run` reads (created if missing) and register it in "
        "the store. Feeds are known by their URL: renaming or reordering them in the list keeps their history. "
        "A URL that is a feed or a sitemap is added as is; a web page is searched for the outlet's sources: the "
        "feeds its <link rel=\"alternate\"> tags name (else those at a few common paths), then the sitemaps "
        "listed in its robots.txt (news sitemaps first). What was found is shown, and the best one added "
        "(--all: every one). A URL that cannot be fetched is added as given.",
    )
    add.add_argument("url", metavar="URL", help="the feed's or sitemap's URL, or a page of the outlet (its home page)")
    add.add_argument("--all", action="store_true", help="add every source found, not only the best")
    add.add_argument("--name", help="its name (default: the feed's title or news sitemap's publication, else its "
                                    "name when it was removed, else the URL's host)")
    add.add_argument("--feeds", type=Path, help=f"{feeds_option}; created if missing")
    add.set_defaults(handler=_cmd_feeds_add)
    remove = feed_commands.add_parser(
        "remove", parents=[common], help="take a feed out of the feed list (the store keeps its history)",
        description="Take a feed out of the YAML feed list; the store keeps it, marked removed and never polled, "
        "with its history for when it is added again. Deleting it from the list by hand does the same on the next run.",
    )
    remove.add_argument("feed", metavar="URL|ID", help="the feed's URL or id (`newsagg feeds status`)")
    remove.add_argument("--feeds", type=Path, help=feeds_option)
    remove.set_defaults(handler=_cmd_feeds_remove)
    reactivate = feed_commands.add_parser(
        "reactivate", parents=[common], help="make a retired or failing feed active again, its failures cleared",
    )
    reactivate.add_argument("feed", metavar="URL|ID", help="the feed's URL or id (`newsagg feeds status`)")
    reactivate.set_defaults(handler=_cmd_feeds_reactivate)
    move = feed_commands.add_parser(
        "move", parents=[common], help="give a feed a new URL, keeping its history",
        description="Change a feed's URL in the YAML feed list and the store, keeping its id and history (its "
        "cache validators and failures, which belonged to the old URL, are cleared). Editing the URL in the list "
        "instead makes a new feed, and the old one removed.",
    )
    move.add_argument("old_url", metavar="OLD_URL")
    move.add_argument("new_url", metavar="NEW_URL")
    move.add_argument("--feeds", type=Path, help=feeds_option)
    move.set_defaults(handler=_cmd_feeds_move)
    status = feed_commands.add_parser("status", parents=[common], help="health and polling state of every feed")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_cmd_feeds_status)

    serve = commands.add_parser(
        "serve", parents=[common], help="read-only web interface, JSON API (/api) and feeds (/feed.atom, /feed.json)",
        description="Serve the stories of the store and search backend the settings name: pages to browse and "
        "search them and see what each outlet changed, a JSON API described at /openapi.json, and Atom and JSON "
        "feeds with one entry per story. Read-only.",
    )
    serve.add_argument("--host", help="address to listen on (default: settings web.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: settings web.port, 8000; 0: any free port)")
    serve.set_defaults(handler=_cmd_serve)

    runs = commands.add_parser("runs", parents=[common], help="the record of pipeline runs")
    run_commands = runs.add_subparsers(required=True, metavar="SUBCOMMAND")
    runs_list = run_commands.add_parser(
        "list", parents=[common], help="recent runs, newest first: trigger, times, status, counts",
        description="Each run's status: ok, partial (the search index was unavailable; its documents wait in "
        "the outbox), failed, running, or abandoned (its process is gone, or it showed no progress for 30 "
        "minutes). Counts: articles added (failed), clustered, stories updated, documents indexed, failed feeds; "
        "a run of the Airflow DAG names its Airflow run id. --json adds each stage's time (stage_seconds).",
    )
    runs_list.add_argument("--limit", type=_count_arg, default=20, help="runs to show (default 20)")
    runs_list.add_argument("--json", action="store_true", help="the runs with their full reports as JSON")
    runs_list.set_defaults(handler=_cmd_runs_list)

    metrics = commands.add_parser(
        "metrics", parents=[common], help="the store's counts and the last run, in the Prometheus text format",
        description="Articles by text source, stories, feeds by state, feed entries by state, the search outbox "
        "and its dead letters, and the last run that ended: when, its status, its feed and page outcomes and "
        "each stage's time. For node_exporter's textfile collector: "
        "`newsagg metrics > DIR/newsagg.prom.tmp && mv DIR/newsagg.prom.tmp DIR/newsagg.prom`.",
    )
    metrics.set_defaults(handler=_cmd_metrics)

    db = commands.add_parser(
        "db", parents=[common], help="the store's schema: show its revision, upgrade it",
        description="The store's schema is versioned (Alembic revisions shipped with newsagg). The embedded "
        "SQLite store is upgraded whenever a command opens it; a PostgreSQL store only by `newsagg db upgrade` "
        "(an empty database is created at the newest revision).",
    )
    db_commands = db.add_subparsers(required=True, metavar="SUBCOMMAND")
    db_upgrade = db_commands.add_parser(
        "upgrade", parents=[common], help="bring the store to the newest schema revision (safe to repeat)"
    )
    db_upgrade.set_defaults(handler=_cmd_db_upgrade)
    db_current = db_commands.add_parser(
        "current", parents=[common], help="the store's schema revision (exit 1 if it needs an upgrade)"
    )
    db_current.set_defaults(handler=_cmd_db_current)
    outbox = commands.add_parser(
        "outbox", parents=[common], help="what waits for the search index, and the documents it refused",
        description="Documents the search index refused outbox.max_attempts times (mapping error, too large) "
        "leave the outbox for the dead letters, where they stay until retried.",
    )
    outbox_commands = outbox.add_subparsers(required=True, metavar="SUBCOMMAND")
    outbox_list = outbox_commands.add_parser(
        "list", parents=[common], help="how many documents wait, and every dead letter with its last error"
    )
    outbox_list.add_argument("--json", action="store_true")
    outbox_list.set_defaults(handler=_cmd_outbox_list)
    outbox_retry = outbox_commands.add_parser(
        "retry", parents=[common], help="queue dead letters for the search index again (with fresh attempts)"
    )
    outbox_retry.add_argument("documents", nargs="*", metavar="KIND:ID", help="e.g. story:3f2a..., article:9c1e...")
    outbox_retry.add_argument("--all", action="store_true", help="every dead letter")
    outbox_retry.set_defaults(handler=_cmd_outbox_retry)

    es = commands.add_parser(
        "es", parents=[common], help="set up, check and reindex Elasticsearch (whatever search_backend says)",
        description="Manage the Elasticsearch indices named by es.index_prefix: versioned indices "
        "(<prefix>-stories-v<N>, <prefix>-articles-v<N>) behind aliases, built from config/elasticsearch/*.json.",
    )
    es_commands = es.add_subparsers(required=True, metavar="SUBCOMMAND")
    es_setup = es_commands.add_parser(
        "setup", parents=[common], help="install the index templates; create the first indices and aliases if missing"
    )
    es_setup.set_defaults(handler=_cmd_es_setup)
    es_reindex = es_commands.add_parser(
        "reindex", parents=[common],
        help="copy into a new index generation from the current template, then swap the alias atomically",
    )
    es_reindex.add_argument("--kind", choices=["stories", "articles", "all"], default="all")
    es_reindex.set_defaults(handler=_cmd_es_reindex)
    es_check = es_commands.add_parser(
        "check", parents=[common], help="each alias points at one index whose mapping matches the template (exit 1 if not)"
    )
    es_check.set_defaults(handler=_cmd_es_check)

    kibana = commands.add_parser(
        "kibana", parents=[common], help="import, check and export the Kibana saved objects (config/kibana)",
        description="Data views for stories and articles, saved searches and the 'News clusters' dashboard, "
        "generated from the Elasticsearch mappings (config/elasticsearch/*.json). Kibana settings: "
        "NEWSAGG_KIBANA__URL, __USERNAME/__PASSWORD or __API_KEY, __CA_CERTS, __SPACE.",
    )
    kibana_commands = kibana.add_subparsers(required=True, metavar="SUBCOMMAND")
    kibana_import = kibana_commands.add_parser(
        "import", parents=[common],
        help="check the saved objects against the mappings and import them (overwriting: safe to repeat)",
    )
    kibana_import.add_argument("--dir", type=Path, help="directory of *.ndjson files (default: config/kibana)")
    kibana_import.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                               help="keep trying this long while Kibana is unreachable or not ready")
    kibana_import.set_defaults(handler=_cmd_kibana_import)
    kibana_check = kibana_commands.add_parser(
        "check", parents=[common], help="every field the saved objects use exists in the index mappings (exit 1 if not)"
    )
    kibana_check.add_argument("--dir", type=Path, help="directory of *.ndjson files (default: config/kibana)")
    kibana_check.set_defaults(handler=_cmd_kibana_check)
    kibana_export = kibana_commands.add_parser(
        "export", parents=[common], help="write the generated saved objects as NDJSON (for es.index_prefix)"
    )
    kibana_export.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: standard output")
    kibana_export.set_defaults(handler=_cmd_kibana_export)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
