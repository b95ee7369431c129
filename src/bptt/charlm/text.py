"""Text corpora as compact integer arrays and vocabularies (batching: ``charlm.data``).

A corpus is read twice, in fixed-size chunks, so memory stays bounded whatever the file size:

1. ``build_vocab``: validate UTF-8 (or take raw bytes), hash the bytes, collect the distinct
   symbols (Unicode code points, or byte values in byte mode) and count them;
2. ``encode_files``: map every symbol to its index in the sorted vocabulary and write the ids into
   a ``.npy`` file (uint8 for up to 256 symbols, uint16 or uint32 above) with ordinary writes,
   then reopen it memory-mapped read-only.

The vocabulary is the sorted list of distinct code points: the same text always gives the same
ids (min-char-rnn's ``list(set(data))`` does not). A UTF-8 byte-order mark at the start of a file
is dropped (it is not text). Every file is checked to be a regular file before it is opened.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ENCODINGS = ("utf-8", "bytes")
CHUNK_BYTES = 1 << 22            # bytes read per chunk (4 MiB)
UTF8_BOM = b"\xef\xbb\xbf"      # stripped from the start of a UTF-8 file (not a symbol)
BINARY_SNIFF = 8000              # a NUL byte in the first this-many bytes means "binary" (as git)


class CorpusError(ValueError):
    """A corpus file that cannot be used; the message names the problem and the fix."""


def _check_encoding(encoding: str) -> str:
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; use one of {list(ENCODINGS)}")
    return encoding


def _char_name(cp: int, encoding: str) -> str:
    if encoding == "bytes":
        return f"byte 0x{cp:02x}"
    return f"{chr(cp)!r} (U+{cp:04X})"


def describe_symbols(cps: Sequence[int], encoding: str = "utf-8", limit: int = 12) -> str:
    """A readable list such as "'é' (U+00E9), '\\t' (U+0009)" of at most ``limit`` symbols."""
    names = [_char_name(int(c), encoding) for c in list(cps)[:limit]]
    more = len(cps) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Vocab:
    """Sorted distinct symbols: Unicode code points (``utf-8``) or byte values (``bytes``).

    Id k stands for ``symbols[k]``. Stored in every checkpoint, so sampling and scoring never
    need the training data.
    """

    symbols: tuple[int, ...]
    encoding: str = "utf-8"
    _array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_encoding(self.encoding)
        arr = np.asarray(self.symbols, dtype=np.int64)
        top = 0xFF if self.encoding == "bytes" else 0x10FFFF
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("a vocabulary needs at least one symbol")
        if np.any(np.diff(arr) <= 0) or arr[0] < 0 or arr[-1] > top:
            raise ValueError("vocabulary symbols must be distinct, sorted and in range")
        object.__setattr__(self, "_array", arr.astype(np.uint32))

    @property
    def size(self) -> int:
        return len(self.symbols)

    @property
    def id_dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        V = self.size
        return np.dtype(np.uint8 if V <= 1 << 8 else np.uint16 if V <= 1 << 16 else np.uint32)

    def to_json(self) -> dict:
        return {"encoding": self.encoding, "symbols": list(self.symbols)}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        return cls(tuple(int(s) for s in d["symbols"]), d.get("encoding", "utf-8"))

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(tuple(sorted({ord(c) for c in text})))

    def lookup(self, cps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Symbols (any unsigned int array) -> (ids int64, known bool), ids 0 where unknown."""
        sym = self._array
        idx = np.searchsorted(sym, cps)                        # int64, in place from here on
        np.minimum(idx, sym.size - 1, out=idx)
        known = sym[idx] == cps
        idx[~known] = 0
        return idx, known

    def symbols_of(self, text: str) -> np.ndarray:
        """The symbols of ``text``: its code points, or its UTF-8 bytes in byte mode."""
        if self.encoding == "bytes":
            return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")

    def encode(self, text: str, skip_unknown: bool = False,
               what: str = "the text") -> tuple[np.ndarray, list[int]]:
        """Text -> (ids int64, the sorted unknown symbols that were skipped).

        Unknown symbols raise ``CorpusError`` listing them unless ``skip_unknown``.
        """
        cps = self.symbols_of(text)
        ids, known = self.lookup(cps)
        missing = sorted({int(c) for c in cps[~known]})
        if missing and not skip_unknown:
            raise CorpusError(f"{what} has {len(missing)} character(s) that are not in the "
                              f"model's vocabulary: {describe_symbols(missing, self.encoding)}; "
                              f"remove them or pass --skip-unknown to drop them")
        return ids[known], missing

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        sym = self._array[np.asarray(ids, dtype=np.int64)]
        if self.encoding == "bytes":
            return sym.astype(np.uint8).tobytes().decode("utf-8", errors="replace")
        return sym.astype("<u4").tobytes().decode("utf-32-le")


# ---------------------------------------------------------------- reading files in chunks

def _utf8_cut(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not end inside a UTF-8 sequence."""
    n = len(data)
    i, back = n - 1, 0
    while i >= 0 and back < 3 and (data[i] & 0xC0) == 0x80:     # continuation bytes
        i, back = i - 1, back + 1
    if i < 0:
        return n
    lead = data[i]
    need = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else \
        4 if lead >> 3 == 0b11110 else 1
    return i if i + need > n else n


def check_corpus_file(path: Path) -> None:
    """A regular file (stat before open: a FIFO or a device would block or never end)."""
    from bptt.charlm.rundir import RunDirError, check_regular_file

    try:
        check_regular_file(path, "text file")
    except RunDirError as e:
        raise CorpusError(str(e)) from None


def iter_symbols(path: str | os.PathLike, encoding: str = "utf-8",
                 chunk_bytes: int = CHUNK_BYTES, hasher=None) -> Iterator[np.ndarray]:
    """Yield the file's symbols chunk by chunk: uint8 arrays (ASCII chunks or byte mode) or
    uint32 code points. Invalid UTF-8 raises ``CorpusError`` naming the byte offset."""
    path = Path(path)
    _check_encoding(encoding)
    check_corpus_file(path)
    with open(path, "rb") as f:
        carry, offset, first = b"", 0, True            # offset: file position of data[0]
        while True:
            block = f.read(chunk_bytes)
            eof = not block
            if hasher is not None:
                hasher.update(block)
            if first:
                block, offset = _first_block(path, block, encoding)
                first = False
            data = carry + block
            if not data:
                if eof:
                    return
                continue
            if encoding == "bytes":
                yield np.frombuffer(data, dtype=np.uint8)
                carry = b""
                offset += len(data)
                continue
            cut = _utf8_cut(data) if not eof else len(data)
            part = data[:cut]
            if part:
                yield _decode_utf8(path, part, offset)
            carry = data[cut:]
            offset += cut
            if eof:
                return


def _first_block(path: Path, block: bytes, encoding: str) -> tuple[bytes, int]:
    """The file's first block without its byte-order mark, and the mark's length in bytes (the
    file offset of the block's first byte). Refuses a binary file (a NUL byte) in utf-8 mode."""
    if encoding != "utf-8":
        return block, 0
    nul = block.find(b"\0", 0, BINARY_SNIFF)
    if nul >= 0:
        raise CorpusError(f"{path} looks like a binary file (NUL byte at offset {nul}); give a "
                          f"text file, or --encoding bytes to model its raw bytes")
    if block.startswith(UTF8_BOM):
        return block[len(UTF8_BOM):], len(UTF8_BOM)     # a byte-order mark is not text
    return block, 0


def _decode_utf8(path: Path, part: bytes, offset: int) -> np.ndarray:
    """The symbols of ``part`` (whole characters; ``offset`` is the file position of part[0]):
    uint8 when it is ASCII, else uint32 code points. Invalid UTF-8 raises ``CorpusError``."""
    try:
        text = part.decode("utf-8")
    except UnicodeDecodeError as e:
        pos = offset + e.start
        bad = part[e.start]
        raise CorpusError(
            f"{path} is not valid UTF-8: byte 0x{bad:02x} at byte offset {pos} "
            f"({e.reason}); convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8) or "
            f"pass --encoding bytes to model its raw bytes") from None
    if text.isascii():
        return np.frombuffer(part, dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


@dataclass
class SourceInfo:
    path: str
    bytes: int
    sha256: str
    symbols: int


def build_vocab(paths: Sequence[str | os.PathLike], encoding: str = "utf-8",
                chunk_bytes: int = CHUNK_BYTES) -> tuple[Vocab, list[SourceInfo]]:
    """First pass: validate every file, hash it, and collect the sorted distinct symbols."""
    if not paths:
        raise CorpusError("no corpus files given")
    seen = np.zeros(256, dtype=bool)            # ASCII / byte symbols seen
    other: set[int] = set()                     # code points >= 256
    infos = []
    for p in paths:
        h = hashlib.sha256()
        count = 0
        for cps in iter_symbols(p, encoding, chunk_bytes, hasher=h):
            count += cps.size
            if cps.dtype == np.uint8:
                seen |= np.bincount(cps, minlength=256) > 0
            else:
                u = np.unique(cps)
                small = u[u < 256]
                seen[small] = True
                other.update(int(c) for c in u[u >= 256])
        if count == 0:
            raise CorpusError(f"{p} is empty; give a file with some text in it")
        infos.append(SourceInfo(str(p), os.path.getsize(p), h.hexdigest(), count))
    symbols = tuple(int(c) for c in np.flatnonzero(seen)) + tuple(sorted(other))
    return Vocab(symbols, encoding), infos


def _ids_of(vocab: Vocab, cps: np.ndarray, lut: np.ndarray) -> np.ndarray:
    if cps.dtype == np.uint8:
        return lut[cps]
    ids, known = vocab.lookup(cps)
    if not known.all():                          # the files changed between the two passes
        raise CorpusError("the corpus changed while it was being read; try again")
    return ids


def _byte_lut(vocab: Vocab) -> np.ndarray:
    """Byte value -> id (-1 where the byte is not a symbol), int16 to keep chunks small."""
    lut = np.full(256, -1, dtype=np.int16)
    for k, s in enumerate(vocab.symbols):
        if s < 256:
            lut[s] = k
    return lut


def encode_files(paths: Sequence[str | os.PathLike], vocab: Vocab, total: int,
                 out_path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Second pass: write the ids of all files, concatenated, to ``out_path`` (.npy) and return
    them memory-mapped read-only. ``total`` is the symbol count from ``build_vocab``.

    The file is written with ordinary writes (a ``.npy`` header, then the ids chunk by chunk)
    into a temporary beside it and renamed when complete: a full disk is an OSError (ENOSPC)
    with the temporary removed, never a bus error from a memory map."""
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    lut = _byte_lut(vocab)
    dtype = vocab.id_dtype
    pos = 0
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                    "shape": (total,)})
            for p in paths:
                for cps in iter_symbols(p, vocab.encoding, chunk_bytes):
                    ids = _ids_of(vocab, cps, lut)
                    if ids.min(initial=0) < 0 or pos + ids.size > total:
                        raise CorpusError("the corpus changed while it was being read; try "
                                          "again")
                    f.write(ids.astype(dtype, copy=False).tobytes())
                    pos += ids.size
            if pos != total:
                raise CorpusError("the corpus changed while it was being read; try again")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return np.load(out_path, mmap_mode="r", allow_pickle=False)


def read_ids(path: str | os.PathLike, vocab: Vocab,
             skip_unknown: bool = False) -> tuple[np.ndarray, list[int]]:
    """A whole file as ids (in memory, the vocabulary's compact dtype) for scoring.

    Returns (ids, unknown symbols skipped). Unknown symbols raise ``CorpusError`` listing them
    unless ``skip_unknown``.
    """
    parts: list[np.ndarray] = []
    missing: set[int] = set()
    lut = _byte_lut(vocab)
    for cps in iter_symbols(path, vocab.encoding):
        if cps.dtype == np.uint8:
            ids = lut[cps]
            known = ids >= 0
        else:
            ids, known = vocab.lookup(cps)
        if not known.all():
            missing.update(int(c) for c in np.unique(cps[~known]))
            ids = ids[known]
        parts.append(ids.astype(vocab.id_dtype))
    if missing and not skip_unknown:
        raise CorpusError(f"{path} has {len(missing)} character(s) that are not in the model's "
                          f"vocabulary: {describe_symbols(sorted(missing), vocab.encoding)}; "
                          f"pass --skip-unknown to drop them")
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=vocab.id_dtype)
    return ids, sorted(missing)


@dataclass
class EncodedCorpus:
    """A corpus as ids (usually memory-mapped), its vocabulary and where it came from."""

    ids: np.ndarray
    vocab: Vocab
    sources: list[SourceInfo]

    def split(self, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """(train, val) by position: the last ``val_fraction`` of the symbols is validation."""
        n = len(self.ids)
        n_val = round(float(n * val_fraction))
        return self.ids[:n - n_val], self.ids[n - n_val:]

    def meta(self) -> dict:
        return {"symbols": len(self.ids), "id_dtype": str(self.ids.dtype),
                "vocab": self.vocab.to_json(),
                "sources": [vars(s) for s in self.sources]}


def prepare_corpus(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike,
                   encoding: str = "utf-8", chunk_bytes: int = CHUNK_BYTES) -> EncodedCorpus:
    """Both passes: validate and encode ``paths`` into ``out_path`` (.npy), memory-mapped."""
    vocab, infos = build_vocab(paths, encoding, chunk_bytes)
    total = sum(s.symbols for s in infos)
    ids = encode_files(paths, vocab, total, out_path, chunk_bytes)
    return EncodedCorpus(ids, vocab, infos)


def load_encoded(npy_path: str | os.PathLike, meta: dict) -> EncodedCorpus:
    """Reopen an encoded corpus written by ``prepare_corpus`` (never unpickles); its length,
    dtype and vocabulary checked against ``meta`` (corpus.json)."""
    from bptt.charlm.rundir import RunDirError, check_regular_file

    npy_path = Path(npy_path)
    damaged = (f"{npy_path} does not match its corpus.json; the run directory is damaged "
               f"(start a new run with bptt train --out DIR)")
    try:
        check_regular_file(npy_path, "encoded corpus")
        ids = np.load(npy_path, mmap_mode="r", allow_pickle=False)
        vocab = Vocab.from_json(meta["vocab"])
        sources = [SourceInfo(**s) for s in meta["sources"]]
    except RunDirError as e:
        raise CorpusError(f"{e}; the run directory is incomplete") from None
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        raise CorpusError(damaged) from None
    if (ids.ndim != 1 or len(ids) != meta.get("symbols") or ids.dtype != vocab.id_dtype
            or str(ids.dtype) != meta.get("id_dtype", str(ids.dtype))
            or (len(ids) and int(ids.max()) >= vocab.size)):
        raise CorpusError(damaged)
    return EncodedCorpus(ids, vocab, sources)
