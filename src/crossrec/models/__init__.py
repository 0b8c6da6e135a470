"""Recommender models; each file defines one model and registers it by name."""

from crossrec.models.base import (
                                  Recommender,
                                  TrainData,
                                  available_models,
                                  build_model,
                                  model_class,
                                  register,
)

__all__ = ["Recommender", "TrainData", "available_models", "build_model", "model_class",
           "register"]

# Built-in models: importing a module registers it.
from crossrec.models import (  # noqa: E402,F401
    als,
    bpr,
    cb2cf,
    content,
    ease,
    fusion,
    itemknn,
    lightgcn,
    popularity,
    random,
    sasrec,
    userknn,
    usersvd,
)
