"""Every Python snippet in docs/ runs, in order, in one namespace per page: the docs cannot drift."""

import contextlib
import importlib
import io
import pkgutil
import re
from pathlib import Path

import pytest

import gpt

DOCS = Path(__file__).resolve().parents[1] / "docs"


def snippets(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = snippets(page)
    assert blocks, f"{page.name} has no python snippets"
    namespace: dict = {}
    for i, code in enumerate(blocks):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{page.name} snippet {i + 1}", "exec"), namespace)
        assert out.getvalue(), f"{page.name} snippet {i + 1} printed nothing"


def test_every_module_says_what_it_is_for():
    for info in pkgutil.iter_modules(gpt.__path__):
        module = importlib.import_module(f"gpt.{info.name}")
        assert module.__doc__ and len(module.__doc__.strip()) > 20, info.name
