"""Data for the command-line jobs: vocabularies, corpora, batching for truncated BPTT."""

from .corpora import DefaultCorpus, default_corpus
from .text import (
    CorpusError,
    EncodedCorpus,
    SourceInfo,
    StreamBatcher,
    Vocab,
    build_vocab,
    describe_symbols,
    encode_files,
    eval_chunks,
    iter_symbols,
    load_encoded,
    prepare_corpus,
    read_ids,
)

__all__ = [
    "CorpusError",
    "DefaultCorpus",
    "EncodedCorpus",
    "SourceInfo",
    "StreamBatcher",
    "Vocab",
    "build_vocab",
    "default_corpus",
    "describe_symbols",
    "encode_files",
    "eval_chunks",
    "iter_symbols",
    "load_encoded",
    "prepare_corpus",
    "read_ids",
]
