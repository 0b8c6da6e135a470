"""Command line: ``crossrec split``, ``crossrec evaluate``, ``crossrec train``, ``crossrec encode``,
``crossrec demo-data`` and lists."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("crossrec")


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in _csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="dataset name (see `crossrec datasets`)")
    p.add_argument("--data-dir", type=Path, help="folder holding the dataset's files")


def _load(args):
    from crossrec.data.datasets import load_dataset

    t0 = time.perf_counter()
    dataset = load_dataset(args.dataset, args.data_dir)
    log.info("loaded %s in %.1fs: %s", args.dataset, time.perf_counter() - t0,
             json.dumps(dataset.summary()))
    return dataset


def cmd_split(args) -> int:
    from crossrec.data.split import write_split
    from crossrec.evaluation.protocols import make_split

    split = make_split(_load(args), args.protocol)
    write_split(split, args.out)
    print(json.dumps(split.stats(), indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from crossrec.config import EvaluateConfig, load_toml
    from crossrec.data.split import read_split
    from crossrec.evaluation.protocols import make_split
    from crossrec.evaluation.report import format_table, write_report
    from crossrec.evaluation.runner import evaluate, write_run
    from crossrec.features import dataset_features
    from crossrec.models import model_class

    values = load_toml(args.config) if args.config else {}
    for key in ("dataset", "data_dir", "protocol", "split", "models", "seeds", "out",
                "export_runs", "depth", "encode", "store"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    cfg = EvaluateConfig(**values)
    args.dataset, args.data_dir = cfg.dataset, cfg.data_dir
    dataset = _load(args)
    split = read_split(cfg.split, dataset) if cfg.split else make_split(dataset, cfg.protocol)
    protocol = split.protocol
    stats = split.stats()
    log.info("split: %s", json.dumps(stats))
    wanted = cfg.encode if cfg.encode is not None else \
        [m for name in cfg.models for m in model_class(name).wants_encoded]
    features = dataset_features(dataset, wanted, cfg.store, strict=cfg.encode is not None)
    if not features:
        needy = [m for m in cfg.models if model_class(m).needs_features]
        if needy:
            raise ValueError(f"model(s) {needy} need item content, and dataset {dataset.name!r} "
                             f"has none (no text, categories, attributes or feature matrices)")
    vectors = features["content"].matrix if "content" in features else None
    depth = max(cfg.depth, 100 if cfg.export_runs else 20)
    results = []
    for name in cfg.models:
        t0 = time.perf_counter()
        res = evaluate(split, name, seeds=cfg.seeds, features=features,
                       grid=cfg.grids.get(name), item_vectors=vectors, depth=depth)
        results.append(res)
        s = res.summary["ndcg@20"]
        log.info("%s: test ndcg@20 %.4f ± %.4f (%.1fs with tuning)", name, s["mean"], s["std"],
                 time.perf_counter() - t0)
        if cfg.export_runs:                  # the first seed's, and each seed's if several
            path = write_run(res.test[res.seeds[0]], split, cfg.export_runs / f"{name}.tsv")
            log.info("wrote run %s", path)
            if len(res.seeds) > 1:
                for seed in res.seeds:
                    write_run(res.test[seed], split, cfg.export_runs / f"{name}.seed{seed}.tsv")
                log.info("wrote runs %s.seed{%s}.tsv", cfg.export_runs / name,
                         ",".join(map(str, res.seeds)))
    report = write_report(results, cfg.out, protocol, dataset.name, stats)
    print(format_table(results))
    print(f"report: {report}")
    return 0


def cmd_train(args) -> int:
    from crossrec.config import load_toml
    from crossrec.data.split import read_split
    from crossrec.evaluation.protocols import make_split
    from crossrec.fitting import TrainCommandConfig, train_to_artifact

    missing = [f"--{k.replace('_', '-')}" for k in ("dataset", "data_dir")
               if getattr(args, k) is None]
    if missing:
        raise ValueError(f"train: {' and '.join(missing)} required")
    values = load_toml(args.config) if args.config else {}
    for key in ("model", "seed"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    cfg = TrainCommandConfig(**values)
    dataset = _load(args)
    split = read_split(args.split, dataset) if args.split else make_split(dataset, args.protocol)
    result = train_to_artifact(dataset, split, cfg, args.out)
    for stage in ("valid", "test"):
        m = result["metrics"][stage]
        print(f"{stage}: ndcg@20 {m['ndcg@20']:.4f}  recall@20 {m['recall@20']:.4f}")
    print(f"artifact: {args.out} ({result['seconds']:.1f}s)")
    return 0


def cmd_encode(args) -> int:
    from datetime import datetime

    from crossrec.encoders.pipeline import encode_catalog, load_encode_config

    configs, template = load_encode_config(args.config) if args.config else ({}, None)
    if args.template is not None:
        template = args.template
    modalities = args.modalities or ["text"]
    dataset = _load(args)
    t0 = time.perf_counter()
    features, reports = encode_catalog(dataset.catalog, modalities, configs, args.store,
                                       template=template, progress=not args.no_progress)
    for modality, r in reports.items():
        print(f"{modality}: {r.n_items} items, {r.n_encoded} encoded, {r.n_cached} cached, "
              f"{r.n_missing_input} missing input, {r.n_failed} failed, "
              f"{r.items_per_second:.1f} items/s, {r.seconds:.1f}s  [{r.fingerprint}]")
        for item, why in list(r.failures.items())[:3]:
            print(f"  failed {item}: {why}")
        if r.n_failed > 3:
            print(f"  ... and {r.n_failed - 3} more (see the report)")
    stamp = datetime.now()
    report_path = args.report or (args.store / "reports"
                                  / f"{stamp.strftime('%Y%m%dT%H%M%S-%f')}.json")
    report = {"dataset": dataset.name, "data_dir": str(args.data_dir), "store": str(args.store),
              "template": template, "created": stamp.isoformat(timespec="seconds"),
              "seconds": time.perf_counter() - t0,
              "modalities": {m: {**r.to_dict(), "dim": int(features[m].matrix.shape[1]),
                                 "n_present": int(features[m].mask.sum())}
                             for m, r in reports.items()}}
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"report: {report_path}")
    return 0


def cmd_demo_data(args) -> int:
    from crossrec.data.demo import write_demo

    out = write_demo(args.out, n_users=args.users, n_items=args.items, seed=args.seed)
    print(f"wrote demo dataset to {out}")
    return 0


def cmd_list(args) -> int:
    if args.what == "models":
        from crossrec.models import available_models, model_class
        for name in available_models():
            print(f"{name:10s} grid={json.dumps(model_class(name).param_grid)}")
    elif args.what == "datasets":
        from crossrec.data.datasets import DATASETS
        print("\n".join(sorted(DATASETS)))
    else:
        from crossrec.evaluation.protocols import PROTOCOLS
        for name, fn in PROTOCOLS.items():
            print(f"{name:8s} {(fn.__doc__ or '').strip().splitlines()[0]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crossrec", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("split", help="write a protocol's split folder")
    _add_data_args(s)
    s.add_argument("--protocol", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.set_defaults(fn=cmd_split)

    e = sub.add_parser("evaluate", help="tune on valid, score on test, write a report")
    _add_data_args(e)
    src = e.add_mutually_exclusive_group()
    src.add_argument("--protocol")
    src.add_argument("--split", type=Path, help="a split folder (PROTOCOL.md format)")
    e.add_argument("--models", type=_csv_list, help="comma-separated, e.g. pop,itemknn,als")
    e.add_argument("--seeds", type=_int_list, help="e.g. 0,1,2 (stochastic models)")
    e.add_argument("--export-runs", type=Path, help="write <model>.tsv test top-100 runs here")
    e.add_argument("--out", type=Path, help="results folder (default runs/latest)")
    e.add_argument("--depth", type=int, help="ranking depth kept per user (default 20)")
    e.add_argument("--encode", type=_csv_list, help="modalities to encode with the pretrained "
                   "encoders, e.g. text,image, or 'none' (default: what the models ask for)")
    e.add_argument("--store", type=Path, help="feature store folder (default .cache/features)")
    e.add_argument("--config", type=Path, help="TOML file with the same settings (and grids)")
    e.set_defaults(fn=cmd_evaluate)

    t = sub.add_parser("train", help="fit one model on a protocol's data, write an artifact")
    _add_data_args(t)
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--protocol")
    src.add_argument("--split", type=Path, help="a split folder (PROTOCOL.md format)")
    t.add_argument("--model", help="registered model name (default crossrec)")
    t.add_argument("--seed", type=int, help="the model's seed")
    t.add_argument("--config", type=Path, help="TOML: model, seed, encode, store, [params]")
    t.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    t.set_defaults(fn=cmd_train)

    n = sub.add_parser("encode", help="encode the catalog's modalities into the feature store")
    _add_data_args(n)
    n.add_argument("--modalities", type=_csv_list, help="comma-separated, e.g. text,image "
                   "(default text)")
    n.add_argument("--store", type=Path, default=Path(".cache/features"),
                   help="feature store folder (default .cache/features)")
    n.add_argument("--config", type=Path, help="TOML file: [encoders.<modality>] tables with "
                   "EncoderConfig fields, optional template")
    n.add_argument("--template", help='item text template, e.g. "{title}. Genres: {categories}"')
    n.add_argument("--report", type=Path, help="where to write the report JSON (default "
                   "<store>/reports/<timestamp>.json)")
    n.add_argument("--no-progress", action="store_true", help="no progress bars")
    n.set_defaults(fn=cmd_encode)

    d = sub.add_parser("demo-data", help="generate the synthetic multi-media demo dataset")
    d.add_argument("--out", type=Path, default=Path("data/demo"))
    d.add_argument("--users", type=int, default=600)
    d.add_argument("--items", type=int, default=800)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(fn=cmd_demo_data)

    from crossrec.serve.commands import add_commands  # serve, retrain, demo

    add_commands(sub)

    for what in ("models", "datasets", "protocols"):
        sp_ = sub.add_parser(what, help=f"list the {what}")
        sp_.set_defaults(fn=cmd_list, what=what)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "encode" or (args.command in ("split", "evaluate")
                                    and not getattr(args, "config", None)):
        missing = [f"--{k.replace('_', '-')}" for k in ("dataset", "data_dir")
                   if getattr(args, k) is None]
        if missing:
            parser.error(f"{args.command}: {' and '.join(missing)} required")
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        from pydantic import ValidationError
        if isinstance(e, ValidationError):
            msgs = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'config'}: {x['msg']}"
                             for x in e.errors())
            print(f"crossrec: error: {msgs}", file=sys.stderr)
        else:
            print(f"crossrec: error: {e}", file=sys.stderr)
        if args.verbose:
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())
