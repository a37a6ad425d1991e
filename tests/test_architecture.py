"""The one-way house (docs/DESIGN, "Data flows one way"), checked over the AST of greenkpi/.

Apps are layered; an app imports only apps below it. The one exception is producers marking
rollup windows dirty: ingest and carbon may import ``greenkpi.kpis.dirty`` and nothing else of kpis.
No two modules import each other (directly or round a longer loop), and the dashboard holds only
pages: one package per area, no flat ``selectors_*.py`` / ``views_*.py`` beside them.

Every import counts, also one inside a function: a lazy import hides a circle from Python, not from
the design. Migrations are left out (they freeze the models of their time).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "greenkpi"
# Bottom to top: an app may import the apps listed before it.
LAYERS = (
    "lib",
    "inventory",
    "carbon",
    "ingest",
    "kpis",
    "workloads",
    # Findings read kpis and workloads; the ledger feeds alerts' digest and the dashboard.
    "recommendations",
    "alerts",
    "integrations",
    "dashboard",
    "ops",
    "demo",
)
# (importer app, imported module): the only arrows allowed to point up.
ALLOWED_UP = {("ingest", "greenkpi.kpis.dirty"), ("carbon", "greenkpi.kpis.dirty")}
DASHBOARD_ROOT_MODULES = {"__init__.py", "apps.py", "urls.py"}


def _modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the package at ``root`` (migrations left out)."""
    found = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent)
        if "migrations" in rel.parts:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(path: Path, name: str) -> Iterator[str]:
    """Every module named by an import in ``path`` (absolute or relative, anywhere in the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            # ``from pkg import module`` names a module too.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = _modules(root)
    return {
        name: {target for target in _imports(path, name) if target in modules and target != name}
        for name, path in modules.items()
    }


def _app(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def wrong_way_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Imports from an app into one at its level or above (and into an app not in LAYERS)."""
    found = []
    for module, targets in sorted(graph.items()):
        src = _app(module)
        if src is None:  # greenkpi/settings.py, urls.py, celery.py...: the wiring above every app
            continue
        for target in sorted(targets):
            dst = _app(target)
            if dst is None or dst == src:
                continue
            if src not in LAYERS or dst not in LAYERS:
                found.append(f"{module} -> {target}: {src} or {dst} has no place in LAYERS")
            elif LAYERS.index(dst) > LAYERS.index(src) and (src, target) not in ALLOWED_UP:
                found.append(f"{module} -> {target}: {src} may not import {dst}")
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other (strongly connected, Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def flat_dashboard_modules(root: Path) -> list[str]:
    """Modules beside the dashboard's area packages, and flat selectors_*/views_* anywhere in it."""
    dashboard = root / "dashboard"
    found = [p.name for p in dashboard.glob("*.py") if p.name not in DASHBOARD_ROOT_MODULES]
    found += [
        str(p.relative_to(dashboard))
        for p in dashboard.rglob("*.py")
        if p.name.startswith(("selectors_", "views_", "figures_", "forms_"))
    ]
    return sorted(set(found))


def test_apps_import_only_apps_below_them():
    assert wrong_way_arrows(import_graph(ROOT)) == []


def test_no_modules_import_each_other():
    assert circles(import_graph(ROOT)) == []


def test_the_dashboard_holds_one_package_per_area_and_no_flat_modules():
    assert flat_dashboard_modules(ROOT) == []
    areas = {p.name for p in (ROOT / "dashboard").iterdir() if (p / "__init__.py").exists()}
    assert {
        "common",
        "overview",
        "fleet",
        "teams",
        "models",
        "carbon",
        "reports",
        "budgets",
    } <= areas
    assert "alerts" in areas


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "greenkpi"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    return root


def test_the_checks_catch_a_wrong_way_arrow_a_circle_and_a_flat_module(tmp_path):
    root = _tree(
        tmp_path,
        {
            "kpis/services.py": "from greenkpi.kpis import tasks\n",
            "kpis/tasks.py": "def later():\n    from greenkpi.kpis import services\n",
            "kpis/dirty.py": "",
            "ingest/services.py": "from greenkpi.kpis.dirty import x\n",  # allowed
            "ingest/views.py": "from greenkpi.kpis.services import y\n",  # not allowed
            "workloads/access.py": "from greenkpi.dashboard.common import pages\n",
            "dashboard/common/pages.py": "",
            "dashboard/selectors_carbon.py": "from .common import pages\n",
        },
    )
    graph = import_graph(root)
    assert wrong_way_arrows(graph) == [
        "greenkpi.ingest.views -> greenkpi.kpis.services: ingest may not import kpis",
        "greenkpi.workloads.access -> greenkpi.dashboard.common: workloads may not import dashboard",
        "greenkpi.workloads.access -> greenkpi.dashboard.common.pages: "
        "workloads may not import dashboard",
    ]
    assert circles(graph) == [["greenkpi.kpis.services", "greenkpi.kpis.tasks"]]
    assert "greenkpi.dashboard.common.pages" in graph["greenkpi.dashboard.selectors_carbon"]
    assert flat_dashboard_modules(root) == ["selectors_carbon.py"]
