"""README's "Using a cache" section runs as written: its commands and Python blocks, in
order, in a folder holding a small exported modality store as `sample.zip` (and the same
folder served over loopback HTTP for the URL example)."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from loopback import serving

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_URL = "https://example.org/mesti"


def section_blocks(title: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block in README's section ``title``."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end > 0 else None]
    return re.findall(r"```(\w+)\n(.*?)```", body, flags=re.S)


def test_the_section_has_each_step() -> None:
    blocks = section_blocks("Using a cache")
    code = "\n".join(c for _, c in blocks)
    for step in ("mesti cache info", "open_store(\"sample.zip\")", "EXAMPLE", ".index",
                 "mesti show", "DataLoader", "LeaveOneGroupOut", "groups=data.groups",
                 "mesti predict", "weights_only=True"):
        assert step.replace("EXAMPLE", EXAMPLE_URL) in code, step
    assert {language for language, _ in blocks} == {"console", "python"}


def test_using_a_cache_runs_as_written(small_stores: Path, tmp_path: Path, monkeypatch,
                                       capsys) -> None:
    shutil.copy(small_stores / "export" / "modalities.zip", tmp_path / "sample.zip")
    monkeypatch.chdir(tmp_path)
    mesti_command = str(Path(sys.executable).parent / "mesti")
    namespace: dict = {}
    with serving(tmp_path) as url:
        for language, code in section_blocks("Using a cache"):
            if language == "console":
                for line in code.splitlines():
                    if line.startswith("$ "):
                        command = shlex.split(line[2:])
                        assert command[0] == "mesti", line
                        done = subprocess.run([mesti_command, *command[1:]], cwd=tmp_path,
                                              capture_output=True, text=True)
                        assert done.returncode == 0, (line, done.stdout, done.stderr)
            else:
                exec(compile(code.replace(EXAMPLE_URL, url), str(README), "exec"), namespace)
    assert (tmp_path / "clip.png").stat().st_size > 0 and (tmp_path / "clip.pdf").is_file()
    printed = capsys.readouterr().out
    assert "clips over HTTP" in printed and "LOSO accuracy" in printed
    assert len(namespace["predicted"]) == len(namespace["data"]) <= len(namespace["index"])
    assert list(namespace["index"].columns[:3]) == ["dataset", "subject", "clip_id"]
    assert namespace["probabilities"].shape == (4, len(namespace["data"].classes))
    assert (tmp_path / "run" / "predictions.repro.csv").read_bytes() == \
        (tmp_path / "run" / "predictions.csv").read_bytes()
