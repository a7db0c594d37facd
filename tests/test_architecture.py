"""Imports flow forward: a stage's package imports only earlier stages and the shared layers, the shared layers
import no stage, and no package imports another that imports it back — imports inside functions included."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import maritime_slm

ROOT = Path(maritime_slm.__file__).parent
STAGES = ["ais", "ingest", "facts", "generate", "curate", "finetune", "evaluate", "cost"]
"""In pipeline order: the AIS domain, stage 01 (ingest), the facts of stage 02, stages 02 (generate) to 06 (cost)."""
SHARED = {
    "config",
    "jsonl",
    "stats",
    "report",
    "llm",
    "models",
    "stage",
    "runguard",
    "engine",
    "answers",
    "dryrun",
    "geo",
}
"""Layers every stage may use; they know no stage."""
ENTRY = {"__main__", "runner", "__init__"}
"""The command line and the notebook runner sit above everything."""


def _package(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def _imported(path: Path) -> set[str]:
    """Top-level maritime_slm packages a module imports (relative and absolute, at any depth of the code)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(parts[:-1])[: len(parts) - node.level]
            target = [*base, *(node.module.split(".") if node.module else [])]
            names = [target] if target else [[a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("maritime_slm."):
            names = [node.module.split(".")[1:]]
        elif isinstance(node, ast.ImportFrom) and node.module == "maritime_slm":
            names = [[a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1:] for a in node.names if a.name.startswith("maritime_slm.")]
        else:
            continue
        out |= {n[0] for n in names if n}
    return out


def import_graph() -> dict[str, set[str]]:
    """Which package imports which (a package's own modules left out)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        source = _package(path)
        graph[source] |= _imported(path) - {source}
    return dict(graph)


def test_every_package_is_a_stage_a_shared_layer_or_an_entry_point():
    assert set(import_graph()) <= set(STAGES) | SHARED | ENTRY, (
        set(import_graph()) - set(STAGES) - SHARED - ENTRY
    )


def test_stages_import_only_earlier_stages_and_shared_layers_import_no_stage():
    graph = import_graph()
    for stage in STAGES:
        later = set(STAGES[STAGES.index(stage) + 1 :])
        assert not graph.get(stage, set()) & later, (stage, graph[stage] & later)
        assert not graph.get(stage, set()) & ENTRY, (stage, graph[stage] & ENTRY)
    for layer in SHARED:
        assert not graph.get(layer, set()) & (set(STAGES) | ENTRY), (layer, graph[layer])


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != "open", " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_the_graph_sees_imports_hidden_in_functions(tmp_path, monkeypatch):
    """The check must catch the cycle-dodging import inside a function that once hid report -> curate."""
    package = tmp_path / "maritime_slm"
    (package / "report").mkdir(parents=True)
    (package / "report" / "figures.py").write_text(
        "def draw():\n    from maritime_slm.curate.analyze import table\n    from ..finetune import model\n"
    )
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", package)
    assert import_graph() == {"report": {"curate", "finetune"}}
