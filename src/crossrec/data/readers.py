"""Readers for user files: delimited text, Parquet, JSON lines and RecBole atomic files.

Every reader returns plain pandas objects with string cells; every problem found in a file
raises :class:`DataError` naming the file, the physical line and the column, e.g.
``ratings.tsv:57: column 'rating': 'abc' is not a number``. Ids become indices only in
:meth:`crossrec.data.dataset.Dataset.from_frame`; nothing here maps ids.

Example:
    >>> frame = read_interactions("ratings.csv", columns={"item_id": "movie"})  # doctest: +SKIP
    >>> list(frame.columns)  # doctest: +SKIP
    ['user_id', 'item_id', 'rating', 'timestamp']

Parsing is done by pyarrow (delimited text) and pandas (Parquet); the file is re-scanned in
Python only when something is wrong, to find the offending line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from crossrec.data.catalog import MEDIA_KINDS, Catalog

SUFFIX_FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".dat": "tsv", ".parquet": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".inter": "atomic", ".item": "atomic", ".user": "atomic",
}
"""File suffix -> format. ``tsv`` and ``atomic`` are tab-separated without quoting; ``csv`` is
comma-separated with RFC-4180 quoting (fields may hold the separator, quotes and newlines)."""

FORMATS = ("csv", "tsv", "parquet", "jsonl", "atomic")
ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
"""Field types of a RecBole atomic header (``name:type``); ``*_seq`` fields are space-separated."""

ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userID", "user", "UserID", "userId"),
    "item_id": ("item_id", "itemID", "item", "artistID", "movie_id", "movieId", "MovieID"),
    "rating": ("rating", "weight", "value", "score"),
    "timestamp": ("timestamp", "time", "ts"),
    "event": ("event",),
}
"""Interaction roles -> file column names tried, in order, when ``columns`` does not map a role."""

CATALOG_ID_ALIASES = ("item_id", "itemID", "item", "id", "artistID", "movie_id", "movieId",
                      "MovieID")
_URL = re.compile(r"^(?:https?|file)://", re.IGNORECASE)
_NEWLINE = re.compile(r"\r\n|\r|\n")
_NEWLINE_BYTES = re.compile(rb"\r\n|\r|\n")
_MISSING_NUMBERS = frozenset({"nan", "na", "n/a", "null", "none"})
_SOURCE = "crossrec_source"  # frame.attrs key: where the rows came from (JSON-safe dict)
_COLUMNS = "crossrec_columns"  # frame.attrs key: role -> file column (read_interactions)


class DataError(ValueError):
    """A problem in an input file, located as ``{path}:{line}: column '{col}': {what}``.

    ``line`` is the 1-based physical line of the file (the header is line 1); for Parquet,
    which has no lines, ``row`` (1-based) is given instead. Both and ``column`` may be None.
    """

    def __init__(self, path, what: str, line: int | None = None, column: str | None = None,
                 row: int | None = None):
        self.path, self.what = str(path), what
        self.line, self.column, self.row = line, column, row
        where = self.path
        if line is not None:
            where += f":{line}"
        elif row is not None:
            where += f": row {row}"
        col = f"column '{column}': " if column is not None else ""
        super().__init__(f"{where}: {col}{what}")

    def __reduce__(self):
        return type(self), (self.path, self.what, self.line, self.column, self.row)


# ----------------------------------------------------------------------------- tables


def detect_format(path, fmt: str | None = None) -> str:
    """The format of ``path``: ``fmt`` if given, else from the file suffix."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataError(path, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise DataError(path, f"unknown file format {suffix or '(no suffix)'!r}; supported "
                              f"suffixes: {', '.join(SUFFIX_FORMATS)} (or pass fmt=...)")
    return SUFFIX_FORMATS[suffix]


def read_table(path, fmt: str | None = None, sep: str | None = None, encoding: str = "utf-8",
               names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a table of strings: one row per record, in file order, index = record number.

    Args:
        path: a .csv, .tsv/.txt/.dat (tab), .parquet, .jsonl/.ndjson or RecBole
            .inter/.item/.user file (see :data:`SUFFIX_FORMATS`).
        fmt: overrides the suffix ("csv", "tsv", "parquet", "jsonl", "atomic").
        sep: field separator for delimited text (default "," for csv, tab otherwise); a
            multi-character separator such as GroupLens "::" works too.
        encoding: text encoding of delimited and JSON-lines files.
        names: column names for a delimited file without a header row.

    Cells are ``str`` ("" where empty or null). Lists in Parquet / JSON lines stay lists of
    strings. Atomic files lose the ``:type`` of their header names (see :func:`read_atomic`).
    CRLF and a UTF-8 byte-order mark are handled. Empty lines are skipped.
    """
    fmt = detect_format(path, fmt)
    if fmt == "atomic":
        return read_atomic(path, encoding=encoding)[0]
    if fmt == "parquet":
        frame = _read_parquet(path)
    elif fmt == "jsonl":
        frame = _read_jsonl(path, encoding)
    else:
        sep = sep if sep is not None else ("," if fmt == "csv" else "\t")
        frame = _read_delimited(path, sep, fmt == "csv", encoding, names)
    frame.attrs[_SOURCE] = {"path": str(path), "fmt": fmt, "sep": sep or "",
                            "encoding": encoding, "header": names is None}
    return frame


def read_atomic(path, encoding: str = "utf-8",
                split_seq: bool = False) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a RecBole atomic file (tab-separated, typed header ``name:type``).

    Returns ``(frame, {column: type})`` with the types stripped from the column names; type is
    one of :data:`ATOMIC_TYPES`. ``token_seq`` / ``float_seq`` cells are space-separated
    strings, or tuples of strings with ``split_seq=True``.

    Example:
        >>> frame, types = read_atomic("ml-100k.item")  # doctest: +SKIP
        >>> types  # doctest: +SKIP
        {'item_id': 'token', 'movie_title': 'token_seq', 'release_year': 'token', ...}
    """
    frame = _read_delimited(path, "\t", False, encoding, None)
    types: dict[str, str] = {}
    for field in frame.columns:
        name, colon, kind = field.rpartition(":")
        if not colon or not name:
            raise DataError(path, f"header field {field!r} has no type; an atomic file needs "
                                  f"'name:type' with type one of {', '.join(ATOMIC_TYPES)}",
                            line=1, column=field)
        if kind not in ATOMIC_TYPES:
            raise DataError(path, f"unknown atomic type {kind!r}; expected one of "
                                  f"{', '.join(ATOMIC_TYPES)}", line=1, column=field)
        if name in types:
            raise DataError(path, "duplicate column in header", line=1, column=name)
        types[name] = kind
    frame.columns = list(types)
    if split_seq:
        for name, kind in types.items():
            if kind.endswith("_seq"):
                frame[name] = [tuple(v.split()) for v in frame[name]]
    frame.attrs[_SOURCE] = {"path": str(path), "fmt": "atomic", "sep": "\t",
                            "encoding": encoding, "header": True}
    frame.attrs["atomic_types"] = dict(types)
    return frame, types


def _read_bytes(path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise DataError(path, "is a folder, expected a file") from None
    if not data.strip():
        raise DataError(path, "file is empty")
    return data


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def _decode(path, data: bytes, encoding: str, sep: str | None,
            names: Sequence[str] | None) -> str:
    """Decode ``data``; on failure name the line (and the column for unquoted text)."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = len(_NEWLINE_BYTES.findall(data, 0, e.start)) + 1
        starts = [0] + [m.end() for m in _NEWLINE_BYTES.finditer(data, 0, e.start)]
        line_start = starts[-1]
        column = None
        if sep:
            field = data[line_start:e.start].count(sep.encode("utf-8", "replace"))
            if names is None:
                first = _NEWLINE_BYTES.split(data, 1)[0].decode(encoding, "replace")
                names = first.lstrip("\ufeff").split(sep)
            if field < len(names):
                column = names[field]
        hint = ('; if the file is Latin-1 / Windows-1252, pass encoding="latin-1"'
                if _is_utf8(encoding) else "")
        raise DataError(path, f"not valid {encoding}: byte 0x{data[e.start]:02x} at character "
                              f"{e.start - line_start + 1} of the line{hint}",
                        line=line, column=column) from None
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    return text.removeprefix("\ufeff")


def _scan_records(text: str, sep: str, quoted: bool,
                  strict: bool = False) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(first physical line, fields)`` per record, skipping empty lines (as pyarrow).

    With ``strict``, bad quoting (an unterminated quoted field) raises ``_RecordError``.
    """
    if not quoted:  # lazy, so that reading a header does not split the whole file
        pos = number = 0
        for match in _NEWLINE.finditer(text):
            number += 1
            if match.start() > pos:
                yield number, text[pos:match.start()].split(sep)
            pos = match.end()
        if pos < len(text):
            yield number + 1, text[pos:].split(sep)
        return
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"',
                        doublequote=True, strict=strict)
    done = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise _RecordError(done + 1, f"bad quoting in the record that starts here ({e})"
                               ) from None
        start, done = done + 1, reader.line_num
        if fields:
            yield start, fields


class _RecordError(Exception):
    def __init__(self, line: int, what: str):
        super().__init__(what)
        self.line, self.what = line, what


def _read_delimited(path, sep: str, quoted: bool, encoding: str,
                    names: Sequence[str] | None) -> pd.DataFrame:
    if not sep:
        raise ValueError("sep must be a non-empty string")
    if quoted and len(sep) != 1:
        raise ValueError(f"a quoted (csv) file needs a one-character separator, got {sep!r}")
    data = _read_bytes(path)
    text = _decode(path, data, encoding, None if quoted else sep, names)
    if _is_utf8(encoding):
        data = data.removeprefix(codecs.BOM_UTF8)
    else:
        data = text.encode("utf-8")
    header = names is None
    if header:
        try:
            first = next(_scan_records(text, sep, quoted), None)
        except _RecordError as e:
            raise DataError(path, e.what, line=e.line) from None
        if first is None:
            raise DataError(path, "file is empty")
        if first[0] != 1:
            raise DataError(path, "the first line is empty; expected a header row", line=1)
        names = first[1]
        seen = set()
        for name in names:
            if name in seen:
                raise DataError(path, "duplicate column in header", line=1, column=name)
            seen.add(name)
    if quoted and text.count('"') % 2:  # an unterminated quote would swallow the file's end
        try:
            for _ in _scan_records(text, sep, quoted, strict=True):
                pass
        except _RecordError as e:
            raise DataError(path, e.what, line=e.line) from None
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate column names in {names}")
    file_sep = sep  # what the text uses; the bytes given to pyarrow may use a tab instead
    if len(sep) > 1:
        if "\t" in text:  # rare: cannot swap the separator for a tab; parse in Python
            return _frame_from_records(path, text, sep, quoted, names, header)
        data, sep = data.replace(sep.encode("utf-8"), b"\t"), "\t"
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if quoted else False,
                                              double_quote=quoted, newlines_in_values=quoted,
                                              ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[], true_values=[],
                false_values=[]))
    except (pa.ArrowInvalid, pa.ArrowException) as arrow_error:
        _raise_record_error(path, text, file_sep, quoted, names, header)
        raise DataError(path, f"cannot parse: {arrow_error}") from None
    return _string_frame(table.to_pandas())


def _raise_record_error(path, text, sep, quoted, names, header) -> None:
    """Raise a DataError for the first record with the wrong number of fields, if any."""
    records = _scan_records(text, sep, quoted)
    try:
        if header:
            next(records, None)
        for line, fields in records:
            if len(fields) != len(names):
                raise DataError(path, f"expected {len(names)} fields, found {len(fields)}",
                                line=line)
    except _RecordError as e:
        raise DataError(path, e.what, line=e.line) from None


def _frame_from_records(path, text, sep, quoted, names, header) -> pd.DataFrame:
    records = _scan_records(text, sep, quoted)
    if header:
        next(records, None)
    rows = []
    for line, fields in records:
        if len(fields) != len(names):
            raise DataError(path, f"expected {len(names)} fields, found {len(fields)}", line=line)
        rows.append(fields)
    return _string_frame(pd.DataFrame(rows, columns=names, dtype=object))


def _string_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Make every scalar column ``str`` dtype ("" for missing); list columns stay object."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.StringDtype):
            out[name] = col.fillna("").astype("str")
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu":
            out[name] = col.astype("str")
        else:
            out[name] = pd.Series([_cell(v) for v in col], index=frame.index, dtype=object)
            if not _has_lists(out[name]):
                out[name] = out[name].astype("str")
    result = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
    result.columns = list(frame.columns)
    return result


def _has_lists(col: pd.Series) -> bool:
    if col.dtype != object:
        return False
    return any(isinstance(v, (list, tuple, np.ndarray)) for v in col)


def _cell(value):
    """A JSON / Parquet value as a string cell (lists become lists of strings)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(_cell(v)) for v in value]
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if value is pd.NaT or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return ""
    return str(value)


def _read_parquet(path) -> pd.DataFrame:
    if not Path(path).stat().st_size:
        raise DataError(path, "file is empty")
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 (pyarrow raises several types for a bad file)
        raise DataError(path, f"not a valid Parquet file ({type(e).__name__}: {e})") from None
    return _string_frame(frame.reset_index(drop=True))


def _read_jsonl(path, encoding: str) -> pd.DataFrame:
    text = _decode(path, _read_bytes(path), encoding, None, None)
    records = []
    for number, line in enumerate(_NEWLINE.split(text), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(path, f"invalid JSON: {e.msg} (character {e.colno})",
                            line=number) from None
        if not isinstance(record, dict):
            raise DataError(path, f"expected a JSON object, found {type(record).__name__}",
                            line=number)
        records.append(record)
    keys = list(dict.fromkeys(k for r in records for k in r))
    frame = pd.DataFrame({k: pd.Series([_cell(r.get(k)) for r in records], dtype=object)
                          for k in keys}, columns=keys)
    return _string_frame(frame)


# ----------------------------------------------------------------------------- locating rows


def record_lines(frame: pd.DataFrame) -> np.ndarray | None:
    """(n_records,) 1-based physical line where each record of ``frame``'s file starts.

    Indexed by record number (the index :func:`read_table` gives). None when the frame does
    not come from a text file read here (Parquet, or built in memory).
    """
    src = frame.attrs.get(_SOURCE)
    if not src or src["fmt"] == "parquet":
        return None
    path = src["path"]
    data = _read_bytes(path)
    text = _decode(path, data, src["encoding"], None, None)
    if src["fmt"] == "jsonl":
        return np.asarray([n for n, line in enumerate(_NEWLINE.split(text), 1)
                           if line.strip()], dtype=np.int64)
    if src["fmt"] == "csv":
        try:
            lines = np.asarray([n for n, _ in _scan_records(text, src["sep"], True)],
                               dtype=np.int64)
        except _RecordError:
            return None
    else:  # unquoted: one record per non-empty line, found without a Python loop
        data = data if _is_utf8(src["encoding"]) else text.encode("utf-8")
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
        ends = np.append(ends, len(data))
        starts = np.concatenate([[0], ends[:-1] + 1])
        lines = np.flatnonzero(ends > starts) + 1
    return lines[1:] if src["header"] else lines


def _locate(frame: pd.DataFrame, position: int) -> dict:
    """``line`` / ``row`` keyword arguments of DataError for the row at ``position``."""
    label = frame.index[position]
    src = frame.attrs.get(_SOURCE)
    if src and src["fmt"] == "parquet":
        return {"row": int(label) + 1}
    lines = record_lines(frame)
    if lines is not None and 0 <= label < len(lines):
        return {"line": int(lines[label])}
    header = src["header"] if src else True
    return {"line": int(position) + (2 if header else 1)}


def _header_line(frame: pd.DataFrame) -> int | None:
    src = frame.attrs.get(_SOURCE)
    return 1 if src and src["fmt"] not in ("parquet", "jsonl") and src["header"] else None


def _missing_column(frame: pd.DataFrame, path, column: str, what: str) -> DataError:
    found = ", ".join(repr(c) for c in frame.columns)
    return DataError(path, f"{what}; columns found: {found}", line=_header_line(frame),
                     column=column)


# ----------------------------------------------------------------------------- interactions


def read_interactions(path, columns: Mapping[str, str | None] | None = None,
                      fmt: str | None = None, sep: str | None = None, encoding: str = "utf-8",
                      timestamp_format: str | None = None,
                      names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read an interaction log into the raw frame :meth:`Dataset.from_frame` takes.

    Args:
        columns: role -> file column, roles ``user_id``, ``item_id``, ``rating``,
            ``timestamp``, ``event``. Unmapped roles try :data:`ROLE_ALIASES`; map an optional
            role to None to ignore it.
        timestamp_format: ``strptime`` format of the timestamps; by default they are unix
            seconds or ISO-8601 strings (naive times are taken as UTC).
        fmt, sep, encoding, names: as in :func:`read_table`.

    Returns:
        A frame in file order with ``user_id``, ``item_id`` (str), ``rating`` (float64, NaN
        where absent), ``timestamp`` (float64 unix seconds, NaN where absent) and, when the
        file has one, ``event`` (str).

    Raises:
        DataError: a missing column, an empty id, a rating that is not a number or a timestamp
            that cannot be parsed, named by file, line and column.
    """
    frame = read_table(path, fmt=fmt, sep=sep, encoding=encoding, names=names)
    mapped = _resolve_roles(frame, path, columns)
    out = {}
    for role in ("user_id", "item_id"):
        col = frame[mapped[role]]
        _check_nonempty(frame, path, col, mapped[role], role.replace("_id", " id"))
        out[role] = col.astype("str")
    out["rating"] = (_to_float(frame, path, mapped["rating"], "rating")
                     if mapped.get("rating") else np.full(len(frame), np.nan))
    out["timestamp"] = (_to_seconds(frame, path, mapped["timestamp"], timestamp_format)
                        if mapped.get("timestamp") else np.full(len(frame), np.nan))
    if mapped.get("event"):
        out["event"] = frame[mapped["event"]].astype("str")
    result = pd.DataFrame(out, index=frame.index)
    result.attrs[_SOURCE] = dict(frame.attrs[_SOURCE])
    result.attrs[_COLUMNS] = {k: v for k, v in mapped.items() if v}
    return result


def _resolve_roles(frame: pd.DataFrame, path, columns) -> dict[str, str | None]:
    columns = dict(columns or {})
    unknown = set(columns) - set(ROLE_ALIASES)
    if unknown:
        raise ValueError(f"unknown interaction role(s) {sorted(unknown)}; expected "
                         f"{list(ROLE_ALIASES)}")
    mapped: dict[str, str | None] = {}
    for role, aliases in ROLE_ALIASES.items():
        if role in columns:
            col = columns[role]
            if col is None:
                if role in ("user_id", "item_id"):
                    raise ValueError(f"{role} is required and cannot be mapped to None")
                mapped[role] = None
            elif col not in frame.columns:
                raise _missing_column(frame, path, col, f"not found (mapped to {role})")
            else:
                mapped[role] = col
            continue
        mapped[role] = next((a for a in aliases if a in frame.columns), None)
        if mapped[role] is None and role in ("user_id", "item_id"):
            tried = ", ".join(aliases[1:])
            raise _missing_column(frame, path, role, f"not found (also tried {tried}; map it "
                                                     f"with columns={{'{role}': ...}})")
    return mapped


def _check_nonempty(frame, path, col: pd.Series, name: str, what: str) -> None:
    empty = (col.astype("str").str.strip() == "").to_numpy(bool)
    if empty.any():
        pos = int(np.argmax(empty))
        raise DataError(path, f"empty {what} ({int(empty.sum())} row(s) in all)", column=name,
                        **_locate(frame, pos))


def _to_float(frame, path, name: str, what: str) -> np.ndarray:
    """(n,) float64 of a string column; "" -> NaN; anything else not numeric is an error."""
    col = frame[name]
    arr = pa.array(col.astype("str"))  # zero-copy for pyarrow-backed strings
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    try:
        return pc.cast(pc.if_else(blank, None, arr), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
    text = col.astype("str").str.strip()
    bad = (np.isnan(values) & (text != "").to_numpy(bool)
           & ~text.str.lower().isin(_MISSING_NUMBERS).to_numpy(bool))
    if bad.any():
        pos = int(np.argmax(bad))
        raise DataError(path, f"{col.iloc[pos]!r} is not a number"
                              + (f" ({what})" if what != name else ""), column=name,
                        **_locate(frame, pos))
    return values


def _to_seconds(frame, path, name: str, timestamp_format: str | None) -> np.ndarray:
    """(n,) float64 unix seconds of a column of numbers or date strings; "" -> NaN."""
    col = frame[name].astype("str")
    text = col.str.strip()
    present = (text != "").to_numpy(bool)
    if timestamp_format is None:
        first = text[present].iloc[0] if present.any() else ""
        try:
            float(first)
            numeric = True
        except ValueError:
            numeric = False
        if numeric:
            return _to_float(frame, path, name, "timestamp")
    parsed = pd.to_datetime(text.where(present, None), format=timestamp_format or "ISO8601",
                            utc=True, errors="coerce")
    bad = parsed.isna().to_numpy(bool) & present
    if bad.any():
        pos = int(np.argmax(bad))
        expected = (f"format {timestamp_format!r}" if timestamp_format
                    else "unix seconds or ISO-8601, or pass timestamp_format=...")
        raise DataError(path, f"cannot parse timestamp {col.iloc[pos]!r} (expected {expected})",
                        column=name, **_locate(frame, pos))
    seconds = (parsed - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.float64)


# ----------------------------------------------------------------------------- catalog


def read_catalog(path, columns: Mapping[str, str] | None = None, medium: str | None = None,
                 text_fields: Sequence[str] | Mapping[str, str] | None = None,
                 media: Mapping[str, str] | None = None, categories: str | None = None,
                 tags: str | None = None,
                 attributes: Sequence[str] | Mapping[str, str] | None = None,
                 list_sep: str = "|", fmt: str | None = None, sep: str | None = None,
                 encoding: str = "utf-8", names: Sequence[str] | None = None,
                 base_dir=None) -> Catalog:
    """Read an item catalog file into a :class:`Catalog` (rows in file order).

    Args:
        columns: ``{"item_id": column}``; by default the first of :data:`CATALOG_ID_ALIASES`.
        medium: a column of the file holding each item's medium, or else a constant medium for
            all items (default "item").
        text_fields: columns to keep as text, or {text name: column}.
        media: {"image" | "audio" | "video": column} of paths or URLs. Relative paths are
            resolved against ``base_dir`` (default: the folder of ``path``); URLs (http://,
            https://, file://) are kept as given; "" means none.
        categories, tags: columns of ``list_sep``-separated labels (or lists, in Parquet /
            JSON lines).
        attributes: numeric columns, or {name: column}; values that are not numbers become NaN.
        fmt, sep, encoding, names: as in :func:`read_table`.

    Raises:
        DataError: a missing column, an empty id, or an item id on two lines.
    """
    frame = read_table(path, fmt=fmt, sep=sep, encoding=encoding, names=names)
    columns = dict(columns or {})
    unknown = set(columns) - {"item_id"}
    if unknown:
        raise ValueError(f"unknown catalog column role(s) {sorted(unknown)}; expected 'item_id'")

    def need(col: str, role: str) -> pd.Series:
        if col not in frame.columns:
            raise _missing_column(frame, path, col, f"not found ({role})")
        return frame[col]

    if "item_id" in columns:
        id_col = columns["item_id"]
        need(id_col, "item_id")
    else:
        id_col = next((a for a in CATALOG_ID_ALIASES if a in frame.columns), None)
        if id_col is None:
            raise _missing_column(frame, path, "item_id", "not found (also tried "
                                  f"{', '.join(CATALOG_ID_ALIASES[1:])}; map it with "
                                  "columns={'item_id': ...})")
    ids = frame[id_col].astype("str")
    _check_nonempty(frame, path, ids, id_col, "item id")
    dup = ids.duplicated().to_numpy(bool)
    if dup.any():
        pos = int(np.argmax(dup))
        first = int(np.argmax((ids == ids.iloc[pos]).to_numpy(bool)))
        where = _locate(frame, first)
        first_at = f"line {where['line']}" if "line" in where else f"row {where['row']}"
        raise DataError(path, f"duplicate item id {ids.iloc[pos]!r} (first on {first_at}; "
                              f"{int(dup.sum())} duplicate(s) in all)", column=id_col,
                        **_locate(frame, pos))
    if medium is not None and medium in frame.columns:
        medium_values = frame[medium].astype("str").replace("", "item").to_numpy(object)
    else:
        medium_values = np.full(len(frame), medium or "item", dtype=object)
    if isinstance(text_fields, str):
        text_fields = [text_fields]
    text_map = dict(text_fields) if isinstance(text_fields, Mapping) else {
        c: c for c in (text_fields or ())}
    text = {name: np.asarray([", ".join(v) if isinstance(v, list) else v
                              for v in need(col, f"text {name!r}")], dtype=object)
            for name, col in text_map.items()}
    base = Path(base_dir) if base_dir is not None else Path(path).resolve().parent
    media_out = {}
    for kind, col in (media or {}).items():
        if kind not in MEDIA_KINDS:
            raise ValueError(f"unknown media kind {kind!r}; expected one of {MEDIA_KINDS}")
        media_out[kind] = resolve_media(need(col, f"{kind} media"), base)
    if isinstance(attributes, str):
        attributes = [attributes]
    attr_map = dict(attributes) if isinstance(attributes, Mapping) else {
        c: c for c in (attributes or ())}
    attrs = {name: pd.to_numeric(need(col, f"attribute {name!r}").astype("str").str.strip(),
                                 errors="coerce").to_numpy(np.float64)
             for name, col in attr_map.items()}
    cats = split_labels(need(categories, "categories"), list_sep) if categories else None
    tag_lists = split_labels(need(tags, "tags"), list_sep) if tags else None
    return Catalog(ids.to_numpy(object), medium_values, text, media_out, cats, tag_lists, attrs)


def split_labels(values: Sequence, sep: str = "|") -> list[tuple[str, ...]]:
    """Per cell, a tuple of stripped non-empty labels (cells are strings or lists)."""
    out = []
    for v in values:
        parts = v if isinstance(v, (list, tuple, np.ndarray)) else str(v).split(sep)
        out.append(tuple(s for s in (str(p).strip() for p in parts) if s))
    return out


def resolve_media(values: Sequence[str], base_dir) -> np.ndarray:
    """Paths made absolute against ``base_dir``; URLs, absolute paths and "" kept as given."""
    base = str(base_dir)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        v = "" if v is None else str(v).strip()
        out[i] = v if (not v or _URL.match(v) or os.path.isabs(v)) else os.path.join(base, v)
    return out


# ----------------------------------------------------------------------------- user datasets


def check_interactions_known(frame: pd.DataFrame, catalog: Catalog, path=None) -> None:
    """Raise DataError if some ``frame["item_id"]`` are not catalog ids.

    The error names the first offending line (exact for a frame from
    :func:`read_interactions`, else row position + 2, for a file with a header) and the count.
    """
    src = frame.attrs.get(_SOURCE) or {}
    path = path if path is not None else src.get("path", "<interactions>")
    known = frame["item_id"].astype("str").isin(pd.Index(catalog.ids)).to_numpy(bool)
    if known.all():
        return
    pos = int(np.argmin(known))
    column = (frame.attrs.get(_COLUMNS) or {}).get("item_id", "item_id")
    n_bad = int((~known).sum())
    n_ids = frame["item_id"][~known].nunique()
    raise DataError(path, f"item id {frame['item_id'].iloc[pos]!r} is not in the catalog "
                          f"({n_bad} row(s), {n_ids} distinct unknown id(s) in all)",
                    column=column, **_locate(frame, pos))


def load_user_dataset(name: str, interactions_path, catalog_path=None,
                      columns: Mapping[str, str | None] | None = None,
                      catalog_columns: Mapping[str, str] | None = None, strict: bool = True,
                      catalog_options: Mapping | None = None,
                      timestamp_format: str | None = None, encoding: str = "utf-8"):
    """Read a user's interaction log (and catalog) into a :class:`Dataset`.

    Args:
        columns: interaction roles -> columns (see :func:`read_interactions`).
        catalog_columns: ``{"item_id": column}`` of the catalog file.
        strict: an interaction item missing from the catalog is a DataError (else a warning,
            and the item gets an empty catalog row).
        catalog_options: further :func:`read_catalog` arguments (medium, text_fields, media,
            categories, tags, attributes, list_sep, base_dir, ...).

    Example:
        >>> ds = load_user_dataset("shop", "clicks.csv", "products.jsonl",
        ...                        catalog_options={"text_fields": ["title"]})  # doctest: +SKIP
    """
    from crossrec.data.dataset import Dataset

    frame = read_interactions(interactions_path, columns=columns, encoding=encoding,
                              timestamp_format=timestamp_format)
    catalog = None
    if catalog_path is not None:
        catalog = read_catalog(catalog_path, columns=catalog_columns,
                               **dict(catalog_options or {}))
        if strict:
            check_interactions_known(frame, catalog, interactions_path)
    return Dataset.from_frame(name, frame, catalog=catalog)
