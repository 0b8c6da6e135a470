"""How much does the label bridge (MobileNetV2 ImageNet probabilities -> label names embedded
by the text encoder) know about a movie from its poster?

Data: ML-1M posters (``<data>/ml-1m/posters/<MovieID>.jpg``) and ``movies.dat``
(``MovieID::Title::Genres``, latin-1), read at run time from ``$CROSSREC_DATA_DIR`` (default
``<repo>/../shared/data``); nothing derived from the posters is written except the aggregate
numbers below.

Tasks, for ``N_GROUPS`` disjoint random groups of ``GROUP`` movies with posters (seed 0):

* item: each poster's bridged vector ranks the group's ``GROUP`` item texts
  ("<Title (year)>. <genre>, <genre>") by cosine; top-1 accuracy and MRR of the right item
  (chance: 1/GROUP and H(GROUP)/GROUP),
* genre: the poster ranks the 18 genre names; hit when the first one is one of the movie's
  genres (chance: mean number of genres / 18).

Variants: label template "{}" or "a photo of a {}.", all labels or the top 5 per poster.
Text encoder: crossrec's default (all-MiniLM-L6-v2, offline). Writes
``bench/results/label_bridge.json``.

Run: ``python bench/bench_label_bridge.py``
"""

from __future__ import annotations

import collections
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from crossrec.encoders import EncoderConfig, build_encoder
from crossrec.encoders.bridge import (
    ImageLabelBridge,
    default_text_encoder,
    embed_texts,
    imagenet_class_names,
    label_bridge,
)

GROUP, N_GROUPS, SEED = 40, 5, 0
GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western"]
VARIANTS = [("{}", None), ("{}", 5), ("a photo of a {}.", None), ("a photo of a {}.", 5)]
OUT = Path(__file__).resolve().parent / "results" / "label_bridge.json"


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("CROSSREC_DATA_DIR", default))


def read_movies(folder: Path) -> dict[int, tuple[str, list[str]]]:
    movies = {}
    for line in (folder / "movies.dat").read_text(encoding="latin-1").splitlines():
        movie_id, title, genres = line.split("::")
        movies[int(movie_id)] = (title, genres.split("|"))
    return movies


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rank_of_truth(scores: np.ndarray) -> np.ndarray:
    """scores (n, n) with the right answer on the diagonal -> 1-based rank of each answer
    (ties counted pessimistically)."""
    return (scores >= np.diag(scores)[:, None]).sum(axis=1)


def main() -> dict:
    folder = data_dir() / "ml-1m"
    movies = read_movies(folder)
    with_poster = sorted(m for m in movies if (folder / "posters" / f"{m}.jpg").is_file())
    rng = np.random.default_rng(SEED)
    chosen = rng.choice(with_poster, size=GROUP * N_GROUPS, replace=False)
    paths = [str(folder / "posters" / f"{m}.jpg") for m in chosen]
    texts = [f"{movies[m][0]}. {', '.join(movies[m][1])}" for m in chosen]

    t0 = time.perf_counter()
    image_encoder = build_encoder(EncoderConfig(modality="image"))
    probs = image_encoder.classify(paths)
    t_images = time.perf_counter() - t0
    assert probs.mask.all(), probs.errors

    t0 = time.perf_counter()
    text_encoder = default_text_encoder()
    item_vectors, _ = embed_texts(text_encoder, texts)
    genre_vectors, _ = embed_texts(text_encoder, GENRES)
    t_texts = time.perf_counter() - t0
    labels = imagenet_class_names()
    top1_labels = collections.Counter(labels[i] for i in probs.vectors.argmax(axis=1))

    n_genres = np.array([len(movies[m][1]) for m in chosen])
    genre_sets = [set(movies[m][1]) for m in chosen]
    harmonic = sum(1 / r for r in range(1, GROUP + 1))
    results = []
    for template, top_k in VARIANTS:
        bridge = ImageLabelBridge(image_encoder, text_encoder, template=template, top_k=top_k)
        label_vectors = bridge.label_vectors
        vectors = label_bridge(probs.vectors, label_vectors, top_k)            # (n, d)
        groups = [slice(g * GROUP, (g + 1) * GROUP) for g in range(N_GROUPS)]
        ranks = np.concatenate([rank_of_truth(vectors[s] @ unit(item_vectors[s]).T)
                                for s in groups])
        first_genre = (vectors @ unit(genre_vectors).T).argmax(axis=1)
        genre_hits = np.array([GENRES[j] in s for j, s in zip(first_genre, genre_sets)])
        # how often the label bridge puts one genre first, whatever the poster
        genre_counts = collections.Counter(GENRES[j] for j in first_genre)
        per_group = [float((ranks[g * GROUP:(g + 1) * GROUP] == 1).mean()) for g in range(N_GROUPS)]
        results.append({
            "label_template": template, "top_k": top_k,
            "item_top1": float((ranks == 1).mean()), "item_top1_per_group": per_group,
            "item_mrr": float((1 / ranks).mean()), "item_top5": float((ranks <= 5).mean()),
            "genre_top1_hit": float(genre_hits.mean()),
            "genre_first_most_common": genre_counts.most_common(3),
        })

    report = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "config": {"posters": len(paths), "group_size": GROUP, "groups": N_GROUPS, "seed": SEED,
                   "image_encoder": image_encoder.fingerprint,
                   "text_encoder": getattr(text_encoder, "fingerprint", type(text_encoder).__name__),
                   "item_text": "<Title (year)>. <genres joined by ', '>"},
        "chance": {"item_top1": 1 / GROUP, "item_mrr": harmonic / GROUP, "item_top5": 5 / GROUP,
                   "genre_top1_hit": float(n_genres.mean() / len(GENRES)),
                   "genre_top1_hit_always_drama": float(np.mean(["Drama" in s for s in genre_sets])),
                   "genre_top1_hit_always_comedy": float(np.mean(["Comedy" in s for s in genre_sets]))},
        "results": results,
        "imagenet_top1_most_common": top1_labels.most_common(10),
        "seconds": {"classify_posters": t_images, "embed_texts": t_texts},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
