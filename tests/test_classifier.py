"""Sequence models: gradient checks for every option, and padded batches == sequences alone."""

import numpy as np
import pytest

from bptt.gradcheck import check_loss
from bptt.nn import SequenceConfig, SequenceModel
from bptt.tasks.data import SeqData, bucket_batches, pad_sequences


def _model(seed=0, **kw):
    cfg = SequenceConfig(**{"input_size": 3, "output_size": 4, "hidden": 3,
                            "dtype": "float64", **kw})
    rng = np.random.default_rng(seed)
    model = SequenceModel(cfg, rng)
    for p in model.params.values():
        p += 0.3 * rng.standard_normal(p.shape)               # non-zero biases
    return model, rng


def _inputs(rng, cfg, lengths):
    T = max(lengths)
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    if cfg.tokens:
        x = rng.integers(0, cfg.input_size, size=(len(lengths), T))
    else:
        x = rng.standard_normal((len(lengths), T, cfg.input_size))
    if cfg.pooling == "none":
        y = rng.integers(0, cfg.output_size, size=(len(lengths), T))
    elif cfg.loss == "mse":
        y = rng.standard_normal((len(lengths), cfg.output_size))
    else:
        y = rng.integers(0, cfg.output_size, size=len(lengths))
    return x, y, mask


OPTIONS = [
    dict(cell="rnn", pooling="last"),
    dict(cell="lstm", pooling="last", bidirectional=True),
    dict(cell="lstm", pooling="mean", layers=2, dropout=0.3),
    dict(cell="rnn", pooling="max", bidirectional=True, layers=2),
    dict(cell="lstm", pooling="max", loss="mse", output_size=2),
    dict(cell="lstm", pooling="none", tokens=True, input_size=5),
    dict(cell="rnn", pooling="last", tokens=True, input_size=5, embed=2, bidirectional=True),
]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_sequence_model_gradients_match_numerical(opts):
    model, rng = _model(**opts)
    x, y, mask = _inputs(rng, model.config, [4, 2, 3])
    results = check_loss("seq", lambda: model.loss(x, y, mask, train=True,
                                                   rng=np.random.default_rng(3)), model.params)
    assert {r.name for r in results} == set(model.params)
    worst = max(results, key=lambda r: r.error)
    assert worst.error < 1e-7, worst


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_padded_shuffled_bucketed_batch_equals_each_sequence_alone(opts):
    """Loss and every gradient of a padded batch equal the mean over the sequences run alone."""
    opts = {k: v for k, v in opts.items() if k != "dropout"}
    model, rng = _model(seed=1, **opts)
    cfg = model.config
    lengths = [7, 2, 5, 7, 1, 4, 6, 3]
    seqs_x, seqs_y = [], []
    for L in lengths:
        x, y, _ = _inputs(rng, cfg, [L])
        seqs_x.append(x[0])
        seqs_y.append(y[0])
    xp, lens = pad_sequences(seqs_x)
    data = SeqData(xp, pad_sequences(seqs_y)[0] if cfg.pooling == "none" else np.stack(seqs_y),
                   lens, per_step=cfg.pooling == "none")
    batches = bucket_batches(lens, 5, np.random.default_rng(7))   # shuffled, bucketed
    for idx in batches:
        x, y, mask = data.batch(idx)
        loss, grads = model.loss(x, y, mask)
        alone = [model.loss(seqs_x[i][None], seqs_y[i][None]) for i in idx]
        ref_loss = np.mean([a[0] for a in alone])
        assert abs(loss - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
        for name, g in grads.items():
            ref = np.mean([a[1][name] for a in alone], axis=0)
            err = np.abs(g - ref).max() / max(1.0, np.abs(ref).max())
            assert err <= 1e-12, (name, err)


def test_bucketing_covers_every_sequence_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=103)
    batches = bucket_batches(lengths, 10, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    spread = [np.ptp(lengths[b]) for b in batches]
    assert np.mean(spread) < 10                                  # sorted by length
    again = bucket_batches(lengths, 10, np.random.default_rng(1))
    assert any(not np.array_equal(a, b) for a, b in zip(batches, again))  # reshuffled


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="pooling"):
        SequenceConfig(3, 2, pooling="median")
    with pytest.raises(ValueError, match="loss"):
        SequenceConfig(3, 2, loss="hinge")
    with pytest.raises(ValueError, match="per-step"):
        SequenceConfig(3, 2, pooling="none", loss="mse")
    with pytest.raises(ValueError, match="cell"):
        SequenceConfig(3, 2, cell="transformer")
