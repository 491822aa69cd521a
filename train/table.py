"""The clip table a run evaluates on: the stores' labelled clips, one label vocabulary across
datasets, restricted to a named clip list; beside the data code it builds on."""

from __future__ import annotations

import numpy as np

from . import clip_lists
from .config import TrainConfig
from .data import ClipTable, cross_dataset_labels, load_clips


def prepare_table(stores: list[str], config: TrainConfig) -> ClipTable:
    """The clips a run evaluates on: the stores' labelled clips, one label vocabulary
    across datasets, restricted to the named clip list (exactly, or an error)."""
    return select_clips(load_clips(stores, config.modality, config.labels, config.on_bad_clip),
                        config, stores)


def select_clips(table: ClipTable, config: TrainConfig, stores: list[str]) -> ClipTable:
    """A loaded table with one label vocabulary across datasets, restricted to the named
    clip list (exactly, or an error)."""
    table = cross_dataset_labels(table, config.labels, config.label_mapping)
    if config.clip_list == "none":
        return table
    if config.labels != 3:
        raise ValueError(f"clip list {config.clip_list} is a 3-class protocol; labels is "
                         f"{config.labels}")
    keep = clip_lists.select(
        config.clip_list, table.datasets, np.array([s.split("/", 1)[1] for s in table.subjects]),
        table.clip_ids, [table.classes[i] for i in table.labels], stores)
    return table.subset(keep)
