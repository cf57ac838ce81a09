"""Looking after a deployment: `newsagg runs`, `metrics`, `db`, `outbox`, `es` and `kibana`."""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from pipeline.cli.base import (
    EXIT_FAILURE,
    EXIT_OK,
    _count_arg,
    _counted,
    _new_file,
    _open_output,
    _options,
    _print_json,
    _progress,
    _reading,
    _settings,
    _store,
    _when,
)
from pipeline.errors import ConfigError, NewsaggError


def _cmd_runs_list(args: argparse.Namespace) -> int:

    with _store(_reading(args)) as store:
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

    settings = _reading(args)
    with _store(settings) as store:
        sys.stdout.write(render(store, settings))
    return EXIT_OK


# -- maintenance -----------------------------------------------------------------------------


def _cmd_maintenance(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pipeline.maintenance import maintain
    from pipeline.runner import Pipeline

    with Pipeline(_reading(args)) as pipeline:
        result = maintain(pipeline)
        pipeline.store.compact()
    if args.json:
        _print_json(asdict(result))
        return EXIT_OK
    print(f"{result.signatures_dropped} signatures older than {_when(result.signature_cutoff)} left the matching window")
    if result.story_cutoff is not None:
        print(f"{result.stories_pruned} stories ({result.articles_pruned} articles) last seen before "
              f"{_when(result.story_cutoff)} deleted")
    if result.archive_cutoff is not None:
        print(f"{result.archive_files_deleted} archive files last written before {_when(result.archive_cutoff)} "
              "deleted (their articles keep their text)")
    print(f"{result.template_blocks_forgotten} outlet template blocks and {result.domain_clocks_pruned} domains' "
          "politeness clocks forgotten; store compacted")
    return EXIT_OK


def _cmd_settings(args: argparse.Namespace) -> int:
    import json

    from pipeline.settings import settings_file, settings_in_force
    from pipeline.urls import redact_url

    config_file = settings_file(args.config)
    settings = _settings(args)
    shown = settings_in_force(settings, config_file=config_file, options=_options(args))
    # What the values come to: the paths the defaults make in data_dir, the password masked.
    index = settings.embedded_index
    in_use = {
        "store": redact_url(settings.resolved_store_url),
        "search_index": str(index) if index is not None else
        f"Elasticsearch {', '.join(map(redact_url, settings.es.urls))}, aliases {settings.es.index_prefix}-stories "
        f"and {settings.es.index_prefix}-articles",
        "feed_list": str(settings.resolved_feeds_file),
        "archive": str(settings.resolved_archive_dir) if settings.archive.enabled else None,
    }
    if args.json:
        _print_json({"settings_file": None if config_file is None else str(config_file),
                     "settings": [{"variable": s.variable, "value": s.value, "origin": s.origin} for s in shown],
                     "in_use": in_use})
        return EXIT_OK
    print(f"settings file: {config_file or 'none'}")
    width = max(len(s.variable) for s in shown)
    for setting in shown:
        value = setting.value
        text = "unset" if value is None else value if isinstance(value, str) else json.dumps(value)
        print(f"{setting.variable:<{width}}  {text}  ({setting.origin})")
    print("in use:")
    for name, where in in_use.items():
        print(f"  {name.replace('_', ' '):<12}  {where or 'off'}")
    return EXIT_OK


# -- store schema ----------------------------------------------------------------------------


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from pipeline.storage import upgrade_schema
    from pipeline.urls import redact_url

    url = _settings(args).resolved_store_url
    done = upgrade_schema(url)
    if done.created:  # where, so that a mistyped data dir or store URL shows
        print(f"new store made at schema revision {done.after}: {redact_url(url)}")
    elif done.before == done.after:
        print(f"store already at schema revision {done.after} (the newest)")
    else:
        print(f"store upgraded from {f'schema revision {done.before}' if done.before else 'no schema revision'} "
              f"to {done.after}")
    return EXIT_OK


def _cmd_db_current(args: argparse.Namespace) -> int:
    from pipeline.storage import schema_revision

    revision, newest = schema_revision(_reading(args).resolved_store_url)
    if revision == newest:
        print(f"{revision} (the newest)")
        return EXIT_OK
    print(f"{revision or 'none'} (this newsagg needs {newest}: run `newsagg db upgrade`)")
    return EXIT_FAILURE


def _cmd_db_backup(args: argparse.Namespace) -> int:
    from pipeline.storage.backup import copy_store

    settings = _reading(args)
    source = settings.store_file
    if source is None:
        raise ConfigError("db backup copies the embedded SQLite store; back up a PostgreSQL store with pg_dump")
    if args.target.exists():
        raise ConfigError(f"{args.target} exists: the copy is written to a new file only")
    target = _new_file(args.target)  # said before the store is opened (and maybe upgraded)
    with _store(settings):  # the store as this newsagg uses it (upgraded, if it was older)
        copy_store(source, target)
    print(f"store {source} copied to {args.target}")
    return EXIT_OK


# -- outbox ----------------------------------------------------------------------------------


def _cmd_outbox_list(args: argparse.Namespace) -> int:

    with _store(_reading(args)) as store:
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
    with _store(_reading(args)) as store:
        queued = store.retry_dead_letters(keys)
    missing = [key for key in keys or [] if key not in queued]
    print(f"{_counted(len(queued), 'document')} queued again for the search index")
    if missing:
        raise NewsaggError(f"no dead letter {', '.join(f'{k}:{i}' for k, i in missing)} (see `newsagg outbox list`)")
    return EXIT_OK


def _cmd_outbox_fill(args: argparse.Namespace) -> int:
    from pipeline.runner import Pipeline

    with Pipeline(_reading(args), progress=_progress()) as pipeline:
        stories, articles = pipeline.store.queue_everything()
        print(f"{stories} stories and {articles} articles queued for the search index")
        indexed, failed = pipeline.index_outbox()
    print(f"{indexed} documents indexed, {failed} refused (see `newsagg outbox list`)")
    return EXIT_OK if failed == 0 else EXIT_FAILURE


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
    from pipeline.search.elastic import ElasticsearchIndex
    from pipeline.search.elastic.templates import FAMILIES

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
        print(f"{c.alias} -> {', '.join(c.indices) or '(missing)'}: {c.mapping}, "
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


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add `runs`, `metrics`, `maintenance`, `settings`, `db`, `outbox`, `es` and `kibana` to the commands."""
    runs = commands.add_parser("runs", parents=[common], help="the record of pipeline runs")
    run_commands = runs.add_subparsers(required=True, metavar="SUBCOMMAND")
    runs_list = run_commands.add_parser(
        "list", parents=[common], help="recent runs, newest first: trigger, times, status, counts",
        description="Each run's status: ok, partial (the search index was unavailable; its documents wait in "
        "the outbox), failed, running, or abandoned (its process is gone, or it showed no progress for 30 "
        "minutes). Counts: articles added (failed), clustered, stories updated, documents indexed, failed feeds; "
        "a run of the Airflow DAG names its Airflow run id. --json adds each stage's time (stage_seconds) and, "
        "for a DAG run, what its tasks committed, every try added up (counted).",
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

    maintenance = commands.add_parser(
        "maintenance", parents=[common], help="retention and compaction, as the news_maintenance DAG runs them",
        description="Drop the signatures of articles older than the matching window (they stay stored and "
        "searchable), forget outlet template blocks not seen again and the politeness clocks of domains not "
        "contacted for a day; with story_retention_days, delete older stories with their articles and archive "
        "files and deliver the deletions to the search index; with archive.retention_days, delete older archive "
        "files (the stories stay); then compact the store (SQLite VACUUM). For a deployment that runs "
        "`newsagg run` from cron; safe to repeat.",
    )
    maintenance.add_argument("--json", action="store_true", help="what was removed, as JSON")
    maintenance.set_defaults(handler=_cmd_maintenance)

    settings = commands.add_parser(
        "settings", parents=[common], help="every setting in force and where it came from (secrets masked)",
        description="Each setting's NEWSAGG_* variable, its value as this command reads it (secrets and the "
        "passwords in URLs masked) and its origin: option (--data-dir), environment, file (--config or "
        "NEWSAGG_CONFIG) or default, in that order of precedence; then the store, search index, feed list and "
        "archive they come to. Opens no store.",
    )
    settings.add_argument("--json", action="store_true", help="the settings file and every setting as JSON")
    settings.set_defaults(handler=_cmd_settings)

    db = commands.add_parser(
        "db", parents=[common], help="the store's schema: show its revision, upgrade it; copy the embedded store",
        description="The store's schema is versioned (Alembic revisions shipped with newsagg). The embedded "
        "SQLite store is upgraded whenever a command opens it, after a copy of it is written beside it "
        "(store.sqlite3.before-REVISION); a PostgreSQL store only by `newsagg db upgrade` "
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
    db_backup = db_commands.add_parser(
        "backup", parents=[common], help="copy the embedded store to a new file, consistent while runs write to it",
        description="A consistent copy of the embedded SQLite store as of its last commit (SQLite's online "
        "backup), safe while runs, the web server or Airflow tasks use it. To restore, stop everything that uses "
        "the store and put the copy in its place. A PostgreSQL store is backed up with pg_dump.",
    )
    db_backup.add_argument("target", type=Path, metavar="FILE", help="the copy to write: a new file, in a directory that exists")
    db_backup.set_defaults(handler=_cmd_db_backup)
    outbox = commands.add_parser(
        "outbox", parents=[common], help="what waits for the search index, and the documents it refused",
        description="Documents the search index refused outbox.max_attempts times (mapping error, too large) "
        "leave the outbox for the dead letters, where they stay until retried.",
    )
    outbox_commands = outbox.add_subparsers(required=True, metavar="SUBCOMMAND")
    outbox_list = outbox_commands.add_parser(
        "list", parents=[common], help="how many documents wait, and every dead letter with its last error"
    )
    outbox_list.add_argument("--json", action="store_true", help="waiting, retrying and dead_letters as JSON")
    outbox_list.set_defaults(handler=_cmd_outbox_list)
    outbox_retry = outbox_commands.add_parser(
        "retry", parents=[common], help="queue dead letters for the search index again (with fresh attempts)"
    )
    outbox_retry.add_argument(
        "documents", nargs="*", metavar="KIND:ID",
        help="as `outbox list` shows them: article:9c1e4b7a0d2f5e83, story:00001793883900000000-1dcf3c70eec450ba",
    )
    outbox_retry.add_argument("--all", action="store_true", help="every dead letter")
    outbox_retry.set_defaults(handler=_cmd_outbox_retry)
    outbox_fill = outbox_commands.add_parser(
        "fill", parents=[common], help="index the whole store: after switching search_backend, or losing the index",
        description="Queue every story and article of the store for the search index that search_backend names, "
        "then deliver the outbox. Runs index only what changes: this fills a new or lost index. Killed, what "
        "was not delivered stays queued for the next `newsagg run` (or run it again).",
    )
    outbox_fill.set_defaults(handler=_cmd_outbox_fill)

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
    es_reindex.add_argument("--kind", choices=["stories", "articles", "all"], default="all",
                            help="the indices to roll over (default: all)")
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
    objects_dir = "directory of *.ndjson files (default: the config/kibana newsagg ships)"
    kibana_import.add_argument("--dir", type=Path, help=objects_dir)
    kibana_import.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="keep trying this long while Kibana is unreachable or not ready (default 0: one try)",
    )
    kibana_import.set_defaults(handler=_cmd_kibana_import)
    kibana_check = kibana_commands.add_parser(
        "check", parents=[common], help="every field the saved objects use exists in the index mappings (exit 1 if not)"
    )
    kibana_check.add_argument("--dir", type=Path, help=objects_dir)
    kibana_check.set_defaults(handler=_cmd_kibana_check)
    kibana_export = kibana_commands.add_parser(
        "export", parents=[common], help="write the generated saved objects as NDJSON (for es.index_prefix)"
    )
    kibana_export.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: standard output")
    kibana_export.set_defaults(handler=_cmd_kibana_export)
