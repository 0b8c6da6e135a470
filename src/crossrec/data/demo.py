"""A synthetic multi-media demo dataset that crossrec generates itself (no download, no
third-party content): articles, books, music, podcasts, photos and videos about a few topics,
and users whose tastes span media.

Files written to the output folder:
    items.jsonl        one item per line: item_id, medium, title, description, categories,
                       image (PNG path relative to the folder, photos/videos/music covers),
                       audio (WAV path, music/podcasts)
    interactions.csv   user_id,item_id,rating,timestamp
    media/             the generated PNG and WAV files
"""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np

TOPICS = {
    "space": ("orbit", "rocket", "galaxy", "planet", "astronaut", "telescope", "moon", "comet"),
    "cooking": ("recipe", "kitchen", "bread", "spice", "pasta", "baking", "soup", "chef"),
    "jazz": ("saxophone", "swing", "trumpet", "improvisation", "bebop", "club", "groove", "piano"),
    "football": ("goal", "league", "striker", "stadium", "match", "coach", "derby", "keeper"),
    "history": ("empire", "medieval", "archive", "revolution", "dynasty", "castle", "war", "museum"),
    "gardening": ("soil", "roses", "compost", "seeds", "orchard", "greenhouse", "pruning", "bloom"),
    "travel": ("journey", "island", "mountain", "train", "harbour", "desert", "map", "hostel"),
    "technology": ("software", "robot", "chip", "network", "algorithm", "battery", "code", "data"),
}
MEDIA = ("article", "book", "music", "podcast", "photo", "video")
_COLOURS = {t: c for t, c in zip(TOPICS, [(30, 40, 120), (200, 110, 40), (120, 40, 120),
                                          (40, 140, 60), (140, 110, 70), (90, 170, 60),
                                          (40, 150, 190), (90, 90, 100)])}
_TONES = {t: f for t, f in zip(TOPICS, [220, 262, 294, 330, 349, 392, 440, 494])}
_TEMPLATES = {
    "article": "An article about {a} and {b}: what the {c} tells us.",
    "book": "A novel of {a}, {b} and the {c}.",
    "music": "An instrumental track with {a} and {b} in the {c} style.",
    "podcast": "A podcast episode on {a}, {b} and {c}.",
    "photo": "A photograph of {a} with {b}, {c} in the background.",
    "video": "A short video about {a} and {b}, filmed near the {c}.",
}


def write_demo(out: str | Path, n_users: int = 600, n_items: int = 800, seed: int = 0,
               mean_history: int = 40) -> Path:
    """Write the demo dataset to ``out`` (overwriting files of the same names)."""
    out = Path(out)
    (out / "media").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    item_topic = rng.integers(len(topics), size=n_items)
    item_medium = rng.choice(len(MEDIA), size=n_items, p=[.22, .18, .2, .12, .16, .12])
    appeal = rng.zipf(1.6, size=n_items).clip(max=60).astype(float)
    items = []
    for i in range(n_items):
        t, m = topics[item_topic[i]], MEDIA[item_medium[i]]
        a, b, c = rng.choice(TOPICS[t], size=3, replace=False)
        row = {"item_id": f"{m}-{i:04d}", "medium": m,
               "title": f"{a.capitalize()} and {b}",
               "description": _TEMPLATES[m].format(a=a, b=b, c=c),
               "categories": [t, m]}
        if m in ("photo", "video", "music"):
            row["image"] = f"media/{row['item_id']}.png"
            _write_png(out / row["image"], _COLOURS[t], rng)
        if m in ("music", "podcast"):
            row["audio"] = f"media/{row['item_id']}.wav"
            _write_wav(out / row["audio"], _TONES[t] * (1 + 0.5 * (m == "podcast")), rng)
        items.append(row)
    _atomic_write(out / "items.jsonl", "".join(json.dumps(r) + "\n" for r in items))

    lines = ["user_id,item_id,rating,timestamp"]
    t0 = 1_700_000_000
    for u in range(n_users):
        likes = rng.choice(len(topics), size=rng.integers(1, 3), replace=False)
        affinity = np.where(np.isin(item_topic, likes), 1.0, 0.04) * appeal
        affinity *= np.exp(rng.normal(0, 0.3, size=len(MEDIA)))[item_medium]
        n = int(np.clip(rng.poisson(mean_history), 8, n_items // 4))
        chosen = rng.choice(n_items, size=n, replace=False, p=affinity / affinity.sum())
        times = t0 + np.sort(rng.integers(0, 180 * 86400, size=n))
        for i, ts in zip(chosen, times):
            liked = item_topic[i] in likes
            rating = int(np.clip(rng.normal(4.2 if liked else 2.5, 0.8), 1, 5).round())
            lines.append(f"u{u:04d},{items[i]['item_id']},{rating},{ts}")
    _atomic_write(out / "interactions.csv", "\n".join(lines) + "\n")
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_png(path: Path, colour: tuple[int, int, int], rng: np.random.Generator) -> None:
    from PIL import Image

    h = w = 96
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.array(colour, dtype=float)
    shade = 0.6 + 0.4 * np.sin(xx / rng.uniform(6, 14) + yy / rng.uniform(6, 14))[..., None]
    img = np.clip(base * shade + rng.normal(0, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)


def _write_wav(path: Path, freq: float, rng: np.random.Generator, seconds: float = 2.5,
               rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    f = freq * rng.uniform(0.97, 1.03)
    x = 0.4 * np.sin(2 * np.pi * f * t) + 0.15 * np.sin(2 * np.pi * 1.5 * f * t)
    x *= np.minimum(1, np.minimum(t, t[-1] - t) * 20)
    pcm = (x * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
