"""The character-level language model application (``bptt train``, ``sample``, ``score``).

- ``config``      TrainConfig (every option, its range checked once), presets, the lr schedule
- ``text``        vocabularies, UTF-8 corpora encoded to integer ids (BOM stripped)
- ``data``        stream batching for truncated BPTT, the train/validation split, evaluation
- ``corpora``     the default corpus (Shakespeare, or the standard library's source)
- ``rundir``      the run directory: its files, marker and lock, atomic writes, the JSONL reader
- ``state``       TrainState (what a step changes) and its checkpoint form, rollback snapshot
- ``clock``       the time budget carried across resumes, when to stop
- ``trainer``     the training loop: truncated BPTT with carried state, evaluation, rollback
- ``opening``     a new run (corpus encoded, model built) or an existing one read back, validated
                  key by key, to continue it exactly
- ``progress``    what a run prints and logs
- ``memory``      memory estimates checked before anything is allocated
- ``checkpoint``  safetensors + JSON checkpoints with a versioned schema, never pickled
- ``sampling``    loading a run, sampling, scoring
- ``console``     the progress bar, the log, Ctrl-C handling
"""
