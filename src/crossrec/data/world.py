"""The demo world: a small cross-media catalog that crossrec generates itself, with users whose
tastes span media. Everything is synthesised here (no download, no third-party content).

Four media, each item about one theme a person recognises:
    article   text only (a title and a few sentences)
    picture   a PNG scene drawn with Pillow (waves and a sun for "ocean", stars and a ringed
              planet for "space", ...)
    audio     a WAV clip synthesised with numpy (surf noise, a swung walking bass, a sizzle, ...)
    video     an MP4 (H.264 + AAC, written with PyAV): the theme's scene in motion, its sound
              track, and a transcript (``<stem>.txt`` beside the file, also in ``transcript``)

Files written to the output folder (a ``demo`` / ``folder`` dataset):
    items.jsonl        item_id, medium, title, description, transcript, categories, image
                       (pictures; a poster for videos), audio, video (paths relative to the folder)
    interactions.csv   user_id,item_id,rating,timestamp
    media/             the generated files
    world.json         the generator's parameters (a folder without it is generated again)

Example:
    >>> write_world("data/demo", n_items=320, n_users=300)
    >>> load_dataset("demo", "data/demo").summary()["media"]
    {'article': 80, 'audio': 80, 'picture': 80, 'video': 80}
"""

from __future__ import annotations

import json
import os
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np

THEMES: dict[str, dict] = {
    "ocean": {"words": ("waves", "tide", "coral", "surf", "harbour", "whales", "reef", "sailing"),
              "sky": (90, 170, 230), "ground": (20, 80, 160), "accent": (250, 220, 120)},
    "space": {"words": ("galaxy", "rocket", "orbit", "astronaut", "nebula", "comet", "planets",
                        "telescope"),
              "sky": (8, 8, 30), "ground": (30, 20, 60), "accent": (230, 200, 120)},
    "jazz": {"words": ("saxophone", "trumpet", "bebop", "swing", "double bass", "improvisation",
                       "piano trio", "club"),
             "sky": (60, 20, 70), "ground": (120, 40, 90), "accent": (240, 180, 60)},
    "cooking": {"words": ("recipe", "garlic", "pasta", "baking", "soup", "spices", "frying pan",
                          "kitchen"),
                "sky": (250, 235, 210), "ground": (200, 110, 50), "accent": (180, 30, 30)},
    "forest": {"words": ("pine trees", "moss", "birdsong", "deer", "woodland", "mushrooms",
                         "trail", "canopy"),
               "sky": (170, 210, 170), "ground": (30, 90, 40), "accent": (20, 60, 25)},
    "city": {"words": ("skyline", "traffic", "subway", "streets", "neon", "rooftops", "taxis",
                       "downtown"),
             "sky": (120, 130, 150), "ground": (50, 50, 60), "accent": (250, 230, 120)},
}
MEDIA = ("article", "picture", "audio", "video")
WORLD_FILE = "world.json"
WORLD_VERSION = 1
_SENTENCES = (
    "This {medium} is about {a}, {b} and {c}.",
    "You will find {a} and {b} here, with a little {c}.",
    "Everything here is {theme}: {a}, {b}, {c}.",
    "A {theme} piece with {a} and plenty of {b}.",
)
_TITLES = ("{A} and {b}", "The {a} of {c}", "{A}, {b}, {c}", "Notes on {a}", "{A} at dusk",
           "A day of {a}")
_ARTICLE = ("{A} is the heart of this story. We follow {b} and {c} through a season of "
            "{theme}. Along the way: {d}, and what {e} teaches about {f}.")
_TRANSCRIPT = ("Welcome. Today we look at {a} and {b}. Listen to the {c}. That was {theme}: "
               "{d} and {e}.")


def write_world(out: str | os.PathLike, n_items: int = 320, n_users: int = 300, seed: int = 0,
                mean_history: int = 24, video_seconds: float = 2.0) -> Path:
    """Write the demo world to ``out``; media are split evenly, themes round-robin."""
    out = Path(out)
    (out / "media").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    themes = list(THEMES)
    items, item_theme, item_medium = [], [], []
    for i in range(n_items):
        medium = MEDIA[i % len(MEDIA)]
        theme = themes[(i // len(MEDIA)) % len(themes)]
        words = list(rng.permutation(THEMES[theme]["words"]))
        fill = {"a": words[0], "b": words[1], "c": words[2], "d": words[3], "e": words[4],
                "f": words[5], "A": words[0].capitalize(), "theme": theme, "medium": medium}
        row = {"item_id": f"{medium}-{i:04d}", "medium": medium,
               "title": rng.choice(_TITLES).format(**fill),
               "description": rng.choice(_SENTENCES).format(**fill), "categories": [theme]}
        stem = out / "media" / row["item_id"]
        if medium == "article":
            row["description"] = _ARTICLE.format(**fill)
        elif medium == "picture":
            _scene(theme, rng).save(stem.with_suffix(".png"))
            row["image"] = f"media/{row['item_id']}.png"
        elif medium == "audio":
            _write_wav(stem.with_suffix(".wav"), _sound(theme, rng, 3.0))
            row["audio"] = f"media/{row['item_id']}.wav"
        else:
            transcript = _TRANSCRIPT.format(**fill)
            row["transcript"] = transcript
            stem.with_suffix(".txt").write_text(transcript + "\n", encoding="utf-8")
            poster = _write_video(stem.with_suffix(".mp4"), theme, rng, video_seconds)
            poster.save(stem.with_suffix(".png"))
            row["video"] = f"media/{row['item_id']}.mp4"
            row["image"] = f"media/{row['item_id']}.png"
        items.append(row)
        item_theme.append(themes.index(theme))
        item_medium.append(MEDIA.index(medium))
    _atomic_write(out / "items.jsonl", "".join(json.dumps(r) + "\n" for r in items))

    item_theme_a, item_medium_a = np.array(item_theme), np.array(item_medium)
    appeal = rng.gamma(2.0, 1.0, size=n_items)
    lines = ["user_id,item_id,rating,timestamp"]
    t0 = 1_700_000_000
    for u in range(n_users):
        likes = rng.choice(len(themes), size=rng.integers(1, 3), replace=False)
        media_taste = rng.dirichlet(np.full(len(MEDIA), 1.5))           # tastes span media
        affinity = np.where(np.isin(item_theme_a, likes), 1.0, 0.03) * appeal \
            * (0.2 + media_taste[item_medium_a])
        n = int(np.clip(rng.poisson(mean_history), 6, n_items // 4))
        chosen = rng.choice(n_items, size=n, replace=False, p=affinity / affinity.sum())
        times = t0 + np.sort(rng.integers(0, 120 * 86400, size=n))
        for i, ts in zip(chosen, times):
            rating = int(np.clip(rng.normal(4.3 if item_theme_a[i] in likes else 2.3, 0.7), 1, 5)
                         .round())
            lines.append(f"user-{u:03d},{items[i]['item_id']},{rating},{ts}")
    _atomic_write(out / "interactions.csv", "\n".join(lines) + "\n")
    _atomic_write(out / WORLD_FILE, json.dumps(world_params(n_items, n_users, seed, mean_history,
                                                            video_seconds)) + "\n")
    return out


def world_params(n_items: int = 320, n_users: int = 300, seed: int = 0, mean_history: int = 24,
                 video_seconds: float = 2.0) -> dict:
    """What ``world.json`` records: a folder with other contents is generated again."""
    return {"generator": "crossrec.data.world", "version": WORLD_VERSION, "n_items": n_items,
            "n_users": n_users, "seed": seed, "mean_history": mean_history,
            "video_seconds": video_seconds}


def is_world(folder: str | os.PathLike, **params) -> bool:
    """True when ``folder`` holds a world written by :func:`write_world` with ``params``."""
    path = Path(folder) / WORLD_FILE
    try:
        return json.loads(path.read_text()) == world_params(**params)
    except (OSError, ValueError):
        return False


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- pictures ---------------------------------------------------------------------------------

def _jitter(colour, rng, amount=25):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _scene(theme: str, rng: np.random.Generator, size: int = 192, t: float = 0.0, layout=None):
    """A recognisable picture of ``theme``; ``t`` in [0, 1] animates it (videos)."""
    from PIL import Image, ImageDraw

    spec = THEMES[theme]
    lay = layout if layout is not None else rng.random(16)
    s = size
    sky, ground, accent = (_jitter(spec[k], np.random.default_rng(int(lay[0] * 1e6)))
                           for k in ("sky", "ground", "accent"))
    img = Image.new("RGB", (s, s), sky)
    d = ImageDraw.Draw(img)
    horizon = int(s * (0.55 + 0.15 * lay[1]))
    for y in range(s):                                   # vertical gradient sky
        f = y / s
        d.line([(0, y), (s, y)], fill=tuple(int(c * (1 - 0.35 * f)) for c in sky))
    shift = int(t * s * 0.3)
    if theme == "ocean":
        cx = int(s * (0.2 + 0.6 * lay[2]))
        d.ellipse([cx - 18, 20, cx + 18, 56], fill=accent)
        d.rectangle([0, horizon, s, s], fill=ground)
        for k in range(6):
            y = horizon + 8 + k * 14
            pts = [(x, y + 5 * np.sin((x + shift * 2 + k * 17) / 11)) for x in range(0, s + 1, 4)]
            d.line(pts, fill=(200, 230, 255), width=3)
    elif theme == "space":
        r = np.random.default_rng(int(lay[3] * 1e6))
        for _ in range(90):
            x, y = r.integers(0, s, 2)
            d.point([((x + shift) % s, y)], fill=(255, 255, 255))
        cx, cy, rad = int(s * (0.3 + 0.4 * lay[4])), int(s * 0.5), int(28 + 20 * lay[5])
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=accent)
        d.ellipse([cx - rad * 1.8, cy - rad * 0.35, cx + rad * 1.8, cy + rad * 0.35],
                  outline=(240, 240, 255), width=3)
    elif theme == "jazz":
        d.rectangle([0, horizon, s, s], fill=ground)
        for k in range(5):                               # piano keys at the bottom
            d.rectangle([k * s // 5 + 2, s - 30, (k + 1) * s // 5 - 2, s], fill=(245, 245, 245))
        for k in range(4):                               # music notes drifting up
            x = int(s * (0.15 + 0.2 * k + 0.05 * lay[6 + k]))
            y = int(s * 0.5 - 20 * k - t * 40) % (horizon - 10)
            d.ellipse([x, y, x + 16, y + 12], fill=accent)
            d.line([(x + 15, y + 6), (x + 15, y - 28)], fill=accent, width=3)
        d.line([(s * 0.6, s * 0.25), (s * 0.72, s * 0.75), (s * 0.6, s * 0.8)], fill=accent, width=9)
    elif theme == "cooking":
        d.rectangle([0, horizon, s, s], fill=ground)
        cx, cy = s // 2, int(s * 0.62)
        d.ellipse([cx - 60, cy - 30, cx + 60, cy + 30], fill=(60, 60, 60))        # pan
        d.rectangle([cx + 55, cy - 6, cx + 95, cy + 6], fill=(40, 40, 40))       # handle
        for k in range(5):
            x = cx - 40 + k * 20
            d.ellipse([x, cy - 10, x + 14, cy + 4], fill=accent if k % 2 else (240, 200, 60))
        for k in range(3):                                                     # steam
            x = cx - 30 + k * 30
            pts = [(x + 6 * np.sin(y / 8 + t * 6), y) for y in range(cy - 90, cy - 35, 3)]
            d.line(pts, fill=(255, 255, 255), width=3)
    elif theme == "forest":
        d.rectangle([0, horizon, s, s], fill=(60, 110, 50))
        for k in range(7):
            x = int((k * s / 6 + lay[k % 16] * 20 - shift) % (s + 40)) - 20
            h = int(60 + 50 * lay[(k + 3) % 16])
            d.polygon([(x, horizon + 10 - h), (x - 24, horizon + 10), (x + 24, horizon + 10)],
                      fill=accent)
            d.rectangle([x - 4, horizon + 10, x + 4, horizon + 22], fill=(90, 60, 30))
    else:                                                # city skyline
        for k in range(9):
            x0 = int(k * s / 8 - shift * 0.5) % (s + 24) - 24
            h = int(50 + 90 * lay[k % 16])
            d.rectangle([x0, s - h, x0 + 20, s], fill=ground)
            for wy in range(s - h + 6, s - 6, 12):
                for wx in (x0 + 4, x0 + 12):
                    if (wx + wy + int(t * 10)) % 3:
                        d.rectangle([wx, wy, wx + 4, wy + 5], fill=accent)
    return img


# -- sound ------------------------------------------------------------------------------------

def _sound(theme: str, rng: np.random.Generator, seconds: float, rate: int = 16000) -> np.ndarray:
    """A mono float32 clip in [-1, 1] that sounds like ``theme``."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    noise = rng.normal(size=n)
    if theme == "ocean":            # surf: low-passed noise swelling every ~2 s
        x = np.convolve(noise, np.ones(24) / 24, mode="same") * (0.4 + 0.6 * np.sin(
            2 * np.pi * t / rng.uniform(1.6, 2.4)) ** 2)
    elif theme == "space":          # slow detuned pads with vibrato
        f = rng.uniform(100, 160)
        x = sum(np.sin(2 * np.pi * f * m * t + 2 * np.sin(2 * np.pi * 0.3 * t)) / m
                for m in (1, 1.5, 2.01))
    elif theme == "jazz":           # swung walking bass and a ride cymbal
        notes = 55 * 2 ** (rng.choice([0, 3, 5, 7, 10, 12], size=16) / 12)
        beat = 60 / rng.uniform(120, 160)
        x = np.zeros(n)
        for k, f in enumerate(notes):
            start = int(k * beat * rate * (1.1 if k % 2 else 0.9) * 0.5 + k * beat * rate * 0.5)
            if start >= n:
                break
            seg = np.arange(min(int(beat * rate), n - start)) / rate
            x[start:start + len(seg)] += np.sin(2 * np.pi * f * seg) * np.exp(-seg * 4)
        ride = (np.sin(2 * np.pi * t / beat) > 0.95) * noise * 0.3
        x = x + np.convolve(ride, [1, -1], mode="same")
    elif theme == "cooking":        # sizzle: crackles over hiss
        crackle = (rng.random(n) > 0.997) * rng.normal(0, 3, n)
        x = np.diff(noise, prepend=0) * 0.3 + np.convolve(crackle, np.exp(-np.arange(40) / 6),
                                                          mode="same")
    elif theme == "forest":         # bird chirps on a soft wind
        x = np.convolve(noise, np.ones(64) / 64, mode="same") * 2
        for _ in range(int(seconds * 3)):
            start = rng.integers(0, n - 2000)
            seg = np.arange(1600) / rate
            sweep = np.sin(2 * np.pi * (rng.uniform(2500, 4000) * seg + 9000 * seg ** 2))
            x[start:start + 1600] += sweep * np.hanning(1600)
    else:                           # city: engine hum, traffic noise, car horns
        x = 0.5 * np.sin(2 * np.pi * 55 * t) + np.convolve(noise, np.ones(8) / 8, mode="same")
        for _ in range(2):
            start = rng.integers(0, n - 4000)
            seg = np.arange(3000) / rate
            x[start:start + 3000] += 0.8 * np.sign(np.sin(2 * np.pi * 440 * seg))
    x = np.asarray(x, np.float64)
    x *= np.minimum(1, np.minimum(t, t[-1] - t) * 20)                  # no clicks
    return (0.8 * x / max(np.abs(x).max(), 1e-9)).astype(np.float32)


def _write_wav(path: Path, x: np.ndarray, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())


def _write_video(path: Path, theme: str, rng: np.random.Generator, seconds: float,
                 fps: int = 12, size: int = 128, rate: int = 16000):
    """An H.264 + AAC MP4 of the moving scene with its sound; returns the poster frame."""
    import av

    layout = rng.random(16)
    n_frames = int(seconds * fps)
    audio = _sound(theme, rng, seconds + 0.2, rate)
    poster = None
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        v = out.add_stream("h264", rate=fps)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        v.options = {"preset": "ultrafast"}
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for k in range(n_frames):
            frame = _scene(theme, rng, size, t=k / max(n_frames - 1, 1), layout=layout)
            if k == n_frames // 2:
                poster = _scene(theme, rng, 192, t=k / max(n_frames - 1, 1), layout=layout)
            out.mux(v.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")))
        out.mux(v.encode())
        for start in range(0, len(audio) - 1024, 1024):
            f = av.AudioFrame.from_ndarray(audio[start:start + 1024].reshape(1, -1), format="fltp",
                                           layout="mono")
            f.sample_rate, f.pts, f.time_base = rate, start, Fraction(1, rate)
            out.mux(a.encode(f))
        out.mux(a.encode())
    os.replace(tmp, path)
    return poster


__all__ = ["MEDIA", "THEMES", "is_world", "world_params", "write_world"]
