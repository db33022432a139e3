"""The repository itself: no committed file names an absolute folder of the machine it was made on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# An absolute path into a machine's home or scratch folders (not "master/worker", not a URL's path).
MACHINE_PATH = re.compile(r"(?<![\w./:-])/(?:work|root|home|Users)/[\w.-]+")
TEXT = {".py", ".md", ".yaml", ".yml", ".json", ".jsonl", ".cfg", ".toml", ".sh", ".txt", ""}


def _committed_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / line for line in out.splitlines() if Path(line).suffix in TEXT]


def test_no_committed_file_names_a_machine_path() -> None:
    found = []
    for path in _committed_files():
        if not path.is_file():
            continue
        for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()[:100]}")
    assert not found, "\n".join(found[:20])


def test_the_pattern_finds_machine_paths_and_nothing_else() -> None:
    # Built from parts, so that this file does not name such a path itself.
    assert MACHINE_PATH.search("python x.py --out " + "/work" + "/gridH")
    assert MACHINE_PATH.search('"data_dir": "' + "/root" + '/.cache/x"')
    assert not MACHINE_PATH.search("a standalone master/worker pair")
    assert not MACHINE_PATH.search("https://example.org/home/page")
    assert not MACHINE_PATH.search("../shared/data and ~/.cache/veclink-spark")
