"""Corpora as integer arrays: vocabulary, UTF-8 validation with byte offsets, chunking, batching."""

import tracemalloc

import numpy as np
import pytest

from bptt.charlm.data import StreamBatcher, eval_chunks
from bptt.charlm.text import (
    CorpusError,
    Vocab,
    build_vocab,
    prepare_corpus,
    read_ids,
)

MIXED = "Grüße, naïve café — 日本語 ✓ 😀 Ωμέγα\ttab\r\nend\n"


def test_vocabulary_round_trip_on_non_ascii_text(tmp_path):
    text = MIXED * 7
    path = tmp_path / "mixed.txt"
    path.write_text(text, encoding="utf-8")
    corpus = prepare_corpus([path], tmp_path / "ids.npy")
    assert corpus.vocab.symbols == tuple(sorted({ord(c) for c in text}))   # sorted code points
    assert corpus.vocab.decode(corpus.ids) == text
    assert len(corpus.ids) == len(text)
    assert corpus.ids.dtype == np.uint8
    # the JSON form rebuilds the same vocabulary, and encode/decode agree with it
    again = Vocab.from_json(corpus.vocab.to_json())
    assert again == corpus.vocab
    ids, skipped = again.encode(text)
    assert skipped == [] and again.decode(ids) == text


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_chunk_boundaries_inside_multibyte_characters_change_nothing(tmp_path, chunk):
    text = MIXED * 3
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    whole = prepare_corpus([path], tmp_path / "a.npy")
    chunked = prepare_corpus([path], tmp_path / "b.npy", chunk_bytes=chunk)
    np.testing.assert_array_equal(whole.ids, chunked.ids)
    assert whole.vocab == chunked.vocab


def test_vocabulary_is_the_same_whatever_the_order_of_first_appearance(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("abcabc zyx", encoding="utf-8")
    b.write_text("zyx cbaabc", encoding="utf-8")
    assert build_vocab([a])[0] == build_vocab([b])[0]


def test_large_vocabulary_uses_wider_ids(tmp_path):
    text = "".join(chr(0x4E00 + k) for k in range(300))
    path = tmp_path / "cjk.txt"
    path.write_text(text, encoding="utf-8")
    corpus = prepare_corpus([path], tmp_path / "ids.npy")
    assert corpus.ids.dtype == np.uint16
    assert corpus.vocab.decode(corpus.ids) == text


def test_several_files_are_concatenated_in_order(tmp_path):
    (tmp_path / "1.txt").write_text("hello ", encoding="utf-8")
    (tmp_path / "2.txt").write_text("wörld\n", encoding="utf-8")
    corpus = prepare_corpus([tmp_path / "1.txt", tmp_path / "2.txt"], tmp_path / "ids.npy")
    assert corpus.vocab.decode(corpus.ids) == "hello wörld\n"
    assert [s.symbols for s in corpus.sources] == [6, 6]


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(CorpusError, match="is empty"):
        prepare_corpus([path], tmp_path / "ids.npy")


def test_binary_file_is_an_error(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(CorpusError, match=r"binary file \(NUL byte at offset 8\)"):
        prepare_corpus([path], tmp_path / "ids.npy")


@pytest.mark.parametrize(("data", "offset"), [
    (b"hello \xff world", 6),                      # invalid start byte
    ("caf\u00e9 ".encode("latin-1") + b"ok", 3),   # latin-1 e-acute
    ("ok ✓".encode() + b"\xe2\x9c", 6),            # truncated at the end of the file
    (b"x" * 100 + b"\xc3\x28", 100),               # bad continuation byte
])
@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_non_utf8_error_names_the_byte_offset(tmp_path, data, offset, chunk):
    path = tmp_path / "latin.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError, match=f"not valid UTF-8: byte 0x.. at byte offset {offset} "):
        prepare_corpus([path], tmp_path / "ids.npy", chunk_bytes=chunk)


def test_byte_mode_takes_any_file(tmp_path):
    data = "café ".encode("latin-1") + b"\x00\xff" + "✓".encode()
    path = tmp_path / "raw.bin"
    path.write_bytes(data)
    corpus = prepare_corpus([path], tmp_path / "ids.npy", encoding="bytes")
    assert corpus.vocab.symbols == tuple(sorted(set(data)))
    assert bytes(np.array(corpus.vocab.symbols)[corpus.ids].astype(np.uint8)) == data


def test_missing_file_and_directory_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        prepare_corpus([tmp_path / "nope.txt"], tmp_path / "ids.npy")
    with pytest.raises(CorpusError, match="is a directory"):
        prepare_corpus([tmp_path], tmp_path / "ids.npy")


def test_read_ids_lists_unknown_characters_or_skips_them(tmp_path):
    vocab = Vocab.from_text("abc \n")
    path = tmp_path / "t.txt"
    path.write_text("abc é✓ cab\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"2 character\(s\).*'é' \(U\+00E9\), '✓' \(U\+2713\)"):
        read_ids(path, vocab)
    ids, skipped = read_ids(path, vocab, skip_unknown=True)
    assert vocab.decode(ids) == "abc  cab\n" and skipped == [0xE9, 0x2713]


def _peak_memory_of_encoding(tmp_path, lines: int, chunk: int) -> tuple[int, int]:
    line = "Æsop's fables — the fox and the grapes; ünïcödé everywhere.\n"
    path = tmp_path / f"big{lines}.txt"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(line)
    tracemalloc.start()
    corpus = prepare_corpus([path], tmp_path / f"ids{lines}.npy", chunk_bytes=chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(corpus.ids, np.memmap)                       # the ids live on disk
    assert len(corpus.ids) == lines * len(line)
    return peak, path.stat().st_size


def test_memory_stays_bounded_by_the_chunk_not_the_file(tmp_path):
    chunk = 1 << 16
    peak_small, _ = _peak_memory_of_encoding(tmp_path, 15_000, chunk)     # 1 MB
    peak_big, size = _peak_memory_of_encoding(tmp_path, 60_000, chunk)    # 4 MB
    assert peak_big < 1.25 * peak_small, (peak_small, peak_big)
    assert peak_big < size, (peak_big, size)


def test_stream_batches_are_contiguous_and_targets_are_shifted_inputs():
    ids = np.arange(1000) % 251
    b = StreamBatcher(ids, N=4, T=10)
    assert b.L == 249 and b.steps_per_epoch == 24
    x0, y0 = b.batch(0)
    x1, _ = b.batch(1)
    np.testing.assert_array_equal(x0[:, 1:], y0[:, :-1])
    np.testing.assert_array_equal(x1[:, 0], y0[:, -1])           # batch k+1 continues batch k
    np.testing.assert_array_equal(x0[:, 0], ids[[0, 249, 498, 747]])
    with pytest.raises(IndexError):
        b.batch(24)


def test_stream_batcher_rejects_a_text_too_short():
    with pytest.raises(CorpusError, match="too few"):
        StreamBatcher(np.arange(50), N=8, T=10)


def test_eval_chunks_predict_every_covered_position_once():
    ids = np.arange(1001)
    seen = []
    for x, y in eval_chunks(ids, N=4, T=64):
        np.testing.assert_array_equal(y, x + 1)
        seen.extend(y.ravel().tolist())
    assert sorted(seen) == list(range(1, 1001))
