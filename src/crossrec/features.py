"""Classical content features built from a :class:`~crossrec.data.catalog.Catalog`.

Each builder returns an id-aligned :class:`~crossrec.data.dataset.Features` (dense float32
``(n_items, dim)`` plus a presence mask), ready for ``TrainData.item_features``:

- :func:`tfidf_features`: TF-IDF over the item text (scikit-learn ``TfidfVectorizer``),
- :func:`category_features`: multi-hot categories / genres,
- :func:`numeric_features`: standardised numeric attributes (e.g. year),
- :func:`concat_features`: row-normalised, weighted concatenation of several of these,
- :func:`default_content_features`: {"tfidf", "categories", "content"} for a catalog.

Example:
    >>> feats = default_content_features(dataset.catalog)
    >>> feats["content"].matrix.shape              # (n_items, dim)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Features


def tfidf_features(catalog: Catalog, fields: tuple[str, ...] | None = None,
                   max_features: int = 4096, with_categories: bool = True,
                   with_tags: bool = True, stop_words: str | list[str] | None = None,
                   analyzer: str = "word", ngram_range: tuple[int, int] = (1, 1),
                   name: str = "tfidf") -> Features:
    """TF-IDF (sublinear tf, L2-normalised rows) of ``catalog.item_text(fields, ...)``.

    Args:
        fields: text fields to use (default: all of ``catalog.text``).
        max_features: vocabulary size (most frequent terms), keeps the dense matrix small.
        stop_words: None (default: catalogs may be in any language), "english" or a list.
        analyzer, ngram_range: passed to ``TfidfVectorizer``; for languages written without
            spaces (Chinese, Japanese) use ``analyzer="char_wb", ngram_range=(1, 2)``.
    Returns:
        Features (n_items, <= max_features); mask False where the text yields no term.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = catalog.item_text(fields, with_categories=with_categories, with_tags=with_tags)
    if not any(t.strip() for t in texts):
        return Features(np.zeros((len(catalog), 0), np.float32), np.zeros(len(catalog), bool),
                        name)
    vectorizer = TfidfVectorizer(sublinear_tf=True, max_features=max_features,
                                 stop_words=stop_words, analyzer=analyzer,
                                 ngram_range=ngram_range, dtype=np.float32)
    try:
        matrix = vectorizer.fit_transform(texts)                    # (n_items, vocab) sparse
    except ValueError:                                              # only stop words left
        return Features(np.zeros((len(catalog), 0), np.float32), np.zeros(len(catalog), bool),
                        name)
    mask = np.diff(matrix.indptr) > 0
    return Features(matrix.toarray(), mask, name)


def category_features(catalog: Catalog, name: str = "categories") -> Features:
    """Multi-hot (n_items, n_categories) over ``catalog.category_vocabulary()`` (sorted)."""
    vocab = {c: j for j, c in enumerate(catalog.category_vocabulary())}
    matrix = np.zeros((len(catalog), len(vocab)), dtype=np.float32)
    for i, cats in enumerate(catalog.categories):
        matrix[i, [vocab[c] for c in cats]] = 1.0
    return Features(matrix, matrix.any(axis=1), name)


def numeric_features(catalog: Catalog, names: Sequence[str], name: str = "numeric") -> Features:
    """Standardised numeric attributes (zero mean, unit variance over known values).

    Missing values (NaN) become 0 (the mean); mask is False where all attributes are missing.
    """
    unknown = [n for n in names if n not in catalog.attributes]
    if unknown:
        raise ValueError(f"unknown catalog attribute(s) {unknown}; available: "
                         f"{sorted(catalog.attributes) or 'none'}")
    matrix = np.zeros((len(catalog), len(names)), dtype=np.float32)
    known_any = np.zeros(len(catalog), dtype=bool)
    for j, attr in enumerate(names):
        col = np.asarray(catalog.attributes[attr], dtype=np.float64)
        known = np.isfinite(col)
        known_any |= known
        if known.any():
            std = col[known].std()
            matrix[known, j] = (col[known] - col[known].mean()) / (std if std > 0 else 1.0)
    return Features(matrix, known_any, name)


def binned_features(catalog: Catalog, names: Sequence[str], n_bins: int = 8,
                    name: str = "attributes") -> Features:
    """One-hot quantile bins of numeric attributes (e.g. year), so that cosine similarity
    compares them (a single standardised number would collapse under L2 normalisation).

    Bin edges are the quantiles of the known values; NaN gives no bin and mask False where
    every attribute is missing.
    """
    blocks, known_any = [], np.zeros(len(catalog), dtype=bool)
    for attr in names:
        col = np.asarray(catalog.attributes[attr], dtype=np.float64)
        known = np.isfinite(col)
        known_any |= known
        if not known.any():
            continue
        edges = np.unique(np.quantile(col[known], np.linspace(0, 1, n_bins + 1)[1:-1]))
        bins = np.searchsorted(edges, col[known], side="right")
        block = np.zeros((len(catalog), len(edges) + 1), dtype=np.float32)
        block[np.flatnonzero(known), bins] = 1.0
        blocks.append(block)
    matrix = np.hstack(blocks) if blocks else np.zeros((len(catalog), 0), np.float32)
    return Features(matrix, known_any, name)


def concat_features(parts: Sequence[Features], weights: Sequence[float] | None = None,
                    name: str = "concat") -> Features:
    """Concatenate feature blocks, each row-L2-normalised then multiplied by its weight.

    The mask is True where any part is present. Weights default to 1 for every part.
    """
    if not parts:
        raise ValueError("concat_features needs at least one part")
    weights = [1.0] * len(parts) if weights is None else list(weights)
    if len(weights) != len(parts):
        raise ValueError(f"concat_features: {len(weights)} weights for {len(parts)} parts")
    n = len(parts[0].mask)
    if any(len(p.mask) != n for p in parts):
        raise ValueError(f"concat_features: parts have different row counts "
                         f"{[len(p.mask) for p in parts]}")
    blocks = []
    for part, weight in zip(parts, weights, strict=True):
        norms = np.linalg.norm(part.matrix, axis=1, keepdims=True)
        unit = np.divide(part.matrix, norms, out=np.zeros_like(part.matrix), where=norms > 0)
        blocks.append(np.float32(weight) * unit)
    mask = np.logical_or.reduce([p.mask for p in parts])
    return Features(np.hstack(blocks), mask, name)


def _is_identifier(attribute: str) -> bool:
    """Attributes named ``id`` or ``*_id`` (e.g. ML-1M's ``movie_id``) identify an item; they
    say nothing about its content and are never used as a feature."""
    return attribute == "id" or attribute.endswith("_id")


def default_content_features(catalog: Catalog, max_features: int = 4096) -> dict[str, Features]:
    """{"tfidf": text + tags, "categories": multi-hot, "attributes": quantile-binned numbers
    (e.g. year; identifiers such as ``movie_id`` are left out), "content": all of them
    concatenated}.

    Parts the catalog has nothing for are left out; an empty dict when it has no content.
    """
    categories = category_features(catalog)
    has_categories = categories.matrix.shape[1] > 0
    tfidf = tfidf_features(catalog, max_features=max_features,
                           with_categories=not has_categories)
    parts = {}
    if tfidf.mask.any():
        parts["tfidf"] = tfidf
    if has_categories:
        parts["categories"] = categories
    numeric_names = sorted(a for a in catalog.attributes if not _is_identifier(a))
    if numeric_names:
        numeric = binned_features(catalog, numeric_names)
        if numeric.mask.any():
            parts["attributes"] = numeric
    if parts:
        parts["content"] = concat_features(list(parts.values()), name="content")
    return parts


def catalog_modalities(catalog: Catalog) -> list[str]:
    """The modalities the catalog has any content for: "text" when some item has text
    (fields, categories or tags), and each media kind with at least one path or URL."""
    out = []
    if any(t.strip() for t in catalog.item_text()):
        out.append("text")
    for kind, col in catalog.media.items():
        if any(isinstance(x, str) and x for x in col):
            out.append(kind)
    return out


def dataset_features(dataset, encode: Sequence[str] = (), store_root=None, strict: bool = True,
                     progress: bool = True) -> dict[str, Features]:
    """Every item feature matrix a model can use: the dataset's own precomputed ones, the
    classical ones of :func:`default_content_features`, and pretrained-encoder vectors of the
    ``encode`` modalities (named by modality, e.g. "text", "image"), taken from the feature
    store at ``store_root`` (only new or changed items are encoded).

    With ``strict``, asking for a modality the catalog has no content for is an error;
    otherwise that modality is skipped (and logged). :func:`dataset_features_and_reports`
    also returns the encode reports (fingerprints, counts).
    """
    return dataset_features_and_reports(dataset, encode, store_root, strict, progress)[0]


def dataset_features_and_reports(dataset, encode: Sequence[str] = (), store_root=None,
                                 strict: bool = True, progress: bool = True) -> tuple[dict, dict]:
    """(:func:`dataset_features`, {modality: EncodeReport} of the encoded modalities)."""
    import logging

    features = {**dataset.features, **default_content_features(dataset.catalog)}
    have = catalog_modalities(dataset.catalog)
    missing = [m for m in encode if m not in have]
    if missing and strict:
        raise ValueError(f"cannot encode {missing}: dataset {dataset.name!r} has no such "
                         f"content (it has: {', '.join(have) or 'none'})")
    todo = [m for m in dict.fromkeys(encode) if m in have]
    if missing:
        logging.getLogger(__name__).info("no %s content in %s: not encoded", missing,
                                         dataset.name)
    reports: dict = {}
    if todo:
        from crossrec.encoders.pipeline import DEFAULT_STORE, encode_catalog

        encoded, reports = encode_catalog(dataset.catalog, todo,
                                          store_root=store_root or DEFAULT_STORE,
                                          progress=progress)
        clash = sorted(set(encoded) & set(features))
        if clash:
            raise ValueError(f"dataset feature(s) {clash} have the names of encoded modalities")
        features.update(encoded)
    return features, reports
