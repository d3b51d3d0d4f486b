"""The dependency arrows of the layout: core imports no server or tool package; service and training not each other."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "reckoning_core": {"fastapi", "starlette", "redis", "prometheus_client", "service", "training", "benchmarks",
                       "reckoning_cli"},
    "service": {"training", "benchmarks", "reckoning_cli"},
    "training": {"service", "benchmarks", "reckoning_cli"},
    "benchmarks": {"reckoning_cli"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_its_layer_must_not(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    wrong = {str(f.relative_to(REPO)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {f: names for f, names in wrong.items() if names} == {}
