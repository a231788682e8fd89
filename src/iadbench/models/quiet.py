"""Lightning's and anomalib's console noise, silenced once for every stage that runs a network (train, predict,
SegAD's detector pass): the known harmless warnings filtered by message, their loggers at WARNING, and anomalib's
"no checkpoint" notice dropped (iadbench loads the fitted state itself).
"""

from __future__ import annotations

import logging
import warnings

KNOWN_NOISE = (
    r".*does not have many workers.*",
    r".*is deprecated.*",
    r".*deprecated and will be removed.*",
    r".*GPU available but not used.*",
    r".*torch.meshgrid: in an upcoming release.*",
    r".*`training_step` returned `None`.*",
    r".*Trying to infer the `batch_size`.*",
    r".*The `srun` command is available.*",
    r".*LightningModule.configure_optimizers` returned `None`.*",
    r".*number of training batches .* is smaller than the logging interval.*",
    r".*You are using `torch.load` with `weights_only=False`.*",
    r".*Importing from timm.models.* is deprecated.*",
    r".*You defined a `validation_step` but have no `val_dataloader`.*",  # no validation loop, by protocol
    r".*module\(s\) in eval mode at the start of training.*",  # anomalib's frozen backbones, on purpose
)


def ignore_known_noise() -> None:
    """Filter the warnings of :data:`KNOWN_NOISE` (by message)."""
    for pattern in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=pattern)


class NoCheckpointNotice(logging.Filter):
    """Drops anomalib's "ckpt_path is not provided" notice."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102 - logging.Filter.filter
        return "ckpt_path is not provided" not in record.getMessage()


def quiet_libraries() -> None:
    """Lightning and anomalib at WARNING, their known noise filtered (train, predict and SegAD's detector pass)."""
    import lightning.pytorch  # noqa: F401 - imported first: Lightning sets its loggers to INFO on import

    ignore_known_noise()
    for name in (
        "lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning", "anomalib",
        "lightning.pytorch.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
    ):  # fmt: skip
        logging.getLogger(name).setLevel(logging.WARNING)
    # iadbench loads the fitted state itself (load_state); anomalib's "weights will not be loaded" would mislead
    engine_logger = logging.getLogger("anomalib.engine.engine")
    if not any(isinstance(f, NoCheckpointNotice) for f in engine_logger.filters):
        engine_logger.addFilter(NoCheckpointNotice())
