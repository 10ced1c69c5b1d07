"""The import contracts of pyproject.toml ([tool.importlinter], docs/design.md "Packages")
hold on the tree, and lint-imports does catch a broken one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("coreview", "webui", "signaling", "media", "recorder")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_tree_keeps_its_contracts():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_recorder_importing_webui_breaks_the_layers(tmp_path):
    """A copy of the sources with one upward import: the layers contract is named broken."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    skip = shutil.ignore_patterns("*.so", "__pycache__")
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=skip)
    clock = tmp_path / "recorder" / "clock.py"
    clock.write_text(clock.read_text() + "\nimport webui  # a deliberate violation\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Packages in layers: coreview > webui > signaling > media > recorder BROKEN" in (
        result.stdout
    )
    assert "recorder.clock -> webui" in result.stdout
