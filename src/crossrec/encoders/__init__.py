"""Pretrained encoders, one file per modality, and the feature store that caches them."""

from crossrec.encoders.base import (MODALITIES, EncodeResult, Encoder, EncoderConfig,
                                    EncoderConfigError, available_encoders, build_encoder,
                                    register_encoder)

__all__ = ["MODALITIES", "EncodeResult", "Encoder", "EncoderConfig", "EncoderConfigError",
           "available_encoders", "build_encoder", "register_encoder"]

# Built-in encoders: importing a module registers it (heavy libraries load lazily inside).
import importlib as _importlib

for _name in ("text", "image", "audio", "video"):
    try:
        _importlib.import_module(f"crossrec.encoders.{_name}")
    except ModuleNotFoundError as _e:           # a module not written yet, not a missing library
        if _e.name != f"crossrec.encoders.{_name}":
            raise
