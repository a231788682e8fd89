"""Studies: named grids of queued DVC experiments over conditions × seeds, summarised as mean ± std tables.

``iadbench study NAME`` queues one experiment per (condition, seed) with
``dvc exp run --queue -n <study>-<condition>-s<seed> -S key=value ...``, runs the queue with
``dvc queue start --jobs N``, follows it (done / total, elapsed, failures with their log) and writes
``reports/studies/NAME.json`` and ``.md`` from ``dvc exp show --json``: rows = models, columns = conditions, cells =
mean ± sample standard deviation over seeds of image AUROC, pixel AUPRO, PG2, PB2 and mean IoU at the headline
threshold rule — the layout of Tables 5–9 of Baitieva et al. 2025 ("Beyond Academic Benchmarks"), with our IoU.

Every study is a registry entry (:data:`STUDIES`): its conditions, how a condition becomes params, and which seeds a
study seed sets. Experiments are DVC's own: ``dvc exp show`` compares them, and the run-cache makes a condition
that changes only late stages (drift changes predict onwards) reuse every trained model.

Resumable: an experiment that already exists under its name with the same params is not queued again; one that
exists with other params is an error (remove it or rename the study's condition). A failed experiment is named, its
log kept in the JSON, and it stays out of the means; the command then exits non-zero.

Modules: :mod:`~iadbench.studies.grids` (the registry), :mod:`~iadbench.studies.dvc` (what DVC is asked),
:mod:`~iadbench.studies.run` (queue and follow), :mod:`~iadbench.studies.summary` (the tables).
"""

NAMES = (
    "seeds",
    "drift",
    "noise",
    "size",
    "validation",
    "unified",
    "segad",
    "fewshot",
    "cells",
)  # :data:`grids.STUDIES`'
# keys, here so that building the CLI parser (`iadbench study --help`) imports nothing heavy; a test keeps them equal
