"""``crossrec train``: fit one model on a protocol's data and write a servable artifact.

Where the protocol trains both stages on the same data (P1), the model is fitted once on
train, early-stopping on valid, and scored on valid and test. Otherwise (P2, P3, P5: test
trains on train + valid) it is fitted on train with valid for early stopping (valid metrics),
then refitted on train + valid with what that run chose (e.g. the epoch count,
``Recommender.refit_params``) and scored on test; the refitted model is the one saved.

Config file (TOML; every key optional, unknown keys are errors)::

    model = "crossrec"
    seed = 0
    encode = ["text", "image"]     # pretrained-encoder modalities (default: what the model wants)
    store = ".cache/features"

    [params]                       # constructor arguments of the model
    dim = 64
    epochs = 20

Example:
    >>> result = train_to_artifact(dataset, split, TrainCommandConfig(model="crossrec"),
    ...                            "artifacts/ml1m")
    >>> result["metrics"]["test"]["ndcg@20"]
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crossrec.config import known_modalities

log = logging.getLogger(__name__)


class TrainCommandConfig(BaseModel):
    """Settings of ``crossrec train`` besides the data (typed; a typo is an error)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("crossrec", description="registered model name")
    params: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")
    seed: int = Field(0, description="the model's seed (stochastic models)")
    encode: list[str] | None = Field(
        None, description="modalities to encode through the feature store; default: the "
        "model's wants_encoded that the catalog has content for")
    store: Path = Field(Path(".cache/features"), description="feature store folder")

    _known_modalities = field_validator("encode")(lambda v: known_modalities(v))

    @field_validator("model")
    @classmethod
    def _known_model(cls, v):
        from crossrec.models import available_models
        if v not in available_models():
            raise ValueError(f"unknown model {v!r}; available: {', '.join(available_models())}")
        return v

    def build(self, **overrides):
        from crossrec.models import model_class

        klass = model_class(self.model)
        names = klass._param_names()
        unknown = sorted(set(self.params) - set(names))
        if unknown:
            raise ValueError(f"params: unknown parameter(s) {unknown} of {self.model!r}; "
                             f"known: {names}")
        seed = {"seed": self.seed} if "seed" in names else {}
        return klass(**{**self.params, **seed, **overrides})


def item_features(dataset, modalities: list[str], store: Path) -> tuple[dict, dict]:
    """(features, encoders): :func:`crossrec.features.dataset_features` of ``modalities``
    (those the catalog has content for), plus the encoder metadata the artifact records
    ({modality: {"config", "fingerprint"}})."""
    from crossrec.encoders.base import EncoderConfig
    from crossrec.features import dataset_features_and_reports

    features, reports = dataset_features_and_reports(dataset, modalities, store, strict=False,
                                                     progress=False)
    encoders = {m: {"config": EncoderConfig(modality=m).model_dump(),
                    "fingerprint": r.fingerprint} for m, r in reports.items()}
    return features, encoders


def train_to_artifact(dataset, split, cfg: TrainCommandConfig, out: str | Path) -> dict:
    """Fit ``cfg.model`` on ``split`` as described above, score valid and test, write the
    artifact to ``out``; returns {"metrics", "params", "refit_params", "seconds"}."""
    from crossrec.artifact import save_artifact
    from crossrec.evaluation import metrics as M
    from crossrec.evaluation.runner import score_stage, target_data, train_data
    from crossrec.models import model_class

    klass = model_class(cfg.model)
    wanted = cfg.encode if cfg.encode is not None else list(getattr(klass, "wants_encoded", ()))
    features, encoders = item_features(dataset, wanted, cfg.store)
    t0 = time.perf_counter()
    valid_train = train_data(split, "valid", features)
    valid_target = target_data(split, "valid")
    model = cfg.build().fit(valid_train, valid_target)
    metrics = {"valid": _means(score_stage(model, split, "valid"), M)}
    refit: dict = {}
    if split.fit["test"] != split.fit["valid"]:
        refit = model.refit_params()
        test_train = train_data(split, "test", features)
        model = cfg.build(**refit).fit(test_train)
    else:
        test_train = valid_train
    metrics["test"] = _means(score_stage(model, split, "test"), M)
    seconds = time.perf_counter() - t0
    config = {"model": cfg.model, "params": model.get_params(), "refit_params": refit,
              "protocol": split.protocol, "encode": wanted, "seconds": seconds}
    recipe = encoded_recipe(list(encoders)) if encoders else None
    if recipe is not None:
        config["content_recipe"] = recipe.model_dump()
    save_artifact(out, model, dataset, test_train.interactions, metrics=metrics,
                  config=config, encoders=encoders,
                  content_vectors=recipe.content_rows(features) if recipe else None)
    return {"metrics": metrics, "params": model.get_params(), "refit_params": refit,
            "seconds": seconds}


def encoded_recipe(modalities: list[str]):
    """The :class:`~crossrec.recipe.ContentRecipe` that encodes a new item's content as
    :func:`item_features` encoded the catalog's (the default encoder of each modality, the
    default text template): its blocks carry the modalities' names, as the training features
    do, and its concatenation is named "encoded", which no training feature is. The service
    places new items and text queries with it; the dataset's own features (genres, years,
    TF-IDF) count as absent for them."""
    from crossrec.encoders import EncoderConfig, build_encoder
    from crossrec.recipe import ContentRecipe

    encoders = {m: build_encoder(EncoderConfig(modality=m)) for m in modalities}
    return ContentRecipe.for_encoders(encoders, name="encoded")


def _means(result, M) -> dict[str, float]:
    return {k: float(M.mean_over_users(v)) for k, v in result.per_user.items()}


__all__ = ["TrainCommandConfig", "encoded_recipe", "item_features", "train_to_artifact"]
