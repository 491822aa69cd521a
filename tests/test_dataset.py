"""MestiDataset and the store index: DataLoader workers (fork and spawn) over a directory, an
exported zip and a loopback URL read what the store holds; the index carries every manifest
field in both stores."""

import multiprocessing
import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from loopback import serving
from mesti.datasets_manifest.manifest import read_manifest
from mesti.datasets_manifest.records import ClipRecord
from mesti.pipeline.stores.read import INDEX_FIELDS, open_store
from mesti.train import protocols
from mesti.train.data import THREE_CLASSES, to_tensor
from sklearn.model_selection import LeaveOneGroupOut
from torch.utils.data import ConcatDataset, DataLoader

import mesti

STORED_FIELDS = [f.name for f in fields(ClipRecord) if f.name != "root"]  # root: a local path


def expected_items(directory: Path) -> dict[str, tuple[torch.Tensor, int]]:
    """Every labelled clip's image and class, read straight from the directory store."""
    store = open_store(directory)
    out = {}
    for clip_id in store.clip_ids:
        label = store.clip_attrs(clip_id)["label3"]
        if label:
            image = store.image(clip_id, "mesti")
            out[clip_id] = (to_tensor(image[None], image.shape[0])[0],
                            THREE_CLASSES.index(label))
    return out


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_read_every_location_kind(small_stores: Path, context: str) -> None:
    """One loader over a directory, an exported zip and that zip over HTTP (one pair of
    workers, started once: spawning is seconds per worker)."""
    expected = expected_items(small_stores / "modalities.zarr")
    assert len(expected) >= 3
    with serving(small_stores) as url:
        parts = [mesti.MestiDataset(str(location)) for location in
                 (small_stores / "modalities.zarr", small_stores / "export/modalities.zip",
                  f"{url}/export/modalities.zip")]
        for part in parts:
            assert part.clip_ids == list(expected)
            part[0]  # the parent holds an open store (a zip handle) before the workers start
        loader = DataLoader(ConcatDataset(parts), batch_size=1, num_workers=2,
                            persistent_workers=True,
                            multiprocessing_context=multiprocessing.get_context(context))
        for _ in range(2):  # two epochs through the same workers
            seen = [(image[0], int(label[0])) for image, label in loader]
            assert len(seen) == 3 * len(expected)
            for n, (image, label) in enumerate(seen):
                clip_id = list(expected)[n % len(expected)]
                assert torch.equal(image, expected[clip_id][0]), (n, clip_id)
                assert label == expected[clip_id][1], (n, clip_id)
        del loader
        for part in parts:
            part.close()


def test_forked_workers_do_not_share_the_parents_zip_handle(small_stores: Path) -> None:
    """The failure this dataset exists to avoid: forked workers reading through the parent's
    open zip file interleave seeks on one shared file offset (``BadZipFile: Bad CRC-32``).
    Each worker reads through a store it opened itself."""
    data = mesti.MestiDataset(str(small_stores / "export/modalities.zip"))
    parent_store = data.store
    loader = DataLoader(range(8), batch_size=None, num_workers=2,
                        multiprocessing_context=multiprocessing.get_context("fork"),
                        collate_fn=lambda i: (os.getpid(), data[i % len(data)][1],
                                              data._pid, data.store is parent_store))
    seen = list(loader)
    assert len({pid for pid, *_ in seen}) == 2 and os.getpid() not in {s[0] for s in seen}
    assert all(opened_in == pid and not inherited for pid, _, opened_in, inherited in seen)
    assert [label for _, label, *_ in seen] == [int(data.targets[i % len(data)])
                                               for i in range(8)]


def test_classes_subjects_groups_and_scikit_learn(small_stores: Path) -> None:
    data = mesti.MestiDataset(open_store(small_stores / "modalities.zarr"), protocol="loso")
    records = [r for r in read_manifest(small_stores / "manifest/manifest.csv") if r.label3]
    assert data.classes == list(THREE_CLASSES)
    assert data.clip_ids == [r.clip_id for r in records]
    assert list(data.subjects) == [r.subject for r in records]
    assert list(data.groups) == [f"{r.dataset}/{r.subject}" for r in records]
    assert list(data.targets) == [THREE_CLASSES.index(r.label3) for r in records]
    splits = list(LeaveOneGroupOut().split(np.zeros(len(data)), data.targets, data.groups))
    assert len(splits) == len(set(data.groups)) == 2
    folds = protocols.loso(data.groups)
    assert [list(f.test) for f in data.folds] == [list(f.test) for f in folds]
    assert sorted(map(list, (test for _, test in splits))) == sorted(list(f.test) for f in folds)
    shapes = mesti.MestiDataset(small_stores / "modalities.zarr", image="dynamic_raw",
                                transform=lambda image: image.shape)[0][0]
    assert shapes == data.store.image(data.clip_ids[0], "dynamic_raw").shape


def test_bad_arguments_are_clear_errors(small_stores: Path) -> None:
    with pytest.raises(KeyError, match=r"no image .nope.*mesti"):
        mesti.MestiDataset(small_stores / "modalities.zarr", image="nope")
    with pytest.raises(ValueError, match="modality store"):
        mesti.MestiDataset(small_stores / "faces.zarr")
    with pytest.raises(ValueError, match="labels must be"):
        mesti.MestiDataset(small_stores / "modalities.zarr", labels="label7")
    with pytest.raises(ValueError, match="protocol"):
        mesti.MestiDataset(small_stores / "modalities.zarr", protocol="kfold")


@pytest.mark.parametrize("kind", ["faces", "modalities"])
def test_index_has_every_manifest_field(small_stores: Path, kind: str) -> None:
    store = open_store(small_stores / f"{kind}.zarr")
    index = store.index
    assert isinstance(index, pd.DataFrame)
    assert set(STORED_FIELDS) <= set(INDEX_FIELDS) == set(index.columns)
    records = read_manifest(small_stores / "manifest/manifest.csv")
    assert list(index["clip_id"]) == [r.clip_id for r in records]
    for row, record in zip(index.to_dict("records"), records, strict=True):
        for name in STORED_FIELDS:
            assert row[name] == getattr(record, name), (kind, record.clip_id, name)
            assert store.clip_attrs(record.clip_id)[name] == getattr(record, name)
        assert row["n_frames"] == record.n_frames
    assert any(r.action_units for r in records)
