"""The mutable state of a training run and its checkpoint form.

``TrainState`` is everything a step changes: the parameters, the optimizer's slots and step,
the hidden state carried between batches, the counters and the dropout RNG. A resumed run
rebuilds it from a checkpoint exactly, including the rollback snapshot (a ``TrainState`` copy
that a non-finite step returns to), so a run that rolls back after a resume is bit-identical to
one that never stopped.

Checkpoint arrays: ``param/<name>``, ``opt/<name>/<slot>``, ``state/<layer>/h`` and ``/c``; the
snapshot's, when it differs from the current state, under the prefix ``snapshot/``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

SNAPSHOT_PREFIX = "snapshot/"


@dataclass
class Counters:
    """Where a run is; saved in every checkpoint so that a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    cursor: int = 0                    # batch index within the epoch
    chars: int = 0                     # training characters consumed
    lr_scale: float = 1.0              # product of rollback reductions
    rollbacks: int = 0
    fails_in_row: int = 0
    elapsed_s: float = 0.0             # wall-clock seconds, evaluations included
    train_s: float = 0.0               # seconds inside training steps
    best_val: float | None = None
    best_step: int | None = None
    last_eval_step: int = -1
    # since the last evaluation
    i_loss: float = 0.0
    i_steps: int = 0
    i_norm: float = 0.0
    i_norm_max: float = 0.0
    i_clipped: int = 0
    i_values: int = 0
    i_chars: int = 0
    i_train_s: float = 0.0

    def reset_interval(self) -> None:
        self.i_loss = self.i_norm = self.i_norm_max = self.i_train_s = 0.0
        self.i_steps = self.i_clipped = self.i_values = self.i_chars = 0


Carried = list[tuple[np.ndarray, np.ndarray | None]] | None    # per layer (h (N, H), c or None)


def copy_carried(carried: Carried) -> Carried:
    if carried is None:
        return None
    return [(h.copy(), None if c is None else c.copy()) for h, c in carried]


@dataclass
class TrainState:
    """Parameters (the model's own arrays), optimizer state, carried state, counters, RNG."""

    params: dict[str, np.ndarray]
    opt_state: dict
    carried: Carried
    counters: Counters
    rng: np.random.Generator

    def snapshot(self) -> TrainState:
        """A deep copy (its own arrays, counters and RNG) to roll back to."""
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = copy.deepcopy(self.rng.bit_generator.state)
        return TrainState({k: v.copy() for k, v in self.params.items()},
                          copy.deepcopy(self.opt_state), copy_carried(self.carried),
                          dataclasses.replace(self.counters), rng)

    def restore(self, snap: TrainState, counters: Counters) -> None:
        """Return to ``snap`` (its copies stay intact for a later rollback), with ``counters``."""
        for k, v in snap.params.items():
            self.params[k][...] = v
        self.opt_state = copy.deepcopy(snap.opt_state)
        self.carried = copy_carried(snap.carried)
        self.counters = counters
        self.rng.bit_generator.state = copy.deepcopy(snap.rng.bit_generator.state)

    # ------------------------------------------------------------ checkpoint form

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = {f"{prefix}param/{k}": v for k, v in self.params.items()}
        for name, slots in self.opt_state["slots"].items():
            for s, a in slots.items():
                out[f"{prefix}opt/{name}/{s}"] = a
        for k, (h, c) in enumerate(self.carried or []):
            out[f"{prefix}state/{k}/h"] = h
            if c is not None:
                out[f"{prefix}state/{k}/c"] = c
        return out

    def meta(self) -> dict:
        """The JSON part: counters, RNG state, optimizer step."""
        return {"counters": asdict(self.counters), "rng": self.rng.bit_generator.state,
                "opt_step": int(self.opt_state["step"])}

    def load_arrays(self, arrays: dict[str, np.ndarray], layers: int, prefix: str = "") -> None:
        """Fill params, optimizer slots and the carried state from checkpoint arrays (shapes
        and dtypes already checked by ``checkpoint.check_arrays``)."""
        for k, p in self.params.items():
            p[...] = arrays[f"{prefix}param/{k}"]
        for name, slots in self.opt_state["slots"].items():
            for s in slots:
                slots[s][...] = arrays[f"{prefix}opt/{name}/{s}"]
        if f"{prefix}state/0/h" not in arrays:
            self.carried = None
        else:
            self.carried = [
                (arrays[f"{prefix}state/{k}/h"].copy(),
                 arrays[f"{prefix}state/{k}/c"].copy() if f"{prefix}state/{k}/c" in arrays
                 else None)
                for k in range(layers)]


def snapshot_checkpoint(snap: TrainState, current: TrainState
                        ) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) recording the rollback snapshot in a checkpoint of ``current``. The
    snapshot's arrays are stored only when it is from an earlier step than ``current``; at the
    same step they are the same arrays (evaluation changes no parameter)."""
    same = snap.counters.step == current.counters.step
    meta = {**snap.meta(), "same_arrays": same}
    return meta, ({} if same else snap.arrays(SNAPSHOT_PREFIX))
