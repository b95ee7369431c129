"""Pure forward/backward functions: ``forward -> (out, cache)``, ``backward(dout, cache) -> grads``.

Batch-first shapes: N batch, T time, D input, H hidden, V vocabulary or classes. float32 and
float64 in, the same dtype out. LSTM gates along 4H in the order i, f, g, o; inputs multiply from
the left (``x @ Wx``).
GRU gates along 3H in the order r, z, n (PyTorch's), with the candidate's recurrent bias b_hn (H,)
kept apart from b (3H,) (see ``gru.py``).

The recurrent layers run on the fast loop (``recurrence.py``); ``reference.py`` computes the
same thing as a plain loop over the step functions, to read and to test against.
"""

from bptt.functional.activations import (
    dsigmoid_from_output,
    dtanh_from_output,
    log_softmax,
    sigmoid,
    softmax,
)
from bptt.functional.gru import (
    gru_backward,
    gru_backward_with_state,
    gru_forward,
    gru_forward_with_state,
    gru_step_backward,
    gru_step_forward,
)
from bptt.functional.losses import softmax_loss, temporal_softmax_loss
from bptt.functional.lstm import (
    lstm_backward,
    lstm_backward_with_state,
    lstm_forward,
    lstm_forward_with_state,
    lstm_step_backward,
    lstm_step_forward,
)
from bptt.functional.pooling import (
    first_valid_index,
    last_valid_index,
    temporal_first_backward,
    temporal_first_forward,
    temporal_last_backward,
    temporal_last_forward,
    temporal_max_backward,
    temporal_max_forward,
    temporal_pick_backward,
    temporal_pick_forward,
)
from bptt.functional.recurrence import RecurrenceCache
from bptt.functional.reference import (
    STEP_CELLS,
    ReferenceCache,
    ReferenceGrads,
    StepCell,
    reference_backward,
    reference_forward,
)
from bptt.functional.regression import mse_loss
from bptt.functional.rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from bptt.functional.temporal import (
    embedding_backward,
    embedding_forward,
    temporal_affine_backward,
    temporal_affine_forward,
    temporal_mean_backward,
    temporal_mean_forward,
)

__all__ = [
    "STEP_CELLS",
    "RecurrenceCache",
    "ReferenceCache",
    "ReferenceGrads",
    "StepCell",
    "dsigmoid_from_output",
    "dtanh_from_output",
    "embedding_backward",
    "embedding_forward",
    "first_valid_index",
    "gru_backward",
    "gru_backward_with_state",
    "gru_forward",
    "gru_forward_with_state",
    "gru_step_backward",
    "gru_step_forward",
    "last_valid_index",
    "log_softmax",
    "lstm_backward",
    "lstm_backward_with_state",
    "lstm_forward",
    "lstm_forward_with_state",
    "lstm_step_backward",
    "lstm_step_forward",
    "mse_loss",
    "reference_backward",
    "reference_forward",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "sigmoid",
    "softmax",
    "softmax_loss",
    "temporal_affine_backward",
    "temporal_affine_forward",
    "temporal_first_backward",
    "temporal_first_forward",
    "temporal_last_backward",
    "temporal_last_forward",
    "temporal_max_backward",
    "temporal_max_forward",
    "temporal_mean_backward",
    "temporal_mean_forward",
    "temporal_pick_backward",
    "temporal_pick_forward",
    "temporal_softmax_loss",
]
