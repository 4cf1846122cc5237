"""Imports flow one way: main -> webserver.api -> webserver.services -> encoders/stores -> libraries;
tirg/ is a pure library; nothing imports main."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


FORBIDDEN = {
    "tirg": ("fastapi", "pymilvus", "sqlalchemy", "pymysql", "config", "webserver", "main"),
    "webserver/stores": ("webserver.services", "webserver.api", "fastapi", "main"),
    "webserver/encoders": ("webserver.services", "webserver.api", "webserver.stores", "fastapi", "main"),
    "webserver/services": ("webserver.api", "fastapi", "main"),
    "webserver/api": ("main",),
    "scripts": ("webserver.api", "main", "tests"),
}


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_flow_one_way(folder):
    bad = [(path.relative_to(ROOT).as_posix(), name) for path in files(folder)
           for name in imported_modules(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder])]
    assert not bad
