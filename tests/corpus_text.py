"""Tiny corpora generated on the spot, so the language-model tests never need ../shared."""

import numpy as np

WORDS = ["the", "king", "queen", "shall", "love", "night", "sweet", "good", "lord", "my",
         "and", "thou", "art", "fair", "speak", "hear", "me", "now", "o", "death"]


def make_text(n_chars: int, seed: int = 0) -> str:
    """Pseudo-verse: random words, capitalised lines, punctuation; learnable in a few steps."""
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < n_chars:
        words = [WORDS[k] for k in rng.integers(0, len(WORDS), size=rng.integers(3, 8))]
        line = " ".join(words).capitalize() + rng.choice([",", ".", ";", "!", "?"]) + "\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:n_chars]
