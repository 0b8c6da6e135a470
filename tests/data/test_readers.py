"""Readers: formats round-trip, columns map, and every bad input names file, line and column."""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pandas as pd
import pytest

from crossrec.data.readers import (
    DataError,
    check_interactions_known,
    load_user_dataset,
    read_atomic,
    read_catalog,
    read_interactions,
    read_table,
)

ROWS = [  # strings only: what every reader gives back
    {"user_id": "u1", "item_id": "Café, \"Le\" (1995)", "rating": "4.5", "note": ""},
    {"user_id": "u2", "item_id": "i 2", "rating": "", "note": "it's; fine"},
    {"user_id": "10", "item_id": "00042", "rating": "1", "note": "日本語"},
]


def _write(path, text: str, newline: str = "\n") -> str:
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return str(path)


def _tsv(rows: list[dict]) -> str:
    cols = list(rows[0])
    return "\n".join(["\t".join(cols)] + ["\t".join(r[c] for c in cols) for r in rows]) + "\n"


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _ratings_tsv(tmp_path, bad_line: int, bad_value: str = "abc", name="ratings.tsv") -> str:
    lines = ["user_id\titem_id\trating\ttimestamp"]
    for n in range(2, 70):
        lines.append(f"u{n}\ti{n % 7}\t{bad_value if n == bad_line else n % 5 + 1}\t{1000 + n}")
    return _write(tmp_path / name, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- formats


def test_round_trip_csv_tsv_parquet_jsonl_give_identical_frames(tmp_path):
    expected = pd.DataFrame(ROWS).astype("str")
    expected.to_csv(tmp_path / "t.csv", index=False)
    _write(tmp_path / "t.tsv", _tsv(ROWS))
    expected.to_parquet(tmp_path / "t.parquet", index=False)
    _write(tmp_path / "t.jsonl", _jsonl(ROWS))
    for name in ("t.csv", "t.tsv", "t.parquet", "t.jsonl"):
        got = read_table(tmp_path / name)
        pd.testing.assert_frame_equal(got, expected, check_index_type=True)
        assert got.loc[1, "rating"] == "" and got.loc[2, "item_id"] == "00042"  # not numbers


def test_crlf_bom_and_suffix_aliases(tmp_path):
    expected = read_table(_write(tmp_path / "a.tsv", _tsv(ROWS)))
    crlf = read_table(_write(tmp_path / "b.txt", _tsv(ROWS), newline="\r\n"))
    pd.testing.assert_frame_equal(crlf, expected)
    (tmp_path / "c.dat").write_bytes(b"\xef\xbb\xbf" + _tsv(ROWS).encode())
    pd.testing.assert_frame_equal(read_table(tmp_path / "c.dat"), expected)
    assert read_table(tmp_path / "c.dat").columns[0] == "user_id"  # BOM stripped


def test_csv_quoted_fields_with_newlines_and_separators(tmp_path):
    path = _write(tmp_path / "q.csv", 'id,text\n1,"two\nlines, ""quoted"""\n2,plain\n', "\r\n")
    frame = read_table(path)
    assert frame["text"].tolist() == ['two\r\nlines, "quoted"', "plain"]


def test_tsv_keeps_quote_characters_literally(tmp_path):
    # Last.fm artists.dat: `"Weird Al" Yankovic` is a literal name, not a quoted field
    path = _write(tmp_path / "artists.tsv", 'id\tname\n1\t"Weird Al" Yankovic\n2\tRoyce da 5\'9"\n')
    assert read_table(path)["name"].tolist() == ['"Weird Al" Yankovic', "Royce da 5'9\""]


def test_multichar_separator_and_latin1_headerless(tmp_path):
    path = tmp_path / "movies.dat"
    path.write_bytes("1::Toy Story (1995)::Animation|Comedy\n2::Associé, L' (1982)::Comedy\n"
                     .encode("latin-1"))
    frame = read_table(path, sep="::", encoding="latin-1", names=["id", "title", "genres"])
    assert frame.values.tolist() == [["1", "Toy Story (1995)", "Animation|Comedy"],
                                     ["2", "Associé, L' (1982)", "Comedy"]]
    (tmp_path / "tabbed.dat").write_text("1::a\tb::x\n", encoding="utf-8")  # tab inside a field
    frame = read_table(tmp_path / "tabbed.dat", sep="::", names=["id", "title", "genres"])
    assert frame.values.tolist() == [["1", "a\tb", "x"]]


def test_empty_lines_are_skipped(tmp_path):
    path = _write(tmp_path / "e.tsv", "a\tb\n1\t2\n\n3\t4\n\n")
    assert read_table(path).values.tolist() == [["1", "2"], ["3", "4"]]


def test_recbole_atomic_files(tmp_path):
    path = _write(tmp_path / "x.item", "item_id:token\tmovie_title:token_seq\tyear:float\t"
                                       "class:token_seq\n1\tToy Story\t1995\tAnimation Comedy\n"
                                       "2\tHeat\t1995\tAction\n", "\r\n")
    frame, types = read_atomic(path)
    assert types == {"item_id": "token", "movie_title": "token_seq", "year": "float",
                     "class": "token_seq"}
    assert list(frame.columns) == ["item_id", "movie_title", "year", "class"]
    assert frame["class"].tolist() == ["Animation Comedy", "Action"]
    split, _ = read_atomic(path, split_seq=True)
    assert split["class"].tolist() == [("Animation", "Comedy"), ("Action",)]
    pd.testing.assert_frame_equal(read_table(path), frame)

    inter = _write(tmp_path / "x.inter", "user_id:token\titem_id:token\trating:float\t"
                                         "timestamp:float\n7\t1\t4\t881250949\n")
    got = read_interactions(inter)
    assert got.loc[0, "user_id"] == "7" and got.loc[0, "timestamp"] == 881250949.0

    bad = _write(tmp_path / "bad.inter", "user_id:token\titem_id\n1\t2\n")
    with pytest.raises(DataError, match=r"bad\.inter:1: column 'item_id': .*no type"):
        read_atomic(bad)
    bad = _write(tmp_path / "bad.user", "user_id:token\tage:integer\n1\t2\n")
    with pytest.raises(DataError, match=r"bad\.user:1: column 'age:integer': unknown atomic"):
        read_atomic(bad)


# ----------------------------------------------------------------------------- interactions


def test_read_interactions_maps_columns_and_types(tmp_path):
    path = _write(tmp_path / "log.csv", "who,what,stars,when,kind\n"
                                        "a,x,5,2024-01-01T00:00:00Z,click\n"
                                        "b,y,,2024-01-01T01:00:00+01:00,buy\n")
    frame = read_interactions(path, columns={"user_id": "who", "item_id": "what",
                                             "rating": "stars", "timestamp": "when",
                                             "event": "kind"})
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp", "event"]
    assert frame["rating"].dtype == np.float64 and frame["timestamp"].dtype == np.float64
    np.testing.assert_array_equal(frame["rating"], [5.0, np.nan])
    np.testing.assert_array_equal(frame["timestamp"], [1704067200.0, 1704067200.0])
    assert frame["event"].tolist() == ["click", "buy"]


def test_read_interactions_aliases_and_absent_optional_roles(tmp_path):
    path = _write(tmp_path / "user_artists.dat", "userID\tartistID\tweight\n2\t51\t13883\n"
                                                 "2\t52\t11690\n", "\r\n")
    frame = read_interactions(path)
    assert frame["user_id"].tolist() == ["2", "2"] and frame["item_id"].tolist() == ["51", "52"]
    assert frame["rating"].tolist() == [13883.0, 11690.0]
    assert frame["timestamp"].isna().all() and "event" not in frame
    frame = read_interactions(path, columns={"rating": None})
    assert frame["rating"].isna().all()


def test_read_interactions_timestamp_format_and_order(tmp_path):
    path = _write(tmp_path / "t.tsv", "user_id\titem_id\ttime\nb\t1\t02/01/2000 10:00\n"
                                      "a\t2\t01/01/2000 10:00\n")
    frame = read_interactions(path, timestamp_format="%d/%m/%Y %H:%M")
    assert frame["user_id"].tolist() == ["b", "a"]  # file order kept
    assert frame["timestamp"].tolist() == [946807200.0, 946720800.0]


def test_read_interactions_same_from_every_format(tmp_path):
    rows = [{"user_id": "u1", "item_id": "i1", "rating": "3", "timestamp": "100"},
            {"user_id": "u2", "item_id": "i2", "rating": "4.5", "timestamp": "200"}]
    _write(tmp_path / "r.tsv", _tsv(rows))
    _write(tmp_path / "r.jsonl", "".join(  # numbers as JSON numbers
        json.dumps({"user_id": r["user_id"], "item_id": r["item_id"], "rating": float(r["rating"]),
                    "timestamp": int(r["timestamp"])}) + "\n" for r in rows))
    pd.DataFrame(rows).to_parquet(tmp_path / "r.parquet")
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    frames = [read_interactions(tmp_path / n) for n in ("r.tsv", "r.jsonl", "r.parquet", "r.csv")]
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0])


# ----------------------------------------------------------------------------- bad input


def test_non_numeric_rating_names_file_line_and_column(tmp_path):
    path = _ratings_tsv(tmp_path, bad_line=57)
    with pytest.raises(DataError) as info:
        read_interactions(path)
    err = info.value
    assert "ratings.tsv:57: column 'rating': 'abc' is not a number" in str(err)
    assert (err.line, err.column) == (57, "rating") and err.path.endswith("ratings.tsv")
    assert pickle.loads(pickle.dumps(err)).args == err.args


def test_line_numbers_count_physical_lines(tmp_path):
    # a quoted field spanning 3 lines and an empty line come before the bad record
    text = ('user_id,item_id,rating\nu1,i1,1\n\nu2,"multi\nline\nitem",2\n'
            "u3,i3,3\nu4,i4,x\n")
    path = _write(tmp_path / "r.csv", text, "\r\n")
    with pytest.raises(DataError, match=r"r\.csv:8: column 'rating': 'x' is not a number"):
        read_interactions(path)


def test_line_numbers_skip_empty_lines_in_tsv(tmp_path):
    path = _write(tmp_path / "r.tsv", "user_id\titem_id\trating\n\nu1\ti1\t1\n\n\n"
                                      "u2\ti2\t2\nu3\ti3\t?\n", "\r\n")
    with pytest.raises(DataError, match=r"r\.tsv:7: column 'rating': '\?' is not a number"):
        read_interactions(path)
    path = _write(tmp_path / "n.dat", "u1::i1::1\n\nu2::i2::oops\n")
    with pytest.raises(DataError, match=r"n\.dat:3: column 'rating': 'oops'"):
        read_interactions(path, sep="::", names=["user_id", "item_id", "rating"])


def test_jsonl_and_parquet_errors_locate_the_record(tmp_path):
    path = _write(tmp_path / "r.jsonl", '\n{"user_id": "a", "item_id": "b", "rating": 1}\n\n'
                                        '{"user_id": "a", "item_id": "c", "rating": "bad"}\n')
    with pytest.raises(DataError, match=r"r\.jsonl:4: column 'rating': 'bad' is not a number"):
        read_interactions(path)
    path = _write(tmp_path / "broken.jsonl", '{"user_id": "a"}\n{"user_id": \n')
    with pytest.raises(DataError, match=r"broken\.jsonl:2: invalid JSON"):
        read_table(path)
    path = _write(tmp_path / "list.jsonl", '{"user_id": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"list\.jsonl:2: expected a JSON object"):
        read_table(path)
    pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "rating": ["1", "zz"]}).to_parquet(
        tmp_path / "r.parquet")
    with pytest.raises(DataError, match=r"r\.parquet: row 2: column 'rating': 'zz' is not"):
        read_interactions(tmp_path / "r.parquet")
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"fake\.parquet: not a valid Parquet file"):
        read_table(tmp_path / "fake.parquet")


def test_missing_column_lists_the_columns_found(tmp_path):
    path = _write(tmp_path / "r.tsv", "uid\titem_id\trating\nu\ti\t1\n")
    with pytest.raises(DataError) as info:
        read_interactions(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:1: column 'user_id': not found")
    assert "'uid', 'item_id', 'rating'" in msg and info.value.line == 1
    with pytest.raises(DataError, match=r"r\.tsv:1: column 'stamp': not found \(mapped to "
                                        r"timestamp\); columns found: 'uid'"):
        read_interactions(path, columns={"user_id": "uid", "timestamp": "stamp"})
    with pytest.raises(ValueError, match="unknown interaction role"):
        read_interactions(path, columns={"user": "uid"})


@pytest.mark.parametrize("content", [b"", b"\n\r\n  \n"])
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl", ".parquet", ".inter"])
def test_empty_file(tmp_path, content, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(content if suffix != ".parquet" else b"")
    with pytest.raises(DataError, match=r"empty\.\w+: file is empty"):
        read_table(path)


def test_wrong_number_of_fields(tmp_path):
    path = _write(tmp_path / "r.tsv", "user_id\titem_id\trating\ttimestamp\n"
                                      "u\ti\t1\t5\nu\ti\t1\nu\ti\t1\t5\n")
    with pytest.raises(DataError, match=r"r\.tsv:3: expected 4 fields, found 3") as info:
        read_table(path)
    assert info.value.line == 3
    # too many fields on the first data row (pandas would silently make it an index)
    path = _write(tmp_path / "s.csv", "a,b\n1,2,3\n4,5\n")
    with pytest.raises(DataError, match=r"s\.csv:2: expected 2 fields, found 3"):
        read_table(path)
    path = _write(tmp_path / "u.csv", 'a,b\n1,2\n3,"never closed\n4,5\n')
    with pytest.raises(DataError, match=r"u\.csv:3: "):
        read_table(path)


def test_bad_utf8_names_the_line_and_suggests_latin1(tmp_path):
    path = tmp_path / "items.tsv"
    path.write_bytes(b"item_id\ttitle\n1\tAmelie\n2\tAm\xe9lie\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:3: column 'title': not valid utf-8")
    assert 'encoding="latin-1"' in msg and info.value.line == 3
    assert read_table(path, encoding="latin-1")["title"].tolist() == ["Amelie", "Amélie"]


def test_unknown_format_lists_supported_suffixes(tmp_path):
    path = _write(tmp_path / "ratings.xlsx", "x")
    with pytest.raises(DataError, match=r"ratings\.xlsx: unknown file format '\.xlsx'; "
                                        r"supported suffixes: \.csv, \.tsv"):
        read_table(path)
    assert read_table(path, fmt="tsv", names=["x"])["x"].tolist() == ["x"]
    with pytest.raises(DataError, match="unknown format 'xls'"):
        read_table(path, fmt="xls")


def test_duplicate_header_column(tmp_path):
    path = _write(tmp_path / "d.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match=r"d\.csv:1: column 'a': duplicate column in header"):
        read_table(path)


def test_unparseable_timestamp(tmp_path):
    path = _write(tmp_path / "t.csv", "user_id,item_id,timestamp\na,b,2020-01-01\n"
                                      "a,c,2020-13-45\n")
    with pytest.raises(DataError, match=r"t\.csv:3: column 'timestamp': cannot parse "
                                        r"timestamp '2020-13-45'"):
        read_interactions(path)
    path = _write(tmp_path / "n.csv", "user_id,item_id,ts\na,b,100\na,c,yesterday\n")
    with pytest.raises(DataError, match=r"n\.csv:3: column 'ts': 'yesterday' is not a number"):
        read_interactions(path)
    path = _write(tmp_path / "f.csv", "user_id,item_id,timestamp\na,b,01/02/2020\n")
    with pytest.raises(DataError, match=r"f\.csv:2: column 'timestamp': .*format '%Y'"):
        read_interactions(path, timestamp_format="%Y")


def test_empty_id(tmp_path):
    path = _write(tmp_path / "r.tsv", "userID\titemID\nu1\ti1\nu2\t \n")
    with pytest.raises(DataError, match=r"r\.tsv:3: column 'itemID': empty item id"):
        read_interactions(path)


# ----------------------------------------------------------------------------- catalog


def test_read_catalog(tmp_path):
    (tmp_path / "img").mkdir()
    path = _write(tmp_path / "items.csv",
                  "sku,kind,title,body,pic,cats,year\n"
                  "a,book,Dune,Sand.,img/a.jpg,sf|classic,1965\n"
                  "b,movie,Heat,,https://x.org/b.png,crime,n/a\n"
                  f"c,book,Emma,Wit.,{tmp_path / 'c.jpg'},,1815\n"
                  "d,book,Nil,,,| |,\n")
    cat = read_catalog(path, columns={"item_id": "sku"}, medium="kind",
                       text_fields=["title", "body"], media={"image": "pic"}, categories="cats",
                       attributes=["year"])
    assert cat.ids.tolist() == ["a", "b", "c", "d"]
    assert cat.medium.tolist() == ["book", "movie", "book", "book"]
    assert cat.text["body"].tolist() == ["Sand.", "", "Wit.", ""]
    assert cat.media["image"].tolist() == [str(tmp_path / "img" / "a.jpg"), "https://x.org/b.png",
                                           str(tmp_path / "c.jpg"), ""]
    assert cat.categories == [("sf", "classic"), ("crime",), (), ()]
    np.testing.assert_array_equal(cat.attributes["year"], [1965, np.nan, 1815, np.nan])
    other = read_catalog(path, columns={"item_id": "sku"}, medium="podcast",
                         media={"image": "pic"}, base_dir="/data")
    assert other.medium.tolist() == ["podcast"] * 4
    assert other.media["image"][0] == "/data/img/a.jpg"
    with pytest.raises(DataError, match=r"items\.csv:1: column 'plot': not found"):
        read_catalog(path, columns={"item_id": "sku"}, text_fields=["plot"])


def test_read_catalog_lists_from_jsonl_and_parquet(tmp_path):
    rows = [{"item_id": 1, "tags": ["x", "y"], "genre": "a|b"}, {"item_id": 2, "tags": []}]
    _write(tmp_path / "c.jsonl", _jsonl(rows))
    cat = read_catalog(tmp_path / "c.jsonl", tags="tags", categories="genre")
    assert cat.ids.tolist() == ["1", "2"]
    assert cat.tags == [("x", "y"), ()] and cat.categories == [("a", "b"), ()]
    pd.DataFrame({"item_id": ["1", "2"], "tags": [["x", "y"], []]}).to_parquet(
        tmp_path / "c.parquet")
    assert read_catalog(tmp_path / "c.parquet", tags="tags").tags == [("x", "y"), ()]


def test_duplicate_item_ids_name_both_lines(tmp_path):
    path = _write(tmp_path / "items.tsv", "id\tname\n1\ta\n2\tb\n3\tc\n2\td\n")
    with pytest.raises(DataError) as info:
        read_catalog(path)
    assert str(info.value).startswith(f"{path}:5: column 'id': duplicate item id '2' "
                                      "(first on line 3")
    assert info.value.line == 5


# ----------------------------------------------------------------------------- user datasets


def test_unknown_items_in_strict_mode(tmp_path, caplog):
    inter = _write(tmp_path / "clicks.csv", "user,item\nu1,a\nu1,zz\nu2,b\nu2,zz\nu3,yy\n")
    items = _write(tmp_path / "items.csv", "item_id,title\na,A\nb,B\n")
    with pytest.raises(DataError) as info:
        load_user_dataset("shop", inter, items)
    msg = str(info.value)
    assert msg.startswith(f"{inter}:3: column 'item': item id 'zz' is not in the catalog")
    assert "3 row(s), 2 distinct" in msg
    with caplog.at_level(logging.WARNING):
        ds = load_user_dataset("shop", inter, items, strict=False)
    assert ds.items.ids.tolist() == ["a", "b", "zz", "yy"] and "not in the catalog" in caplog.text
    # a frame built in memory: line = row position + 2
    frame = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "q"]})
    with pytest.raises(DataError, match=r"mem\.csv:4: column 'item_id'"):
        check_interactions_known(frame, read_catalog(items), "mem.csv")


def test_load_user_dataset_end_to_end(tmp_path):
    inter = _write(tmp_path / "clicks.jsonl", _jsonl([
        {"user": "u9", "item": "b", "ts": "2024-01-02T00:00:00", "event": "view"},
        {"user": "u1", "item": "a", "ts": "2024-01-01T00:00:00", "event": "buy"}]))
    items = _write(tmp_path / "items.csv", "item_id,title,kind\na,Alpha,book\nb,Beta,music\n")
    ds = load_user_dataset("shop", inter, items, columns={"timestamp": "ts"},
                           catalog_options={"text_fields": ["title"], "medium": "kind"})
    assert ds.users.ids.tolist() == ["u9", "u1"] and ds.items.ids.tolist() == ["a", "b"]
    assert ds.interactions.item.tolist() == [1, 0]
    assert ds.interactions.event.tolist() == ["view", "buy"]
    assert ds.interactions.timestamp[0] - ds.interactions.timestamp[1] == 86400.0
    assert np.isnan(ds.interactions.value).all()
    assert ds.catalog.medium.tolist() == ["book", "music"]
    assert ds.catalog.text["title"].tolist() == ["Alpha", "Beta"]
