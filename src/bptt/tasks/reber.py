"""Embedded Reber grammar (Hochreiter & Schmidhuber 1997, experiment 1).

The Reber grammar is the finite automaton below (Reber 1967; Fahlman 1991). Every string starts
with B and ends with E; from each state both outgoing symbols are equally likely:

    state 0 --T--> 1     state 0 --P--> 2
    state 1 --S--> 1     state 1 --X--> 3
    state 2 --T--> 2     state 2 --V--> 4
    state 3 --X--> 2     state 3 --S--> 5
    state 4 --P--> 3     state 4 --V--> 5
    state 5 --E--> end

An embedded Reber string is B (T|P) <Reber string> (the same T|P) E: to predict the
second-to-last symbol the net must remember the second one across the whole inner string.

The task is next-symbol prediction at every step with 7 one-hot symbols. A string is processed
correctly when at every step the legal next symbol(s) are the most active outputs (their scores
exceed every illegal symbol's); a trial succeeds when every string of the training set (256) and
of the disjoint test set (256) is processed correctly.
"""

from __future__ import annotations

import numpy as np

from bptt.tasks.data import SeqData, pad_sequences

SYMBOLS = "BTPSXVE"
INDEX = {s: i for i, s in enumerate(SYMBOLS)}
# state -> ((symbol, next state), (symbol, next state)); state 5 only emits E.
GRAMMAR = {0: (("T", 1), ("P", 2)), 1: (("S", 1), ("X", 3)), 2: (("T", 2), ("V", 4)),
           3: (("X", 2), ("S", 5)), 4: (("P", 3), ("V", 5))}


def reber_string(rng: np.random.Generator) -> str:
    """One Reber string, B ... E."""
    out, state = ["B"], 0
    while state != 5:
        sym, state = GRAMMAR[state][rng.integers(2)]
        out.append(sym)
    out.append("E")
    return "".join(out)


def embedded_reber_string(rng: np.random.Generator) -> str:
    """B (T|P) <Reber string> (same T|P) E."""
    side = "TP"[rng.integers(2)]
    return "B" + side + reber_string(rng) + side + "E"


def legal_next(s: str) -> list[str]:
    """For every prefix s[:t+1] of an embedded Reber string, the set of legal next symbols.

    Returns len(s) - 1 strings (no prediction after the final E). Raises ValueError if s is not a
    valid embedded Reber string.
    """
    def bad(why):
        raise ValueError(f"{s!r} is not an embedded Reber string: {why}")

    if len(s) < 9 or s[0] != "B" or s[1] not in "TP" or s[2] != "B" or s[-1] != "E" \
            or s[-2] != s[1] or s[-3] != "E":
        bad("wrong frame")
    out = ["TP", "B"]
    inner, state = s[2:-2], 0                    # B ... E
    out.append("TP")                             # after the inner B
    for sym in inner[1:-1]:
        moves = dict(GRAMMAR.get(state, ()))
        if sym not in moves:
            bad(f"{sym!r} is not allowed in state {state}")
        state = moves[sym]
        out.append("E" if state == 5 else "".join(m for m, _ in GRAMMAR[state]))
    if state != 5:
        bad("the inner string does not reach the end state")
    out.append(s[1])                             # after the inner E: the remembered T|P
    out.append("E")
    assert len(out) == len(s) - 1
    return out


def distinct_strings(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct embedded Reber strings, in the order first drawn."""
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(embedded_reber_string(rng), None)
    return list(seen)


def encode(strings: list[str]) -> SeqData:
    """Strings -> next-symbol data: x = ids of s[:-1], y = ids of s[1:] (per step)."""
    ids = [np.array([INDEX[c] for c in s]) for s in strings]
    x, lengths = pad_sequences([a[:-1] for a in ids])
    y, _ = pad_sequences([a[1:] for a in ids])
    return SeqData(x, y, lengths, per_step=True)


def legal_mask(strings: list[str], T: int) -> np.ndarray:
    """(N, T, 7) bool: legal[n, t, k] is True when symbol k may follow s_n[:t+1]."""
    out = np.zeros((len(strings), T, len(SYMBOLS)), dtype=bool)
    for n, s in enumerate(strings):
        for t, allowed in enumerate(legal_next(s)):
            out[n, t, [INDEX[c] for c in allowed]] = True
    return out


def strings_correct(scores: np.ndarray, legal: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N,) bool: at every valid step the lowest legal score exceeds the highest illegal one.

    scores (N, T, 7), legal (N, T, 7) bool, lengths (N,).
    """
    lo_legal = np.where(legal, scores, np.inf).min(axis=2)       # (N, T)
    hi_illegal = np.where(legal, -np.inf, scores).max(axis=2)    # (N, T)
    ok = lo_legal > hi_illegal
    valid = np.arange(scores.shape[1])[None, :] < lengths[:, None]
    return np.all(ok | ~valid, axis=1)
