"""Built-in datasets: registry, MovieLens download, both file layouts, and the real data."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from crossrec.data.dataset import Dataset
from crossrec.data.datasets import DATASETS, load_dataset
from crossrec.data.download import fetch_movielens
from crossrec.data.readers import DataError

GENRE_FLAGS = ["0"] * 19


def _flags(*on: int) -> str:
    flags = list(GENRE_FLAGS)
    for i in on:
        flags[i] = "1"
    return "|".join(flags)


def _grouplens_100k(folder):
    """A tiny ml-100k in the GroupLens layout (u.data, latin-1 u.item with genre flags)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
                                   "196\t302\t5\t881250950\n")
    (folder / "u.item").write_bytes(
        ("242|Kolya (1996)|24-Jan-1997||http://x|" + _flags(8) + "\n"
         "302|L.A. Confidential (1997)|01-Jan-1997||http://y|" + _flags(6, 10, 13, 16) + "\n"
         "1412|Land Before Time III: The Time of the Great Giving (1995) (V)|1995||http://z|"
         + _flags(3, 4) + "\n"
         "500|Fly Away Home (1996)|01-Jan-1996||http://w|" + _flags(2, 4) + "\n"
         "501|Amélie (2001)|2001||http://v|" + _flags(5) + "\n").encode("latin-1"))
    return folder


def _same_dataset(a: Dataset, b: Dataset) -> None:
    assert a.users == b.users and a.items == b.items
    for name in ("user", "item", "timestamp", "value"):
        np.testing.assert_array_equal(getattr(a.interactions, name),
                                      getattr(b.interactions, name))
    ca, cb = a.catalog, b.catalog
    assert ca.ids.tolist() == cb.ids.tolist() and ca.medium.tolist() == cb.medium.tolist()
    assert ca.categories == cb.categories and ca.tags == cb.tags
    assert {k: v.tolist() for k, v in ca.text.items()} == {k: v.tolist() for k, v in cb.text.items()}
    assert {k: v.tolist() for k, v in ca.media.items()} == {
        k: v.tolist() for k, v in cb.media.items()}
    assert ca.attributes.keys() == cb.attributes.keys()
    for key in ca.attributes:
        np.testing.assert_array_equal(ca.attributes[key], cb.attributes[key])


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_unknown_dataset(tmp_path):
    assert set(DATASETS) == {"ml-100k", "ml-1m", "lastfm-2k", "douban", "folder", "demo"}
    with pytest.raises(ValueError, match="unknown dataset 'ml-10m'; known datasets: ml-100k, "
                                         "ml-1m, lastfm-2k, douban, folder, demo"):
        load_dataset("ml-10m", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("douban", tmp_path / "nowhere")


@pytest.mark.parametrize("name, expected", [
    ("ml-100k", "ml-100k.inter"), ("ml-100k", "u.data"), ("ml-1m", "ml-1m.inter"),
    ("ml-1m", "ratings.dat"), ("lastfm-2k", "user_artists.dat"),
    ("douban", "book_ratings.dat")])
def test_folder_without_the_files_names_the_expected_file(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError, match=expected.replace(".", r"\.")):
        load_dataset(name, tmp_path)


def test_partial_folder_names_the_missing_file(tmp_path):
    (tmp_path / "book_ratings.dat").write_text("1\t2\t3\n")
    with pytest.raises(FileNotFoundError, match="music_ratings.dat"):
        load_dataset("douban", tmp_path)
    (tmp_path / "ratings.dat").write_text("1::2::3::4\n")
    with pytest.raises(FileNotFoundError, match="movies.dat"):
        load_dataset("ml-1m", tmp_path)


# ----------------------------------------------------------------------------- GroupLens layouts


def test_ml100k_grouplens_layout(tmp_path):
    ds = load_dataset("ml-100k", _grouplens_100k(tmp_path / "ml-100k"))
    assert ds.summary()["interactions"] == 3 and ds.n_users == 2
    cat = ds.catalog
    assert cat.ids.tolist() == ["242", "302", "1412", "500", "501"]
    assert cat.text["title"].tolist() == [
        "Kolya", "L.A. Confidential", "Land Before Time III: The Time of the Great Giving (1995)",
        "Fly Away Home", "Amélie"]
    np.testing.assert_array_equal(cat.attributes["year"], [1996, 1997, np.nan, 1996, 2001])
    assert cat.categories[1] == ("Crime", "Film-Noir", "Mystery", "Thriller")
    assert set(cat.medium) == {"movie"}
    np.testing.assert_array_equal(ds.interactions.timestamp, [881250949, 891717742, 881250950])


def test_ml1m_both_layouts_give_the_same_dataset(tmp_path):
    movies = ("1::Toy Story (1995)::Animation|Children's|Comedy\n"
              "1001::Associate, The (L'Associe)(1982)::Comedy\n"
              "2::Amélie (2001)::Comedy|Romance\n")
    ratings = [("1", "2", "5", "978300760"), ("7", "1", "3", "978302109"),
               ("1", "1", "4", "978301968")]
    grouplens = tmp_path / "grouplens"
    grouplens.mkdir()
    (grouplens / "movies.dat").write_bytes(movies.encode("latin-1"))
    (grouplens / "ratings.dat").write_text("".join("::".join(r) + "\n" for r in ratings))
    atomic = tmp_path / "atomic"
    atomic.mkdir()
    shutil.copy(grouplens / "movies.dat", atomic)
    title = {"1": "Toy Story (1995)", "2": "Amélie (2001)"}
    (atomic / "ml-1m.inter").write_bytes(("user_id:token\titem_id:token\trating:float\t"
                                          "timestamp:float\r\n" + "".join(
                                              f"1m_{u}\t{title[i]}\t{r}\t{t}\r\n"
                                              for u, i, r, t in ratings)).encode())
    (atomic / "ml-1m.item").write_bytes((
        "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\n"
        "Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\r\n"
        "Associate, The (L'Associe (1982)\tAssociate, The (L'Associe\t1982\tComedy\r\n"
        "Amélie (2001)\tAmélie\t2001\tComedy Romance\r\n").encode())
    for folder in (atomic, grouplens):
        (folder / "posters").mkdir()
        (folder / "posters" / "2.jpg").write_bytes(b"jpeg")
    a, b = load_dataset("ml-1m", atomic), load_dataset("ml-1m", grouplens)
    assert a.catalog.ids.tolist() == ["Toy Story (1995)", "Associate, The (L'Associe)(1982)",
                                      "Amélie (2001)"]
    assert a.users.ids.tolist() == ["1m_1", "1m_7"]
    np.testing.assert_array_equal(a.catalog.attributes["movie_id"], [1, 1001, 2])
    assert a.catalog.media["image"][2].endswith("posters/2.jpg")
    assert a.catalog.media["image"][0] == ""
    # the two folders differ only in where the posters are
    b.catalog.media["image"] = np.char.replace(b.catalog.media["image"].astype(str),
                                               "grouplens", "atomic").astype(object)
    _same_dataset(a, b)


def test_ml1m_unknown_movie_in_ratings(tmp_path):
    (tmp_path / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n")
    (tmp_path / "ratings.dat").write_text("1::1::5::100\n1::99::5::100\n")
    with pytest.raises(DataError, match=r"ratings\.dat:2: column 'item_id': item id '99'"):
        load_dataset("ml-1m", tmp_path)


# ----------------------------------------------------------------------------- download


def _zip(path, folder_name: str, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"{folder_name}/{name}", data)
    return path


def test_fetch_movielens_from_file_url(tmp_path):
    src = _grouplens_100k(tmp_path / "src")
    archive = _zip(tmp_path / "ml-100k.zip", "ml-100k",
                   {n: (src / n).read_bytes() for n in ("u.data", "u.item")})
    cache = tmp_path / "cache"
    folder = fetch_movielens("ml-100k", cache, url=archive.as_uri())
    assert folder == cache / "ml-100k" and (folder / "u.data").is_file()
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]  # no temporary left behind
    archive.unlink()
    assert fetch_movielens("ml-100k", cache, url=archive.as_uri()) == folder  # cached: no fetch
    assert load_dataset("ml-100k", cache).n_items == 5  # <cache>/<name> is found


def test_fetch_movielens_rejects_a_non_zip(tmp_path):
    page = tmp_path / "ml-1m.zip"
    page.write_text("<html>not found</html>")
    with pytest.raises(ValueError, match="did not give a zip"):
        fetch_movielens("ml-1m", tmp_path / "cache", url=page.as_uri())
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(ValueError, match="unknown MovieLens dataset 'ml-20m'"):
        fetch_movielens("ml-20m", tmp_path / "cache")
    evil = _zip(tmp_path / "evil.zip", "..", {"x": b"1"})
    with pytest.raises(ValueError, match="unsafe path"):
        fetch_movielens("ml-1m", tmp_path / "cache", url=evil.as_uri())
    assert list((tmp_path / "cache").iterdir()) == []


# ----------------------------------------------------------------------------- the real data


@pytest.fixture(scope="module")
def ml100k(dataset_dir):
    return load_dataset("ml-100k", dataset_dir("ml-100k"))


@pytest.fixture(scope="module")
def ml1m(dataset_dir):
    return load_dataset("ml-1m", dataset_dir("ml-1m"))


@pytest.fixture(scope="module")
def lastfm(dataset_dir):
    return load_dataset("lastfm-2k", dataset_dir("lastfm-2k"))


@pytest.fixture(scope="module")
def douban(dataset_dir):
    return load_dataset("douban", dataset_dir("douban"))


def _rating_counts(ds: Dataset) -> list[int]:
    return np.bincount(ds.interactions.value.astype(int), minlength=6)[1:].tolist()


@pytest.mark.shared_data
def test_real_ml100k(ml100k, data_root):
    ds = ml100k
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    assert _rating_counts(ds) == [6_110, 11_370, 27_145, 34_174, 21_201]
    assert sorted(ds.users.ids, key=int) == [str(i) for i in range(1, 944)]
    ts = pd.to_datetime(ds.interactions.timestamp, unit="s")
    assert (str(ts.min().date()), str(ts.max().date())) == ("1997-09-20", "1998-04-22")
    cat = ds.catalog
    row = {i: k for k, i in enumerate(cat.ids)}
    assert cat.text["title"][row["1"]] == "Toy Story"
    assert cat.categories[row["1"]] == ("Animation", "Children's", "Comedy")
    assert np.isnan(cat.attributes["year"][[row["267"], row["1412"]]]).all()
    assert cat.attributes["year"][row["1"]] == 1995
    plots = cat.text["plot"]
    assert (plots != "").sum() == 1_591 - 51  # 91 items without a row, 51 placeholders
    assert plots[row["50"]] == "" and plots[row["98"]] == ""  # Star Wars, Silence of the Lambs
    assert plots[row["511"]].startswith("The story of T.E. Lawrence")
    assert load_dataset("ml-100k", data_root).n_items == 1_682  # the root holding <name>/


@pytest.mark.shared_data
def test_real_ml1m(ml1m, dataset_dir):
    ds = ml1m
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (1_000_209, 6_040, 3_883)
    assert len(np.unique(ds.interactions.item)) == 3_706
    assert _rating_counts(ds) == [56_174, 107_557, 261_197, 348_971, 226_310]
    cat = ds.catalog
    movie_id = cat.attributes["movie_id"]
    assert not np.isnan(movie_id).any()
    row = {int(m): k for k, m in enumerate(movie_id)}
    assert cat.ids[row[1]] == "Toy Story (1995)" == cat.text["title"][row[1]]
    assert cat.attributes["year"][row[1]] == 1995
    assert cat.categories[row[1]] == ("Animation", "Children's", "Comedy")
    assert cat.ids[row[1001]] == "Associate, The (L'Associe)(1982)"  # the movies.dat title
    images = cat.media["image"]
    no_poster = [770, 1107, 1142, 1319, 1421, 1423, 1738, 2258, 3027, 3193, 3935]
    assert (images != "").sum() == 3_872 and all(images[row[m]] == "" for m in no_poster)
    poster = dataset_dir("ml-1m").resolve() / "posters" / "2571.jpg"
    assert images[row[2571]] == str(poster) and poster.is_file()
    rated = np.isin(np.arange(ds.n_items), ds.interactions.item)
    assert sum(rated[row[m]] for m in no_poster) == 7
    assert ds.users.ids[0] == "1m_1" and cat.ids[ds.interactions.item[0]] == (
        "One Flew Over the Cuckoo's Nest (1975)")


@pytest.mark.shared_data
def test_real_ml1m_grouplens_layout_matches_atomic(dataset_dir, tmp_path):
    """ratings.dat + movies.dat give what ml-1m.inter + ml-1m.item + item_map.tsv give."""
    src = dataset_dir("ml-1m")
    head = (src / "ml-1m.inter").read_bytes().split(b"\r\n")[:20_001]
    inter = [line.decode().split("\t") for line in head[1:]]
    items = pd.read_csv(src / "item_map.tsv", sep="\t", dtype=str, keep_default_na=False)
    movie_of = dict(zip(items["title"], items["movie_id"]))
    atomic, grouplens = tmp_path / "atomic", tmp_path / "grouplens"
    atomic.mkdir()
    grouplens.mkdir()
    (atomic / "ml-1m.inter").write_bytes(b"\r\n".join(head) + b"\r\n")
    for name in ("ml-1m.item", "item_map.tsv"):
        shutil.copy(src / name, atomic)
    shutil.copy(src / "movies.dat", grouplens)
    (grouplens / "ratings.dat").write_text("".join(
        f"{u[3:]}::{movie_of[i]}::{r}::{t}\n" for u, i, r, t in inter))
    _same_dataset(load_dataset("ml-1m", atomic), load_dataset("ml-1m", grouplens))


@pytest.mark.shared_data
def test_real_lastfm2k(lastfm, dataset_dir):
    ds = lastfm
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (92_834, 1_892, 17_632)
    assert np.isnan(ds.interactions.timestamp).all()
    assert ds.interactions.value.max() == 352_698 and ds.interactions.value.min() == 1
    cat = ds.catalog
    assert set(cat.medium) == {"music"}
    row = {i: k for k, i in enumerate(cat.ids)}
    assert cat.text["name"][row["1"]] == "MALICE MIZER"
    assert cat.text["name"][row["1686"]] == '"Weird Al" Yankovic'
    assert cat.text["tags"][row["1"]].startswith("better than lady gaga,gothic")
    assert (cat.text["tags"] != "").sum() == 12_133
    assert cat.media["image"][row["1"]] == "http://userserve-ak.last.fm/serve/252/10808.jpg"
    assert cat.media["image"][row["6366"]] == ""  # no pictureURL
    features = dataset_dir("lastfm-2k") / "features"
    artist = pd.read_csv(features / "artist_ids.tsv", sep="\t", dtype=str)
    for name, filename, dim in (("minilm", "all-MiniLM-L6-v2.npy", 384),
                                ("vggish", "vggish.npy", 128), ("whisper", "whisper.npy", 512)):
        feat = ds.features[name]
        assert feat.matrix.shape == (17_632, dim) and feat.matrix.dtype == np.float32
        assert feat.mask.sum() == 1_425
        stored = np.load(features / filename)
        for k in (0, 221, 1_424):
            idx = ds.items.index([artist["artist_id"][k]])[0]
            assert feat.mask[idx]
            np.testing.assert_array_equal(feat.matrix[idx], stored[k].astype(np.float32))
    assert not ds.features["minilm"].matrix[~ds.features["minilm"].mask].any()


@pytest.mark.shared_data
def test_real_douban(douban):
    ds = douban
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (96_041 + 69_709, 2_216, 6_777 + 5_567)
    medium = ds.catalog.medium[ds.interactions.item]
    assert (medium[:96_041] == "book").all() and (medium[96_041:] == "music").all()
    assert ds.catalog.ids[0] == "book_1" and ds.catalog.ids[6_777] == "music_1"
    assert ds.catalog.ids[ds.interactions.item[0]] == "book_1630"  # first row of the file
    users = ds.interactions.user
    assert len(np.intersect1d(users[medium == "book"], users[medium == "music"])) == 1_566
    assert np.isnan(ds.interactions.timestamp).all()
    assert _rating_counts(ds) == [1_605 + 1_478, 4_207 + 3_215, 21_018 + 13_031,
                                  38_975 + 24_805, 30_236 + 27_180]
