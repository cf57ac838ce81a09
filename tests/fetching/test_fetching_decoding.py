"""The bounded gzip/deflate decoder: exact round trips, and never more output than the cap."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.fetching.decoding import BoundedDecoder, UnsupportedEncoding

ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "gzip-multi": ("gzip", lambda d: gzip.compress(d[: len(d) // 2]) + gzip.compress(d[len(d) // 2 :])),
    "gzip-padded": ("x-gzip", lambda d: gzip.compress(d) + b"\0" * 7),
    "zlib": ("deflate", zlib.compress),
    "raw-deflate": ("deflate", lambda d: zlib.compress(d)[2:-4]),
    "identity": ("identity", lambda d: d),
}


def read(decoder: BoundedDecoder, chunks: list[bytes], limit: int) -> bytes | None:
    """What Fetcher._read_body does: the body, or None once it is over the limit."""
    body = bytearray()
    for chunk in chunks:
        body += decoder.decode(chunk, limit - len(body) + 1)
        assert len(body) <= limit + 1 or decoder.identity
        if len(body) > limit:
            return None
    body += decoder.flush()
    return bytes(body) if len(body) <= limit else None


payloads = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=20), st.integers(1, 2000)),
)


@settings(max_examples=150, deadline=None)
@given(
    data=payloads,
    kind=st.sampled_from(sorted(ENCODERS)),
    chunk=st.integers(1, 700),
    limit=st.integers(0, 6000),
)
def test_round_trip_within_the_limit(data: bytes, kind: str, chunk: int, limit: int) -> None:
    encoding, encode = ENCODERS[kind]
    wire = encode(data)
    chunks = [wire[i : i + chunk] for i in range(0, len(wire), chunk)]

    result = read(BoundedDecoder(encoding), chunks, limit)

    assert result == (data if len(data) <= limit else None)


def test_a_bomb_never_inflates_past_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    decoder = BoundedDecoder("gzip")

    out = decoder.decode(bomb, 1001)

    assert len(out) == 1001


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip", "compress"])
def test_unsupported_encodings(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        BoundedDecoder(encoding)


def test_corrupt_data_raises_zlib_error() -> None:
    with pytest.raises(zlib.error):
        BoundedDecoder("gzip").decode(b"\x1f\x8bnot gzip at all", 100)
