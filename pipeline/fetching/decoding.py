"""Response bodies decoded with a bounded output size, so a cap counts decompressed bytes."""

from __future__ import annotations

import zlib
from typing import Any


class UnsupportedEncoding(Exception):
    pass


class BoundedDecoder:
    """gzip/deflate decoding that never produces more than asked per call (bomb-proof)."""

    def __init__(self, content_encoding: str | None) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise UnsupportedEncoding(", ".join(codings))
        self.identity = not codings
        self._gzip = bool(codings) and codings[0] != "deflate"
        self._raw_deflate = False  # some servers send deflate without the zlib wrapper
        self._replay: bytearray | None = None if self._gzip else bytearray()  # input before any output
        self._pending = b""  # input zlib could not take yet (output was full)
        self._trailing = False  # past the end of the compressed data: ignore the rest
        self._obj: Any = None if self.identity else self._new()

    def _new(self) -> Any:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def decode(self, data: bytes, max_out: int) -> bytes:
        """Up to ``max_out`` decoded bytes from ``data`` plus input held back earlier."""
        if self._obj is None:
            return data
        out = bytearray()
        data, self._pending = self._pending + data, b""
        while data and len(out) < max_out and not self._trailing:
            if self._obj.eof:
                # Concatenated gzip members are one body; anything else after the end is padding.
                if self._gzip and len(data) < 2:
                    self._pending = data
                    break
                if not (self._gzip and data[:2] == b"\x1f\x8b"):
                    self._trailing = True
                    break
                self._obj = self._new()
            if self._replay is not None:
                self._replay += data
            try:
                out += self._obj.decompress(data, max_out - len(out))
            except zlib.error:
                if self._replay is None or self._raw_deflate:
                    raise
                # Not zlib-wrapped after all: start again as raw deflate from the first byte.
                self._raw_deflate = True
                self._obj = self._new()
                data, self._replay = bytes(self._replay), None
                continue
            if out:
                self._replay = None
            if self._obj.eof:
                data = self._obj.unused_data
            else:
                data, self._pending = b"", self._obj.unconsumed_tail  # non-empty only when out is full
        return bytes(out)

    def flush(self) -> bytes:
        return b"" if self._obj is None else bytes(self._obj.flush())
