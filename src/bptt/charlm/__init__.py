"""The character-level language model application (``bptt train``, ``sample``, ``score``).

- ``config``      TrainConfig, presets, learning-rate schedule, option checks
- ``text``        vocabularies, UTF-8 corpora encoded to integer ids, stream batching
- ``corpora``     the default corpus (Shakespeare, or the standard library's source)
- ``trainer``     the training loop: truncated BPTT with carried state, evaluation, rollback
- ``checkpoint``  safetensors + JSON checkpoints, written atomically, never pickled
- ``sampling``    loading a run, sampling, scoring
- ``console``     the progress bar and log
"""
