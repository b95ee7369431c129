"""Parameter-holding layers and models on top of ``bptt.functional``."""

from bptt.nn.bidirectional import BidirectionalStack, reverse_valid_index
from bptt.nn.classifier import SequenceConfig, SequenceModel
from bptt.nn.init import orthogonal, recurrent_weights, xavier_uniform
from bptt.nn.layers import (
    Embedding,
    RecurrentStack,
    TemporalAffine,
    dropout_backward,
    dropout_forward,
    one_hot,
)
from bptt.nn.models import LanguageModel, LMConfig

__all__ = [
    "BidirectionalStack",
    "Embedding",
    "LMConfig",
    "LanguageModel",
    "RecurrentStack",
    "SequenceConfig",
    "SequenceModel",
    "TemporalAffine",
    "dropout_backward",
    "dropout_forward",
    "one_hot",
    "orthogonal",
    "recurrent_weights",
    "reverse_valid_index",
    "xavier_uniform",
]
