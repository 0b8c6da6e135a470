"""The HTTP API: recommendations, similar, search, feedback that changes the next list, live
cold start, keys, limits, bad input as 4xx with a message, atomic reload, metrics."""

from __future__ import annotations

import io
import json
import shutil
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from crossrec.serve import schemas
from crossrec.serve.app import create_app, hash_key

KEY = "test-key-123"


@pytest.fixture
def client(content_artifact, demo_dir, tmp_path):
    app = create_app(content_artifact, store_url=f"sqlite:///{tmp_path / 'ev.db'}",
                     media_root=demo_dir, api_keys=[KEY])
    with TestClient(app) as c:
        yield c


def _ids(resp):
    assert resp.status_code == 200, resp.text
    return [i["item_id"] for i in resp.json()["items"]]


def _like(c, user, item, n, kind="like", **extra):
    r = c.post("/v1/events", json={"events": [{"event_id": f"{user}-{n}", "user_id": user,
                                               "item_id": item, "type": kind, **extra}]}, **{})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_explanation_weight_is_the_history_item_share_of_the_match(als_artifact, tmp_path):
    """weight = v_i · v_j over the sum of v_i's positive dot products with the user's history
    (an ALS artifact: raw products are on the factors' scale, the shares are 0-1)."""
    from crossrec.artifact import load_artifact

    art = load_artifact(als_artifact)
    V, pos = art.item_vectors, {str(i): n for n, i in enumerate(art.items.ids)}
    user = "u0001"
    hist = list(dict.fromkeys(art.histories()[art.users.get([user])[0]].tolist()))
    app = create_app(als_artifact, store_url=f"sqlite:///{tmp_path / 'ev.db'}")
    with TestClient(app) as c:
        items = c.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()["items"]
    raw_differs = False
    for item in items:
        products = V[hist] @ V[pos[item["item_id"]]]
        total = products[products > 0].sum()
        for why in item["because"]:
            raw = products[hist.index(pos[why["item_id"]])]
            assert why["weight"] == pytest.approx(raw / total, abs=1e-4) and 0 < why["weight"] <= 1
            raw_differs |= abs(why["weight"] - raw) > 1e-3
            assert why["weight"] == round(why["weight"], 4)     # four decimals, no float32 tail
        assert sum(w["weight"] for w in item["because"]) <= 1 + 1e-4
    assert raw_differs                                   # the shares are not the raw products


def test_recommendations_are_ranked_filtered_and_explained(client):
    r = client.get("/v1/users/u0001/recommendations", params={"k": 8})
    body = r.json()
    schemas.Recommendations.model_validate(body)          # the hot path is not re-validated
    schemas.Similar.model_validate(client.get("/v1/items/article-0000/similar").json())
    assert r.status_code == 200 and body["basis"] == "history" and len(body["items"]) == 8
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    first = body["items"][0]
    assert first["because"][0]["reason"] == "history" and first["because"][0]["item_id"]
    assert first["because"][0]["modality"] in ("text", "image")
    # a history item is named by its title (read from the catalog: its card was never built)
    why = first["because"][0]
    assert why["title"] == client.get(f"/v1/items/{why['item_id']}").json()["title"] != ""
    assert why["title"] != why["item_id"]
    videos = client.get("/v1/users/u0001/recommendations", params={"k": 5, "media": "video,photo"})
    assert {i["medium"] for i in videos.json()["items"]} <= {"video", "photo"}
    for item in body["items"]:
        for url in item["media"].values():
            assert client.get(url).status_code == 200


def test_exclude_seen_drops_the_training_history(client, content_artifact):
    from crossrec.artifact import load_artifact

    art = load_artifact(content_artifact)
    u = art.users.index(["u0002"])[0]
    hist = set(art.items.ids[art.histories()[u]].tolist())
    got = set(_ids(client.get("/v1/users/u0002/recommendations", params={"k": 30})))
    assert not got & hist
    with_seen = _ids(client.get("/v1/users/u0002/recommendations",
                                params={"k": 30, "exclude_seen": "false"}))
    assert set(with_seen) & hist


def test_a_like_is_stored_and_changes_the_next_list_at_once(client):
    before = _ids(client.get("/v1/users/u0003/recommendations", params={"k": 10}))
    jazz = [i["item_id"] for i in client.get("/v1/search", params={"q": "saxophone bebop jazz",
                                                                   "k": 5}).json()["items"]]
    for n, item in enumerate(jazz):
        out = _like(client, "u0003", item, n)
        assert out["stored"] == 1 and out["results"][0]["status"] == "stored"
    after = client.get("/v1/users/u0003/recommendations", params={"k": 10}).json()["items"]
    assert [i["item_id"] for i in after] != before
    assert not set(jazz) & {i["item_id"] for i in after}             # liked = seen
    assert sum("jazz" in i["categories"] for i in after) > sum(
        "jazz" in client.get(f"/v1/items/{b}").json()["categories"] for b in before)
    # a retry of the same client event id is a duplicate and changes nothing
    again = _like(client, "u0003", jazz[0], 0)
    assert again == {"stored": 0, "duplicates": 1,
                     "results": [{"event_id": "u0003-0", "status": "duplicate"}]}


def test_dislikes_and_skips_push_items_out_and_similar_ones_down(client):
    before = client.get("/v1/users/u0004/recommendations", params={"k": 10}).json()["items"]
    top = before[0]
    _like(client, "u0004", top["item_id"], 0, kind="dislike")
    _like(client, "u0004", before[1]["item_id"], 1, kind="skip")
    after = client.get("/v1/users/u0004/recommendations",
                       params={"k": 10, "exclude_seen": "false"}).json()["items"]
    ids = [i["item_id"] for i in after]
    assert top["item_id"] not in ids and before[1]["item_id"] not in ids
    theme = top["categories"][0]
    assert sum(theme in i["categories"] for i in after) <= sum(
        theme in i["categories"] for i in before)


def test_new_user_from_words_gets_matching_items(client):
    r = client.post("/v1/users", json={"likes": "saxophone trumpet bebop"})
    assert r.status_code == 201
    uid = r.json()["user_id"]
    body = client.get(f"/v1/users/{uid}/recommendations", params={"k": 6}).json()
    assert body["basis"] == "likes"
    assert sum("jazz" in i["categories"] for i in body["items"]) >= 4
    assert body["items"][0]["because"][0]["reason"] == "likes"
    users = client.get("/v1/users", params={"limit": 500}).json()
    assert uid in [u["user_id"] for u in users["users"]] and users["total"] == 121
    assert client.post("/v1/users", json={"user_id": uid}).status_code == 409


def test_similar_and_search_cross_media(client):
    r = client.get("/v1/items/article-0000/similar", params={"k": 10})
    assert r.status_code == 200
    items = r.json()["items"]
    assert "article-0000" not in [i["item_id"] for i in items]
    only = client.get("/v1/items/article-0000/similar", params={"k": 5, "media": "article"})
    assert {i["medium"] for i in only.json()["items"]} == {"article"}
    found = client.get("/v1/search", params={"q": "rocket galaxy astronaut", "k": 12}).json()
    assert sum("space" in i["categories"] for i in found["items"]) >= 6
    assert len({i["medium"] for i in found["items"]}) >= 3


def test_live_cold_start_needs_a_key_and_is_recommendable_at_once(client, demo_dir, tmp_path):
    form = {"item_id": "new-jazz", "medium": "article", "title": "Bebop saxophone nights",
            "description": "Trumpet and saxophone improvisation in a jazz club", "categories": "jazz"}
    assert client.post("/v1/items", data=form).status_code == 401
    assert client.post("/v1/items", data=form, headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.post("/v1/items", data=form, headers={"X-API-Key": KEY})
    assert r.status_code == 201, r.text
    assert r.json()["live"] and r.json()["medium"] == "article"
    assert "new-jazz" in _ids(client.get("/v1/search", params={"q": "bebop saxophone", "k": 5}))
    sim = _ids(client.get("/v1/items/new-jazz/similar", params={"k": 5}))
    assert sim and client.get(f"/v1/items/{sim[0]}").json()["categories"][0] == "jazz"
    _like(client, "u0005", "new-jazz", 0)                        # events on a live item work
    assert client.post("/v1/items", data=form, headers={"X-API-Key": KEY}).status_code == 409
    # an upload is checked by content: a real PNG goes in, text named .png is refused
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), (30, 40, 120), np.uint8)).save(buf, "PNG")
    ok = client.post("/v1/items", data={**form, "item_id": "new-photo", "medium": "photo"},
                     files={"file": ("x.png", buf.getvalue(), "image/png")},
                     headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 201, ok.text
    assert client.get(ok.json()["media"]["image"]).content == buf.getvalue()
    fake = client.post("/v1/items", data={**form, "item_id": "fake"},
                       files={"file": ("evil.png", b"#!/bin/sh\nrm -rf /\n", "image/png")},
                       headers={"X-API-Key": KEY})
    assert fake.status_code == 415 and "checked by content" in fake.json()["error"]
    broken = client.post("/v1/items", data={**form, "item_id": "broken"},
                         files={"file": ("b.png", buf.getvalue()[:40], "image/png")},
                         headers={"X-API-Key": KEY})
    assert broken.status_code == 415
    trav = client.post("/v1/items", data={**form, "item_id": "t", "media_path": "../../etc/passwd"},
                       headers={"X-API-Key": KEY})
    assert trav.status_code == 400 and "leaves the media root" in trav.json()["error"]


def test_run_time_items_users_and_events_survive_a_restart(content_artifact, demo_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    form = {"item_id": "new-1", "medium": "article", "title": "Rocket to the moon"}
    with TestClient(create_app(content_artifact, url, demo_dir, api_keys=[KEY])) as c:
        assert c.post("/v1/items", data=form, headers={"X-API-Key": KEY}).status_code == 201
        uid = c.post("/v1/users", json={"likes": "gardening roses"}).json()["user_id"]
        _like(c, uid, "new-1", 0)
        before = _ids(c.get(f"/v1/users/{uid}/recommendations"))
    with TestClient(create_app(content_artifact, url, demo_dir, api_keys=[KEY])) as c:
        assert c.get("/v1/items/new-1").json()["live"] is True
        assert _ids(c.get(f"/v1/users/{uid}/recommendations")) == before


BAD = [
    ("get", "/v1/users/nobody/recommendations", {}, 404, "unknown user 'nobody'"),
    ("get", "/v1/users/u0001/recommendations?k=0", {}, 422, "k"),
    ("get", "/v1/users/u0001/recommendations?k=1000", {}, 422, "k"),
    ("get", "/v1/users/u0001/recommendations?k=abc", {}, 422, "k"),
    ("get", "/v1/users/u0001/recommendations?media=hologram", {}, 422, "unknown medium"),
    ("get", "/v1/users/u0001/recommendations?exclude_seen=maybe", {}, 422, "exclude_seen"),
    ("get", "/v1/items/nope/similar", {}, 404, "unknown item 'nope'"),
    ("get", "/v1/items/nope", {}, 404, "unknown item"),
    ("get", "/v1/search", {}, 422, "q"),
    ("get", "/v1/users?limit=-1", {}, 422, "limit"),
    ("post", "/v1/events", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     422, "malformed JSON"),
    ("post", "/v1/events", {"json": {"events": "many"}}, 422, "events"),
    ("post", "/v1/events", {"json": {"events": []}}, 422, "events"),
    ("post", "/v1/events", {"json": {"events": [{"event_id": "x", "user_id": "u0001",
                                                 "item_id": "article-0000", "type": "wink"}]}},
     422, "type"),
    ("post", "/v1/events", {"json": {"events": [{"event_id": "x", "user_id": "u0001",
                                                 "item_id": "article-0000", "type": "rating",
                                                 "value": "five"}]}}, 422, "value"),
    ("post", "/v1/events", {"json": {"events": [{"event_id": "x", "user_id": "u0001",
                                                 "item_id": "article-0000", "type": "play"}]}},
     422, "seconds played"),
    ("post", "/v1/events", {"json": {"events": [{"event_id": "x", "user_id": "u0001",
                                                 "item_id": "no-such", "type": "like"}]}},
     404, "unknown item 'no-such'"),
    ("post", "/v1/events", {"json": {"events": [{"event_id": "x", "user_id": "u0001",
                                                 "item_id": "article-0000", "type": "like",
                                                 "extra": 1}]}}, 422, "extra"),
    ("post", "/v1/events", {"json": [1, 2, 3]}, 422, "body"),
    ("post", "/v1/events", {"content": b"x" * (10 << 20),
                            "headers": {"content-type": "application/json"}}, 413, "over the limit"),
    ("post", "/v1/admin/reload", {}, 401, "missing API key"),
    ("get", "/media/..%2F..%2F..%2Fetc%2Fpasswd", {}, 400, "leaves the media root"),
    ("get", "/media/%2Fetc%2Fpasswd", {}, 400, "leaves the media root"),
    ("get", "/media/media/nothing.png", {}, 404, "no media file"),
]


@pytest.mark.parametrize("method,url,kw,status,message", BAD, ids=[f"{b[0]} {b[1][:40]} {b[3]}"
                                                                  for b in BAD])
def test_bad_input_is_a_4xx_with_a_message(client, method, url, kw, status, message):
    r = getattr(client, method)(url, **kw) if method == "get" or kw else \
        getattr(client, method)(url)
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()


def test_a_chunked_body_over_the_limit_is_413_before_parsing(client):
    def chunks(n):
        for _ in range(n):
            yield b"x" * (1 << 20)

    r = client.post("/v1/events", content=chunks(10), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    r = client.post("/v1/items", content=chunks(60), headers={"x-api-key": KEY,
                    "content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    ok = client.post("/v1/events", content=iter([json.dumps({"events": [
        {"event_id": "c1", "user_id": "u0001", "item_id": "article-0000", "type": "view"}]}).encode()]),
        headers={"content-type": "application/json"})
    assert ok.status_code == 200 and ok.json()["stored"] == 1


def test_events_need_a_key_when_configured(content_artifact, demo_dir, tmp_path):
    app = create_app(content_artifact, f"sqlite:///{tmp_path / 'e.db'}", demo_dir,
                     api_key_hashes=[hash_key(KEY)], events_need_key=True)
    ev = {"events": [{"event_id": "a", "user_id": "u0001", "item_id": "article-0000",
                      "type": "view"}]}
    with TestClient(app) as c:
        assert c.post("/v1/events", json=ev).status_code == 401
        assert c.post("/v1/events", json=ev, headers={"X-API-Key": KEY}).json()["stored"] == 1


def test_model_without_content_cannot_place_items_or_search(als_artifact, demo_dir, tmp_path):
    app = create_app(als_artifact, f"sqlite:///{tmp_path / 'e.db'}", demo_dir, api_keys=[KEY])
    with TestClient(app) as c:
        assert len(_ids(c.get("/v1/users/u0001/recommendations"))) == 10
        r = c.post("/v1/items", data={"item_id": "n", "medium": "article", "title": "x"},
                   headers={"X-API-Key": KEY})
        assert r.status_code == 409 and "cannot place new items" in r.json()["error"]
        s = c.get("/v1/search", params={"q": "jazz"})
        assert s.status_code == 409 and "no content path" in s.json()["error"]
        assert c.get("/v1/items/article-0000/similar").status_code == 200


def test_reload_swaps_atomically_with_no_failed_request(client, content_artifact, als_artifact,
                                                        tmp_path):
    target = tmp_path / "served"
    shutil.copytree(content_artifact, target)
    r = client.post("/v1/admin/reload", json={"path": str(target)}, headers={"X-API-Key": KEY})
    assert r.status_code == 200, r.text
    errors, done = [], threading.Event()

    def hammer():
        while not done.is_set():
            resp = client.get("/v1/users/u0001/recommendations", params={"k": 5})
            if resp.status_code != 200:
                errors.append(resp.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    versions = set()
    for src in (als_artifact, content_artifact, als_artifact):
        shutil.rmtree(target)
        shutil.copytree(src, target)
        out = client.post("/v1/admin/reload", headers={"X-API-Key": KEY})
        assert out.status_code == 200, out.text
        versions.add(out.json()["version"])
    done.set()
    for t in threads:
        t.join()
    assert errors == [] and len(versions) == 2
    served = [line for line in client.get("/metrics").text.splitlines()
              if line.startswith("crossrec_model_info{")]
    assert len(served) == 1 and 'model="als"' in served[0]      # the old version is gone
    bad = client.post("/v1/admin/reload", json={"path": str(tmp_path / "nothing")},
                      headers={"X-API-Key": KEY})
    assert bad.status_code == 422 and "cannot load artifact" in bad.json()["error"]
    assert client.get("/readyz").json()["version"] == out.json()["version"]


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"] == "content" and ready["items"] == 150
    client.get("/v1/users/u0001/recommendations", params={"k": 3, "media": "book"})
    _like(client, "u0001", "article-0000", 0)
    text = client.get("/metrics").text
    assert 'crossrec_request_seconds_count{method="GET",route="/v1/users/{user_id}/recommendations"' \
        in text
    assert 'crossrec_recommended_items_total{medium="book"} 3.0' in text
    assert 'crossrec_events_total{type="like"} 1.0' in text
    assert "crossrec_index_items 150.0" in text and "crossrec_model_info{" in text
    assert client.get("/docs").status_code == 200
    assert "/v1/search" in json.dumps(client.get("/openapi.json").json())


def test_user_ids_are_hashed_in_logs(client, caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="crossrec.serve"):
        client.get("/v1/users/u0007/recommendations")
        _like(client, "u0007", "article-0000", 0)
    assert caplog.records and "u0007" not in caplog.text


def test_items_added_while_others_search_never_break_a_request(client):
    errors, done = [], threading.Event()

    def hammer():
        while not done.is_set():
            for url in ("/v1/search?q=bebop%20saxophone&k=20", "/v1/users/u0009/recommendations?k=20"):
                r = client.get(url)
                if r.status_code != 200:
                    errors.append((url, r.status_code, r.text[:200]))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for n in range(12):
        r = client.post("/v1/items", data={"item_id": f"live-{n}", "medium": "article",
                                           "title": "Bebop saxophone", "description": "jazz club"},
                        headers={"X-API-Key": KEY})
        assert r.status_code == 201, r.text
    done.set()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(i["item_id"].startswith("live-") for i in
               client.get("/v1/search", params={"q": "bebop saxophone", "k": 20}).json()["items"]) >= 10


HOT_QUERIES = [  # (query string, answered by the hot path)
    ("", True), ("k=3&media=book", True), ("k=010&explain=false", True),
    ("exclude_seen=0&explain=Yes", True), ("media=video,%20photo&k=5", True), ("k=3&k=4", True),
    ("k=0", False), ("k=abc", False), ("k=100000", False), ("k=1.5", False),
    ("exclude_seen=maybe", False), ("media=nosuch", False), ("media=" + "a" * 501, False),
]


def _hot(app):
    from crossrec.serve.app import HotRecommendations

    m = app.middleware_stack
    while not isinstance(m, HotRecommendations):
        m = m.app
    return m


def test_the_hot_path_answers_exactly_as_the_route(content_artifact, demo_dir, tmp_path):
    """Every request, valid or not, gets the same status and body with the hot path as through
    FastAPI's route; the hot path answers the valid ones and leaves every other to the route."""
    def app(name, hot):
        return create_app(content_artifact, store_url=f"sqlite:///{tmp_path / name}",
                          media_root=demo_dir, hot_path=hot)

    hot_app, route_app = app("hot.db", True), app("route.db", False)
    with TestClient(hot_app) as hot, TestClient(route_app) as route:
        answered = 0
        for user in ("u0001", "u0042", "nobody"):
            for query, fast in HOT_QUERIES:
                url = f"/v1/users/{user}/recommendations?{query}"
                a, b = hot.get(url), route.get(url)
                assert (a.status_code, a.json()) == (b.status_code, b.json()), url
                answered += fast and user != "nobody"
                assert _hot(hot_app).answered == answered, url
        a = hot.get("/v1/users/nobody/recommendations")
        assert a.status_code == 404 and "unknown user 'nobody'" in a.json()["error"]
        text = hot.get("/metrics").text
        assert 'route="/v1/users/{user_id}/recommendations",status="200"} ' in text
        assert 'route="/v1/users/{user_id}/recommendations",status="404"} ' in text


def test_a_non_finite_score_is_refused_not_written_as_null():
    from crossrec.serve.app import _dumps

    assert _dumps({"items": [{"item_id": "a", "score": 0.5}]}) == b'{"items":[{"item_id":"a","score":0.5}]}'
    with pytest.raises(ValueError, match="non-finite score nan for item 'a'"):
        _dumps({"items": [{"item_id": "a", "score": float("nan")}]})
