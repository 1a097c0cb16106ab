"""The shape of the package: which module may import which, and how long modules and functions may grow.

The intended flow (issue 13): the CLI is the only door to the training loop; generation and serving load a
model without the trainer; the model is pure math (no files, no tokenizer); no module imports another that
imports it back. Imports are read with ``ast``, at module level and inside functions alike: a lazy import
is still a dependency, it only moves the cost.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gpt"
MAX_MODULE_LINES = 450
MAX_TRAIN_LINES = 350
MAX_FUNCTION_LINES = 60
# Functions allowed past MAX_FUNCTION_LINES, each with the reason splitting it would hurt reading.
LONG_FUNCTIONS = {
    "cli.py:build_parser": "a flat list of argparse declarations, one line per option: the CLI's reference in "
                           "one place; split by command it would scatter the shared options",
}
# What the model must not depend on: files and I/O, the tokenizer, and everything that uses the model.
NOT_FOR_THE_MODEL = {"gpt.files", "gpt.documents", "gpt.zip_documents", "gpt.pdf_text", "gpt.rich_text", "gpt.data",
                     "gpt.checkpoint", "gpt.metrics", "gpt.run_setup", "gpt.bpe", "gpt.bpe_formats", "gpt.pretokenize",
                     "gpt.chat", "gpt.conversations", "gpt.hf", "gpt.markup", "gpt.qa", "gpt.retrieval", "gpt.train",
                     "gpt.generate", "gpt.ask", "gpt.serve", "gpt.terminal", "gpt.cli"}


def module_name(path: Path) -> str:
    return "gpt" if path.stem == "__init__" else f"gpt.{path.stem}"


def sources() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def resolve_import(node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The gpt modules an import statement loads ('from gpt import x' is module gpt.x if there is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name == "gpt" or alias.name.startswith("gpt.")]
    if node.level:  # relative: gpt/*.py is one flat package, so any level-1 import is inside gpt
        base = "gpt" + (f".{node.module}" if node.module else "")
    else:
        base = node.module or ""
    if base != "gpt" and not base.startswith("gpt."):
        return []
    if base == "gpt":
        return [f"gpt.{a.name}" if f"gpt.{a.name}" in known else "gpt" for a in node.names]
    return [base]


@cache
def import_graph() -> dict[str, dict[str, int]]:
    """{module: {imported gpt module: line of the first such import}} for every gpt/*.py, lazy imports included."""
    known = {module_name(p) for p in sources()}
    graph: dict[str, dict[str, int]] = {}
    for path in sources():
        me = module_name(path)
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in resolve_import(node, known):
                    if target != me:
                        edges.setdefault(target, node.lineno)
        graph[me] = edges
    return graph


def reachable(start: str) -> dict[str, list[str]]:
    """Every module start loads, directly or not, with one import chain leading to it."""
    graph, chains, todo = import_graph(), {start: [start]}, [start]
    while todo:
        current = todo.pop()
        for target in graph.get(current, {}):
            if target not in chains:
                chains[target] = chains[current] + [target]
                todo.append(target)
    del chains[start]
    return chains


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colouring modules on the stack)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in graph.get(node, {}):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def describe_chain(chain: list[str]) -> str:
    graph = import_graph()
    return " -> ".join(f"{a} ({a.removeprefix('gpt.')}.py:{graph[a][b]})" for a, b in zip(chain, chain[1:])) \
        + f" -> {chain[-1]}"


# ----------------------------------------------------------------------------- the rules


def test_the_parser_sees_lazy_and_module_level_imports():
    graph = import_graph()
    assert "gpt.config" in graph["gpt.cli"]  # module level
    assert "gpt.train" in graph["gpt.cli"]  # inside a cmd_* function
    assert graph["gpt.train"].keys() >= {"gpt.model", "gpt.optim", "gpt.batches", "gpt.evaluate", "gpt"}


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) is None
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle: {describe_chain(cycle)}"


def test_nothing_but_the_cli_imports_train():
    importers = sorted(m for m, edges in import_graph().items() if "gpt.train" in edges and m != "gpt.cli")
    assert not importers, "only gpt/cli.py may import gpt.train; also: " + ", ".join(
        f"{m} (line {import_graph()[m]['gpt.train']})" for m in importers)


def test_the_model_loads_no_files_and_no_tokenizer():
    chains = reachable("gpt.model")
    bad = sorted(set(chains) & NOT_FOR_THE_MODEL)
    assert not bad, "gpt.model must stay pure math; it loads " + "; ".join(describe_chain(chains[m]) for m in bad)


@pytest.mark.parametrize("module", ["gpt.generate", "gpt.ask", "gpt.serve", "gpt.terminal", "gpt.sampling"])
def test_generation_and_serving_do_not_load_the_trainer(module):
    chains = reachable(module)
    assert "gpt.train" not in chains, f"{module} loads the trainer: {describe_chain(chains['gpt.train'])}"


@pytest.mark.parametrize("module", ["gpt.generate", "gpt.serve"])
def test_generation_and_serving_do_not_load_the_trainer_at_run_time(module):
    if module == "gpt.serve":
        pytest.importorskip("fastapi")  # the serve extra
    code = f"import sys, {module}; assert 'gpt.train' not in sys.modules, 'gpt.train was imported'; print('ok')"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_module_sizes():
    lines = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in sources()}
    too_long = {name: n for name, n in lines.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by what they do): {too_long}"
    assert lines["train.py"] <= MAX_TRAIN_LINES, \
        f"gpt/train.py has {lines['train.py']} lines; the loop must stay under {MAX_TRAIN_LINES} (move set-up out)"


def function_lengths() -> dict[str, int]:
    """{'file.py:function' (or 'file.py:Class.method'): lines from def to the last line of its body}."""
    found: dict[str, int] = {}

    def walk(node: ast.AST, prefix: str, file: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found[f"{file}:{name}"] = child.end_lineno - child.lineno + 1
                walk(child, f"{name}.", file)
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.", file)
            else:
                walk(child, prefix, file)

    for path in sources():
        walk(ast.parse(path.read_text(encoding="utf-8")), "", path.name)
    return found


def test_functions_fit_on_a_screen():
    lengths = function_lengths()
    too_long = {f: n for f, n in lengths.items() if n > MAX_FUNCTION_LINES and f not in LONG_FUNCTIONS}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them, or add them to LONG_FUNCTIONS " \
                         f"with the reason splitting would hurt): {too_long}"
    stale = sorted(f for f in LONG_FUNCTIONS if lengths.get(f, 0) <= MAX_FUNCTION_LINES)
    assert not stale, f"no longer long (or gone): remove from LONG_FUNCTIONS: {stale}"
