"""Protocol clip lists applied to stores: exact composites, and every missing clip explained."""

import csv
from pathlib import Path

import numpy as np
import pytest
from mesti.pipeline.stores import write as store
from mesti.train import clip_lists
from mesti.train.clip_lists import ClipListError, load_list
from mesti.train.run import TrainConfig, prepare_table


def store_naming(row: clip_lists.ListedClip) -> tuple[str, str]:
    """(subject, clip id) as the manifest recipes name them (datasets_manifest/)."""
    if row.dataset == "casme2":
        return row.subject, f"{row.subject}_{row.clip}"
    if row.dataset == "smic":  # folders s1/.../s1_ne_01
        subject = f"s{int(row.subject[1:])}"
        return subject, subject + row.clip[row.clip.index("_"):]
    return row.subject, row.clip


def list_store(path: Path, dataset: str, clips: list[tuple[str, str, str | None]],
               attrs: dict | None = None) -> str:
    """A modality store holding (subject, clip id, 3-class label) clips, tiny images."""
    store.open_for_writing(path, "modalities", {"dataset": dataset, "images": ["mesti"],
                                                **(attrs or {})})
    image = np.zeros((1, 4, 4, 3), np.uint8)
    for subject, clip_id, label in clips:
        store.write_clip(path, clip_id, {"images": image},
                         {"dataset": dataset, "subject": subject, "clip_id": clip_id,
                          "emotion": label or "others", "label3": label, "label5": None,
                          "n_frames": 3, "lo": [0.0], "hi": [1.0]},
                         f"key-{clip_id}", per_image=("images",))
    store.finalise(path, [c for _, c, _ in clips], {"failures": (attrs or {}).get("failures",
                                                                                   [])})
    return str(path)


def listed(dataset: str, name: str = "megc2019") -> list[tuple[str, str, str]]:
    return [(*store_naming(r), r.label) for r in load_list(name) if r.dataset == dataset]


def test_composite_from_dataset_shaped_stores_is_exactly_the_list(tmp_path: Path) -> None:
    extra_casme2 = [("sub04", "sub04_EP12_01f", "negative"), ("sub05", "sub05_EP09_05f",
                                                              "negative"),
                    ("sub01", "sub01_EP99_01", None)]  # mapped, mapped, unlabelled
    stores = [list_store(tmp_path / "c.zarr", "casme2", listed("casme2") + extra_casme2),
              list_store(tmp_path / "s.zarr", "samm", listed("samm")),
              list_store(tmp_path / "h.zarr", "smic", listed("smic"))]
    config = TrainConfig(input_size=16, clip_list="megc2019")
    table = prepare_table(stores, config)
    assert len(table.labels) == 442 and len(set(table.subjects)) == 68
    assert "sub04_EP12_01f" not in set(table.clip_ids)
    everything = prepare_table(stores[:1], TrainConfig(input_size=16,
                                                       clip_list="casme2_3class_all"))
    assert len(everything.labels) == 147
    assert len(prepare_table(stores, TrainConfig(input_size=16)).labels) == 444
    with pytest.raises(ClipListError, match="covers"):
        prepare_table(stores, TrainConfig(input_size=16, clip_list="casme2_3class_all"))


def test_missing_clips_are_named_with_the_stage_that_lost_them(tmp_path: Path) -> None:
    rows = listed("casme2")
    lost = {r[1]: r for r in rows[:5]}
    names = list(lost)
    manifest = tmp_path / "manifest" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("dataset,subject,clip_id\n")
    with (manifest.parent / "problems.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "subject", "code", "action", "detail"])
        writer.writerow([names[0], lost[names[0]][0], "apex_invalid", "excluded", "apex '/'"])
    faces = tmp_path / "faces.zarr"
    store.open_for_writing(faces, "faces", {"dataset": "casme2", "source": str(manifest)})
    store.finalise(faces, [], {"failures": [{"clip_id": names[1], "stage": "faces",
                                             "code": "no_face", "message": "no face found"}]})
    kept = [r for r in rows if r[1] not in lost]
    relabelled = (lost[names[3]][0], names[3], "surprise" if lost[names[3]][2] != "surprise"
                  else "negative")
    location = list_store(tmp_path / "m.zarr", "casme2", [*kept, relabelled,
                                                          (lost[names[4]][0], names[4], None)],
                          {"source": str(faces), "failures": [
                              {"clip_id": names[2], "stage": "modalities",
                               "code": "decode_error", "message": "bad frame"}]})
    with pytest.raises(ClipListError) as caught:
        prepare_table([location], TrainConfig(input_size=16, clip_list="megc2019"))
    text = str(caught.value)
    lines = {n: next(line for line in text.splitlines() if n.split("_", 1)[1] in line)
             for n in names}
    assert "excluded by the manifest (apex_invalid" in lines[names[0]]
    assert "failed in the faces stage (no_face" in lines[names[1]]
    assert "failed in the modalities stage (decode_error" in lines[names[2]]
    assert "in the list" in lines[names[3]]
    assert "without a 3-class label" in lines[names[4]]
    assert "(5 of 145 listed clips)" in text
    # a clip recorded nowhere is absent
    with pytest.raises(ClipListError, match="absent"):
        prepare_table([list_store(tmp_path / "n.zarr", "casme2", kept)],
                      TrainConfig(input_size=16, clip_list="megc2019"))
