"""The shipped per-dataset overrides files: valid, naming real clips, values in range."""

import re
from pathlib import Path

import fakes
import pytest
import yaml
from mesti.datasets_manifest import casme2, casme3, samm, smic
from mesti.datasets_manifest.overrides import load_overrides
from mesti.datasets_manifest.validate import ManifestConfig, validate

FOLDER = Path(casme2.__file__).parent / "overrides"
# Each dataset's clip-id scheme, as its recipe names clips (datasets_manifest/<recipe>.py).
SCHEMES = {"casme2": (casme2, r"sub\d{2}_EP\w+"), "samm": (samm, r"\d{3}_\d+_\d+"),
           "smic": (smic, r"s\d{1,2}_(ne|po|sur)_\d{2}"), "casme3": (casme3, r"spNO\.\d+_\S+")}

# The sheet row of every clip a shipped file names, as the public copies cited in that file
# give it: subject, filename, onset, apex, offset, emotion, and the frames the release holds
# (first, last). A new entry in a file needs its row here, so that its values are checked
# against the clip's real window. One untouched clip per dataset shows that nothing else moves.
SHEET_ROWS = {
    "casme2": {
        "sub04_EP12_01f": (4, "EP12_01f", 261, "/", 321, "disgust", (261, 321)),
        "sub05_EP09_05f": (5, "EP09_05f", 69, 69, 123, "disgust", (69, 123)),
        "sub05_EP16_04f": (5, "EP16_04f", 141, 181, 181, "others", (141, 181)),
        "sub12_EP09_06": (12, "EP09_06", 66, 111, 111, "disgust", (66, 111)),
        "sub20_EP16_01": (20, "EP16_01", 71, 111, 111, "others", (71, 111)),
        "sub25_EP18_04f": (25, "EP18_04f", 76, 116, 116, "disgust", (76, 116)),
        "sub16_EP01_08": (16, "EP01_08", 73, 94, 110, "repression", (73, 96)),
        "sub01_EP02_01f": (1, "EP02_01f", 46, 59, 86, "happiness", (46, 86)),
    },
    "samm": {
        "013_1_9": (13, "013_1_9", 5658, 5680, 5739, "Anger", (5658, 5739)),
        "028_4_1": (28, "028_4_1", 1071, 1134, 1134, "Contempt", (1071, 1134)),
        "006_1_2": (6, "006_1_2", 5562, 5588, 5632, "Anger", (5562, 5632)),
    },
}
UNTOUCHED = {"casme2": "sub01_EP02_01f", "samm": "006_1_2"}


def _files() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def test_every_dataset_ships_a_file() -> None:
    assert set(SCHEMES) <= set(_files())


@pytest.mark.parametrize("name", _files())
def test_clip_ids_are_read_as_text(name: str) -> None:
    # YAML reads an unquoted 032_3_1 as the integer 1689: SAMM keys must be quoted.
    raw = yaml.safe_load((FOLDER / f"{name}.yaml").read_text()) or {}
    assert all(isinstance(key, str) for key in raw), [k for k in raw if not isinstance(k, str)]


@pytest.mark.parametrize("dataset", sorted(SCHEMES))
def test_overrides_file_names_real_clips_with_values_in_range(dataset: str) -> None:
    recipe, scheme = SCHEMES[dataset]
    overrides = load_overrides(FOLDER / f"{dataset}.yaml")  # the format's own checks
    rows = SHEET_ROWS.get(dataset, {})
    for clip_id, override in overrides.items():
        assert re.fullmatch(scheme, clip_id), clip_id
        assert clip_id in rows, f"{clip_id}: add its sheet row to SHEET_ROWS"
        values = override.values
        for key in ("onset", "apex", "offset"):
            assert values.get(key) is None or values[key] >= 0, (clip_id, key)
        _, _, onset, apex, offset, _, (first, last) = rows[clip_id]
        window = {"onset": onset, "apex": apex, "offset": offset, **values}
        if "onset" in values or "offset" in values:  # on frames the release holds
            assert first <= window["onset"] <= window["offset"] <= last, clip_id
        if values.get("apex") is not None:  # a new apex lies strictly inside its window
            assert window["onset"] < values["apex"] < window["offset"], clip_id
            assert values["apex"] != apex, clip_id  # it changes something
        if "emotion" in values:
            assert values["emotion"] in recipe.LABELS.known, clip_id
        assert len(override.reason) > 40  # a reason with its source, not a word
        assert "source" in override.reason.lower(), clip_id


def _casme2_layout(root: Path, rows: dict) -> Path:
    lines = []
    for subject, name, onset, apex, offset, emotion, (first, last) in rows.values():
        fakes.casme2_clip(root, subject, name, first, last)
        lines.append([subject, name, None, onset, apex, offset, None, "4", emotion])
    fakes.xlsx(root / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER, lines)
    return root


def _samm_layout(root: Path, rows: dict) -> Path:
    lines = []
    for subject, name, onset, apex, offset, emotion, (first, last) in rows.values():
        fakes.samm_clip(root, subject, name, first, last)
        lines.append([subject, name, 1, onset, apex, offset, offset - onset + 1,
                      "Micro - 1/2", "4", emotion, 3, None])
    fakes.xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", fakes.SAMM_HEADER, lines,
               preamble=fakes.SAMM_PREAMBLE)
    return root


@pytest.mark.parametrize("dataset, layout", [("casme2", _casme2_layout),
                                             ("samm", _samm_layout)])
def test_overrides_apply_to_a_layout_shaped_like_the_real_clips(dataset, layout,
                                                                tmp_path: Path) -> None:
    recipe = SCHEMES[dataset][0]
    rows = SHEET_ROWS[dataset]
    overrides = load_overrides(FOLDER / f"{dataset}.yaml")
    records, problems = validate(recipe.prepare(layout(tmp_path, rows)), overrides,
                                 ManifestConfig())
    kept = {r.clip_id: r for r in records}
    assert set(kept) == set(rows)
    codes: dict[str, set[str]] = {}
    for p in problems:
        codes.setdefault(p.clip_id, set()).add(p.code)
    for clip_id, override in overrides.items():
        # Applied, and nothing else to report: no apex unset, clamped or moved afterwards.
        assert codes.get(clip_id) == {"override"}, (clip_id, codes.get(clip_id))
        record = kept[clip_id]
        for key, value in override.values.items():
            assert getattr(record, key) == value, (clip_id, key)
    untouched = UNTOUCHED[dataset]
    _, _, onset, apex, offset, _, _ = rows[untouched]
    assert untouched not in codes
    assert (kept[untouched].onset, kept[untouched].apex, kept[untouched].offset) == \
        (onset, apex, offset)
