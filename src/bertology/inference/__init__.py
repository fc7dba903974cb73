"""Running a trained encoder over text: batched, length-bucketed, padding-free sentence embeddings."""

from .sentence_encoder import SentenceEncoder

__all__ = ["SentenceEncoder"]
