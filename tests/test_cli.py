"""The command line end to end on generated data: files written, runs that rescore to the
same numbers, one-line errors on bad input and bad config."""

import csv
import json

import numpy as np
import pytest

from crossrec.cli import main


def _read_tsv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def evaluated(demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    split_dir = out / "split"
    assert main(["split", "--dataset", "demo", "--data-dir", str(demo_dir), "--protocol", "p1",
                 "--out", str(split_dir)]) == 0
    rc = main(["evaluate", "--dataset", "demo", "--data-dir", str(demo_dir), "--split",
               str(split_dir), "--models", "pop,itemknn,als", "--seeds", "0,1",
               "--out", str(out / "res"), "--export-runs", str(out / "runs")])
    assert rc == 0
    return out


def test_result_json_has_every_field_protocol_md_asks_for(evaluated):
    rec = json.loads((evaluated / "res" / "als.json").read_text())
    for key in ("protocol", "dataset", "model", "params", "seeds", "test", "train_seconds",
                "eval_seconds", "peak_rss_mb", "machine", "tuning", "valid"):
        assert key in rec, key
    assert rec["protocol"] == "p1" and rec["dataset"] == "demo" and rec["seeds"] == [0, 1]
    assert set(rec["params"]) == {"regularization", "alpha"}
    assert {"ndcg@20", "recall@10", "hr@20", "mrr@20", "map@20", "coverage@10", "novelty@10",
            "diversity@10"} <= set(rec["test"])
    # the chosen configuration is the best one on valid
    best = max(rec["tuning"], key=lambda t: t["ndcg@20"])
    assert best["params"] == rec["params"]
    assert rec["machine"]["cores"] >= 1
    pop = json.loads((evaluated / "res" / "pop.json").read_text())
    assert pop["seeds"] == [0]                      # deterministic: one seed only
    report = (evaluated / "res" / "report.md").read_text()
    assert "| als |" in report and "ndcg20.png" in report
    assert (evaluated / "res" / "ndcg20.png").read_bytes()[:4] == b"\x89PNG"


def _qrels(split):
    """The split's relevant test items per user (candidates only)."""
    cand = {r["item_id"] for r in _read_tsv(split / "items.tsv") if r["cand_test"] == "1"}
    qrels = {}
    for r in _read_tsv(split / "test.tsv"):
        if r["item_id"] in cand:
            qrels.setdefault(r["user_id"], {})[r["item_id"]] = 1
    return qrels


def _ndcg20(qrels, run):
    """Mean NDCG@20 by pytrec_eval of a run {user: {item: -rank}}."""
    import pytrec_eval

    top20 = {u: dict(sorted(v.items(), key=lambda x: -x[1])[:20]) for u, v in run.items()}
    res = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_20"}).evaluate(top20)
    return float(np.mean([v["ndcg_cut_20"] for v in res.values()]))


def _rescored(split, run_file):
    """NDCG@20 of a run file by pytrec_eval over the split's test users."""
    run = {}
    for r in _read_tsv(run_file):
        run.setdefault(r["user_id"], {})[r["item_id"]] = -int(r["rank"])
    return _ndcg20(_qrels(split), run)


def test_each_seed_of_a_stochastic_model_is_exported_and_rescores_to_its_figure(evaluated):
    runs, res = evaluated / "runs", json.loads((evaluated / "res" / "als.json").read_text())
    assert (runs / "als.tsv").read_text() == (runs / "als.seed0.tsv").read_text()
    per_seed = [_rescored(evaluated / "split", runs / f"als.seed{s}.tsv") for s in (0, 1)]
    for s, score in zip((0, 1), per_seed):
        assert score == pytest.approx(res["test_per_seed"][str(s)]["ndcg@20"], abs=1e-9)
    assert np.mean(per_seed) == pytest.approx(res["test"]["ndcg@20"]["mean"], abs=1e-9)
    assert not list(runs.glob("pop.seed*.tsv"))                 # one seed: one run file


def test_exported_run_rescores_to_the_reported_figure(evaluated):
    """pytrec_eval on (split folder, run file) gives the NDCG@20 the JSON reports."""
    split = evaluated / "split"
    qrels = _qrels(split)
    seen = {(r["user_id"], r["item_id"]) for part in ("train", "valid")
            for r in _read_tsv(split / f"{part}.tsv")}
    for model in ("pop", "itemknn"):
        rows = _read_tsv(evaluated / "runs" / f"{model}.tsv")
        assert list(rows[0]) == ["user_id", "item_id", "rank", "score"]
        run = {}
        for r in rows:
            assert (r["user_id"], r["item_id"]) not in seen       # train and valid excluded
            run.setdefault(r["user_id"], {})[r["item_id"]] = -int(r["rank"])
        assert set(run) == set(qrels)
        assert all(len(v) == 100 for v in run.values())
        ours = json.loads((evaluated / "res" / f"{model}.json").read_text())["test"]["ndcg@20"]
        assert _ndcg20(qrels, run) == pytest.approx(ours["mean"], abs=1e-9)


def _bad_folder(tmp_path, text):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "interactions.csv").write_text(text)
    return folder


def test_non_numeric_rating_on_line_57_is_one_line_error(tmp_path, capsys):
    lines = ["user_id,item_id,rating,timestamp"]
    lines += [f"u{i % 7},i{i % 11},{1 + i % 5},{1000 + i}" for i in range(60)]
    lines[56] = "u3,i4,abc,1055"                                   # physical line 57
    folder = _bad_folder(tmp_path, "\n".join(lines) + "\n")
    rc = main(["split", "--dataset", "folder", "--data-dir", str(folder), "--protocol", "p1",
               "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "interactions.csv:57:" in err and "rating" in err and "'abc'" in err


@pytest.mark.parametrize("text, expected", [
    ("", "interactions.csv: file is empty"),
    ("user_id,rating\nu1,3\n", "interactions.csv:1: column 'item_id'"),
])
def test_empty_file_and_missing_column_errors(tmp_path, capsys, text, expected):
    folder = _bad_folder(tmp_path, text)
    rc = main(["split", "--dataset", "folder", "--data-dir", str(folder), "--protocol", "p1",
               "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and expected in err


@pytest.mark.parametrize("toml, expected", [
    ('dataset = "demo"\ndata_dir = "x"\nprotocol = "p1"\nmodles = ["pop"]\n', "modles"),
    ('dataset = "demo"\ndata_dir = "x"\nprotocol = "p1"\nmodels = ["popp"]\n',
     "unknown model(s) ['popp']"),
    ('dataset = "demo"\ndata_dir = "x"\nprotocol = "p7"\n', "unknown protocol 'p7'"),
    ('dataset = "demo"\ndata_dir = "x"\n', "exactly one of `protocol` and `split`"),
    ('dataset = "demo"\ndata_dir = "x"\nprotocol = "p1"\nmodels = ["als"]\n'
     '[grids.als]\nregularisation = [1.0]\n', "grids.als: unknown parameter(s) ['regularisation']"),
])
def test_config_typos_are_errors(tmp_path, capsys, toml, expected):
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    assert main(["evaluate", "--config", str(cfg)]) == 2
    assert expected in capsys.readouterr().err


def test_config_grid_replaces_the_built_in_grid(demo_dir, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'dataset = "demo"\ndata_dir = "{demo_dir}"\nprotocol = "p5"\n'
                   f'models = ["itemknn"]\nout = "{tmp_path / "o"}"\n'
                   '[grids.itemknn]\nk = [5, 10]\nsimilarity = ["cosine"]\n')
    assert main(["evaluate", "--config", str(cfg)]) == 0
    rec = json.loads((tmp_path / "o" / "itemknn.json").read_text())
    assert [t["params"] for t in rec["tuning"]] == [{"k": 5, "similarity": "cosine"},
                                                   {"k": 10, "similarity": "cosine"}]
    assert rec["protocol"] == "p5"


def test_lists(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("random", "pop", "itemknn", "als", "bpr", "content"):
        assert name in out
    assert main(["protocols"]) == 0
    assert "p2-all" in capsys.readouterr().out


def test_content_model_on_data_without_content_fails_before_any_work(tmp_path, capsys):
    rows = ["user_id,item_id,rating,timestamp"] + [f"u{i % 9},i{i % 13},1,{i}" for i in range(200)]
    folder = _bad_folder(tmp_path, "\n".join(rows) + "\n")
    rc = main(["evaluate", "--dataset", "folder", "--data-dir", str(folder), "--protocol", "p1",
               "--models", "pop,content", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "model(s) ['content'] need item content" in err
    assert not (tmp_path / "o").exists()                     # nothing was evaluated


def test_evaluate_encodes_what_is_asked_and_refuses_what_the_data_lacks(demo_dir, tmp_path,
                                                                        capsys):
    """`--encode text` adds the pretrained text vectors (through the feature store) as a
    feature the content model tunes over; asking for a modality the data has none of is a
    one-line error."""
    store = tmp_path / "store"
    rc = main(["evaluate", "--dataset", "demo", "--data-dir", str(demo_dir), "--protocol", "p1",
               "--models", "content", "--encode", "text", "--store", str(store),
               "--out", str(tmp_path / "res")])
    assert rc == 0
    rec = json.loads((tmp_path / "res" / "content.json").read_text())
    assert "text" in [t["params"]["feature"] for t in rec["tuning"]]
    assert any(store.rglob("*.npy"))                              # cached in the store
    capsys.readouterr()
    rc = main(["evaluate", "--dataset", "demo", "--data-dir", str(demo_dir), "--protocol", "p1",
               "--models", "content", "--encode", "video", "--store", str(store),
               "--out", str(tmp_path / "res2")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot encode ['video']" in err and "has no such content" in err
