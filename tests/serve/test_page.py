"""The web page in real headless Chromium (Debian's /usr/bin/chromium through Playwright):
it loads, images render, a like is stored and changes the list, search spans media."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"browser tests need Debian's Chromium at {CHROMIUM} "
                                       f"(apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, artifact_builder):
    import uvicorn

    from crossrec.data.world import write_world
    from crossrec.serve.app import create_app

    root = tmp_path_factory.mktemp("page")
    world = write_world(root / "world", n_items=64, n_users=40, seed=3)
    art = artifact_builder(root / "art", world)
    store = root / "events.db"
    app = create_app(art, store_url=f"sqlite:///{store}", media_root=world, api_keys=["k"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    yield {"url": f"http://127.0.0.1:{port}", "store": f"sqlite:///{store}"}
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    return Path(os.environ.get("CROSSREC_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))


def _card_ids(page):
    return page.eval_on_selector_all("#shelves .card", "els => els.map(e => e.dataset.itemId)")


def test_page_shows_media_and_a_like_changes_the_list(server, browser, shots):
    from playwright.sync_api import expect

    from crossrec.serve.store import EventStore

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server["url"] + "/")
    page.select_option("#user-select", "user-001")
    expect(page.locator("#shelves .shelf")).to_have_count(4, timeout=15000)
    media = page.eval_on_selector_all("#shelves .shelf", "els => els.map(e => e.dataset.medium)")
    assert sorted(media) == ["article", "audio", "picture", "video"]
    page.wait_for_function("() => [...document.querySelectorAll('#shelves img')].every("
                           "i => i.complete)", timeout=15000)
    widths = page.eval_on_selector_all("#shelves img", "els => els.map(i => i.naturalWidth)")
    assert len(widths) >= 8 and all(w > 0 for w in widths)
    assert page.locator("#shelves audio").count() >= 1
    assert page.locator("#shelves .because").count() >= 8
    # each reason says what links the two items, in words a reader knows
    reasons = page.locator("#shelves .because").all_text_contents()
    assert any("similar words" in r or "similar picture" in r for r in reasons), reasons[:4]
    assert not any("similar text" in r or "collaborative" in r for r in reasons)
    page.screenshot(path=str(shots / "feed.png"), full_page=True)

    before = _card_ids(page)
    liked = page.locator("#shelves .shelf[data-medium='video'] .card").first
    liked_id = liked.get_attribute("data-item-id")
    liked.locator("button.like").click()
    page.wait_for_function(f"() => !document.querySelector('#shelves [data-item-id=\"{liked_id}\"]')",
                           timeout=15000)
    after = _card_ids(page)
    assert after != before and liked_id not in after
    stored = [e for e in EventStore(server["store"]).events(user_id="user-001")]
    assert [(e.item_id, e.type) for e in stored] == [(liked_id, "like")]
    page.screenshot(path=str(shots / "after-like.png"), full_page=True)

    # a video card plays in place
    page.locator("#shelves .shelf[data-medium='video'] .card .play").first.click()
    expect(page.locator("#shelves video")).to_have_count(1)
    assert not errors, errors
    page.close()


def test_search_and_more_like_this_span_media(server, browser, shots):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server["url"] + "/")
    expect(page.locator("#shelves .card").first).to_be_visible(timeout=15000)
    page.fill("#search", "ocean waves surf tide")
    page.press("#search", "Enter")
    expect(page.locator("#results .card").first).to_be_visible(timeout=15000)
    firsts = page.eval_on_selector_all(       # the best match in each medium's shelf
        "#results .shelf", "els => els.map(e => [e.dataset.medium, "
        "e.querySelector('.card .cat').textContent])")
    assert len({m for m, _ in firsts}) == 4
    assert sum(theme == "ocean" for _, theme in firsts) >= 3
    page.screenshot(path=str(shots / "search.png"), full_page=True)
    page.locator("#shelves .card button.more").first.click()
    expect(page.locator("#results-title")).to_contain_text("More like")
    assert page.locator("#results .card").count() >= 6
    page.close()


def test_new_user_types_what_they_like_on_a_phone(server, browser, shots):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(server["url"] + "/")
    expect(page.locator("#shelves .card").first).to_be_visible(timeout=15000)
    page.click("#new-user")
    page.fill("#likes", "space rockets and galaxies")
    page.press("#likes", "Enter")
    expect(page.locator("#shelves .card").first).to_be_visible(timeout=15000)
    expect(page.locator("#feed-sub")).to_contain_text("what you told us")
    firsts = page.eval_on_selector_all(
        "#shelves .shelf", "els => els.map(e => e.querySelector('.card .cat').textContent)")
    assert firsts.count("space") >= 3          # the best match of (nearly) every medium
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "phone-new-user.png"), full_page=True)
    page.close()
