"""The sequence models on a damaged sequences store: a deleted clip, a corrupt flow chunk and a
label edited by hand are each skipped and named (or stop the run with on_bad_clip: stop), as
MEGANet does on a damaged modality clip; the reader refuses the edited clip itself."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from consolidated import forget, mirror
from mesti.pipeline.stores.read import StoreError, open_store
from mesti.train.data import BadClip
from mesti.train.inputs import MOLConfig, load_inputs
from sequences_fake import sequences_store

from mesti.cli import main

MISSING, CORRUPT, EDITED = "s0_c0", "s1_c1", "s2_c2"


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[str, str]:
    """A clean sequences store with flow, and a copy with three damaged clips."""
    clean = sequences_store(tmp_path / "clean.zarr", "casme2", 3, 0)
    work = Path(shutil.copytree(clean, tmp_path / "damaged.zarr"))
    (work / "clips" / MISSING / "zarr.json").unlink()
    forget(work / "clips" / MISSING / "zarr.json")  # readers use the root's copy
    (chunk,) = [p for p in (work / "clips" / CORRUPT / "flow").rglob("*")
                if p.is_file() and p.name != "zarr.json"]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    metadata = work / "clips" / EDITED / "zarr.json"
    document = json.loads(metadata.read_text())
    document["attributes"]["label3"] = "negative"  # was surprise
    metadata.write_text(json.dumps(document))
    mirror(metadata)
    return clean, str(work)


def test_bad_sequence_clips_are_skipped_and_named(damaged, capsys) -> None:
    clean, work = damaged
    config = MOLConfig(crop=32, size=16)
    table, inputs = load_inputs([work], "mol", 3, config=config)
    good = [c for c in open_store(clean).clip_ids if c not in (MISSING, CORRUPT, EDITED)]
    assert list(table.clip_ids) == good and len(inputs) == len(good)
    reference = open_store(clean)
    for clip, arrays in zip(table.clip_ids, inputs.clips, strict=True):
        assert np.array_equal(arrays["flow"], reference.sequence(clip)["flow"])
    assert len(table.skipped) == 3
    for clip, skipped in zip((MISSING, CORRUPT, EDITED), table.skipped, strict=True):
        assert f"clip {clip}: unreadable" in skipped
    assert "content_key" in table.skipped[2]
    err = capsys.readouterr().err
    assert all(f"skipped {work}: clip {c}" in err for c in (MISSING, CORRUPT, EDITED))
    with pytest.raises(BadClip, match=f"clip {MISSING}"):
        load_inputs([work], "mol", 3, config=config, on_bad_clip="stop")


def test_the_reader_refuses_a_sequences_clip_whose_label_was_edited(damaged) -> None:
    clean, work = damaged
    assert open_store(clean).sequence(EDITED)["frames"].shape[0] == 3
    with pytest.raises(StoreError, match=f"clip {EDITED}: its content_key is not the one"):
        open_store(work).sequence(EDITED)


def test_train_mol_on_a_damaged_store_skips_and_names(damaged, tmp_path: Path) -> None:
    _, work = damaged
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  protocol: holdout\n  holdout_fraction: 0.3\n"
                      "mol:\n  preset: small\n  steps: 2\n  batch_size: 4\n  crop: 32\n"
                      "  size: 32\n  train_crops: 1\n  neighbours: 3\n")
    result = CliRunner().invoke(main, ["train", work, str(tmp_path / "mol"), "--model", "mol",
                                       "--params", str(params), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert all(f"skipped {work}: clip {c}" in result.output for c in (MISSING, CORRUPT, EDITED))
    metrics = json.loads((tmp_path / "mol" / "metrics.json").read_text())
    assert len(metrics["skipped_clips"]) == 3
    assert all(f"clip {c}:" in why for c, why in zip((MISSING, CORRUPT, EDITED),
                                                  metrics["skipped_clips"], strict=True))
