"""Reading what the pipeline stored: `newsagg search`, `clusters`, `articles` and `export`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pipeline.cli.base import (
    EXIT_OK,
    _count_arg,
    _counted,
    _datetime_arg,
    _existing,
    _json_default,
    _offset_arg,
    _open_output,
    _print_json,
    _reading,
    _settings,
    _store,
    _store_made,
    _until_arg,
)
from pipeline.errors import NewsaggError

if TYPE_CHECKING:
    from pipeline.models import AgencyCredit
    from pipeline.settings import Settings


def _cmd_search(args: argparse.Namespace) -> int:
    from pipeline.models import SearchQuery
    from pipeline.search import open_index

    settings = _settings(args)
    if settings.search_backend == "sqlite":  # its index lives beside the embedded store
        _existing(settings)
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
        offset=args.offset,
    )
    with closing(open_index(settings, stories=partial(_stories, settings))) as index:
        index.setup()
        results = index.search(query)
    if args.json:
        _print_json(results)
        return EXIT_OK
    print_search_results(results, sys.stdout)
    return EXIT_OK


def _stories(settings: Settings) -> int:
    if not _store_made(settings):
        return 0  # Elasticsearch is searched without a store: none here, none for the index to lack
    with _store(settings) as store:
        return store.counts().stories


def print_search_results(results: Any, out: TextIO) -> None:
    print(f"{results.total} {'story' if results.total == 1 else 'stories'}", file=out)
    for hit in results.hits:
        outlets = ", ".join(hit.outlets)
        print(f"\n{hit.title}  [{hit.story_id}]", file=out)
        tags = f" · tags: {', '.join(hit.tags)}" if hit.tags else ""
        print(f"  {_counted(hit.article_count, 'article')} · {outlets} · {hit.first_seen:%Y-%m-%d}{tags}", file=out)
        print(f"  {_terminal_highlight(' '.join(hit.snippet.split()), out)}", file=out)


def _terminal_highlight(snippet: str, out: TextIO) -> str:
    if out.isatty():
        return snippet.replace("[[", "\033[1m").replace("]]", "\033[0m")
    return snippet


def _cmd_clusters_list(args: argparse.Namespace) -> int:
    from pipeline.storage import ClusterSummary

    with _store(_reading(args)) as store:
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
        listed = 0
        for listed, c in enumerate(clusters, 1):
            agency = f" · {c.agency}" if c.agency else ""
            articles, outlets = _counted(c.article_count, "article"), _counted(c.outlet_count, "outlet")
            print(f"{c.id}  {articles:>12} {outlets:>11}{agency}  {c.title}")
    if not listed and args.after is None:  # a page after a cursor may be empty: the listing ended there
        print(f"no clusters of {args.min_articles} articles or more" if args.min_articles > 1
              else "no clusters yet: run `newsagg run` first")
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

    with _store(_reading(args)) as store:
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
    print(f"{_counted(story.article_count, 'article')} from {_counted(story.outlet_count, 'outlet')}"
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
    with _store(_reading(args)) as store:
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

    with _store(_reading(args)) as store, _open_output(args.output) as out:
        count = write_records(export_records(store, args.kind, args.since), args.kind, args.format, out)
    print(f"{count} {args.kind} exported", file=sys.stderr)
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add `search`, `clusters`, `articles` and `export` to the commands."""
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
    search.add_argument("--sort", choices=["relevance", "recency"], default="relevance",
                        help="best match first (default), or most recently seen first")
    search.add_argument("--limit", type=_count_arg, default=10, help="hits to show (default 10)")
    search.add_argument("--offset", type=_offset_arg, default=0, help="hits to skip: the next page is --offset LIMIT (default 0)")
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
    listing.add_argument("--min-articles", type=_count_arg, default=1, help="hide clusters smaller than this")
    listing.add_argument("--json", action="store_true", help='{"clusters": [...], "next": CURSOR or null}')
    listing.set_defaults(handler=_cmd_clusters_list)
    show = cluster_commands.add_parser("show", parents=[common], help="members of one cluster and why they matched")
    show.add_argument("id", help="cluster id (an absorbed id resolves to its survivor)")
    show.add_argument("--json", action="store_true", help="the cluster, its story and its members as JSON")
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
    article_show.add_argument("--json", action="store_true", help="the article, its cluster, the template blocks stripped from it and its revisions as JSON")
    article_show.set_defaults(handler=_cmd_articles_show)

    export = commands.add_parser(
        "export", parents=[common], help="stories or articles from the store as JSON lines or CSV (streamed)",
        description="Write every story (least recently seen first) or article (in arrival order: by publication, else fetch time) as one JSON "
        "object a line, or CSV with a header row (lists and objects as JSON in a cell), read from the store a "
        "chunk at a time. Articles: text, metadata, text source and why, the agency credit, arrival time, cluster "
        "id. Stories: their sources, counts, tags.",
    )
    export.add_argument("kind", choices=["stories", "articles"])
    export.add_argument(
        "--since", type=_datetime_arg,
        help="stories last seen / articles published (else fetched) on or after (ISO date: from its start; or datetime, UTC if no offset)",
    )
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="default: jsonl")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: standard output")
    export.set_defaults(handler=_cmd_export)
