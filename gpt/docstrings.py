"""What code says of itself: each module's, class's and function's docstring or doc comment, by the name it documents.

Code states no facts in a note's forms (headings, "Term: definition"), but Python documents itself: a docstring
is its author's own answer to "What does collect_files do?". `ast` finds them exactly, without running anything;
source that does not parse gives none. Public names only ("_helper" and "__init__" are the code's own business),
methods by their class ("PassageIndex.search"), a module by its file's name ("retrieval", a package's
__init__.py by its folder's). Other languages document a name in a comment above it (gpt/doc_comments.py), read
here the same way. gpt/qa.py asks about each one's summary, its first paragraph; gpt/passages.py makes each
docstring a passage titled by its name, for open-book answers.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import warnings
from dataclasses import dataclass
from pathlib import PurePath

from gpt.doc_comments import doc_comments
from gpt.files import uncompressed_name

PYTHON_SUFFIXES = (".py", ".pyi")
# How each kind of name is asked about; the first, as people ask
CODE_TEMPLATES = {"function": ("What does {t} do?", "What is {t} for?", "Tell me about {t}."),
                  "class": ("What is {t}?", "What is {t} for?", "Tell me about {t}."),
                  "module": ("What is {t}?", "What is {t} for?", "Tell me about {t}.")}
_ROLE = re.compile(r":[\w.:-]+:`([^`]+)`")  # reST's :class:`Mock`, :py:func:`run`
_SECTION = ("Args:", "Arguments:", "Returns:", "Raises:", "Parameters", "Example", ">>>", ":param", "..")
_TAG = (*_SECTION, "@", "# ", "```", "\\", "<")  # and in doc comments: "@param", Rust's "# Examples", "\\param", "<p>"


@dataclass(frozen=True)
class Documented:
    name: str  # "collect_files", "PassageIndex", "PassageIndex.search", or a module's "retrieval"
    kind: str  # "function", "class" or "module": CODE_TEMPLATES' keys
    summary: str  # the docstring's first paragraph, on one line
    docstring: str  # the whole docstring, its indentation removed (inspect.cleandoc)
    line: int  # the line of its "def" or "class"; 1 for a module


def documented(text: str, source: str) -> list[Documented]:
    """The documented public names of Python source, in the order they are defined; other languages' by their
    doc comments (gpt/doc_comments.py); [] for other files."""
    if not uncompressed_name(source).lower().endswith(PYTHON_SUFFIXES):
        return [d for name, kind, comment, line in doc_comments(text, source) if public(name)
                for d in _of(name, kind, comment, line, _TAG)]
    try:
        with warnings.catch_warnings():  # "invalid escape sequence" in someone's regex is not the reader's business
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # not Python (or Python 2), NUL bytes, too deep
        return []
    found = _of(module_name(source), "module", ast.get_docstring(tree), 1)
    todo = [(tree.body, "")]
    while todo:
        body, prefix = todo.pop(0)
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and public(node.name):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                found += _of(prefix + node.name, kind, ast.get_docstring(node), node.lineno)
                if kind == "class":
                    todo.append((node.body, f"{prefix}{node.name}."))
    return sorted(found, key=lambda d: d.line)


def public(name: str) -> bool:
    return not name.startswith("_")


def module_name(source: str) -> str:
    """A module's name as its file gives it: "retrieval" for gpt/retrieval.py, "gpt" for gpt/__init__.py."""
    path = PurePath(uncompressed_name(source).replace("\\", "/"))
    return path.parent.name if path.stem == "__init__" and path.parent.name else path.stem


def _of(name: str, kind: str, docstring: str | None, line: int,
        sections: tuple[str, ...] = _SECTION) -> list[Documented]:
    """[the name's Documented], or [] where the docstring gives no summary to answer with."""
    if not docstring or not name:
        return []
    cleaned = inspect.cleandoc(docstring)
    summary = _summary(cleaned, name.rsplit(".", 1)[-1], sections)
    return [Documented(name, kind, summary, cleaned, line)] if any(c.isalnum() for c in summary) else []


def _summary(docstring: str, name: str, sections: tuple[str, ...]) -> str:
    """The first paragraph, up to a section ("Args:") if one, after a call signature written above it ("fork() ->
    (pid, master_fd)", as C functions' docstrings open); reST roles and literals as Markdown code."""
    lines = docstring.splitlines()
    while lines and (lines[0].startswith(f"{name}(") or not lines[0].strip()):
        lines.pop(0)
    paragraph = itertools.takewhile(lambda s: s.strip() and not s.lstrip().startswith(sections), lines)
    text = _ROLE.sub(r"`\1`", " ".join(s.strip() for s in paragraph)).replace("``", "`")
    return text[:-1] if text.endswith("::") else text  # "its items::" introduces an example: "its items:"
