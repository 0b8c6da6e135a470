"""crossrec: cross-media recommendation powered by pretrained language models."""

__version__ = "0.1.0"
