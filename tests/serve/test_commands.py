"""`crossrec retrain` folds stored feedback into a new artifact; `crossrec serve` runs the app,
and SIGHUP swaps in a rewritten artifact."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from crossrec.artifact import load_artifact
from crossrec.pipeline import retrain
from crossrec.serve.store import EventStore


def test_retrain_folds_positive_events_into_a_refit_of_the_same_model(content_artifact, tmp_path):
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    store = EventStore(url)
    store.add_events([
        {"event_id": "1", "user_id": "fresh", "item_id": "article-0000", "type": "like"},
        {"event_id": "2", "user_id": "fresh", "item_id": "photo-0003", "type": "play", "value": 40},
        {"event_id": "3", "user_id": "fresh", "item_id": "video-0002", "type": "dislike"},
        {"event_id": "4", "user_id": "u0001", "item_id": "video-0004", "type": "rating", "value": 5},
        {"event_id": "5", "user_id": "u0001", "item_id": "video-0002", "type": "rating", "value": 1},
        {"event_id": "6", "user_id": "u0001", "item_id": "not-in-artifact", "type": "like"},
    ])
    store.close()
    out = retrain(content_artifact, url, tmp_path / "new", store_root=tmp_path / "cache")
    assert out["positives_added"] == 3 and out["new_users"] == 1 and out["unknown_items"] == 1
    old, new = load_artifact(content_artifact), load_artifact(out["artifact"])
    assert new.meta["model"] == old.meta["model"] and new.meta["params"] == old.meta["params"]
    assert new.meta["config"]["retrained_from"] == old.version
    assert new.meta["config"]["content_recipe"] == old.meta["config"]["content_recipe"]
    fresh = new.users.index(["fresh"])[0]
    hist = set(new.items.ids[new.histories()[fresh]].tolist())
    assert hist == {"article-0000", "photo-0003"}                  # the dislike is not a positive
    u1 = new.users.index(["u0001"])[0]
    assert "video-0004" in new.items.ids[new.histories()[u1]].tolist()
    assert len(new.history) == len(old.history) + 3
    np.testing.assert_allclose(new.item_vectors, old.item_vectors, atol=1e-6)   # same content


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_serve_command_and_sighup_reload(als_artifact, content_artifact, demo_dir, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(als_artifact, served)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "crossrec.cli", "serve", str(served), "--port",
                             str(port), "--store", f"sqlite:///{tmp_path / 'ev.db'}",
                             "--media-root", str(demo_dir), "--lazy-encoders"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "CROSSREC_API_KEYS": "k"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                ready = _get(base + "/readyz")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stdout.read() if proc.poll() is not None
                                         else "no readiness") from None
                time.sleep(0.2)
        assert ready["model"] == "als"
        assert len(_get(base + "/v1/users/u0001/recommendations?k=5")["items"]) == 5
        tmp = tmp_path / "next"
        shutil.copytree(content_artifact, tmp)
        shutil.rmtree(served)
        os.replace(tmp, served)
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 30
        while _get(base + "/readyz")["model"] != "content":
            assert time.time() < deadline, "SIGHUP did not reload"
            time.sleep(0.2)
        assert len(_get(base + "/v1/users/u0001/recommendations?k=5")["items"]) == 5
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_refuses_a_folder_that_is_not_an_artifact(tmp_path, capsys):
    from crossrec.cli import main

    assert main(["serve", str(tmp_path)]) == 2
    assert "not a crossrec artifact" in capsys.readouterr().err
