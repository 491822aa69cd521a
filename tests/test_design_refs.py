"""Every reference to the design document resolves: docs/design.md exists, its sections are
numbered in order, each "design.md section N" (or N.M, or a ``design.md#anchor`` link) in the
repository's text files names a section that is there, and no reference to the old,
unshipped root design file is left."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
OLD_NAME = "DESIGN" + ".md"  # spelled apart so that this file does not match itself
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".json", ".csv"}
TEXT_NAMES = {"Makefile", "run"}

HEADING = re.compile(r"^(#{2,3}) (\d+(?:\.\d+)?)\.? (.+)$", re.M)
REFERENCE = re.compile(r"design\.md(?:'s)?,?\s+sections?\s+(\d+(?:\.\d+)?)"
                       r"((?:(?:,\s*|\s+and\s+)\d+(?:\.\d+)?)*)", re.I)
ANCHOR = re.compile(r"design\.md#([\w-]+)")


def repository_files() -> list[Path]:
    """The files git tracks or would track (ignored ones, such as build outputs, left out)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in listed.splitlines() if line]


def text_files() -> list[Path]:
    return [p for p in repository_files()
            if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES)
            and not any(part.endswith(".zarr") for part in p.parts)
            and p != Path(__file__).resolve()]  # this file's examples are wrong on purpose


def sections(text: str) -> list[str]:
    """Section numbers in document order, "3" and "3.1" alike."""
    return [number for _, number, _ in HEADING.findall(text)]


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def references(text: str) -> list[str]:
    """Every section number a text cites as "design.md section N" (lists included)."""
    found = []
    for first, rest in REFERENCE.findall(text):
        found += [first, *re.findall(r"\d+(?:\.\d+)?", rest)]
    return found


def test_the_design_document_is_numbered_in_order() -> None:
    numbers = sections(DESIGN.read_text())
    tops = [n for n in numbers if "." not in n]
    assert tops == [str(i) for i in range(1, len(tops) + 1)], tops
    assert len(tops) >= 10
    for number in numbers:
        if "." in number:
            top, sub = number.split(".")
            assert top in tops, number
    subs = {}
    for number in numbers:
        if "." in number:
            top, sub = number.split(".")
            subs.setdefault(top, []).append(int(sub))
    for top, found in subs.items():
        assert found == list(range(1, len(found) + 1)), (top, found)


def test_the_sections_others_cite_hold_their_subjects() -> None:
    """The numbers used before the document was written keep their meaning."""
    titles = {number: title for _, number, title in HEADING.findall(DESIGN.read_text())}
    assert "Datasets" in titles["3"] and "class mappings" in titles["3"]
    assert "Rank pooling" in titles["4"]
    assert "Costs" in titles["6"]
    assert "Motion inputs" in titles["8"]
    assert "Growing the code" in titles["9"]
    assert "Dependency rules" in titles["2.2"]


def broken_references(paths: list[Path], design: str) -> tuple[list[str], int]:
    """``path:line: section N`` for each reference in ``paths`` that ``design`` lacks, and the
    number of references seen."""
    numbers = set(sections(design))
    anchors = {slug(f"{number}. {title}") for _, number, title in HEADING.findall(design)}
    broken, seen = [], 0
    for path in paths:
        try:
            content = path.read_text()
        except UnicodeDecodeError:
            continue
        for line_number, line in enumerate(content.splitlines(), 1):
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:" \
                    f"{line_number}"
            for number in references(line):
                seen += 1
                if number not in numbers:
                    broken.append(f"{where}: section {number}")
            for anchor in ANCHOR.findall(line):
                seen += 1
                if anchor not in anchors:
                    broken.append(f"{where}: #{anchor}")
    return broken, seen


def test_every_reference_names_a_section_that_exists() -> None:
    broken, seen = broken_references(text_files(), DESIGN.read_text())
    assert not broken, "references to sections docs/design.md lacks:\n" + "\n".join(broken)
    assert seen >= 15  # the README, cache/README.md, the overrides, the code and the tests


def test_the_documents_own_references_resolve() -> None:
    text = DESIGN.read_text()
    numbers = set(sections(text))
    cited = re.findall(r"\bsections? (\d+(?:\.\d+)?)", text)
    assert cited and [n for n in cited if n not in numbers] == []


def test_no_reference_to_the_old_design_file() -> None:
    left = [f"{path.relative_to(ROOT)}:{n}" for path in text_files()
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if OLD_NAME in line]
    assert not left, f"{OLD_NAME} is not in the repository; cite docs/design.md: {left}"


def test_the_dependency_rules_section_names_what_the_test_checks() -> None:
    """Section 2.2 describes tests/test_dependency_rules.py: every module it imports and every
    package it blocks appears in the section."""
    import test_dependency_rules as rules

    text = DESIGN.read_text()
    start = text.index("### 2.2 ")
    section = text[start:text.index("\n### ", start + 1)]
    (mark,) = [m for m in rules.test_module_imports_without.pytestmark
               if m.name == "parametrize"]
    for module, blocked in mark.args[1]:
        row = next((line for line in section.splitlines() if f"`{module}`" in line), None)
        assert row is not None, module
        assert [name for name in blocked if name not in row] == [], (module, row)
    names = re.search(r'modules = \((.*?)\)', Path(rules.__file__).read_text(), re.S).group(1)
    for name in re.findall(r'"([\w.]+)"', names):
        assert f"`{name}`" in section or f"`mesti.pipeline.{name}`" in section, name


@pytest.mark.parametrize("text, expected", [
    ("see docs/design.md section 3).", ["3"]),
    ("(docs/design.md sections 3 and 4.1)", ["3", "4.1"]),
    ("docs/design.md's section 2.2: rules", ["2.2"]),
    ("DESIGN notes, section 3", []),
])
def test_references_are_found(text: str, expected: list[str]) -> None:
    assert references(text) == expected


def test_a_missing_section_is_caught(tmp_path: Path) -> None:
    """The check itself reports a reference to a section or anchor the document lacks."""
    cited = tmp_path / "notes.md"
    cited.write_text("Fine: docs/design.md section 4.\nBad: docs/design.md sections 42 and 3.99"
                     "; [x](docs/design.md#99-nothing) and [y](docs/design.md#4-rank-pooling-the"
                     "-formulas).\n")
    broken, seen = broken_references([cited], DESIGN.read_text())
    assert seen == 5
    assert broken == [f"{cited}:2: section 42", f"{cited}:2: section 3.99",
                      f"{cited}:2: #99-nothing"]
