"""Pretrained encoders, one file per modality, and the feature store that caches them."""

# Built-in encoders: importing a module registers it (heavy libraries load lazily inside).
from crossrec.encoders import audio, image, text, video  # noqa: E402,F401,I001
from crossrec.encoders.base import (
                                    MODALITIES,
                                    Encoder,
                                    EncoderConfig,
                                    EncoderConfigError,
                                    EncodeResult,
                                    available_encoders,
                                    build_encoder,
                                    register_encoder,
)
from crossrec.encoders.pipeline import encode_catalog  # noqa: E402
from crossrec.encoders.store import FeatureStore  # noqa: E402

__all__ = ["MODALITIES", "EncodeResult", "Encoder", "EncoderConfig", "EncoderConfigError",
           "FeatureStore", "available_encoders", "build_encoder", "encode_catalog",
           "register_encoder"]
