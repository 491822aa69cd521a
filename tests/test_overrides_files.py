"""The shipped per-dataset overrides files: valid, naming real clips, values in range."""

import re
from pathlib import Path

import fakes
import pytest
from mesti.datasets_manifest import casme2, casme3, samm, smic
from mesti.datasets_manifest.overrides import load_overrides
from mesti.datasets_manifest.validate import ManifestConfig, validate

FOLDER = Path(casme2.__file__).parent / "overrides"
# Each dataset's clip-id scheme, as its recipe names clips (datasets_manifest/<recipe>.py).
SCHEMES = {"casme2": (casme2, r"sub\d{2}_EP\w+"), "samm": (samm, r"\d{3}_\d+_\d+"),
           "smic": (smic, r"s\d{1,2}_(ne|po|sur)_\d{2}"), "casme3": (casme3, r"spNO\.\d+_\S+")}


@pytest.mark.parametrize("dataset", sorted(SCHEMES))
def test_overrides_file_names_real_clips_with_values_in_range(dataset: str) -> None:
    recipe, scheme = SCHEMES[dataset]
    overrides = load_overrides(FOLDER / f"{dataset}.yaml")  # the format's own checks
    for clip_id, override in overrides.items():
        assert re.fullmatch(scheme, clip_id), clip_id
        values = override.values
        for key in ("onset", "apex", "offset"):
            assert values.get(key) is None or values[key] >= 0, (clip_id, key)
        frames = [values[k] for k in ("onset", "apex", "offset") if values.get(k) is not None]
        assert frames == sorted(frames), clip_id
        if "emotion" in values:
            assert values["emotion"] in recipe.LABELS.known, clip_id
        assert len(override.reason) > 40  # a reason with its source, not a word


def test_casme2_overrides_apply_to_a_casme2_shaped_layout(tmp_path: Path) -> None:
    rows = []
    for subject, name, onset, apex, offset in ((4, "EP12_01f", 10, "/", 14),
                                               (5, "EP09_05f", 10, 10, 14),
                                               (1, "EP02_01f", 10, 12, 14)):
        fakes.casme2_clip(tmp_path, subject, name, onset, offset)
        rows.append([subject, name, None, onset, apex, offset, None, "4", "disgust"])
    fakes.xlsx(tmp_path / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER, rows)
    records, problems = validate(casme2.prepare(tmp_path),
                                 load_overrides(FOLDER / "casme2.yaml"), ManifestConfig())
    assert not [p for p in problems if p.code == "override_unknown_clip"]
    applied = {p.clip_id for p in problems if p.code == "override"}
    assert applied == {"sub04_EP12_01f", "sub05_EP09_05f"}
    kept = {r.clip_id: r for r in records}
    assert {"sub04_EP12_01f", "sub05_EP09_05f", "sub01_EP02_01f"} <= set(kept)
    assert kept["sub01_EP02_01f"].apex == 12
