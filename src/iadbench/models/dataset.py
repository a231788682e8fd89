"""Images of one product and split, read from the split file (never from a library datamodule's split)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from anomalib.data import ImageBatch, ImageItem
from torch.utils.data import DataLoader, Dataset

from iadbench.data.drift import apply_image
from iadbench.data.images import model_input


class SplitDataset(Dataset):
    """Rows of ``data/split.csv`` as anomalib :class:`ImageItem` objects.

    Images are converted to RGB (grayscale channels repeated: every backbone here expects three) and resized to
    ``image_size`` × ``image_size`` (bilinear, no crop), so that images of different sizes batch together; the
    model's own pre-processor then only normalises.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        image_size: int,
        drift: dict[str, list] | None = None,
        edits: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> None:
        self.rows = rows.reset_index(drop=True)
        self.image_size = image_size
        self.drift = drift or {}  # image id -> plan (iadbench.data.drift), applied after the resize
        self.edits = edits or {}  # image id -> function of the model's input (SegAD's synthetic disturbances)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> ImageItem:
        row = self.rows.iloc[index]
        image = model_input(row["image_path"], self.image_size)
        if steps := self.drift.get(str(row["image_id"])):
            image = apply_image(image, steps)
        if (edit := self.edits.get(str(row["image_id"]))) is not None:
            image = edit(image)
        label = torch.tensor(int(row["label"] == "anomalous"))
        return ImageItem(image=image, gt_label=label, image_path=str(row["image_path"]))


def loader(
    rows: pd.DataFrame,
    image_size: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    workers: int = 0,
    drift: dict[str, list] | None = None,
    edits: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> DataLoader:
    """A seeded DataLoader collating anomalib batches (``drift``: per-image plans of test-time drift; ``edits``:
    per-image functions of the model's input).
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        SplitDataset(rows, image_size, drift, edits),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=ImageBatch.collate,
        generator=generator,
    )
