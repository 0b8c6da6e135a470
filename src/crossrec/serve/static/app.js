// crossrec web page: no build step, no dependencies. Talks to the /v1 API of the same origin.
"use strict";

const MEDIA_LABEL = { article: "Articles", picture: "Pictures", audio: "Audio", video: "Videos",
                      photo: "Photos", music: "Music", podcast: "Podcasts", book: "Books",
                      movie: "Movies" };
const PER_SHELF = 10;
const state = { user: null, media: [], busy: false };
const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c) node.append(c);
  return node;
}

async function api(path, opts = {}) {
  const res = await fetch(path, { headers: { "content-type": "application/json" }, ...opts });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 1800);
}

function label(medium) { return MEDIA_LABEL[medium] || medium[0].toUpperCase() + medium.slice(1); }

// the block of the content space that links the two items (collaborative: nothing to say)
const LINKED_BY = { text: "similar words", image: "similar picture", audio: "similar sound" };

function because(item) {
  const b = (item.because || [])[0];
  if (!b) return null;
  let text;
  if (b.reason === "history") {
    const via = LINKED_BY[b.modality] ? ` · ${LINKED_BY[b.modality]}` : "";
    text = `Because you liked “${b.title}” (${b.medium}${via})`;
  } else if (b.reason === "likes") {
    text = `Because you said you like “${b.text}”`;
  } else {
    text = "Popular with everyone";
  }
  return el("p", { class: "because", text });
}

function thumb(item) {
  const box = el("div", { class: "thumb" }, el("span", { class: "badge", text: item.medium }));
  const m = item.media || {};
  if (m.video) {
    const img = el("img", { src: m.image || "", alt: item.title });
    const play = el("button", { class: "play", "aria-label": `Play ${item.title}`, type: "button" });
    play.addEventListener("click", () => {
      const v = el("video", { src: m.video, controls: true, autoplay: true, playsinline: true,
                              poster: m.image || undefined });
      v.addEventListener("play", () => post(item, "play", 1), { once: true });
      box.replaceChildren(v);
    });
    box.prepend(img);
    box.append(play);
  } else if (m.image) {
    box.prepend(el("img", { src: m.image, alt: item.title }));
  } else {
    box.prepend(el("div", { class: `tile ${item.medium}`, text: item.categories[0] || item.medium }));
  }
  return box;
}

function card(item, { actions = true } = {}) {
  const body = el("div", { class: "body" },
    el("h3", { class: "title", text: item.title }),
    item.snippet ? el("p", { class: "snippet", text: item.snippet }) : null,
    item.media && item.media.audio ? el("audio", { src: item.media.audio, controls: true,
                                                   preload: "none" }) : null,
    because(item),
    el("div", { class: "cats" }, item.categories.map((c) => el("span", { class: "cat", text: c }))));
  const audio = $("audio", body);
  if (audio) audio.addEventListener("play", () => post(item, "play", 1), { once: true });
  const node = el("article", { class: "card", "data-item-id": item.item_id, "data-medium": item.medium },
                  thumb(item), body);
  const bar = el("div", { class: "actions" });
  if (actions && state.user) {
    bar.append(
      el("button", { class: "like", type: "button", text: "♡ Like", onclick: () => feedback(item, "like") }),
      el("button", { class: "dislike", type: "button", text: "Dislike",
                     onclick: () => feedback(item, "dislike") }),
      el("button", { class: "skip", type: "button", text: "Skip", onclick: () => feedback(item, "skip") }));
  }
  bar.append(el("button", { class: "more", type: "button", text: "More like this",
                            onclick: () => moreLike(item) }));
  node.append(bar);
  return node;
}

function shelves(items, target, opts) {
  const groups = new Map();
  for (const it of items) {
    if (!groups.has(it.medium)) groups.set(it.medium, []);
    groups.get(it.medium).push(it);
  }
  target.replaceChildren();
  if (!items.length) { target.append(el("p", { class: "empty", text: "Nothing here yet." })); return; }
  for (const [medium, list] of groups) {
    target.append(el("section", { class: "shelf", "data-medium": medium },
      el("div", { class: "shelf-head" }, el("h2", { text: label(medium) }),
         el("span", { class: "count", text: `${list.length}` })),
      el("div", { class: "grid" }, list.map((it) => card(it, opts)))));
  }
}

function newEventId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

async function post(item, type, value) {
  if (!state.user) return;
  const ev = { event_id: newEventId(), user_id: state.user, item_id: item.item_id, type };
  if (value !== undefined) ev.value = value;
  return api("/v1/events", { method: "POST", body: JSON.stringify({ events: [ev] }) });
}

async function feedback(item, type) {
  try {
    await post(item, type);
    toast(type === "like" ? `Liked “${item.title}”` : type === "dislike" ? "Got it — less like this"
          : "Skipped");
    await loadFeed();
  } catch (e) { toast(`Could not save: ${e.message}`); }
}

async function loadFeed() {
  if (!state.user) return;
  const feed = $("#shelves");
  feed.setAttribute("aria-busy", "true");
  const lists = await Promise.all(state.media.map((m) =>
    api(`/v1/users/${encodeURIComponent(state.user)}/recommendations?k=${PER_SHELF}&media=${encodeURIComponent(m)}`)
      .catch(() => ({ items: [] }))));
  const items = lists.flatMap((l) => l.items);
  const basis = (lists.find((l) => l.basis) || {}).basis;
  $("#feed-title").textContent = "Recommended for you";
  $("#feed-sub").textContent = basis === "likes" ? "Based on what you told us you like."
    : basis === "popular" ? "Popular picks — like a few to personalise." : "Based on what you liked, across every medium.";
  if (lists[0] && lists[0].model_version) $("#model-version").textContent = `model ${lists[0].model_version}`;
  shelves(items, feed);
  feed.removeAttribute("aria-busy");
}

function showResults(title, items) {
  $("#results-title").textContent = title;
  shelves(items, $("#results-body"));
  $("#results").hidden = false;
  $("#results").scrollIntoView({ behavior: "smooth", block: "start" });
}

async function moreLike(item) {
  try {   // cross-media: the nearest items of every medium, one shelf each
    const lists = await Promise.all(state.media.map((m) =>
      api(`/v1/items/${encodeURIComponent(item.item_id)}/similar?k=6&media=${encodeURIComponent(m)}`)));
    showResults(`More like “${item.title}”`, lists.flatMap((l) => l.items));
  } catch (e) { toast(e.message); }
}

async function search(q) {
  try {
    const lists = await Promise.all(state.media.map((m) =>
      api(`/v1/search?q=${encodeURIComponent(q)}&k=6&media=${encodeURIComponent(m)}`)));
    const items = lists.flatMap((l) => l.items);
    showResults(`Results for “${q}”`, items);
  } catch (e) { toast(e.message); }
}

function setUser(id) {
  state.user = id;
  localStorage.setItem("crossrec-user", id);
  $("#user-select").value = id;
  $("#onboard").hidden = true;
  loadFeed();
}

async function loadUsers(select) {
  const page = await api("/v1/users?limit=500");
  const sel = $("#user-select");
  sel.replaceChildren(el("option", { value: "", text: "Choose a user…", disabled: true }));
  for (const u of page.users) {
    const desc = u.likes ? `likes ${u.likes}` : u.top_categories.join(", ");
    sel.append(el("option", { value: u.user_id, text: `${u.user_id}${desc ? " — " + desc : ""}` }));
  }
  if (select) setUser(select);
  else sel.value = "";
}

async function init() {
  const probe = await api("/readyz").catch(() => null);
  if (probe) $("#model-version").textContent = `${probe.model} ${probe.version}`;
  state.media = probe ? Object.keys(probe.media) : [];
  const users = await api("/v1/users?limit=1");
  const first = users.users[0];
  const saved = localStorage.getItem("crossrec-user");
  const known = saved && (await api(`/v1/users/${encodeURIComponent(saved)}/recommendations?k=1`).then(() => true, () => false));
  await loadUsers(known ? saved : (first ? first.user_id : null));
  if (!first) $("#onboard").hidden = false;
}

$("#user-select").addEventListener("change", (e) => setUser(e.target.value));
$("#new-user").addEventListener("click", () => {
  $("#onboard").hidden = false;
  $("#likes").focus();
});
$("#onboard-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const likes = $("#likes").value.trim();
  if (!likes) return;
  try {
    const u = await api("/v1/users", { method: "POST", body: JSON.stringify({ likes }) });
    await loadUsers(u.user_id);
    toast("Welcome! Like a few things to sharpen your picks.");
  } catch (err) { toast(err.message); }
});
$("#search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("#search").value.trim();
  if (q) search(q);
});
$("#close-results").addEventListener("click", () => { $("#results").hidden = true; });
init().catch((e) => toast(`Could not load: ${e.message}`));
