"""Overrides, stage configs from params.yaml, and the manifest command's exit codes."""

from pathlib import Path

import fakes
import pytest
from click.testing import CliRunner
from mesti.datasets_manifest import casme2
from mesti.datasets_manifest.overrides import OverridesError, load_overrides
from mesti.datasets_manifest.validate import ManifestConfig, validate
from mesti.pipeline.sample.generator import SampleConfig

from mesti.cli import main
from mesti.params import ParamsError, load_section


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "c2"
    fakes.casme2_clip(root, 4, "EP12_01f", 30, 40)
    fakes.casme2_clip(root, 5, "EP01_01f", 1, 10)
    fakes.xlsx(root / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER, [
        [4, "EP12_01f", None, 30, "/", 40, None, "4", "disgust"],
        [5, "EP01_01f", None, 1, 5, 10, None, "12", "happiness"],
    ])
    return root


def test_overrides_fix_exclude_and_report(dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("sub04_EP12_01f:\n  apex: 35\n  reason: read off the AU curve\n"
                    "sub05_EP01_01f:\n  exclude: true\n  reason: subject looked away\n"
                    "sub99_EP01_01f:\n  emotion: surprise\n  reason: stale entry\n")
    records, problems = validate(casme2.prepare(dataset), load_overrides(path), ManifestConfig())
    assert [(r.clip_id, r.apex) for r in records] == [("sub04_EP12_01f", 35)]
    assert {(p.clip_id, p.code, p.action) for p in problems} == {
        ("sub04_EP12_01f", "override", "override"),
        ("sub05_EP01_01f", "override", "excluded"),
        ("sub99_EP01_01f", "override_unknown_clip", "ignored"),
    }
    details = {p.clip_id: p.detail for p in problems if p.code == "override"}
    assert details["sub04_EP12_01f"] == "apex=35: read off the AU curve"


@pytest.mark.parametrize("text, message", [
    ("a:\n  apex: 3\n", "needs a reason"),
    ("a:\n  apx: 3\n  reason: r\n", "unknown fields"),
    ("a:\n  onset: x\n  reason: r\n", "onset must be an integer"),
    ("- a\n", "expected a mapping"),
])
def test_bad_overrides_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "o.yaml"
    path.write_text(text)
    with pytest.raises(OverridesError, match=message):
        load_overrides(path)


def test_params_sections(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("sample:\n  seed: 3\n  noise_sigma: 1\nmanifest:\n  min_frame: 2\n")
    assert load_section(SampleConfig, path, "sample") == SampleConfig(seed=3, noise_sigma=1.0)
    with pytest.raises(ParamsError, match=r"unknown keys \['min_frame'\]"):
        load_section(ManifestConfig, path, "manifest")
    path.write_text("sample:\n  seed: three\n")
    with pytest.raises(ParamsError, match="seed must be int"):
        load_section(SampleConfig, path, "sample")
    assert load_section(ManifestConfig, None, "manifest") == ManifestConfig()
    with pytest.raises(ParamsError, match=r"absent\.yaml: params file not found"):
        load_section(ManifestConfig, tmp_path / "absent.yaml", "manifest")


def test_manifest_command(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    params = tmp_path / "empty.yaml"
    params.write_text("")
    ok = runner.invoke(main, ["manifest", "casme2", str(dataset), str(tmp_path / "out"),
                              "--params", str(params)])
    assert ok.exit_code == 0, ok.output
    assert '"clips_ok": 2' in ok.output
    assert (tmp_path / "out" / "manifest.csv").is_file()

    (dataset / "CASME2-coding-20140508.xlsx").unlink()
    fakes.xlsx(dataset / "CASME2-coding-20140508.xlsx", fakes.CASME2_HEADER,
               [[4, "EP12_01f", None, 50, "/", 40, None, "4", "disgust"]])
    none = runner.invoke(main, ["manifest", "casme2", str(dataset), str(tmp_path / "out2"),
                                "--params", str(params)])
    assert none.exit_code == 1
    assert "no usable casme2 clip of 1 found (onset_after_offset x1)" in none.output
    assert str(dataset) in none.output and "Traceback" not in none.output
    assert not (tmp_path / "out2" / "manifest.csv").exists()
    assert "onset_after_offset" in (tmp_path / "out2" / "report.md").read_text()

    wrong = tmp_path / "wrong.xlsx"
    fakes.xlsx(wrong, ["Subject", "File", "Start"], [[1, "x", 2]])
    bad = runner.invoke(main, ["manifest", "casme2", str(dataset), str(tmp_path / "out3"),
                               "--sheet", str(wrong), "--params", str(params)])
    assert bad.exit_code == 1
    assert "no header row with the columns" in bad.output and "Traceback" not in bad.output


def test_every_command_shows_defaults() -> None:
    runner = CliRunner()
    for command in ("sample", "manifest"):
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "[default: params.yaml]" in result.output
