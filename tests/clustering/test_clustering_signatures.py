"""Signatures: datasketch-compatible MinHash, compact bytes, and the banded index."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from clusterkit import version_1_bytes
from pipeline.clustering.lsh import CompactLSH, band_keys, band_params
from pipeline.clustering.signatures import (
    Sketch,
    SketchParams,
    distinct,
    minhash_many,
    permutations,
    shingle_hashes,
    sketch_texts,
    split_short_set,
)

WORDS = "the council of marlowe voted on tuesday to close the old harbour bridge to heavy traffic".split()


def _identity(value: Any) -> Any:
    return value


def test_minhash_equals_datasketch_update_batch() -> None:
    params = SketchParams()
    shingles = shingle_hashes(WORDS, 5)
    reference = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=_identity)
    reference.update_batch(shingles.tolist())
    ours = minhash_many([shingles, np.empty(0, np.uint32), shingles[:3]], params)
    assert np.array_equal(ours[0], reference.hashvalues)
    assert (ours[1] == 0xFFFFFFFF).all()  # an empty set keeps datasketch's empty value
    partial = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=_identity)
    partial.update_batch(shingles[:3].tolist())
    assert np.array_equal(ours[2], partial.hashvalues)


@pytest.mark.parametrize(("num_perm", "seed"), [(128, 1), (64, 1), (16, 7)])
def test_permutations_are_datasketchs(num_perm: int, seed: int) -> None:
    a, b = permutations(num_perm, seed)
    reference = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    assert np.array_equal(a, reference[0]) and np.array_equal(b, reference[1])


def test_shingles_are_order_sensitive_and_distinct() -> None:
    assert len(shingle_hashes(WORDS, 5)) == len(WORDS) - 4
    assert not np.array_equal(shingle_hashes(["a", "b"], 2), shingle_hashes(["b", "a"], 2))
    assert len(shingle_hashes(["a", "b"], 5)) == 1  # shorter than k: one shingle
    assert len(shingle_hashes([], 5)) == 0


def test_signature_bytes_round_trip_and_reject_other_parameters() -> None:
    params = SketchParams()
    long_text, short_text = sketch_texts([("Title", " ".join(WORDS * 10)), ("Brief", " ".join(WORDS))], params)
    for sketch in (long_text, short_text):
        back = Sketch.from_bytes(sketch.to_bytes(params), params)
        assert np.array_equal(back.hashvalues, sketch.hashvalues)
        assert (back.size, back.short) == (sketch.size, sketch.short)
        assert back.lead is not None and sketch.lead is not None and np.array_equal(back.lead, sketch.lead)
        assert (back.lead_size, back.opening_size) == (sketch.lead_size, sketch.opening_size)
    assert short_text.short and short_text.short_set is not None
    back = Sketch.from_bytes(short_text.to_bytes(params), params)
    assert back.short_set is not None and np.array_equal(back.short_set, short_text.short_set)
    assert len(long_text.to_bytes(params)) < 4 * params.num_perm + 2 * params.lead_perm + 32
    with pytest.raises(ValueError, match="num_perm"):
        Sketch.from_bytes(long_text.to_bytes(params), SketchParams(num_perm=64))
    # Another lead length only drops the lead sketch.
    other = Sketch.from_bytes(long_text.to_bytes(params), SketchParams(lead_perm=16))
    assert other.lead is None and other.lead_size == 0 and np.array_equal(other.hashvalues, long_text.hashvalues)


def test_lead_and_opening_are_the_first_words() -> None:
    params = SketchParams()
    words = [f"w{i}" for i in range(400)]
    (sketch,) = sketch_texts([("Title", " ".join(words))], params)
    assert sketch.lead_size == params.lead_words - params.shingle_size + 1
    assert sketch.opening_size == params.opening_words - params.shingle_size + 1
    (same_start,) = sketch_texts([("Other", " ".join(words[: params.lead_words] + ["x"] * 50))], params)
    assert sketch.lead is not None and same_start.lead is not None and np.array_equal(sketch.lead, same_start.lead)


def test_version_1_signatures_still_load() -> None:
    params = SketchParams()
    (short_text,) = sketch_texts([("Velt shares rise", " ".join(WORDS))], params)
    back = Sketch.from_bytes(version_1_bytes(short_text, params), params)
    assert back.lead is None and back.lead_size == 0
    assert back.short_set is not None and short_text.short_set is not None
    # The same title and lead hashes as today, without the opening.
    assert np.array_equal(back.short_set, split_short_set(short_text.short_set)[1])


def test_band_params_come_from_datasketch_and_favour_recall() -> None:
    bands, rows = band_params(0.2, 128, 0.8)
    assert bands * rows <= 128 and rows <= 2  # short bands: low-Jaccard pairs still collide


@pytest.mark.parametrize("num_perm", [16, 128])
@pytest.mark.parametrize("threshold", [0.05, 0.2, 0.5, 0.85])
@pytest.mark.parametrize("recall_weight", [0.5, 0.8, 0.99])
def test_band_params_equal_datasketch_optimiser(num_perm: int, threshold: float, recall_weight: float) -> None:
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(1.0 - recall_weight, recall_weight))
    assert band_params(threshold, num_perm, recall_weight) == (lsh.b, lsh.r)


def test_clustering_needs_neither_datasketch_nor_scipy() -> None:
    # Their import is about a second of every `newsagg dedup` and of every signing process.
    code = (
        "import sys\n"
        "from pipeline.clustering import cluster_documents\n"
        "from pipeline.clustering.lsh import band_params\n"
        "from pipeline.clustering.signatures import SketchParams, sketch_texts\n"
        "band_params(0.2, 128, 0.8)\n"
        "sketch_texts([('A title', 'Some words of a text to sign here.')], SketchParams())\n"
        "print(sorted(m for m in ('datasketch', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_compact_lsh_finds_collisions_across_levels_and_compacts() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(0, 2**32, size=(50, 16), dtype=np.uint64).astype(np.uint32)
    values[10] = values[3]  # a duplicate of row 3
    keys = band_keys(values, 8, 2)
    lsh = CompactLSH(8, 2)
    for start in range(0, 40, 7):  # several insert batches make several levels
        lsh.insert(keys[start : min(40, start + 7)], np.arange(start, min(40, start + 7), dtype=np.uint32))
    assert len(lsh) == 40
    q, rows = lsh.query(keys[[3]])
    assert set(rows.tolist()) == {3, 10}
    later, earlier = lsh.self_pairs(keys[40:])
    assert len(later) == 0
    remap = np.arange(40, dtype=np.int64)
    remap[3] = -1
    remap[4:] -= 1
    lsh.compact(remap)
    _, rows = lsh.query(keys[[3]])
    assert set(rows.tolist()) == {9}  # row 10 renumbered, row 3 gone


@pytest.mark.parametrize(("size", "bands", "distinct_keys"), [(0, 4, 5), (1, 4, 5), (300, 8, 7), (200, 3, 2)])
def test_self_pairs_pair_each_row_with_the_last_rows_before_it_in_its_bucket(size: int, bands: int, distinct_keys: int) -> None:
    keys = np.random.default_rng(3).integers(0, distinct_keys, size=(size, bands)).astype(np.uint32)
    later, earlier = CompactLSH(bands, 2, max_bucket=5).self_pairs(keys)
    expected = []
    for band in range(bands):
        for row in range(size):
            before = [other for other in range(row) if keys[other, band] == keys[row, band]]
            expected += [(row, other) for other in before[-5:]]  # a bucket gives its 5 most recent rows
    assert sorted(zip(later.tolist(), earlier.tolist())) == sorted(expected)


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64, np.int64])
@pytest.mark.parametrize("size", [0, 1, 2, 500, 50_000])
def test_distinct_is_numpy_unique(dtype: type, size: int) -> None:
    values = np.random.default_rng(size).integers(0, max(1, size // 3), size).astype(dtype)
    kept = distinct(values)
    assert kept.dtype == values.dtype and np.array_equal(kept, np.unique(values))


def test_a_sketch_does_not_depend_on_the_batch_it_is_signed_in() -> None:
    params = SketchParams()
    story = " ".join(WORDS * 12)
    items = [
        ("Long story", story),
        ("Brief", " ".join(WORDS)),
        ("", ""),  # no tokens at all
        ("Two", "harbour bridge"),  # fewer tokens than a shingle
        ("Ça coûte", "Le conseil de Marlowe a voté mardi la fermeture du vieux pont du port."),
        ("新闻", "新华社北京12月5日电 港口大桥周二起对重型车辆关闭。"),
        ("Last", "bridge"),  # one token, at the very end of the batch
    ]
    batch = [sketch.to_bytes(params) for sketch in sketch_texts(items, params)]
    alone = [sketch_texts([item], params)[0].to_bytes(params) for item in items]
    assert batch == alone


def test_compact_lsh_query_gives_each_buckets_latest_rows_in_order() -> None:
    # A small key space makes big buckets that span levels; keys above and below
    # every stored key, and keys in no bucket, test the ends of the search.
    rng = np.random.default_rng(7)
    keys = rng.integers(1, 9, size=(60, 3), dtype=np.uint32)
    lsh = CompactLSH(3, 1, max_bucket=3)
    for start in range(0, 60, 11):
        stop = min(60, start + 11)
        lsh.insert(keys[start:stop], np.arange(start, stop, dtype=np.uint32))
    queries = np.array([[0, 1, 9], [4, 4, 4], [8, 2, 100], [1, 8, 5]], dtype=np.uint32)
    expected_q: list[int] = []
    expected_rows: list[int] = []
    for band in range(3):
        for level in lsh._levels[band]:
            for i, key in enumerate(queries[:, band].tolist()):
                bucket = [int(r) for k, r in zip(level.keys.tolist(), level.rows.tolist()) if k == key][-3:]
                expected_q += [i] * len(bucket)
                expected_rows += bucket
    q, rows = lsh.query(queries)
    assert (q.tolist(), rows.tolist()) == (expected_q, expected_rows)
    assert expected_rows  # the queries do hit buckets
