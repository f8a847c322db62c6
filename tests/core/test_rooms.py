"""The rooms of cnn_core and who may import whom (docs/ARCHITECTURE.md).

engine is pure ML and imports neither workshop nor service; workshop and service import the
engine only (and their own room); nothing in cnn_core imports streamlit or the app's ui/ and pages/.
"""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "cnn_core"
ROOMS = ("engine", "workshop", "service")
ALLOWED = {"engine": {"engine"}, "workshop": {"engine", "workshop"}, "service": {"engine", "service"}}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def modules_of(room: str) -> list[Path]:
    return sorted((CORE / room).rglob("*.py"))


def test_every_module_lives_in_a_room():
    loose = [p.name for p in CORE.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    for room in ROOMS:
        assert len(modules_of(room)) >= 3, room


@pytest.mark.parametrize("room", ROOMS)
def test_room_imports_only_what_it_may(room):
    broken = []
    for path in modules_of(room):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] in ("streamlit", "ui", "pages"):
                broken.append(f"{path.name}: {name}")
            if parts[0] == "cnn_core" and len(parts) > 1 and parts[1] in ROOMS and parts[1] not in ALLOWED[room]:
                broken.append(f"{path.name}: {name}")
    assert broken == []


def test_the_rule_catches_a_forbidden_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from cnn_core.service import settings\nimport streamlit as st\n")
    assert "cnn_core.service.settings" in imported_modules(probe)
    assert "streamlit" in imported_modules(probe)
