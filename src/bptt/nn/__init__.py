"""Parameter-holding layers and models on top of ``bptt.functional``."""

from bptt.nn.init import orthogonal, recurrent_weights, xavier_uniform
from bptt.nn.layers import (
    Embedding,
    RecurrentStack,
    TemporalAffine,
    dropout_backward,
    dropout_forward,
)
from bptt.nn.models import LanguageModel, LMConfig

# isort: split
# Appended for sequence classification.
from bptt.nn.bidirectional import BidirectionalStack, reverse_valid_index
from bptt.nn.classifier import SequenceConfig, SequenceModel

__all__ = [
    "Embedding",
    "LMConfig",
    "LanguageModel",
    "RecurrentStack",
    "TemporalAffine",
    "dropout_backward",
    "dropout_forward",
    "orthogonal",
    "recurrent_weights",
    "xavier_uniform",
    # sequence classification
    "BidirectionalStack",
    "SequenceConfig",
    "SequenceModel",
    "reverse_valid_index",
]
