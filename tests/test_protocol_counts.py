"""The 3- and 5-class protocols of docs/design.md section 3, on sheets of published counts."""

from collections import Counter
from itertools import cycle
from pathlib import Path

import fakes
from mesti.datasets_manifest import casme2, samm, smic
from mesti.datasets_manifest.validate import ManifestConfig, validate


def _assign(emotions: Counter, reserved: dict[int, list[str]], subjects: range,
            first: tuple[str, ...]) -> list[tuple[int, str]]:
    """(subject, emotion) pairs: reserved subjects get their lists, the rest round-robin,
    with the emotions of ``first`` dealt first so every remaining subject gets one."""
    pool = emotions.copy()
    pairs = []
    for subject, names in reserved.items():
        for name in names:
            pool[name] -= 1
            pairs.append((subject, name))
    ordered = sorted(pool.elements(), key=lambda e: e not in first)
    pairs += list(zip(cycle(s for s in subjects if s not in reserved), ordered, strict=False))
    return pairs


def _counts(records):
    three = [r for r in records if r.label3]
    five = [r for r in records if r.label5]
    return (len(three), len({r.subject for r in three}), Counter(r.label3 for r in three),
            len(five), len({r.subject for r in five}))


CASME2_SHEET = Counter(others=99, disgust=63, happiness=32, repression=27, surprise=25,
                       sadness=7, fear=2)


def _casme2(tmp_path: Path, emotions: Counter = CASME2_SHEET):
    pairs = _assign(emotions, {25: ["others", "others", "sadness"], 26: ["others", "fear"]},
                    range(1, 27), ("disgust", "happiness", "repression", "surprise"))
    rows = []
    for index, (subject, emotion) in enumerate(pairs):
        name = f"EP{index:03d}_01f"
        fakes.casme2_clip(tmp_path, subject, name, 10, 12)
        rows.append([subject, name, None, 10, 11, 12, None, "4", emotion])
    fakes.xlsx(tmp_path / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER, rows)
    return validate(casme2.prepare(tmp_path), {}, ManifestConfig())


def _samm(tmp_path: Path):
    emotions = Counter(anger=57, contempt=12, disgust=9, fear=8, happiness=26, other=26,
                       sadness=6, surprise=15)
    pairs = _assign(emotions, {27: ["other"], 28: ["disgust", "fear"], 29: ["sadness"]},
                    range(6, 35), ("anger", "contempt", "happiness", "surprise"))
    rows = []
    for index, (subject, emotion) in enumerate(pairs):
        name = f"{subject:03d}_{index}_1"
        fakes.samm_clip(tmp_path, subject, name, 100, 102)
        rows.append([subject, name, "1", 100, 101, 102, 3, "Micro", "4", emotion.title(), "", ""])
    fakes.xlsx(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx", fakes.SAMM_HEADER, rows,
               preamble=fakes.SAMM_PREAMBLE)
    return validate(samm.prepare(tmp_path), {}, ManifestConfig())


def _smic(tmp_path: Path):
    subjects = [s for s in range(1, 21) if s not in (7, 10, 16, 17)]
    labels = ["negative"] * 70 + ["positive"] * 51 + ["surprise"] * 43
    for index, (subject, label) in enumerate(zip(cycle(subjects), labels, strict=False)):
        fakes.smic_clip(tmp_path, subject, label, index, 1, 3)
    return validate(smic.prepare(tmp_path), {}, ManifestConfig())


def test_published_counts_and_composite(tmp_path: Path) -> None:
    c_records, c_problems = _casme2(tmp_path / "casme2")
    # MEGC 2019's composite lists 88 negative CASME II clips, two fewer than the sheet's
    # disgust + repression (63 + 27): its clip list, not the mapping, drops two disgust clips.
    megc, _ = _casme2(tmp_path / "casme2-megc", CASME2_SHEET - Counter(disgust=2))
    s_records, s_problems = _samm(tmp_path / "samm")
    h_records, h_problems = _smic(tmp_path / "smic")
    assert (len(c_records), len({r.subject for r in c_records})) == (255, 26)
    assert (len(s_records), len({r.subject for r in s_records})) == (159, 29)
    assert (len(h_records), len({r.subject for r in h_records})) == (164, 16)
    assert c_problems == s_problems == h_problems == []

    assert _counts(c_records) == (147, 24, Counter(negative=90, positive=32, surprise=25), 246, 26)
    assert _counts(megc)[:3] == (145, 24, Counter(negative=88, positive=32, surprise=25))
    assert _counts(s_records) == (133, 28, Counter(negative=92, positive=26, surprise=15), 159, 29)
    # SAMM 5-class as FDP and MOL publish it: other = other 26 + disgust 9 + fear 8 + sadness 6
    assert Counter(r.label5 for r in s_records) == Counter(anger=57, other=49, happiness=26,
                                                           surprise=15, contempt=12)
    assert _counts(h_records)[:3] == (164, 16, Counter(negative=70, positive=51, surprise=43))

    composite = [r for r in megc + s_records + h_records if r.label3]
    assert len(composite) == 442
    assert len({(r.dataset, r.subject) for r in composite}) == 68


# ------------------------------------------------------------ the shipped protocol lists

def test_megc2019_list_counts_per_dataset_class_and_subject() -> None:
    from mesti.train import clip_lists

    rows = clip_lists.load_list("megc2019")
    assert len(rows) == 442
    assert len({(r.dataset, r.subject) for r in rows}) == 68
    assert clip_lists.counts([(r.dataset, r.subject, r.label) for r in rows]) == {
        "casme2": (145, 24, {"negative": 88, "positive": 32, "surprise": 25}),
        "samm": (133, 28, {"negative": 92, "positive": 26, "surprise": 15}),
        "smic": (164, 16, {"negative": 70, "positive": 51, "surprise": 43})}
    keys = {r.key for r in rows}
    # the two disgust clips the mapping keeps and the list drops; apex == offset stays in
    assert ("casme2", "sub04_EP12_01f") not in keys and ("casme2", "sub05_EP09_05f") not in keys
    assert {("casme2", "sub12_EP09_06"), ("casme2", "sub25_EP18_04f")} <= keys
    everything = clip_lists.load_list("casme2_3class_all")
    assert len(everything) == 147
    assert {r.key for r in everything} - keys == {("casme2", "sub04_EP12_01f"),
                                                  ("casme2", "sub05_EP09_05f")}


def test_store_and_list_namings_meet() -> None:
    from mesti.train.clip_lists import clip_key

    assert clip_key("casme2", "sub01", "EP02_01f") == clip_key("casme2", "sub01",
                                                               "sub01_EP02_01f")
    assert clip_key("samm", "006", "006_1_2") == clip_key("samm", "6", "006_1_2")
    assert clip_key("smic", "s01", "s01_sur_01") == clip_key("smic", "s1", "s1_su_01") == \
        clip_key("smic", "s1", "s1_sur_01")
    assert clip_key("smic", "s01", "s01_ne_01") != clip_key("smic", "s1", "s1_po_01")
