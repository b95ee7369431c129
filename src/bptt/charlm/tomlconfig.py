"""``bptt train --config FILE.toml``: training options from a TOML file (standard-library
``tomllib``). Command-line options override the file; the resolved options are written to the
run directory's ``config.json`` as for any run.

Keys are ``TrainConfig``'s fields, spelt as the options without the dashes, with ``-`` or ``_``
(``max-minutes = 20`` or ``max_minutes = 20``), plus ``preset`` and ``out``. ``corpus`` is a list
of files (the positional PATHs). Values must have the field's type (an integer is accepted where
a float is expected); unknown keys, wrong types and files that are not TOML are one-line errors.

    # shakespeare.toml
    preset = "shakespeare"
    corpus = ["input.txt"]
    hidden = 384
    max-minutes = 30
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path

from bptt.charlm.config import TrainConfig

EXTRA_KEYS = {"preset": str, "out": str}


def _field_types() -> dict[str, object]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _type_ok(value: object, hint: object) -> bool:
    if hint in (int,):
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (float,):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if args:                                                     # X | None: None cannot be TOML
        return any(_type_ok(value, a) for a in args if a is not type(None))
    return True


def _describe(hint: object) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) is list:
        return "a list of strings"
    return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))


def load_train_options(path: str | Path) -> dict[str, object]:
    """The options in a TOML file -> {field name: value} (floats as float), validated by type."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"--config {path}: not UTF-8 text (byte {e.start}); "
                         "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config {path}: not valid TOML: {e}") from None
    types = {**_field_types(), **EXTRA_KEYS}
    out: dict[str, object] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in types:
            raise ValueError(f"--config {path}: unknown key {key!r}; the keys are bptt train's "
                             "options without the dashes (see bptt train --help)")
        if not _type_ok(value, types[name]):
            raise ValueError(f"--config {path}: {key} = {value!r} has the wrong type; "
                             f"it must be {_describe(types[name])}")
        if types[name] is float:
            value = float(value)
        out[name] = value
    return out


def merge_config_file(args, fields: list[str], given: dict[str, object]) -> dict[str, object]:
    """``given`` (the options on the command line) on top of ``args.config``'s; fills
    ``args.paths``, ``args.preset`` and ``args.out`` from the file where the command line has
    none (not on ``--resume``, which keeps the run's own). Returns the merged options."""
    if not getattr(args, "config", None):
        return given
    options = load_train_options(args.config)
    corpus = options.pop("corpus", None)
    extra = {key: options.pop(key, None) for key in EXTRA_KEYS}
    if not getattr(args, "resume", None):
        if isinstance(corpus, list) and corpus and not args.paths:
            args.paths = list(corpus)
        for key, value in extra.items():
            if value is not None and getattr(args, key, None) is None:
                setattr(args, key, value)
    return {**{k: v for k, v in options.items() if k in fields}, **given}
