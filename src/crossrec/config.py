"""Typed configuration: TOML file -> validated objects. A typo is an error, never a default.

Example ``evaluate.toml``::

    dataset = "ml-1m"
    data_dir = "../shared/data/ml-1m"
    protocol = "p1"
    models = ["pop", "als"]
    seeds = [0, 1, 2]

    [grids.als]            # replaces the model's built-in grid
    factors = [128]
    regularization = [0.1, 1.0, 10.0]
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crossrec.evaluation.protocols import PROTOCOLS


def known_modalities(v: list[str] | None) -> list[str] | None:
    """Validate an ``encode`` list: every entry a modality; "none" alone means none."""
    if v is None:
        return v
    v = [m for m in v if m != "none"]
    from crossrec.encoders.base import MODALITIES
    bad = [m for m in v if m not in MODALITIES]
    if bad:
        raise ValueError(f"unknown modality {bad}; known: {', '.join(MODALITIES)}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EvaluateConfig(_Strict):
    """Settings of ``crossrec evaluate`` (every field can also be given on the command line)."""

    dataset: str = Field(description="dataset name, e.g. ml-1m, douban, folder, demo")
    data_dir: Path = Field(description="folder holding the dataset's files")
    protocol: str | None = Field(None, description="protocol name; or give `split`")
    split: Path | None = Field(None, description="a split folder to evaluate on instead")
    models: list[str] = Field(default_factory=lambda: ["pop", "itemknn", "als"])
    seeds: list[int] = Field(default_factory=lambda: [0],
                             description="seeds for stochastic models (mean and std reported)")
    grids: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict, description="per model, a grid replacing its built-in one")
    out: Path = Field(Path("runs/latest"), description="results folder (JSON, report, plot)")
    export_runs: Path | None = Field(None, description="write each model's test top-100 here")
    depth: int = Field(20, ge=20, le=1000, description="ranking depth kept per user")
    encode: list[str] | None = Field(
        None, description="modalities to encode with the pretrained encoders (feature store); "
        "default: those the models ask for and the catalog has; [] or ['none'] for none")
    store: Path = Field(Path(".cache/features"), description="feature store folder")

    _known_modalities = field_validator("encode")(lambda v: known_modalities(v))

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, v):
        if v is not None and v not in PROTOCOLS:
            raise ValueError(f"unknown protocol {v!r}; known: {', '.join(PROTOCOLS)}")
        return v

    @field_validator("models")
    @classmethod
    def _known_models(cls, v):
        from crossrec.models import available_models
        known = available_models()
        bad = [m for m in v if m not in known]
        if bad:
            raise ValueError(f"unknown model(s) {bad}; available: {', '.join(known)}")
        if not v:
            raise ValueError("no model given")
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.protocol is None) == (self.split is None):
            raise ValueError("give exactly one of `protocol` and `split`")
        from crossrec.models import model_class
        for name, grid in self.grids.items():
            if name not in self.models:
                raise ValueError(f"grids.{name}: model {name!r} is not in models {self.models}")
            params = model_class(name)._param_names()
            bad = [p for p in grid if p not in params]
            if bad:
                raise ValueError(f"grids.{name}: unknown parameter(s) {bad}; known: {params}")
        return self


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
