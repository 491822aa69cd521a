"""Reading a store over a slow link: requests and seconds, without and with consolidated metadata.

    python -m bench.remote                      # a synthetic 48-clip modality store
    python -m bench.remote --store cache/modalities/sample.zarr --latency-ms 50

The store is served by a local HTTP server that honours range requests (tests/loopback.py)
and waits ``--latency-ms`` before every answer, as a distant server would; the server counts
every request. Two copies are served: the store as finalised (with zarr v3 consolidated
metadata in its root zarr.json) and the same store with that metadata removed, which is how
a store written before finalise consolidated it reads (each clip's group and array metadata
fetched on its own). For each: opening the store and building its index, then one pass of
a PyTorch DataLoader over ``MestiDataset`` (batch 8, ``--workers`` worker processes).

Without consolidated metadata the index costs one request per clip (fetched concurrently);
with it the index costs the same few requests whatever the number of clips. Each
DataLoader item costs its image's byte ranges (a shard's index and one chunk) plus, without
consolidated metadata, its array's metadata once per worker.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from loopback import counting, serving
from mesti.pipeline.stores import write as writer
from mesti.pipeline.stores.read import open_store

IMAGES = ("mesti", "dynamic_raw", "apex_frame")
LABELS = ("negative", "positive", "surprise")


def synthetic_store(path: Path, clips: int, side: int = 112, seed: int = 0) -> Path:
    """A modality store of ``clips`` labelled clips written by the project's writer."""
    rng = np.random.default_rng(seed)
    writer.open_for_writing(path, "modalities", {"dataset": "casme2", "images": list(IMAGES)})
    ids = []
    for number in range(clips):
        subject = f"sub{number // 4 + 1:02d}"
        clip_id = f"{subject}_EP{number:02d}"
        attrs = {"dataset": "casme2", "subject": subject, "clip_id": clip_id,
                 "emotion": "happiness", "label3": LABELS[number % 3], "label5": None,
                 "n_frames": 20, "lo": [0.0, 0.0, None], "hi": [1.0, 1.0, None]}
        images = rng.integers(0, 256, (len(IMAGES), side, side, 3), dtype=np.uint8)
        writer.write_clip(path, clip_id, {"images": images}, attrs, f"key-{clip_id}",
                          per_image=("images",))
        ids.append(clip_id)
    writer.finalise(path, ids, {})
    return path


def without_consolidated(source: Path, out: Path) -> Path:
    """A copy of ``source`` whose root zarr.json lacks the consolidated metadata."""
    shutil.copytree(source, out)
    document = json.loads((out / "zarr.json").read_text())
    document.pop("consolidated_metadata", None)
    (out / "zarr.json").write_text(json.dumps(document, indent=2))
    return out


def measure(url: str, handler, workers: int, batch: int) -> dict:
    """Requests and seconds of the index, then of one DataLoader pass."""
    from mesti.train.dataset import MestiDataset
    from torch.utils.data import DataLoader

    handler.requests.clear()
    started = time.perf_counter()
    with open_store(url) as opened:
        index = opened.index
    row = {"clips": len(index), "index_requests": len(handler.requests),
           "index_s": time.perf_counter() - started}
    data = MestiDataset(url, image="mesti", labels="label3")
    handler.requests.clear()
    started = time.perf_counter()
    loader = DataLoader(data, batch_size=batch, num_workers=workers,
                        persistent_workers=False)
    items = sum(len(labels) for _, labels in loader)
    row.update({"items": items, "loader_requests": len(handler.requests),
                "loader_s": time.perf_counter() - started})
    row["requests_per_item"] = row["loader_requests"] / max(items, 1)
    return row


def table(rows: dict[str, dict], latency_ms: float, workers: int) -> str:
    lines = [f"Store served over HTTP with {latency_ms:g} ms added per request; DataLoader "
             f"batch 8, {workers} worker(s).", "",
             "| store | clips | index requests | index s | loader requests | requests/item "
             "| loader s |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['clips']} | {r['index_requests']} | {r['index_s']:.2f} | "
                     f"{r['loader_requests']} | {r['requests_per_item']:.2f} | "
                     f"{r['loader_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a finalised modality store (default: a "
                        "synthetic one of --clips clips)")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        served = Path(tmp)
        if args.store is None:
            synthetic_store(served / "consolidated.zarr", args.clips)
        else:
            shutil.copytree(args.store, served / "consolidated.zarr")
        with open_store(served / "consolidated.zarr") as check:
            if not check.consolidated:
                raise SystemExit(f"{args.store}: no consolidated metadata; finalise it with "
                                 "this version (a re-run of its stage)")
        without_consolidated(served / "consolidated.zarr", served / "plain.zarr")
        handler = counting(args.latency_ms / 1000)
        rows = {}
        with serving(served, handler) as base:
            for name, folder in (("without consolidated metadata", "plain.zarr"),
                                 ("with consolidated metadata", "consolidated.zarr")):
                rows[name] = measure(f"{base}/{folder}", handler, args.workers, args.batch)
    print(table(rows, args.latency_ms, args.workers))


if __name__ == "__main__":
    main()
