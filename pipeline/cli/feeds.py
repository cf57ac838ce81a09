"""`newsagg feeds`: edit the feed list and see how each feed is doing."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from pipeline.cli.base import EXIT_OK, _counted, _print_json, _reading, _settings, _store, _store_made
from pipeline.errors import ConfigError
from pipeline.settings import Settings


def _feed_list(args: argparse.Namespace, settings: Settings) -> Path:
    """The feed list a command edits: ``--feeds``, else the settings' one."""
    path: Path = args.feeds or settings.resolved_feeds_file
    return path


def _cmd_feeds_import_opml(args: argparse.Namespace) -> int:
    from pipeline.feeds import read_opml
    from pipeline.feeds.subscriptions import import_subscriptions

    settings = _settings(args)
    target = _feed_list(args, settings)
    try:
        imported = read_opml(args.file.read_bytes(), source=str(args.file))
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from None
    if _store_made(settings):
        with _store(settings) as store:
            added = import_subscriptions(target, imported, store)
    else:  # no store yet, so nothing holds its lock; none is made for a list (the first run makes it)
        added = import_subscriptions(target, imported)
    print(f"{_counted(added, 'feed')} added to {target} ({len(imported)} in the OPML file)")
    return EXIT_OK


def _cmd_feeds_add(args: argparse.Namespace) -> int:
    from pipeline.errors import BlockedAddressError, FetchError, PermanentFetchError
    from pipeline.feeds.discovery import COMMON_PATHS, Found, discover
    from pipeline.feeds.subscriptions import add_feed
    from pipeline.fetching import Fetcher

    settings = _settings(args)
    target = _feed_list(args, settings)
    note = None
    with Fetcher(settings.fetch) as fetcher:
        try:
            found = discover(fetcher, args.url, max_bytes=settings.fetch.max_body_bytes)
        except PermanentFetchError as exc:
            # The publisher answered (404, 410, 403), or the URL is one the fetcher never requests
            # (a private address): every poll would fail the same way.
            hint = "fetch.allowed_hosts lets it through" if isinstance(exc, BlockedAddressError) else "check the URL"
            raise ConfigError(f"cannot add {args.url}: {exc.reason} ({hint}; nothing was added)") from None
        except FetchError as exc:
            # Offline, or the site is down: the user named the feed, so it is added as named.
            found = [Found(args.url, "feed", "the URL itself")]
            note = f"newsagg: could not check {args.url} ({exc.reason})"
    if not found:
        raise ConfigError(f"found no feed or sitemap at {args.url}: no <link rel=\"alternate\"> feed on the page, "
                          f"none at {', '.join(COMMON_PATHS)}, no Sitemap: line in its robots.txt; "
                          "give the feed's own URL")
    if found[0].via != "the URL itself":
        print(f"found {_counted(len(found), 'source')} for {args.url}:")
        for candidate in found:
            title = f" ({candidate.title})" if candidate.title else ""
            print(f"  {candidate.kind:7}  {candidate.url}{title}  via {candidate.via}")
    added = False
    with _store(settings) as store:
        for candidate in found if args.all else found[:1]:
            feed, added = add_feed(store, target, candidate.url, name=args.name or candidate.title,
                                   kind=candidate.kind, language=candidate.language)
            kind = "sitemap" if feed.kind == "sitemap" else "feed"
            print(f"{kind} {feed.id} ({feed.name}, {feed.url}) {'added to' if added else 'already in'} {target}")
    if note:
        print(f"{note}; added as given" if added else note, file=sys.stderr)
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

    with _store(_reading(args)) as store:
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

    from pipeline.polling import STATUS_COLUMNS, status_rows

    settings = _reading(args)
    with _store(settings) as store:
        states = store.feed_states()
        waiting = store.waiting_entries()
    if args.json:
        _print_json([{**asdict(s), "entries_waiting": waiting.get(s.source.id, 0)} for s in states])
        return EXIT_OK
    if not states:
        print("no feeds yet: run `newsagg run` first")
        return EXIT_OK
    now = datetime.now(UTC)
    header = STATUS_COLUMNS
    rows = status_rows(states, waiting, settings.feeds, now)
    widths = [min(max(len(r[i]) for r in [header, *rows]), 40) for i in range(len(header) - 1)]
    right = {2, 3, 5, 6}  # numbers
    # On a terminal the error is cut to the window's width; piped, it is printed whole.
    room = shutil.get_terminal_size().columns - sum(widths) - 2 * len(widths) if sys.stdout.isatty() else None
    for row in [header, *rows]:
        cells = [row[i][:w].rjust(w) if i in right else row[i][:w].ljust(w) for i, w in enumerate(widths)]
        error = row[-1] if room is None or len(row[-1]) <= room else row[-1][: max(room - 1, 10)] + "…"
        print("  ".join([*cells, error]).rstrip())
    counts = {status: sum(1 for s in states if s.status == status)
              for status in ("active", "failing", "retired", "removed")}
    print(f"{len(states)} feeds: " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f"; {sum(waiting.values())} pages waiting to be fetched"
          + " (times in UTC; score: weighted failures in a row / retirement threshold)")
    return EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add `feeds` and its subcommands to the commands."""
    feeds = commands.add_parser("feeds", parents=[common], help="manage and inspect feeds")
    feed_commands = feeds.add_subparsers(required=True, metavar="SUBCOMMAND")
    opml = feed_commands.add_parser("import-opml", parents=[common], help="add the subscriptions of an OPML export")
    opml.add_argument("file", type=Path, metavar="FILE", help="OPML file exported from a feed reader")
    opml.add_argument("--feeds", type=Path, help="YAML feed list to add them to (default: settings feeds_file, else feeds.yaml in the data dir; created if missing)")
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
        "(--all: every one). A URL the publisher answers with an error (404, 410, 403) or that the fetcher "
        "never requests (a private address) is refused; one that cannot be checked now (offline, a timeout, "
        "a 5xx) is added as given.",
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
    status.add_argument("--json", action="store_true", help="every feed's source, validators and health as JSON")
    status.set_defaults(handler=_cmd_feeds_status)
