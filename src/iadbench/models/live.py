"""The training curve of a cell, logged with DVCLive: one loss name for every model, no timestamps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from iadbench.errors import IadbenchError

TRAIN_LOSS = "train_loss"  # the one training metric every cell's metrics.json and curve carry


def git_has_no_commit() -> bool:
    """Inside a git work tree that has no commit yet (DVCLive cannot run there)."""
    import subprocess

    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return False
    return subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], capture_output=True).returncode != 0


def loss_curve(directory: Path, has_loss: bool) -> Any:
    """A Lightning callback that logs each epoch's mean training loss with DVCLive into ``directory``.

    One name for every model (anomalib's models log ``train_loss``, ``train/loss`` or ``train/epoch/loss``):
    ``metrics.json`` holds the final ``train_loss`` and ``epochs`` (what ``dvc exp show`` lists per cell) and
    ``plots/metrics/train_loss.tsv`` the curve, step = epoch (what ``dvc plots diff`` overlays). A memory-bank
    model (PaDiM, PatchCore) has no loss — anomalib returns a constant placeholder — so its curve file holds
    the header only: DVC needs every declared output to exist, and an empty curve says "no loss" truthfully.
    No timestamps are logged, so the files are the same bytes on every rebuild of a deterministic model.
    """
    from dvclive import Live
    from lightning.pytorch.callbacks import Callback

    if git_has_no_commit():
        # DVCLive 3.49 asks git for HEAD before checking that one exists, and crashes deep inside Lightning.
        raise IadbenchError("this git repository has no commit yet; DVCLive needs one: git add -A && git commit")

    class LossCurve(Callback):
        def __init__(self) -> None:
            # dvcyaml=None: the curves are declared in the project's dvc.yaml (metrics and plots of the train stage)
            self.live = Live(dir=str(directory), save_dvc_exp=False, dvcyaml=None, report=None)
            self.total, self.batches, self.epochs = 0.0, 0, 0

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if has_loss and isinstance(loss, torch.Tensor):
                self.total += float(loss.detach().float().cpu())
                self.batches += 1

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if has_loss and self.batches:
                self.live.log_metric(TRAIN_LOSS, self.total / self.batches)
                self.live.next_step()
            self.total, self.batches, self.epochs = 0.0, 0, self.epochs + 1

        def finish(self, epochs: int) -> None:
            """Write the summary (the epochs kept, after early stopping) and the empty curve of a loss-free model."""
            self.live.summary["epochs"] = epochs
            self.live.make_summary()
            curve = Path(self.live.plots_dir) / "metrics" / f"{TRAIN_LOSS}.tsv"
            if not curve.is_file():
                curve.parent.mkdir(parents=True, exist_ok=True)
                curve.write_text(f"step\t{TRAIN_LOSS}\n")
            self.live.end()

    return LossCurve()
