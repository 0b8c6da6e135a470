"""Throughput of MobileNetV2Encoder.encode on the ML-1M posters against the bare forward pass.

* pipeline: ``encoder.encode(paths)``: decoding and the eval transform on a pool of
  ``num_workers`` threads, overlapped with the forward pass (batch 32), L2 normalisation;
* bare: every poster decoded and transformed first (uint8, untimed); then only the forward
  pass (``net.features_pooled``, the encoder's model call) is timed, batch by batch, on
  tensors normalised outside the timer, in ``torch.inference_mode``, with the same batch size
  and torch threads.

ratio = pipeline items/s / bare items/s (goal >= 0.8). Each configuration
(decode workers x torch threads) runs both, after a warm-up batch. Peak RSS is sampled from
/proc/self/status during each pipeline run. The posters are the ``<MovieID>.jpg`` files in
``$CROSSREC_DATA_DIR/ml-1m/posters`` (default ``<repo>/../shared/data``), sorted by MovieID;
when a warm-up estimate says the full set would take more than ``--budget`` seconds the first
``--subset`` posters are used instead (recorded in the output).

Run: ``python bench/bench_image_encode.py`` -> ``bench/results/image_encode.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
import torch

from crossrec.encoders import EncoderConfig, build_encoder
from crossrec.encoders.image import imagenet_eval_crop, imagenet_normalise, open_image

OUT = Path(__file__).resolve().parent / "results" / "image_encode.json"


def data_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("CROSSREC_DATA_DIR", default))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """Samples the resident set size every 20 ms while in the ``with`` block."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def encoder_for(workers: int, batch: int):
    return build_encoder(EncoderConfig(modality="image", batch_size=batch, device="cpu",
                                       options={"num_workers": workers}))


def bare_forward(net, decoded: np.ndarray, batch: int) -> float:
    """Seconds spent in the forward pass alone over all of ``decoded`` (n, 224, 224, 3)."""
    total = 0.0
    for start in range(0, len(decoded), batch):
        x = imagenet_normalise(decoded[start:start + batch])
        t0 = time.perf_counter()
        with torch.inference_mode():
            net.features_pooled(x)
        total += time.perf_counter() - t0
    return total


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="1x2,1x1",
                    help="comma-separated WORKERSxTHREADS (decode threads x torch threads)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds allowed for the full set")
    ap.add_argument("--subset", type=int, default=1000)
    args = ap.parse_args(argv)
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]

    posters = data_dir() / "ml-1m" / "posters"
    paths = sorted((str(p) for p in posters.glob("*.jpg")), key=lambda p: int(Path(p).stem))
    load_start = time.perf_counter()
    rss_start = rss_mb()

    # warm-up (model load, first-call kernels) and an estimate of the whole run
    torch.set_num_threads(configs[0][1])
    enc = encoder_for(configs[0][0], args.batch)
    enc.encode(paths[: args.batch])
    t0 = time.perf_counter()
    enc.encode(paths[args.batch: 3 * args.batch])
    per_item = (time.perf_counter() - t0) / (2 * args.batch)
    estimate = per_item * len(paths) * 2 * len(configs)             # pipeline + bare per config
    n_total = len(paths)
    subset_reason = None
    if estimate > args.budget:
        paths = paths[: args.subset]
        subset_reason = (f"estimated {estimate:.0f} s for all {n_total} posters x {len(configs)} "
                         f"configurations > budget {args.budget:.0f} s")
    print(f"{len(paths)} posters, {per_item * 1000:.1f} ms/item in warm-up"
          + (f" (subset: {subset_reason})" if subset_reason else ""), flush=True)

    runs = []
    for workers, threads in configs:
        torch.set_num_threads(threads)
        enc = encoder_for(workers, args.batch)
        enc.encode(paths[: args.batch])                                 # warm-up
        load = os.getloadavg()[0]
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            out = enc.encode(paths)
            seconds = time.perf_counter() - t0
        runs.append({"num_workers": workers, "torch_threads": threads,
                     "pipeline_s": seconds, "pipeline_items_per_s": len(paths) / seconds,
                     "pipeline_peak_rss_mb": peak.peak, "encoded": int(out.mask.sum()),
                     "failed": len(out.errors), "loadavg_1min_before": load})
        print(f"pipeline {workers}x{threads}: {len(paths) / seconds:.1f} items/s, "
              f"peak RSS {peak.peak:.0f} MB", flush=True)

    t0 = time.perf_counter()
    decoded = np.stack([imagenet_eval_crop(open_image(p)) for p in paths])    # (n, 224, 224, 3)
    decode_s = time.perf_counter() - t0
    net = enc.net
    for run in runs:
        torch.set_num_threads(run["torch_threads"])
        bare_forward(net, decoded[: args.batch], args.batch)            # warm-up
        seconds = bare_forward(net, decoded, args.batch)
        run.update(bare_forward_s=seconds, bare_items_per_s=len(paths) / seconds,
                   ratio=run["pipeline_items_per_s"] / (len(paths) / seconds),
                   loadavg_1min_after_bare=os.getloadavg()[0])
        print(f"bare {run['num_workers']}x{run['torch_threads']}: {run['bare_items_per_s']:.1f} "
              f"items/s, ratio {run['ratio']:.2f}", flush=True)

    report = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "note": "2 cores shared with other jobs: the load average is recorded per run"},
        "config": {"posters": len(paths), "posters_available": n_total, "subset": subset_reason,
                   "batch_size": args.batch, "fingerprint": enc.fingerprint,
                   "order": "sorted by MovieID"},
        "serial_decode_transform_s": decode_s,
        "serial_decode_transform_items_per_s": len(paths) / decode_s,
        "rss_mb_at_start": rss_start,
        "runs": runs,
        "best_ratio": max(r["ratio"] for r in runs),
        "total_s": time.perf_counter() - load_start,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
