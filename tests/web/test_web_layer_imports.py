"""The web layer asks services for a page's data; it never imports a domain's models to assemble one itself."""

from __future__ import annotations

import ast
from pathlib import Path

import kizuna.web

WEB = Path(kizuna.web.__file__).parent


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    # ``if TYPE_CHECKING:`` imports name a type a service hands back; they are never executed.
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            return True
    return False


def _model_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        bad = [n for n in names if n.startswith("kizuna.") and (n.endswith(".models") or ".models." in n)]
        if bad and not _type_checking_only(node, parents):
            found.append(f"{path.name}:{node.lineno} imports {bad[0]}")
    return found


def test_web_modules_import_no_domain_models():
    modules = sorted(WEB.glob("*.py"))
    assert len(modules) > 5
    offenders = [line for path in modules for line in _model_imports(path)]
    assert offenders == [], "ask the domain's service (e.g. customers.customer360) instead:\n" + "\n".join(offenders)


def test_the_scan_finds_a_model_import(tmp_path):
    sample = tmp_path / "ui_sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "from kizuna.orders.models import Order\n"
        "import kizuna.catalog.models\n"
        "from kizuna.customers import models\n"
        "if TYPE_CHECKING:\n"
        "    from kizuna.auth.models import User\n"
    )
    assert [line.split(" imports ")[1] for line in _model_imports(sample)] == [
        "kizuna.orders.models",
        "kizuna.catalog.models",
        "kizuna.customers.models",
    ]
