"""Reads that scale and leave zarr alone: a finalised store carries zarr v3 consolidated
metadata, so its index costs the same few requests whatever its number of clips; array
handles are kept; several reads are in flight at once; `mesti cache verify` checks the copy
against every node's file; and mesti's zstd bound never changes zarr's global state."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from loopback import counting, serving
from mesti.pipeline.stores import write as store
from mesti.pipeline.stores.export import export_store
from mesti.pipeline.stores.read import open_store
from mesti.pipeline.stores.verify import verify_store

SIDE = 16
IMAGES = ["mesti", "apex_frame"]


def build(path: Path, clips: int, keep: int | None = None) -> Path:
    """A modality store of ``clips`` labelled clips by the project's writer; the first
    ``keep`` (default all) are listed by finalise, the others left on disk unlisted."""
    rng = np.random.default_rng(clips)
    store.open_for_writing(path, "modalities", {"dataset": "casme2", "images": IMAGES})
    ids = []
    for number in range(clips):
        clip_id = f"sub{number // 2 + 1:02d}_c{number}"
        attrs = {"dataset": "casme2", "subject": clip_id[:5], "clip_id": clip_id,
                 "emotion": "happiness", "label3": "positive", "label5": None,
                 "n_frames": 9, "lo": [0.0, None], "hi": [1.0, None]}
        images = rng.integers(0, 256, (len(IMAGES), SIDE, SIDE, 3), dtype=np.uint8)
        store.write_clip(path, clip_id, {"images": images}, attrs, f"key-{clip_id}",
                         per_image=("images",))
        ids.append(clip_id)
    store.finalise(path, ids[:keep], {})
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    """Stores of 3 and 12 clips, and their exports, in one served folder."""
    tmp = tmp_path_factory.mktemp("remote")
    for clips in (3, 12):
        build(tmp / f"c{clips}.zarr", clips)
        export_store(tmp / f"c{clips}.zarr", tmp / f"c{clips}.zip", check=False)
    return tmp


def codes(location: Path) -> set[tuple]:
    """verify's findings (these hand-made stores lack provenance: their clips report it)."""
    return {(p.clip, p.array, p.code) for p in verify_store(location)
            if p.code != "provenance"}


def index_requests(url: str, **options) -> int:
    handler = counting()
    base, _, name = url.rpartition("/")
    with serving(Path(base), handler) as served, open_store(f"{served}/{name}",
                                                             **options) as opened:
        assert len(opened.index) == len(opened.clip_ids)
    return len(handler.requests)


@pytest.mark.parametrize("suffix", [".zarr", ".zip"])
def test_the_index_takes_as_many_requests_for_12_clips_as_for_3(stores: Path,
                                                                suffix: str) -> None:
    few, many = (index_requests(f"{stores}/c{n}{suffix}") for n in (3, 12))
    assert few == many
    if suffix == ".zarr":
        assert many <= 3  # the root's zarr.json and the range check
        # the same stores read node by node: one more request per clip (so the count above
        # is not blind to clips)
        plain_few, plain_many = (index_requests(f"{stores}/c{n}.zarr", consolidated=False)
                                 for n in (3, 12))
        assert plain_many - plain_few == 12 - 3


def test_an_item_costs_its_image_ranges_and_no_metadata(stores: Path) -> None:
    handler = counting()
    with serving(stores, handler) as base, open_store(f"{base}/c3.zarr") as remote:
        assert remote.consolidated
        clip = remote.clip_ids[1]
        handler.requests.clear()
        first = remote.image(clip, "mesti")
        again = remote.image(clip, "apex_frame")
        requests = list(handler.requests)
    assert not [r for r in requests if r.endswith("zarr.json")], requests
    assert len(requests) == 4  # per image: its shard's index and its chunk, by range
    local = open_store(stores / "c3.zarr")
    assert np.array_equal(first, local.image(clip, "mesti"))
    assert np.array_equal(again, local.image(clip, "apex_frame"))
    assert local.array(clip, "images") is local.array(clip, "images")  # the handle is kept


def test_many_reads_are_in_flight_at_once(stores: Path) -> None:
    handler = counting(latency_s=0.1)
    with serving(stores, handler) as base:
        remote = open_store(f"{base}/c12.zarr", consolidated=False)
        index = remote.index
        images = remote.images("mesti")
    local = open_store(stores / "c12.zarr")
    assert index.equals(local.index)
    assert np.array_equal(images, local.images("mesti"))
    assert handler.in_flight[1] >= 8  # 12 clips' metadata, then 12 images' ranges at once


def test_verify_checks_the_consolidated_copy(stores: Path, tmp_path: Path) -> None:
    path = Path(shutil.copytree(stores / "c3.zarr", tmp_path / "s.zarr"))
    clip = open_store(path).clip_ids[0]
    root = path / "zarr.json"
    document = json.loads(root.read_text())
    entries = document["consolidated_metadata"]["metadata"]
    assert set(entries) == {"clips", *(f"clips/{c}" for c in open_store(path).clip_ids),
                            *(f"clips/{c}/images" for c in open_store(path).clip_ids)}
    entries[f"clips/{clip}"]["attributes"]["label3"] = "negative"  # the copy alone
    del entries[f"clips/{open_store(path).clip_ids[1]}/images"]
    root.write_text(json.dumps(document))
    assert open_store(path).clip_attrs(clip)["label3"] == "negative"  # readers use the copy
    assert codes(stores / "c3.zarr") == set()
    assert codes(path) == {(clip, None, "consolidated"),
                           (open_store(path).clip_ids[1], "images", "consolidated")}
    assert any("differs from its copy" in str(p) for p in verify_store(path))


def test_a_store_without_the_copy_still_reads_and_verifies(stores: Path,
                                                          tmp_path: Path) -> None:
    path = Path(shutil.copytree(stores / "c3.zarr", tmp_path / "old.zarr"))
    document = json.loads((path / "zarr.json").read_text())
    del document["consolidated_metadata"]
    (path / "zarr.json").write_text(json.dumps(document))
    old, new = open_store(path), open_store(stores / "c3.zarr")
    assert not old.consolidated and new.consolidated
    assert old.index.equals(new.index)
    assert np.array_equal(old.images("mesti"), new.images("mesti"))
    assert codes(path) == set()


def test_the_copy_lists_the_index_alone_and_a_writer_drops_it(tmp_path: Path) -> None:
    path = build(tmp_path / "s.zarr", 4, keep=3)
    first = (path / "zarr.json").read_bytes()
    entries = json.loads(first)["consolidated_metadata"]["metadata"]
    unlisted = "sub02_c3"
    assert open_store(path).attrs["unlisted"] == [unlisted]
    assert not [k for k in entries if unlisted in k]
    store.open_for_writing(path, "modalities", {"dataset": "casme2", "images": IMAGES})
    assert "consolidated_metadata" not in json.loads((path / "zarr.json").read_text())
    clips = open_store(path, require_complete=False).clip_ids
    store.finalise(path, clips, {})
    assert (path / "zarr.json").read_bytes() == first  # the same store, the same bytes


GLOBAL_STATE = """
import json, sys, warnings
import zarr
from zarr.registry import get_codec_class
def state():
    return {"config": json.dumps(zarr.config.get("codecs"), sort_keys=True, default=str),
            "zstd": get_codec_class("zstd").__qualname__}
before = state()
import mesti.train.dataset
from mesti.pipeline.stores.verify import verify_store
from mesti.pipeline.stores.limits import BoundedZstdCodec
from mesti.pipeline.stores.read import open_store
after_import = state()
location = sys.argv[1]
with open_store(location) as opened:
    index = opened.index
    images = opened.images("mesti")
    inner = opened.array(opened.clip_ids[0], "images").metadata.codecs[0].codecs
problems = [p for p in verify_store(location) if p.code != "provenance"]
item = mesti.train.dataset.MestiDataset(location)[0]
plain = zarr.open_array(location, path=f"clips/{index.clip_id[0]}/images", mode="r")
print(json.dumps({"before": before, "after_import": after_import, "after_use": state(),
                  "mesti_codec": [type(c).__name__ for c in inner],
                  "plain_codec": [type(c).__name__ for c in plain.metadata.codecs[0].codecs],
                  "images": list(images.shape), "problems": len(problems)}))
"""


def test_zarr_global_state_is_untouched_by_importing_and_using_mesti(stores: Path) -> None:
    """Importing mesti, opening, indexing, reading images, verifying and a Dataset item leave
    zarr's codec configuration and registry as they were; mesti's own reads are bounded."""
    result = subprocess.run([sys.executable, "-c", GLOBAL_STATE, str(stores / "c3.zarr")],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["before"]["zstd"] == "ZstdCodec"
    assert found["before"] == found["after_import"] == found["after_use"]
    assert found["mesti_codec"] == ["BytesCodec", "BoundedZstdCodec", "Crc32cCodec"]
    assert found["plain_codec"] == ["BytesCodec", "ZstdCodec", "Crc32cCodec"]
    assert found["images"] == [3, SIDE, SIDE, 3] and found["problems"] == 0


def test_a_copy_over_the_readers_metadata_limit_is_not_written(tmp_path: Path,
                                                               monkeypatch) -> None:
    from mesti.pipeline.stores.read import ReadLimits

    monkeypatch.setattr(ReadLimits, "max_metadata_bytes", 4000)  # about two clips' worth
    small, large = build(tmp_path / "small.zarr", 1), build(tmp_path / "large.zarr", 6)
    assert open_store(small).consolidated and not open_store(large).consolidated
    assert (large / "zarr.json").stat().st_size < 4000
    assert len(open_store(large).index) == 6 and codes(large) == set()
