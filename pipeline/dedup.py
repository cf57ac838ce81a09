"""``newsagg dedup``: cluster the near-duplicates of a JSONL stream, without a store.

Only what clustering needs is imported (no extraction, no fetching): the
command's start-up is part of every run's time.

The input is read as raw lines, ``_PIECE`` articles at a time; each piece is
parsed and signed by a worker (or by this process without one), which sends
back only ids, arrival times and signatures. This process reads bytes and
clusters, so it keeps up with the workers: decoding the JSON and handing
texts to the workers here would cost about as much as signing them. It
clusters ``_PIECES`` pieces together, one batch: the workers sign the last
batch together, and only it is left to cluster once they are done.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from pipeline.charsets import parse_json
from pipeline.clustering import batch_engine
from pipeline.clustering.engine import ClusterEngine, epoch_micros
from pipeline.clustering.signatures import SketchBatch, SketchParams, sketch_texts
from pipeline.dates import parse_moment
from pipeline.errors import ConfigError
from pipeline.pool import WorkerPool
from pipeline.progress import ProgressBar
from pipeline.settings import ClusteringSettings

_quoted = json.encoder.encode_basestring_ascii
_PIECE = 500  # articles parsed and signed together (by a worker, if any)
_PIECES = 2  # pieces clustered together: a batch's articles are clustered in the order they arrived


@dataclass(frozen=True, slots=True)
class _Lines:
    """Consecutive input lines (blank ones included) holding ``articles`` articles; the first is line ``first``."""

    first: int
    data: bytes
    articles: int


@dataclass(frozen=True, slots=True)
class _Signed:
    """What a piece of input lines comes back as: its articles' ids, line numbers, arrival times and sketches."""

    ids: list[str]
    lines: list[int]
    at: list[int]  # arrival times, in microseconds since the epoch
    sketches: SketchBatch
    error: str | None  # the first bad line's message: the articles before it are signed, the rest not read


def dedup_jsonl(
    path: Path, out: TextIO, settings: ClusteringSettings, *, pool: WorkerPool | None = None, progress: bool = False
) -> tuple[int, int]:
    """Cluster the documents of a JSONL file; writes ``{"id","cluster_id"}`` lines in input order.

    ``pool``'s workers parse and sign the documents (None: this process does).
    A bad line is a ConfigError naming it, as is an id seen before.

    The input is streamed: what stays in memory is the clustering index and
    the ids, not the texts. Output is written once the last line is read,
    because a later document can merge earlier clusters.

    Returns:
        (documents, clusters).
    """
    engine = batch_engine(settings)
    # One clock for the run: a document without a date arrives when it is read.
    sign = partial(_sign_lines, where=str(path), now=datetime.now(UTC), params=engine.params)
    order: dict[str, None] = {}
    with _open(path) as handle, ProgressBar(
        desc="clustering", unit=" docs", disable=not progress, leave=False
    ) as bar:
        pieces = _line_pieces(handle)
        # Small inputs are signed here: starting the workers would cost more.
        first: list[_Lines] = []
        read = 0
        for lines in pieces:
            first.append(lines)
            read += lines.articles
            if read >= settings.pool_min_batch:
                break
        signing = chain(first, pieces)
        if pool is None or read < settings.pool_min_batch:
            signed: Iterator[_Signed] = map(sign, signing)
        else:
            signed = pool.imap(sign, signing, ahead=2 * _PIECES * pool.workers)
        batch: list[_Signed] = []
        for piece in signed:
            for doc_id, number in zip(piece.ids, piece.lines):
                if doc_id in order:
                    raise ConfigError(f"{path}:{number}: duplicate id {doc_id!r}")
                order[doc_id] = None
            if piece.error is not None:
                raise ConfigError(piece.error)
            batch.append(piece)
            if len(batch) == _PIECES:
                bar.update(_cluster(engine, batch))
                batch = []
        if batch:
            bar.update(_cluster(engine, batch))
    clusters: set[str] = set()
    for doc_id in order:
        cluster_id = engine.cluster_of(doc_id)
        assert cluster_id is not None  # every document read was clustered
        clusters.add(cluster_id)
        # What json.dumps({"id": .., "cluster_id": ..}) writes, without a dict per line
        # (json.dumps of a str is this function, behind the encoder's set-up).
        out.write(f'{{"id": {_quoted(doc_id)}, "cluster_id": {_quoted(cluster_id)}}}\n')
    return len(order), len(clusters)


def _cluster(engine: ClusterEngine, pieces: list[_Signed]) -> int:
    """Cluster the articles of these pieces as one batch; returns how many there were."""
    ids = [doc_id for piece in pieces for doc_id in piece.ids]
    at = [moment for piece in pieces for moment in piece.at]
    engine.add_signed(ids, at, SketchBatch.joined([piece.sketches for piece in pieces]))
    return len(ids)


def _open(path: Path) -> BinaryIO:
    try:
        return sys.stdin.buffer if str(path) == "-" else path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _line_pieces(handle: BinaryIO) -> Iterator[_Lines]:
    """The input's lines in pieces of ``_PIECE`` articles (non-blank lines), as they are read."""
    first, lines, articles = 1, list[bytes](), 0
    for line in handle:
        lines.append(line)
        if not line.isspace():
            articles += 1
            if articles == _PIECE:
                yield _Lines(first, b"".join(lines), articles)
                first, lines, articles = first + len(lines), [], 0
    if lines:
        yield _Lines(first, b"".join(lines), articles)


def _sign_lines(lines: _Lines, *, where: str, now: datetime, params: SketchParams) -> _Signed:
    """Parse a piece of input lines and sign its articles (in a worker, or here)."""
    ids: list[str] = []
    numbers: list[int] = []
    at: list[int] = []
    outlets: list[str] = []
    texts: list[tuple[str, str]] = []
    error: str | None = None
    seen: set[str] = set()
    try:
        # JSON Lines end at a line feed only, as the reader counted them: a carriage return is JSON whitespace.
        for number, line in enumerate(lines.data.split(b"\n"), lines.first):
            if not line or line.isspace():
                continue
            place = f"{where}:{number}"
            record = _record(line, place)
            doc_id = str(record["id"])
            if doc_id in seen:  # within the piece; the caller checks across pieces
                raise ConfigError(f"{place}: duplicate id {doc_id!r}")
            seen.add(doc_id)
            published = _published(record.get("published"), place)
            ids.append(doc_id)
            numbers.append(number)
            at.append(epoch_micros(published or now))
            outlets.append(str(record.get("source") or ""))
            texts.append((str(record["title"]), str(record["text"])))
    except ConfigError as exc:
        error = str(exc)
    return _Signed(ids, numbers, at, sketch_texts(texts, params).with_outlets(outlets), error)


def _record(line: bytes, where: str) -> dict[str, Any]:
    try:
        record = parse_json(line)
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise ConfigError(f"{where}: not JSON (nested too deep)") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected an object")
    missing = [k for k in ("id", "title", "text") if not isinstance(record.get(k), str | int)]
    if missing:
        raise ConfigError(f"{where}: missing or non-string field(s): {', '.join(missing)}")
    return record


def _published(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = parse_moment(str(value))
    if parsed is None:
        raise ConfigError(f"{where}: 'published' is not an ISO datetime: {value!r}")
    return parsed
