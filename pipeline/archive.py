"""The raw page archive: fetched pages and feed documents as WARC files, and WARC files read back.

``ArchiveWriter`` appends a request and a response record per fetched document to
WARC files compressed one record per gzip member, as Common Crawl's are, so any record
can be read alone from its offset and length: the article rows point at their page's
response record (``ArchiveRecord``), which ``read_page`` reads back. ``scan_warc`` reads
every record of a WARC file, ours or another writer's, from an offset on.

The writers of one host share the file of the hour (named after the hour and the host):
each record pair is appended under an exclusive lock on the file, so the many short
processes of an Airflow deployment fill a few files a day instead of leaving one each. WARC
files are written and read with warcio, Webrecorder's maintained WARC library.
"""

from __future__ import annotations

import fcntl
import io
import os
import socket
import threading
import zlib
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.models import ArchiveRecord, Fetched, Validators

#: The WARC header naming the URL we asked for, when redirects led elsewhere (WARC-Target-URI).
REQUESTED_URI = "Newsagg-Requested-URI"
WARC_SUFFIX = ".warc.gz"
HTML_TYPES = ("text/html", "application/xhtml+xml")  # the article pages a run fetches and an import reads
FEED_TYPES = (
    "application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/feed+json",
    "application/xml", "text/xml", "application/json",
)
# The body we archive is the decoded one, so the headers describing the encoding on the wire go.
_WIRE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})
_GZIP_MAGIC = b"\x1f\x8b\x08"
_PLAIN_MAGIC = b"WARC/1."
#: Why a record the file ends in is no page (a copy or download cut off, a disk that filled).
TRUNCATED = "truncated record"
#: What reading a damaged or cut record raises: warcio's and zlib's errors, and warcio's AttributeError
#: on a response record whose header block ends before its WARC-Target-URI (warcio assumes one).
_DAMAGE = (ArchiveLoadFailed, zlib.error, EOFError, ValueError, AttributeError)


# One append at a time in this process, whichever writer makes it: the file lock is per process.
_APPENDING = threading.Lock()


def _unlocked_in_child() -> None:
    global _APPENDING
    _APPENDING = threading.Lock()  # a child forked during an append would find it held for good


os.register_at_fork(after_in_child=_unlocked_in_child)


@dataclass(frozen=True, slots=True)
class ArchivedPage:
    """A response read back from a WARC file: as fetched (``url`` after redirects), and when."""

    page: Fetched
    fetched_at: datetime


class ArchiveWriter:
    """Appends fetched documents to the WARC files of ``directory``; safe across threads and processes.

    Documents go to the file of the hour they were fetched in, shared by every writer on this
    host; once it holds ``max_file_bytes`` the hour's next file is started. The directory is
    created with the first file.
    """

    def __init__(self, directory: Path, max_file_bytes: int) -> None:
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self._host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname()) or "host"
        self._hour = ""
        self._part = 0  # the hour's file written last: the files before it are full

    def write(self, fetched: Fetched, fetched_at: datetime) -> ArchiveRecord:
        """Archive one fetched document (request and response records); returns where its response record is.

        Raises:
            OSError: the record could not be written (no directory, disk full...); nothing of it stays in the file.
        """
        moment = fetched_at.astimezone(UTC)
        records, response_at, response_length = _records(fetched, moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
        with _APPENDING:
            name, offset = self._append(records, moment.strftime("%Y%m%d%H"))
        return ArchiveRecord(name, offset + response_at, response_length)

    def _append(self, records: bytes, hour: str) -> tuple[str, int]:
        """Append ``records`` to the hour's first file with room; returns its name and where they start."""
        if hour != self._hour:
            self.directory.mkdir(parents=True, exist_ok=True)  # once an hour, not once a page
            self._hour, self._part = hour, 0
        while True:
            name = f"newsagg-{hour}-{self._host}-{self._part:04d}{WARC_SUFFIX}"
            # Unbuffered: a buffered file would flush what a full disk refused before truncating,
            # fail the same way, and leave half a record for the next record to follow.
            with open(self.directory / name, "ab", buffering=0) as file:
                # A POSIX record lock, not flock: a child forked meanwhile (a pool restarted) shares
                # the open file but not this lock, so it cannot keep the file locked. It is released
                # when this process closes any descriptor of the file: no reader here opens it
                # while a writer appends (_APPENDING serialises this process's writers).
                fcntl.lockf(file, fcntl.LOCK_EX)
                start = file.seek(0, io.SEEK_END)
                if start >= self.max_file_bytes:
                    self._part += 1
                    continue
                try:
                    if start == 0:
                        _write_all(file, _warcinfo(name))
                    offset = file.tell()
                    # Written through before the lock goes: a reader (reextract) may read it at once.
                    _write_all(file, records)
                except OSError:
                    with suppress(OSError):
                        file.truncate(start)  # no partial record for the next writer to append after
                    raise
                return name, offset


def _write_all(file: io.FileIO, data: bytes) -> None:
    """Write all of ``data`` (an unbuffered write may take part of it) or raise ``OSError``."""
    view = memoryview(data)
    while view:
        view = view[file.write(view):]


def _records(fetched: Fetched, date: str) -> tuple[bytes, int, int]:
    """The request and response records of a document, gzipped one by one; where the response is in them, and its length."""
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    response = writer.create_warc_record(
        fetched.url,
        "response",
        payload=io.BytesIO(fetched.body),
        length=len(fetched.body),  # without it warcio spools the body to a temporary file it never closes
        http_headers=_response_headers(fetched),
        warc_headers_dict={"WARC-Date": date, REQUESTED_URI: fetched.requested_url},
    )
    request = writer.create_warc_record(
        fetched.url,
        "request",
        payload=io.BytesIO(b""),
        length=0,
        http_headers=_request_headers(fetched),
        warc_headers_dict={
            "WARC-Date": date,
            "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID"),
        },
    )
    writer.write_record(request)
    response_at = buffer.tell()
    writer.write_record(response)
    return buffer.getvalue(), response_at, buffer.tell() - response_at


def _warcinfo(name: str) -> bytes:
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    writer.write_record(writer.create_warcinfo_record(name, {"software": "newsagg", "format": "WARC File Format 1.0"}))
    return buffer.getvalue()


def read_page(directory: Path, record: ArchiveRecord) -> ArchivedPage:
    """The page a pointer names (``record.file`` is a name in ``directory``, or a path).

    Raises:
        ArchiveError: the file is gone, or the record is not a readable response.
    """
    path = directory / record.file
    try:
        with open(path, "rb") as file:
            file.seek(record.offset)
            data = file.read(record.length)
        if len(data) < record.length:  # the start of a page is no page: its article would lose the rest
            where = f"{len(data)} of its {record.length} bytes in" if data else "before it"
            raise ArchiveError(f"{path}@{record.offset}: {TRUNCATED} (the file ends {where})")
        for item in ArchiveIterator(io.BytesIO(data)):
            page = _page_of(item, max_bytes=None, types=None)
            if _body_cut_short(item):
                page = TRUNCATED
            if isinstance(page, str):
                raise ArchiveError(f"{path}@{record.offset}: {page}")
            return page
    except (OSError, *_DAMAGE) as exc:
        raise ArchiveError(f"{path}@{record.offset}: {_one_line(exc)}") from None
    raise ArchiveError(f"{path}@{record.offset}: no record there")


class ArchiveError(Exception):
    """An archived record cannot be read."""


@dataclass(frozen=True, slots=True)
class ScannedRecord:
    """One record of a WARC file: a page, or why it is not one (``skipped``), and where the next record starts."""

    offset: int
    end: int
    page: ArchivedPage | None
    skipped: str | None = None


def scan_warc(
    path: Path, start: int = 0, *, max_bytes: int, types: tuple[str, ...] = HTML_TYPES
) -> Iterator[ScannedRecord]:
    """Every record of a WARC file from ``start`` on, streamed: responses of media ``types`` as pages, the rest as reasons.

    A record that is not an HTTP response, not a 200 of those types, larger than ``max_bytes``,
    truncated or unreadable is yielded with the reason (``skipped``); after an unreadable
    record, reading goes on at the next record found (the next gzip member, or the next
    "WARC/1." line of an uncompressed file), so a damaged record costs that record. A file
    that ends inside a record, wherever (its headers, its body, its gzip member's first
    bytes), ends with one ``TRUNCATED`` record.

    Raises:
        OSError: the file cannot be opened.
        ArchiveError: the file is no WARC file (another one named so, or a gzipped one that is
            not WARC inside), or is gzipped as a whole (its records cannot be read one by one).
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(512)
        gzipped = head.startswith(_GZIP_MAGIC)
        if head and not _uncompressed(head, gzipped).lstrip(b"\r\n").startswith(b"WARC/"):
            # Else it would be one unreadable record, as if a WARC file were damaged.
            raise ArchiveError(f"{path}: not a WARC file (its first record does not start with 'WARC/')")
        offset = _skip_blank_lines(file, start)  # an uncompressed record's end is followed by blank lines
        while True:
            file.seek(offset)
            records = ArchiveIterator(file)
            try:
                for record in records:
                    page = _page_of(record, max_bytes=max_bytes, types=types)
                    records.read_to_end(record)
                    at = records.get_record_offset()
                    end = at + records.get_record_length()
                    # The file ended before the record did: inside its body, or inside its WARC headers
                    # (before their Content-Length: a type of None or "respo" is no type).
                    if _body_cut_short(record) or (record.length is None and end >= size):
                        page = TRUNCATED
                    offset = end
                    if isinstance(page, str):
                        yield ScannedRecord(at, end, None, page)
                    else:
                        yield ScannedRecord(at, end, page)
                break
            except _DAMAGE as exc:
                if "non-chunked gzip" in str(exc):
                    raise ArchiveError(
                        f"{path}: compressed as one gzip stream, not one gzip member per record "
                        "(`warcio recompress` rewrites it so)"
                    ) from None
                following = _next_record(file, offset + 1, _GZIP_MAGIC if gzipped else _PLAIN_MAGIC)
                end = following if following is not None else size
                cut = following is None and _cut_short(file, offset, gzipped)
                yield ScannedRecord(offset, end, None, TRUNCATED if cut else f"unreadable record: {_one_line(exc)}")
                if following is None:
                    return
                offset = following
        offset = _skip_blank_lines(file, offset)
        if offset < size:  # bytes warcio made no record of: the file ends inside a record's first bytes
            cut = _cut_short(file, offset, gzipped)
            yield ScannedRecord(offset, size, None, TRUNCATED if cut else "unreadable record: no WARC record")


def nothing_after(path: Path, offset: int) -> bool:
    """Whether the file holds nothing after ``offset`` but the blank lines that end an uncompressed record."""
    with open(path, "rb") as file:
        return _skip_blank_lines(file, offset) >= os.fstat(file.fileno()).st_size


def _page_of(record: Any, *, max_bytes: int | None, types: tuple[str, ...] | None) -> ArchivedPage | str:
    """The page a record holds (of media ``types``; None: any), or why it holds none."""
    kind = record.rec_type
    if kind != "response":
        return f"{kind} record"
    url = record.rec_headers.get_header("WARC-Target-URI") or ""
    if not url.startswith(("http://", "https://")) or record.http_headers is None:
        return "not an HTTP response"
    status = int(record.http_headers.get_statuscode() or 0)
    if status != 200:
        return f"HTTP status {status}"
    content_type = record.http_headers.get_header("Content-Type")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if types is not None and media not in types:
        return f"not a page (media type {media or 'none'})"
    stream = record.content_stream()
    body = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    if max_bytes is not None and len(body) > max_bytes:
        return f"larger than {max_bytes} bytes"
    fetched_at = _warc_date(record.rec_headers.get_header("WARC-Date"))
    if fetched_at is None:
        return "no WARC-Date"
    headers = {k.lower(): v for k, v in record.http_headers.headers}
    return ArchivedPage(
        Fetched(
            requested_url=record.rec_headers.get_header(REQUESTED_URI) or url,
            url=url,
            status=status,
            body=body,
            content_type=content_type,
            validators=Validators(etag=headers.get("etag"), last_modified=headers.get("last-modified")),
            headers=headers,
        ),
        fetched_at,
    )


def _warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _uncompressed(head: bytes, gzipped: bool) -> bytes:
    """The first bytes of a file as its first record holds them (``head``: the file's first bytes)."""
    if not gzipped:
        return head
    try:
        return zlib.decompressobj(wbits=31).decompress(head, 64)
    except zlib.error:
        return b""


def _skip_blank_lines(file: IO[bytes], offset: int) -> int:
    file.seek(offset)
    head = file.read(16)
    return offset + len(head) - len(head.lstrip(b"\r\n"))


def _body_cut_short(record: Any) -> bool:
    """Whether the file ended before a record's body did, once read: warcio leaves part of its Content-Length unread."""
    return getattr(record.raw_stream, "limit", 0) > 0


def _cut_short(file: IO[bytes], offset: int, gzipped: bool) -> bool:
    """Whether the file ends inside the record at ``offset`` (its gzip member, or its header block, unfinished)."""
    file.seek(offset)
    if not gzipped:
        rest = file.read(1 << 16)
        return len(rest) < 1 << 16 and b"\r\n\r\n" not in rest
    inflater = zlib.decompressobj(wbits=31)
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail or file.read(1 << 16)
            if not data:
                return True
            inflater.decompress(data, 1 << 16)  # bounded: what it inflates to is not kept
    except zlib.error:
        return False  # damaged, not cut
    return False


def _next_record(file: IO[bytes], start: int, magic: bytes) -> int | None:
    """Where the next record starts at or after ``start`` (its gzip member or its WARC line), None at the end."""
    file.seek(start)
    position, carry = start, b""
    while chunk := file.read(1 << 16):
        found = (carry + chunk).find(magic)
        if found >= 0:
            return position - len(carry) + found
        carry = chunk[-(len(magic) - 1):]
        position += len(chunk)
    return None


def _response_headers(fetched: Fetched) -> StatusAndHeaders:
    reason = httpx.codes.get_reason_phrase(fetched.status) or "OK"
    headers = [(k, v) for k, v in fetched.headers.items() if k.lower() not in _WIRE_HEADERS]
    headers.append(("Content-Length", str(len(fetched.body))))
    return StatusAndHeaders(f"{fetched.status} {reason}", headers, protocol="HTTP/1.1")


def _request_headers(fetched: Fetched) -> StatusAndHeaders:
    headers = list(fetched.request_headers.items())
    if not any(k.lower() == "host" for k, _ in headers):
        headers.insert(0, ("Host", httpx.URL(fetched.url).netloc.decode("ascii", "replace")))
    return StatusAndHeaders(f"GET {_request_target(fetched.url)} HTTP/1.1", headers, is_http_request=True)


def _request_target(url: str) -> str:
    """The request line's target (path and query) of a URL as httpx wrote it (``Fetched.url``).

    Split, not parsed again by httpx: the URL is already in httpx's normal form, and parsing
    it anew cost the download thread more than the rest of the request record.
    """
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query or url.partition("#")[0].endswith("?"):
        target += "?" + parts.query
    return target


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__).encode("ascii", "replace").decode()[:200]
