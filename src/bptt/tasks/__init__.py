"""The long-range task suite from the papers, each a data generator plus a recipe.

    from bptt.tasks import run_task, TASKS
    result = run_task("adding", cell="lstm", T=100, seed=0)

Tasks: adding, adding1997, reber, temporal-order, copy, digits-rows, digits-pixels,
digits-permuted, mnist1d (see ``registry.py`` for each one's definition and published numbers).
"""

from bptt.tasks.data import EpochBatcher, SeqData, bucket_batches, mask_from_lengths, pad_sequences
from bptt.tasks.registry import TASKS, Task, get_task
from bptt.tasks.runner import run_task
from bptt.tasks.train import FitConfig, History, fit, predict_all

__all__ = [
    "TASKS",
    "EpochBatcher",
    "FitConfig",
    "History",
    "SeqData",
    "Task",
    "bucket_batches",
    "fit",
    "get_task",
    "mask_from_lengths",
    "pad_sequences",
    "predict_all",
    "run_task",
]
