"""Figures drawn with matplotlib: `mesti show` on a store, a received zip without its faces
store, with --faces, and its errors; the training run's confusion matrix and attention maps;
PNG by default, PDF and SVG by extension."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from consolidated import mirror
from mesti.pipeline.figures import FLOW_SCALE, clip_figure, find_faces, save_figure, show_clip
from mesti.pipeline.stores.export import export_store
from mesti.pipeline.stores.read import open_store
from mesti.train.figures import attention_figure, confusion_figure, write_run_figures
from mesti.train.run import TrainConfig

from mesti.cli import main

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


def first_clip(small_stores: Path) -> str:
    return open_store(small_stores / "modalities.zarr").clip_ids[0]


@pytest.fixture(scope="module")
def received(small_stores: Path, tmp_path_factory) -> Path:
    """The modality store as a lab receives it: a zip whose recorded faces store is not there."""
    tmp = tmp_path_factory.mktemp("received")
    copy = Path(shutil.copytree(small_stores / "modalities.zarr", tmp / "sent.zarr"))
    meta = json.loads((copy / "zarr.json").read_text())
    meta["attributes"]["source"] = "cache/faces/sample.zarr"  # relative to another folder
    (copy / "zarr.json").write_text(json.dumps(meta))
    (tmp / "lab").mkdir()
    export_store(copy, tmp / "lab" / "sample.zip")
    return tmp / "lab" / "sample.zip"


@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_show_writes_each_format(small_stores: Path, tmp_path: Path, suffix: str) -> None:
    out, note = show_clip(small_stores / "modalities.zarr", first_clip(small_stores),
                          tmp_path / f"clip{suffix}", images=("mesti", "apex_frame"))
    assert note is None  # the faces store the modality store records was found
    assert out.read_bytes().startswith(MAGIC[suffix]) and out.stat().st_size > 1000
    again, _ = show_clip(small_stores / "modalities.zarr", first_clip(small_stores),
                         tmp_path / f"again{suffix}", images=("mesti", "apex_frame"))
    assert again.read_bytes() == out.read_bytes()  # no dates: the same clip, the same file


def test_panels_colour_bars_and_difference(small_stores: Path) -> None:
    pooled = open_store(small_stores / "modalities.zarr")
    clip = first_clip(small_stores)
    faces, _ = find_faces(pooled, None)
    with_crops = clip_figure(pooled, clip, ("mesti", "dynamic_raw", "apex_frame"), faces)
    titles = [a.get_title() for a in with_crops.axes]
    assert sum(t.startswith(("onset", "apex,", "offset")) for t in titles) == 3
    assert "apex - onset" in titles and {"MESTI", "dynamic image", "apex frame"} <= set(titles)
    bars = [a for a in with_crops.axes if a.get_label() == "<colorbar>"]
    assert len(bars) == 4  # one per pooled image, one for the difference
    position = pooled.names.index("mesti")
    lo, hi = (pooled.clip_attrs(clip)[k][position] for k in ("lo", "hi"))
    mesti_bar = bars[1]  # after the difference panel's
    assert np.allclose(sorted(mesti_bar.get_ylim()), [lo, hi])
    alone = clip_figure(pooled, clip, ("mesti",), None)
    assert [a.get_title() for a in alone.axes if a.get_label() != "<colorbar>"] == ["MESTI"]


def test_received_zip_draws_pooled_images_alone_or_with_faces(
        small_stores: Path, received: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the recorded source is relative: nothing of that name here
    clip = first_clip(small_stores)
    result = CliRunner().invoke(main, ["show", str(received), clip, str(tmp_path / "a.png")])
    assert result.exit_code == 0, result.output
    assert "cache/faces/sample.zarr not found" in result.output and "--faces" in result.output
    assert (tmp_path / "a.png").read_bytes().startswith(MAGIC[".png"])
    result = CliRunner().invoke(main, ["show", str(received), clip, str(tmp_path / "b.pdf"),
                                       "--faces", str(small_stores / "faces.zarr")])
    assert result.exit_code == 0 and "not found" not in result.output, result.output
    assert (tmp_path / "b.pdf").read_bytes().startswith(MAGIC[".pdf"])
    result = CliRunner().invoke(main, ["show", str(received), clip, str(tmp_path / "c.png"),
                                       "--faces", str(tmp_path / "nowhere.zarr")])
    assert result.exit_code == 1 and "--faces" in result.output and "nowhere" in result.output
    # a faces store named as recorded, beside the received store, is found
    shutil.copytree(small_stores / "faces.zarr", received.parent / "sample.zarr")
    found, note = find_faces(open_store(received), None)
    assert note is None and found.location == str(received.parent / "sample.zarr")
    # a store at the recorded relative path that is not the one the clip came from is passed
    other = Path(shutil.copytree(small_stores / "faces.zarr", tmp_path / "cache/faces/sample.zarr"))
    meta = json.loads((other / "clips" / clip / "zarr.json").read_text())
    meta["attributes"]["content_key"] = "0" * 64
    (other / "clips" / clip / "zarr.json").write_text(json.dumps(meta))
    mirror(other / "clips" / clip / "zarr.json")
    found, note = find_faces(open_store(received), None, clip)
    assert note is None and found.location == str(received.parent / "sample.zarr")
    result = CliRunner().invoke(main, ["show", str(received), clip, str(tmp_path / "d.png"),
                                       "--faces", str(other)])
    assert result.exit_code == 1 and "content key" in result.output


def test_unknown_image_or_format_is_an_error(small_stores: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["show", str(small_stores / "modalities.zarr"),
                                       first_clip(small_stores), str(tmp_path / "x.png"),
                                       "--image", "mesti", "--image", "flow_x"])
    assert result.exit_code == 1
    assert "'flow_x'" in result.output and "mesti, " in result.output
    assert "dynamic_raw" in result.output and not (tmp_path / "x.png").exists()
    with pytest.raises(ValueError, match=r"png, \.pdf, \.svg"):
        save_figure(confusion_figure([[1]], ["a"], "t"), tmp_path / "x.jpg")


def test_training_figures_png_and_pdf(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    classes = ["negative", "positive", "surprise"]
    table = SimpleNamespace(images=rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
                            labels=np.array([0, 1, 2]), classes=classes,
                            clip_ids=np.array(["c0", "c1", "c2"]))
    probabilities = np.eye(3)[[0, 2, 2]]
    metrics = {"confusion": [[1, 0, 0], [0, 0, 1], [0, 0, 1]]}
    maps = [(1, rng.random((8, 8))), (2, rng.random((8, 8)))]
    config = TrainConfig(protocol="holdout", variant="meganet")
    for extension in (".png", ".pdf"):
        written = write_run_figures(tmp_path, table, probabilities, metrics, maps, config,
                                    extension)
        assert [p.name for p in written] == [f"confusion{extension}", f"attention{extension}"]
        assert all(p.read_bytes().startswith(MAGIC[extension]) for p in written)
    figure = confusion_figure(metrics["confusion"], classes, "holdout, meganet")
    axes = figure.axes[0]
    cells = {t.get_text() for t in axes.texts}
    assert {"1\n100%", "0\n0%"} <= cells and len(axes.texts) == 9
    assert "holdout, meganet" in axes.get_title()
    overlay = attention_figure([(table.images[1], maps[0][1], "c1", "positive", "surprise")],
                               "holdout, meganet")
    assert "true positive, predicted surprise" in overlay.axes[0].get_title()
    assert len(overlay.axes[1].images) == 2  # the face, and the map over it


def test_motion_images_are_drawn(small_stores: Path, tmp_path: Path) -> None:
    """Flow as a colour wheel with a magnitude scale, the active image with its value scale."""
    from mesti.pipeline.runner.cluster import ClusterOptions
    from mesti.pipeline.runner.run import run_modalities
    from mesti.pipeline.runner.stages import ModalitiesConfig

    config = ModalitiesConfig(motion=("flow_uvs", "active_image"), flow_size=32)
    run_modalities(small_stores / "faces.zarr", tmp_path / "motion.zarr", config,
                   ClusterOptions(workers=0, progress=False))
    pooled = open_store(tmp_path / "motion.zarr")
    clip = pooled.clip_ids[0]
    figure = clip_figure(pooled, clip, ("flow_uvs", "active_image"), None)
    titles = [axes.get_title() for axes in figure.axes]
    assert "flow, onset to apex" in titles and "active image" in titles
    assert any(axes.get_ylabel() == FLOW_SCALE for axes in figure.axes)
    out, _ = show_clip(tmp_path / "motion.zarr", clip, tmp_path / "motion.png",
                       images=("flow_uvs", "active_image"))
    assert out.stat().st_size > 0
