"""Greedy and beam-search decoding over any recurrent "step" function.

A decoder is described by one function

    step(ids (B,) int64, state) -> (logp (B, V) log-probabilities of the next symbol, state')

where a state is a list with one ``(h, c)`` pair per layer, h and c (B, H) (c None for cells
without a cell state), as ``RecurrentStack`` uses. Rows of a state are hypotheses; they are
reordered with ``take_state``.

Beam search keeps, for each of the N inputs, the K (``beam``) best partial outputs by their
summed log-probability. At every step each one is extended by every symbol (K * V candidates);
a candidate among the K best that ends with the end symbol is set aside as finished, the K best
candidates that do not end go on (as in fairseq). An input is done once it has K finished
outputs, or, without length normalisation, once its best finished output scores at least as
high as every live one (a live score can only fall). At ``max_len`` live outputs count as
finished. The answer is the finished output with the best normalised score

    score / length ** length_penalty          (length = symbols generated, the end included)

so ``length_penalty`` 0 ranks by total log-probability (favouring short outputs) and 1 by the
mean log-probability per symbol. With ``beam=1`` and no length penalty it returns the greedy
output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

State = list
Step = Callable[[np.ndarray, State], tuple[np.ndarray, State]]


def take_state(state: State, idx: np.ndarray) -> State:
    """The rows ``idx`` of every array of a state (a new state)."""
    return [(h[idx], None if c is None else c[idx]) for h, c in state]


def repeat_state(state: State, k: int) -> State:
    """Every row of a state repeated k times in place (row n -> rows n*k .. n*k + k - 1)."""
    return [(np.repeat(h, k, axis=0), None if c is None else np.repeat(c, k, axis=0))
            for h, c in state]


def check_decoding(beam: int, max_len: int, length_penalty: float = 0.0) -> None:
    if beam < 1:
        raise ValueError(f"beam width is {beam}; it must be at least 1")
    if max_len < 1:
        raise ValueError(f"maximum length is {max_len}; it must be at least 1")
    if not length_penalty >= 0:
        raise ValueError(f"length penalty is {length_penalty}; it must be 0 or more")


def greedy_decode(step: Step, state: State, start: np.ndarray | int, end: int | None,
                  max_len: int) -> list[np.ndarray]:
    """The most likely next symbol at every step, for each of N rows of ``state``.

    ``start`` is the first input symbol (an int, or (N,) ints). Returns N int64 arrays: the
    symbols generated, up to and excluding ``end`` (or ``max_len`` of them).
    """
    check_decoding(1, max_len)
    N = state[0][0].shape[0]
    cur = np.broadcast_to(np.asarray(start, dtype=np.int64), (N,)).copy()
    out = np.zeros((N, max_len), dtype=np.int64)
    length = np.full(N, max_len)
    alive = np.ones(N, dtype=bool)
    for t in range(max_len):
        logp, state = step(cur, state)
        cur = logp.argmax(axis=1).astype(np.int64)
        out[:, t] = cur
        if end is not None:
            stopped = alive & (cur == end)
            length[stopped] = t
            alive &= ~stopped
            if not alive.any():
                break
    return [out[n, :length[n]] for n in range(N)]


@dataclass
class Hypothesis:
    ids: list               # symbols generated, the end symbol excluded
    logp: float             # summed log-probability (the end symbol's included)
    score: float            # logp / length ** length_penalty
    finished: bool          # ended with the end symbol (False: stopped at max_len)


def _split_candidates(cand: np.ndarray, top: np.ndarray, V: int, K: int, end: int | None
                      ) -> tuple[list[tuple[float, int, int]], list[tuple[float, int]]]:
    """One input's candidates ``top`` (m,), indices into its scores ``cand`` (K*V,), best
    first: the K best that do not end, as (score, beam, symbol), and those among the K best
    that end with ``end``, as (score, beam)."""
    live: list[tuple[float, int, int]] = []
    ended: list[tuple[float, int]] = []
    for rank, c in enumerate(top):
        s = cand[c]
        if not np.isfinite(s):
            break
        b, v = divmod(int(c), V)
        if end is not None and v == end:
            if rank < K:                                         # ends among the K best
                ended.append((float(s), b))
        elif len(live) < K:
            live.append((s, b, v))
    return live, ended


def _row_done(finished: list[Hypothesis], best_live: float, K: int,
              length_penalty: float) -> bool:
    """An input is done with K finished outputs, no live one, or (without length
    normalisation) a finished output that no live one can beat (a live score only falls)."""
    return len(finished) >= K or not np.isfinite(best_live) or (
        not length_penalty and bool(finished)
        and max(h.logp for h in finished) >= best_live)


def beam_search(step: Step, state: State, start: np.ndarray | int, end: int | None,
                beam: int, max_len: int, length_penalty: float = 0.0,
                n_best: int = 1) -> list[list[Hypothesis]]:
    """Beam search (module docstring) for each of N rows of ``state``.

    Returns, per row, the ``n_best`` best hypotheses (best first) by normalised score.
    """
    check_decoding(beam, max_len, length_penalty)
    N = state[0][0].shape[0]
    K = beam
    starts = np.broadcast_to(np.asarray(start, dtype=np.int64), (N,))
    state = repeat_state(state, K)                               # (N*K, H) rows
    cur = np.repeat(starts, K)                                   # (N*K,)
    scores = np.full((N, K), -np.inf)
    scores[:, 0] = 0.0                                           # one live copy to begin with
    hist = np.zeros((N, K, 0), dtype=np.int64)                   # (N, K, t) symbols so far
    finished: list[list[Hypothesis]] = [[] for _ in range(N)]
    done = np.zeros(N, dtype=bool)

    def norm(logp: float, length: int) -> float:
        return logp / length ** length_penalty if length_penalty else logp

    for t in range(max_len):
        logp, state = step(cur, state)                           # (N*K, V)
        V = logp.shape[1]
        cand = (scores[:, :, None] + logp.reshape(N, K, V)).reshape(N, K * V)
        m = min(2 * K, K * V)
        top = np.argpartition(-cand, m - 1, axis=1)[:, :m]       # (N, m) unordered
        order = np.take_along_axis(cand, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)             # (N, m) best first
        new_scores = np.full((N, K), -np.inf)
        src = np.zeros((N, K), dtype=np.int64)                   # the beam each one extends
        sym = np.zeros((N, K), dtype=np.int64)
        for n in range(N):
            if done[n]:
                continue
            live, ended = _split_candidates(cand[n], top[n], V, K, end)
            finished[n] += [Hypothesis(hist[n, b].tolist(), s, norm(s, t + 1), True)
                            for s, b in ended]
            for j, (s, b, v) in enumerate(live):
                new_scores[n, j], src[n, j], sym[n, j] = s, b, v
            done[n] = _row_done(finished[n], new_scores[n].max(), K, length_penalty)
        scores = np.where(done[:, None], -np.inf, new_scores)
        if done.all():
            break
        hist = np.concatenate([np.take_along_axis(hist, src[:, :, None], axis=1),
                               sym[:, :, None]], axis=2)
        rows = (np.arange(N)[:, None] * K + src).reshape(N * K)
        state = take_state(state, rows)
        cur = sym.reshape(N * K)
    for n in range(N):                                           # max_len reached
        if not done[n]:
            for k in range(K):
                if np.isfinite(scores[n, k]):
                    finished[n].append(Hypothesis(hist[n, k].tolist(), float(scores[n, k]),
                                                  norm(float(scores[n, k]), hist.shape[2]),
                                                  False))
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
