"""Explanations: which modality links a recommended item to the history items named for it,
and what saying so costs a request.

    .venv/bin/python bench/bench_explain.py artifacts/demo --users 100 --k 12

For the first ``--users`` users of the artifact: every ``because`` entry of their top ``--k``
(``Service.recommend``, no HTTP), counted by modality and by (recommended item's medium,
history item's medium, modality), and how often the served answer (each block kept in its
top 64 principal directions) agrees with one computed in every direction. Then the cost: the
same requests timed with the artifact's content rows and with them switched off (every
modality "collaborative", as before the artifact kept them), alternating, ``--passes`` times
each; the medians per request and their ratio. Results: ``bench/results/serve/explain.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path


def main(argv=None) -> None:
    from crossrec.serve.links import ContentLinks
    from crossrec.serve.service import Service
    from crossrec.serve.store import EventStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--out", default="bench/results/serve/explain.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        svc = Service(args.artifact, EventStore(f"sqlite:///{Path(tmp) / 'events.db'}"))
        loaded = svc.loaded
        users = loaded.user_ids[:args.users]
        total, by_media = collections.Counter(), collections.Counter()
        pairs, said = [], []
        for user in users:
            for item in svc.recommend(user, args.k)["items"]:
                for why in item["because"]:
                    if why["reason"] != "history":
                        continue
                    total[why["modality"]] += 1
                    by_media[item["medium"], why["medium"], why["modality"]] += 1
                    pairs.append(tuple(loaded.item_pos[i] for i in (item["item_id"],
                                                                    why["item_id"])))
                    said.append(why["modality"])
        # the served links keep each block in its top 64 directions; against every direction
        art = loaded.artifact
        rows = art.content_vectors if art.content_vectors is not None else loaded.vectors
        exact = ContentLinks(rows, loaded.recipe, rank=max(loaded.recipe.dims.values()))
        agree = sum(a == b for a, b in zip(said, exact.modalities(pairs))) / max(len(pairs), 1)

        def per_request() -> float:
            t0 = time.perf_counter()
            for user in users:
                svc.recommend(user, args.k)
            return (time.perf_counter() - t0) / len(users) * 1e6

        links = loaded.links
        with_rows, without = [], []
        for _ in range(args.passes):
            loaded.links = links
            with_rows.append(per_request())
            loaded.links = None
            without.append(per_request())
        loaded.links = links
    n = sum(total.values())
    result = {
        "artifact": str(args.artifact), "model": loaded.artifact.meta["model"],
        "users": len(users), "k": args.k, "because_entries": n,
        "modality": {m: {"n": c, "share": round(c / n, 4)} for m, c in total.most_common()},
        "agreement_with_every_direction": round(agree, 4),
        "by_media": [{"item": a, "history": b, "modality": m, "n": c}
                     for (a, b, m), c in sorted(by_media.items())],
        "us_per_request": {"with_content_rows": round(statistics.median(with_rows), 1),
                           "without": round(statistics.median(without), 1),
                           "ratio": round(statistics.median(with_rows)
                                          / statistics.median(without), 3),
                           "passes": args.passes},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("model", "because_entries", "modality",
                                             "agreement_with_every_direction",
                                             "us_per_request")}, indent=2))


if __name__ == "__main__":
    main()
