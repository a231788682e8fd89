"""Early stopping on the validation split's image AUROC (the validation-strategy study, Baitieva et al. 2025, Table 9).

The protocol default is a fixed epoch count with no look at held-out data (``train.validation: fixed``). With
``train.validation: early_stopping`` a Lightning callback scores the product's *validation* images after every
training epoch — the split that thresholds are fitted on, disjoint from test, so nothing about the test split leaks —
and computes the image AUROC (:func:`iadbench.metrics.curves.auroc`, the scores' rank statistic). Training stops
when the AUROC has not improved for ``train.patience`` epochs, and the weights of the best epoch (the first one on a
tie) are restored. Models that make one pass (memory banks: PaDiM, PatchCore, ...) have nothing to stop: the
callback records that and leaves them alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback

from iadbench.metrics.counts import confusion_counts
from iadbench.metrics.curves import auroc


class ValidationEarlyStopping(Callback):
    """Score the validation images after each epoch; stop after ``patience`` epochs without a better image AUROC.

    ``prepare`` runs before scoring (CFLOW measures its training maxima there, which its maps need); the module's
    per-submodule train/eval flags are put back afterwards, so frozen backbones stay frozen.
    """

    def __init__(
        self,
        batches: Iterable[Any],
        labels: np.ndarray,
        patience: int,
        prepare: Callable[[Any], Any] | None = None,
    ) -> None:
        self.batches = batches
        self.labels = np.asarray(labels, dtype=bool)
        self.patience = patience
        self.prepare = prepare
        self.history: list[float] = []
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.applies = True

    def _scores(self, module: Any) -> np.ndarray:
        flags = {name: m.training for name, m in module.named_modules()}
        try:
            if self.prepare is not None:
                self.prepare(module)
            module.eval()
            out = []
            with torch.no_grad():
                for batch in self.batches:
                    out.append(module(batch.image.to(module.device)).pred_score.reshape(-1).float().cpu())
            return torch.cat(out).numpy()
        finally:
            for name, m in module.named_modules():
                m.training = flags[name]

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Score, record, keep the best weights, and stop when patience has run out."""
        if (trainer.max_epochs or 0) <= 1:
            self.applies = False
            return
        value = auroc(confusion_counts(self._scores(pl_module), self.labels))
        epoch = len(self.history)
        self.history.append(round(float(value), 6))
        pl_module.log("val_image_auroc", float(value), on_epoch=True, logger=True)
        if self.best_epoch < 0 or value > self.history[self.best_epoch]:
            self.best_epoch = epoch
            self.best_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        elif epoch - self.best_epoch >= self.patience:
            trainer.should_stop = True

    def restore(self, module: Any) -> dict[str, Any]:
        """Load the best epoch's weights; return what the cell's metadata records about the run."""
        if not self.applies or self.best_state is None:
            return {"validation": "early_stopping", "early_stopping": "not applicable (one pass)"}
        module.load_state_dict(self.best_state)  # cloned when kept; loading copies it into the module
        return {
            "validation": "early_stopping",
            "patience": self.patience,
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch + 1,  # 1-based, as Lightning prints epochs
            "val_image_auroc_history": self.history,
            "val_image_auroc_best": self.history[self.best_epoch],
        }
