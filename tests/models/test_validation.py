"""Early stopping on the validation AUROC with scripted scores: when it stops, which epoch it keeps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from iadbench.models.validation import ValidationEarlyStopping

LABELS = np.array([True, True, False, False])
# scores per epoch whose AUROCs are 0.5, 1.0, 0.75, 0.75, 1.0 (ties on the last: the first best is kept)
SCRIPT = [[1, 0, 1, 0], [4, 3, 2, 1], [4, 1, 2, 0], [4, 1, 2, 0], [4, 3, 2, 1]]


class Scripted(ValidationEarlyStopping):
    def __init__(self, patience: int) -> None:
        super().__init__(batches=[], labels=LABELS, patience=patience)
        self.epoch = 0

    def _scores(self, module):  # the epoch's scripted scores instead of a forward pass
        scores = np.asarray(SCRIPT[self.epoch], dtype=float)
        self.epoch += 1
        return scores


class Module(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.logged: list[float] = []

    def log(self, name, value, **_) -> None:
        self.logged.append(value)


def _train(patience: int, max_epochs: int = 5) -> tuple[Scripted, Module, int]:
    callback, module = Scripted(patience), Module()
    trainer = SimpleNamespace(max_epochs=max_epochs, should_stop=False)
    epochs = 0
    while epochs < max_epochs and not trainer.should_stop:
        with torch.no_grad():
            module.weight.fill_(epochs + 1)  # the weights of epoch k are k
        callback.on_train_epoch_end(trainer, module)
        epochs += 1
    return callback, module, epochs


def test_stops_after_patience_epochs_without_improvement_and_keeps_the_best():
    callback, module, epochs = _train(patience=1)
    assert epochs == 3  # epoch 3 did not beat epoch 2: patience 1 has run out
    assert callback.history == [0.5, 1.0, 0.75] and callback.best_epoch == 1
    record = callback.restore(module)
    assert module.weight.item() == 2.0  # epoch 2's weights are back
    assert record["epochs_run"] == 3 and record["best_epoch"] == 2 and record["val_image_auroc_best"] == 1.0


def test_more_patience_runs_on_and_a_tie_keeps_the_first_best():
    callback, module, epochs = _train(patience=3)
    assert epochs == 5 and callback.history == [0.5, 1.0, 0.75, 0.75, 1.0]
    assert callback.best_epoch == 1  # 1.0 again at epoch 5 is no improvement
    callback.restore(module)
    assert module.weight.item() == 2.0


def test_one_epoch_has_nothing_to_stop():
    callback, module, epochs = _train(patience=1, max_epochs=1)
    assert epochs == 1 and not callback.applies and callback.history == []
