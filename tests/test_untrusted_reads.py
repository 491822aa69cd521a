"""An untrusted store or URL costs bounded time and memory: declared shapes, chunk counts,
zstd frame sizes and zip member sizes are refused over the limits before anything is
allocated, and a URL that never answers fails after its timeouts and retries, naming the URL,
the timeout and the cause. Servers are on 127.0.0.1 only."""

import json
import re
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path
from typing import ClassVar

import google_crc32c
import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from consolidated import mirror
from loopback import RangeHandler, serving
from mesti.pipeline.stores import write as store
from mesti.pipeline.stores.export import export_store
from mesti.pipeline.stores.limits import zstd_content_size
from mesti.pipeline.stores.read import ReadLimits, StoreError, open_store
from mesti.pipeline.stores.verify import verify_store
from numcodecs.zstd import Zstd

from mesti.cli import main

SIDE = 32


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A 3-clip modality store written by the project's writer, and its export."""
    tmp = tmp_path_factory.mktemp("untrusted")
    path = tmp / "modalities.zarr"
    rng = np.random.default_rng(4)
    store.open_for_writing(path, "modalities", {"dataset": "casme2",
                                                "images": ["mesti", "apex_frame"]})
    ids = []
    for c in range(3):
        clip_id = f"sub01_c{c}"
        attrs = {"dataset": "casme2", "subject": "sub01", "clip_id": clip_id,
                 "emotion": "happiness", "label3": "positive", "label5": None, "n_frames": 9,
                 "lo": [0.0, None], "hi": [1.0, None]}
        images = rng.integers(0, 256, (2, SIDE, SIDE, 3), dtype=np.uint8)
        store.write_clip(path, clip_id, {"images": images}, attrs, f"key-{clip_id}",
                         per_image=("images",))
        ids.append(clip_id)
    store.finalise(path, ids, {})
    export_store(path, tmp / "modalities.zip", check=False)
    return tmp


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def copy(small: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small / "modalities.zarr", tmp_path / "modalities.zarr"))


def edit(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    mirror(path)  # readers take array metadata from the root's consolidated copy


def cli(*args) -> object:
    return CliRunner().invoke(main, ["cache", *map(str, args)])


# declared sizes ---------------------------------------------------------------------------------


def test_a_billion_declared_images_are_refused_at_once(small: Path, tmp_path: Path) -> None:
    path = copy(small, tmp_path)
    metadata = path / "clips" / "sub01_c1" / "images" / "zarr.json"

    def huge(document: dict) -> None:
        document["shape"][0] = 10 ** 9
        document["chunk_grid"]["configuration"]["chunk_shape"][0] = 10 ** 9

    edit(metadata, huge)
    before = tree(path)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"1000000000 images .* \(MESTI_MAX_FRAMES\)"):
        open_store(path).image("sub01_c1", "mesti")
    problems = verify_store(path)
    assert time.monotonic() - started < 5
    # (this hand-made store has no provenance; only the arrays are in question here)
    assert [(p.clip, p.array, p.code) for p in problems if p.array] == \
        [("sub01_c1", "images", "refused")]
    assert np.array_equal(open_store(path).image("sub01_c0", "mesti"),
                          open_store(small / "modalities.zarr").image("sub01_c0", "mesti"))
    assert tree(path) == before  # reading never writes


def test_chunk_counts_and_bytes_are_bounded_by_the_knobs(small: Path, monkeypatch) -> None:
    location = small / "modalities.zarr"
    with pytest.raises(StoreError, match=r"2 chunks, over the limit of 1 \(MESTI_MAX_CHUNKS\)"):
        open_store(location, limits=ReadLimits(max_chunks=1)).image("sub01_c0", "mesti")
    monkeypatch.setenv("MESTI_MAX_ARRAY_BYTES", "1000")
    with pytest.raises(StoreError, match=r"over the limit of 1000 \(MESTI_MAX_ARRAY_BYTES\)"):
        open_store(location).image("sub01_c0", "mesti")
    monkeypatch.setenv("MESTI_MAX_ARRAY_BYTES", "lots")
    with pytest.raises(StoreError, match="MESTI_MAX_ARRAY_BYTES='lots' is not a number"):
        open_store(location)


def test_a_zstd_chunk_that_inflates_past_its_chunk_is_refused(small: Path,
                                                              tmp_path: Path) -> None:
    path = copy(small, tmp_path)
    clip = "sub01_c2"
    images = open_store(path).array(clip, "images")[...]
    shutil.rmtree(path / "clips" / clip / "images")
    zarr.create_array(str(path), name=f"clips/{clip}/images", shape=images.shape,
                      dtype="uint8", chunks=(1, SIDE, SIDE, 3),
                      compressors=store.COMPRESSED, fill_value=0)[...] = images
    mirror(path / "clips" / clip / "images" / "zarr.json")
    chunk = path / "clips" / clip / "images" / "c" / "1" / "0" / "0" / "0"
    assert chunk.is_file()
    # a valid zstd frame with a valid crc32c, inflating to 64 times its chunk's bytes
    bomb = Zstd(level=19).encode(np.zeros(64 * SIDE * SIDE * 3, np.uint8))
    assert zstd_content_size(bytes(bomb)) == 64 * SIDE * SIDE * 3 and len(bomb) < 1000
    chunk.write_bytes(bytes(bomb) + np.uint32(google_crc32c.value(bytes(bomb))).tobytes())
    before = tree(path)
    problems = verify_store(path)
    problems = [p for p in problems if p.array]
    assert [(p.clip, p.array, p.code) for p in problems] == [(clip, "images", "corrupt")]
    assert f"zstd chunk declares {64 * SIDE * SIDE * 3} decompressed bytes" in \
        problems[0].message
    assert np.array_equal(open_store(path).image(clip, "mesti"), images[0])  # chunk 0 is sound
    assert tree(path) == before


def test_a_zip_member_that_inflates_past_the_limit_is_refused(small: Path,
                                                              tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(small / "modalities.zip") as source, \
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in source.infolist():
            if member.filename != "SHA256SUMS":
                archive.writestr(member, source.read(member))
        with archive.open("SHA256SUMS", "w") as handle:  # 20 MiB of zeros, ~20 KB deflated
            for _ in range(20):
                handle.write(bytes(1 << 20))
    assert bomb.stat().st_size < 200_000
    with pytest.raises(StoreError, match=r"SHA256SUMS declares 20971520 bytes, over the limit "
                                         r"of 16777216 \(MESTI_MAX_METADATA_BYTES\)"):
        open_store(bomb)
    result = cli("verify", bomb)
    assert result.exit_code == 1 and "SHA256SUMS declares" in result.output
    # the same listing as a file of an unpacked store is not read either
    path = copy(small, tmp_path)
    (path / "SHA256SUMS").write_bytes(bytes(17 << 20))
    with pytest.raises(StoreError, match="SHA256SUMS is 17825792 bytes, over the limit"):
        verify_store(path)


# URLs ---------------------------------------------------------------------------------------------


@pytest.fixture
def quick_urls(monkeypatch) -> None:
    monkeypatch.setenv("MESTI_URL_TIMEOUT_S", "0.5")
    monkeypatch.setenv("MESTI_URL_RETRIES", "1")
    monkeypatch.setenv("MESTI_URL_BACKOFF_S", "0.05")


@pytest.fixture
def silent_server():
    """Accepts connections on 127.0.0.1 and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held, stop = [], threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for connection in held:
        connection.close()
    listener.close()


@pytest.mark.parametrize("name", ["store.zarr", "store.zip"])
def test_a_server_that_never_answers_fails_in_bounded_time(silent_server: str, quick_urls,
                                                           name: str) -> None:
    location = f"{silent_server}/{name}"
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_store(location)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert location in message and "no answer after 2 tries" in message
    assert "timeout 0.5 s" in message and re.search(r"Timeout\w*Error", message), message
    result = cli("info", location)
    assert result.exit_code == 1 and "timeout 0.5 s" in result.output


class FlakyRangeHandler(RangeHandler):
    """Answers 503 to the first request of each path, then serves it with range support."""

    seen: ClassVar[set[str]] = set()
    requests: ClassVar[list[str]] = []

    def send_head(self):
        self.requests.append(self.path)
        if self.path not in self.seen:
            self.seen.add(self.path)
            self.send_error(503, "try again")
            return None
        return super().send_head()


def test_transient_server_errors_are_retried_with_back_off(small: Path, quick_urls) -> None:
    FlakyRangeHandler.seen, FlakyRangeHandler.requests = set(), []
    with serving(small, FlakyRangeHandler) as url:
        remote, local = open_store(f"{url}/modalities.zarr"), open_store(small / "modalities.zarr")
        assert remote.clip_ids == local.clip_ids
        assert np.array_equal(remote.images("mesti"), local.images("mesti"))
    metadata = "/modalities.zarr/zarr.json"
    assert FlakyRangeHandler.requests.count(metadata) >= 2  # refused once, then answered
