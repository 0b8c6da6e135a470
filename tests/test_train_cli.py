"""``crossrec train`` writes an artifact whose model gives the same top-10 in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from crossrec.artifact import load_artifact
from crossrec.cli import main
from crossrec.data.demo import write_demo

CONFIG = """
model = "crossrec"
encode = []
[params]
dim = 16
max_len = 10
layers = 1
negatives = 32
epochs = 4
lr = 0.01
progress = false
"""

TOP10 = """
import json, sys
import numpy as np
from crossrec.artifact import load_artifact
art = load_artifact(sys.argv[1])
users = np.arange(len(art.users))
top, _ = art.model.recommend(users, k=10, exclude=art.history.to_csr(len(art.users),
                             len(art.items)))
print(json.dumps(top.tolist()))
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"), n_users=120, n_items=150)


@pytest.mark.parametrize("protocol", ["p1", "p2"])
def test_train_writes_an_artifact_that_loads_identically_elsewhere(demo, tmp_path, protocol,
                                                                   capsys):
    cfg = tmp_path / "train.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "artifact"
    assert main(["train", "--dataset", "demo", "--data-dir", str(demo), "--protocol", protocol,
                 "--config", str(cfg), "--out", str(out)]) == 0
    assert "test: ndcg@20" in capsys.readouterr().out
    art = load_artifact(out)
    assert art.meta["model"] == "crossrec" and set(art.meta["metrics"]) == {"valid", "test"}
    assert art.meta["metrics"]["test"]["ndcg@20"] > 0
    if protocol == "p2":                 # refitted on train + valid for as long as valid chose
        assert art.meta["config"]["refit_params"]["epochs"] >= 1
    np.testing.assert_array_equal(art.item_vectors, art.model.item_vectors())
    users = np.arange(len(art.users))
    top, _ = art.model.recommend(users, k=10, exclude=art.history.to_csr(len(art.users),
                                                                         len(art.items)))
    fresh = subprocess.run([sys.executable, "-c", TOP10, str(out)], capture_output=True,
                           text=True, check=True)
    assert json.loads(fresh.stdout) == top.tolist()


def test_train_errors_are_one_line(demo, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('model = "crossrec"\n[params]\nno_such = 1\n')
    assert main(["train", "--dataset", "demo", "--data-dir", str(demo), "--protocol", "p1",
                 "--config", str(cfg), "--out", str(tmp_path / "a")]) == 2
    assert "unknown parameter(s) ['no_such']" in capsys.readouterr().err
    cfg.write_text('modle = "crossrec"\n')
    assert main(["train", "--dataset", "demo", "--data-dir", str(demo), "--protocol", "p1",
                 "--config", str(cfg), "--out", str(tmp_path / "a")]) == 2
    assert "modle" in capsys.readouterr().err


def test_evaluate_runs_the_torch_models_on_a_split_folder(demo, tmp_path):
    split = tmp_path / "split"
    assert main(["split", "--dataset", "demo", "--data-dir", str(demo), "--protocol", "p1",
                 "--out", str(split)]) == 0
    cfg = tmp_path / "evaluate.toml"
    cfg.write_text(f"""
dataset = "demo"
data_dir = "{demo}"
split = "{split}"
models = ["crossrec", "sasrec", "lightgcn"]
encode = []
[grids.crossrec]
dim = [16]
epochs = [3]
progress = [false]
[grids.sasrec]
dim = [16]
epochs = [3]
progress = [false]
[grids.lightgcn]
dim = [16]
epochs = [4]
progress = [false]
""")
    runs = tmp_path / "runs"
    assert main(["evaluate", "--config", str(cfg), "--export-runs", str(runs),
                 "--out", str(tmp_path / "out")]) == 0
    for name in ("crossrec", "sasrec", "lightgcn"):
        lines = (runs / f"{name}.tsv").read_text().splitlines()
        assert lines[0] == "user_id\titem_id\trank\tscore" and len(lines) > 100
        result = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert result["test"]["ndcg@20"]["mean"] > 0


def test_train_config_refuses_an_unknown_modality():
    import pydantic

    from crossrec.fitting import TrainCommandConfig

    with pytest.raises(pydantic.ValidationError, match=r"unknown modality \['imgae'\]"):
        TrainCommandConfig(encode=["imgae"])
    assert TrainCommandConfig(encode=["none"]).encode == []


@pytest.fixture(scope="module")
def text_artifact(demo, tmp_path_factory):
    """`crossrec train` with MiniLM text vectors (feature store in the same temporary folder)."""
    tmp = tmp_path_factory.mktemp("text-artifact")
    cfg = tmp / "train.toml"
    cfg.write_text(CONFIG.replace("encode = []", f'encode = ["text"]\nstore = "{tmp}/fs"'))
    out = tmp / "artifact"
    assert main(["train", "--dataset", "demo", "--data-dir", str(demo), "--protocol", "p1",
                 "--config", str(cfg), "--out", str(out)]) == 0
    return out


def test_a_trained_artifact_places_new_items_and_queries_with_its_encoders(text_artifact,
                                                                          tmp_path):
    from fastapi.testclient import TestClient

    from crossrec.serve.app import create_app

    out = text_artifact
    recipe = load_artifact(out).meta["config"]["content_recipe"]
    assert recipe["name"] == "encoded" and recipe["dims"] == {"text": 384}
    app = create_app(out, store_url=f"sqlite:///{tmp_path / 'ev.db'}", api_keys=["key-123456"])
    with TestClient(app) as client:
        r = client.post("/v1/items", data={"item_id": "new-1", "medium": "article",
                                           "title": "Deep sea creatures of the ocean"},
                        headers={"X-API-Key": "key-123456"})
        assert r.status_code == 201, r.text
        found = client.get("/v1/search", params={"q": "ocean", "k": 5})
        assert found.status_code == 200 and len(found.json()["items"]) == 5
        # the live item is placed by the model from its text, like a catalog item without
        # interactions: its vector is the model's new_item_vectors of the encoded text
        loaded = app.state.service.loaded
        live = loaded.vector(loaded.item_pos["new-1"])
        assert np.isfinite(live).all() and np.abs(live).sum() > 0
        articles = client.get("/v1/search", params={"q": "deep sea creatures of the ocean",
                                                     "k": 100, "media": "article"}).json()
        assert "new-1" in [i["item_id"] for i in articles["items"]]


def test_retraining_a_trained_artifact_keeps_the_features_it_was_fitted_on(text_artifact,
                                                                          tmp_path):
    from crossrec.pipeline import retrain
    from crossrec.serve.store import EventStore

    out = text_artifact
    old = load_artifact(out)
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    store = EventStore(url)
    item = str(old.items.ids[0])
    store.add_events([{"event_id": "1", "user_id": "newcomer", "item_id": item, "type": "like"}])
    store.close()
    res = retrain(out, url, tmp_path / "new", store_root=out.parent / "fs")
    new = load_artifact(res["artifact"])
    assert res["positives_added"] == 1 and res["new_users"] == 1
    # the same features as `crossrec train` used (encoded text and the catalog's own), not
    # only those the content recipe encodes
    names = old.model.item_tower_config_["features"]
    assert "text" in names and len(names) > 1
    assert new.model.item_tower_config_["features"] == names
    assert new.meta["config"]["content_recipe"] == old.meta["config"]["content_recipe"]
    # the items' content rows (the encoded text: what explanations compare) are kept too
    assert old.content_vectors.shape == (len(old.items), 384)
    np.testing.assert_array_equal(new.content_vectors, old.content_vectors)
