"""Indices: exact search is right, faiss agrees with it, the medium filter and masks hold."""

from __future__ import annotations

import time

import numpy as np
import pytest

from crossrec.index import IVF_MIN_ITEMS, Index, build_index, ivf_lists


def _data(n, d=16, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    media = rng.choice(["article", "audio", "image", "video"], size=n, p=[.5, .3, .15, .05])
    return vectors, media, rng.normal(size=(7, d)).astype(np.float32)


def _brute(vectors, queries, k, allowed=None):
    s = queries @ vectors.T
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("kind", ["exact", "flat"])
def test_exact_kinds_match_brute_force_with_and_without_filter(kind):
    vectors, media, queries = _data(2000)
    index = build_index(vectors, media, kind=kind)
    ids, scores = index.search(queries, 10)
    np.testing.assert_array_equal(ids, _brute(vectors, queries, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, ids, 1), rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()                  # best first
    ids, _ = index.search(queries, 10, media={"video", "image"})
    np.testing.assert_array_equal(ids, _brute(vectors, queries, 10, np.isin(media, ["video", "image"])))
    ids, _ = index.search(queries[:1], 10, media={"video"})       # one sub-index: its own answer
    np.testing.assert_array_equal(ids, _brute(vectors, queries[:1], 10, media == "video"))
    mask = np.zeros(len(vectors), bool)
    mask[::3] = True
    ids, _ = index.search(queries, 10, mask=mask)
    np.testing.assert_array_equal(ids, _brute(vectors, queries, 10, mask))


def test_padding_unknown_medium_and_ids_after_add():
    vectors, media, queries = _data(30)
    index = Index(16)
    index.add(vectors[:20], media=media[:20])
    index.add(vectors[20:], ids=np.arange(100, 110), media=media[20:])
    assert len(index) == 30 and index.medium_of(105) == media[25]
    ids, scores = index.search(queries, 50)
    assert (ids[:, :30] >= 0).all() and (ids[:, 30:] == -1).all()
    assert np.isneginf(scores[:, 30:]).all()
    assert set(ids[0, :30]) == set(range(20)) | set(range(100, 110))
    assert (index.search(queries, 5, media={"podcast"})[0] == -1).all()
    n_audio = int((media == "audio").sum())
    ids, scores = index.search(queries[:1], 50, media={"audio"})   # one sub-index, padded
    assert ids.shape == scores.shape == (1, 50) and ids.dtype == np.int64
    assert set(ids[0, :n_audio]) == {i if i < 20 else i + 80 for i in np.flatnonzero(media == "audio")}
    assert (ids[0, n_audio:] == -1).all() and np.isneginf(scores[0, n_audio:]).all()
    with pytest.raises(ValueError, match="already in the index"):
        index.add(vectors[:1], ids=[3])
    with pytest.raises(ValueError, match="dim 16"):
        index.search(np.zeros((1, 8)), 3)


@pytest.mark.parametrize("kind,all_media", [("exact", False), ("flat", False), ("hnsw", False),
                                            ("hnsw", True), ("ivf", False)])
def test_save_and_load_give_the_same_results(kind, all_media, tmp_path):
    vectors, media, queries = _data(500)
    index = build_index(vectors, media, kind=kind, all_media=all_media)
    a = index.search(queries, 10, media={"article", "audio"})
    everything = index.search(queries, 10)
    back = Index.load(index.save(tmp_path / "idx"))
    b = back.search(queries, 10, media={"article", "audio"})
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(everything[0], back.search(queries, 10)[0])
    assert (back._all is not None) == all_media                  # faiss: an all-media graph
    assert back.kind == kind and back.counts() == index.counts()


def test_auto_kind_follows_catalog_size():
    assert build_index(np.zeros((10, 4)), kind="auto").kind == "exact"
    assert build_index(np.random.default_rng(0).normal(size=(50_001, 2)), kind="auto").kind == "ivf"
    with pytest.raises(ValueError, match="unknown index kind 'annoy'; expected one of exact"):
        Index(4, kind="annoy")
    with pytest.raises(ValueError, match="nprobe must be >= 1"):
        Index(4, kind="ivf", nprobe=0)
    with pytest.raises(ValueError, match="unknown IVF codes 'pq'; expected one of sq8, flat"):
        Index(4, kind="ivf", codes="pq")


@pytest.mark.parametrize("codes", ["sq8", "flat"])
def test_a_trained_ivf_index_loads_back_with_its_codes_and_answers(codes, tmp_path):
    vectors, media, queries = _clustered(IVF_MIN_ITEMS + 1000, d=16, seed=5)
    index = build_index(vectors, media, kind="ivf", all_media=True, codes=codes, nprobe=8)
    back = Index.load(index.save(tmp_path / "idx"))
    assert back.codes == codes and back.nprobe == 8
    assert type(back._all.faiss).__name__ == type(index._all.faiss).__name__
    for filt in (None, {"video"}):
        a, sa = index.search(queries, 10, media=filt)
        b, sb = back.search(queries, 10, media=filt)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(sa, sb, rtol=1e-6)
    if codes == "sq8":             # re-ranked: the scores are exact inner products
        np.testing.assert_allclose(sa, np.take_along_axis(queries @ vectors.T, a, 1), rtol=1e-5)


def test_ivf_lists_grow_with_the_square_root_and_stay_trainable():
    assert ivf_lists(25_000) == 316 and ivf_lists(250_000) == 1000
    assert ivf_lists(100) == 2 and ivf_lists(10) == 1             # n / 39 points per list


def _clustered(n, d=64, seed=0, spread=0.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, d)).astype(np.float32)
    vectors = centres[rng.integers(200, size=n)] + spread * rng.normal(size=(n, d)).astype(np.float32)
    media = rng.choice(["article", "audio", "image", "video"], size=n)
    queries = centres[rng.integers(200, size=200)] + spread * rng.normal(size=(200, d)).astype(np.float32)
    return vectors, media, queries


def test_ivf_small_media_are_searched_flat_and_live_items_are_found_after_training():
    vectors, media, queries = _clustered(IVF_MIN_ITEMS + 2000, d=16, seed=3)
    media[:] = "article"
    media[:500] = "audio"                                   # 500 audio items: a flat part
    index = build_index(vectors, media, kind="ivf")
    assert type(index.parts["audio"].faiss).__name__ == "IndexFlatIP"
    assert type(index.parts["article"].faiss).__name__ == "IndexRefineFlat"   # sq8 + re-rank
    assert type(build_index(vectors, media, kind="ivf", codes="flat").parts["article"].faiss
                ).__name__ == "IndexIVFFlat"
    exact = build_index(vectors, media, kind="exact")
    np.testing.assert_array_equal(index.search(queries, 10, media={"audio"})[0],
                                  exact.search(queries, 10, media={"audio"})[0])
    # an item added after training lands in its nearest list and is found by a query at it
    new = 3.0 * queries[:1]
    index.add(new, ids=[10**6], media=["article"])
    ids, _ = index.search(new, 1, media={"article"})
    assert ids[0, 0] == 10**6


@pytest.mark.slow
def test_hnsw_recall_at_10_is_at_least_095_at_100k_items():
    """Clustered 64-d vectors (as embeddings are), 100k items in four media, 200 queries."""
    rng = np.random.default_rng(0)
    n, d = 100_000, 64
    centres = rng.normal(size=(200, d)).astype(np.float32)
    vectors = centres[rng.integers(200, size=n)] + 0.5 * rng.normal(size=(n, d)).astype(np.float32)
    media = rng.choice(["article", "audio", "image", "video"], size=n)
    queries = centres[rng.integers(200, size=200)] + 0.5 * rng.normal(size=(200, d)).astype(np.float32)
    t0 = time.perf_counter()
    hnsw = build_index(vectors, media, kind="hnsw")
    build_s = time.perf_counter() - t0
    exact = build_index(vectors, media, kind="exact")
    for filt in (None, {"video"}):                 # all media (four walks merged), one medium
        truth, _ = exact.search(queries, 10, media=filt)
        got, _ = hnsw.search(queries, 10, media=filt)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
        assert recall >= 0.95, (filt, recall, build_s)


@pytest.mark.parametrize("codes", ["sq8", "flat"])
def test_ivf_recall_at_10_is_at_least_095_at_100k_items(codes):
    """The "auto" kind above 50k items: IVF (2 sqrt(n) lists per medium and over all, nprobe 32),
    with 8-bit codes re-ranked exactly (the default) or float lists."""
    vectors, media, queries = _clustered(100_000)
    ivf = build_index(vectors, media, codes=codes)
    assert ivf.kind == "ivf" and ivf._all is not None       # one search over every medium
    assert ivf.codes == codes
    exact = build_index(vectors, media, kind="exact")
    for filt in (None, {"video"}):
        truth, _ = exact.search(queries, 10, media=filt)
        got, _ = ivf.search(queries, 10, media=filt)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
        assert recall >= 0.95, (filt, recall)


def test_frozen_exact_index_searches_every_medium_at_once_and_add_unfreezes():
    vectors, media, queries = _data(3000, seed=4)
    index = build_index(vectors[:2000], media[:2000], kind="exact").freeze()
    assert index._all is not None
    np.testing.assert_array_equal(index.search(queries, 10)[0], _brute(vectors[:2000], queries, 10))
    one, s = index.search(queries[:1], 10)                      # the one-query fast path
    np.testing.assert_array_equal(one, _brute(vectors[:2000], queries[:1], 10))
    index.add(vectors[2000:], media=media[2000:])
    assert index._all is None
    np.testing.assert_array_equal(index.search(queries, 10)[0], _brute(vectors, queries, 10))
