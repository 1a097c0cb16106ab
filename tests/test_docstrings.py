"""Python source's docstrings: found with ast, asked about by name, and passages titled for open-book answers."""

from gpt.docstrings import documented, module_name
from gpt.passages import passages_of
from gpt.qa import derive_pairs
from gpt.retrieval import PassageIndex

SOURCE = '''#!/usr/bin/env python3
"""Plant care: when to water and repot.

Run it daily.
"""

import os


def water(plant, litres=1.0):
    """Water a plant with the given litres.

    Args:
        plant: the plant's name.
    """
    return plant


def _helper():
    """Private: not asked about."""


def no_docstring():
    return 1


class Greenhouse:
    """A glass house that keeps plants warm
    in winter.
    Args:
        size: its floor area.
    """

    def __init__(self):
        """Not asked about either."""

    async def vent(self):
        """Open the roof windows when it is hot."""

    class Shelf:
        """One shelf of pots."""


def example():
    """>>> example()"""
'''


def test_each_public_name_with_a_docstring_is_found_by_its_name():
    found = [(d.name, d.kind, d.summary, d.line) for d in documented(SOURCE, "src/care.py")]
    assert found == [
        ("care", "module", "Plant care: when to water and repot.", 1),
        ("water", "function", "Water a plant with the given litres.", 10),
        ("Greenhouse", "class", "A glass house that keeps plants warm in winter.", 27),  # up to its "Args:"
        ("Greenhouse.vent", "function", "Open the roof windows when it is hot.", 37),
        ("Greenhouse.Shelf", "class", "One shelf of pots.", 40)]
    assert documented(SOURCE, "src/care.py")[1].docstring.startswith("Water a plant with the given litres.\n\nArgs:")


def test_other_files_and_source_that_does_not_parse_give_none(recwarn):
    assert documented(SOURCE, "notes.md") == [] and documented(SOURCE, "care.js") == []
    assert documented("def broken(:\n    '''Doc.'''\n", "broken.py") == []
    assert documented("print 'python 2'\n", "old.py") == [] and documented("x = 1\x00\n", "nul.py") == []
    assert documented("x = " + "(" * 5000 + ")" * 5000 + "\n", "deep.py") == []  # too deep for the parser
    assert module_name("pkg/__init__.py") == "pkg" and module_name("a/b/tool.pyi.gz") == "tool"
    assert [d.name for d in documented('"""A package."""\n', "garden/__init__.py")] == ["garden"]
    assert [d.summary for d in documented('def f():\n    """Match \\d+."""\n    return "\\d"\n', "re.py")] == [
        "Match \\d+."] and not recwarn.list  # an invalid escape sequence: no warning


def test_questions_ask_what_a_function_does_and_what_a_class_is():
    pairs = [(p.question, p.answer, p.kind, p.line) for p in derive_pairs(SOURCE, "src/care.py", phrasings=1)]
    assert pairs == [("What is care?", "Plant care: when to water and repot.", "module", 1),
                     ("What does water do?", "Water a plant with the given litres.", "function", 10),
                     ("What is Greenhouse?", "A glass house that keeps plants warm in winter.", "class", 27),
                     ("What does Greenhouse.vent do?", "Open the roof windows when it is hot.", "function", 37),
                     ("What is Greenhouse.Shelf?", "One shelf of pots.", "class", 40)]
    assert {p.question for p in derive_pairs(SOURCE, "src/care.py")} >= {
        "What does water do?", "What is water for?", "Tell me about water."}


def test_a_docstring_is_a_passage_titled_by_its_name_and_found_first():
    passages = passages_of(SOURCE, "src/care.py")
    assert [p.line for p in passages] == sorted(p.line for p in passages)
    titled = [(p.titles, p.line, p.text[p.body:].split("\n")[0]) for p in passages if p.titles]
    assert titled[1:3] == [(("water",), 10, "Water a plant with the given litres."),
                           (("Greenhouse",), 27, "A glass house that keeps plants warm")]
    assert (("Greenhouse.vent", "vent"), 37, "Open the roof windows when it is hot.") in titled
    index = PassageIndex.build([("src/care.py", SOURCE)])
    for question, line in [("What does water do?", 10), ("What does Greenhouse.vent do?", 37),
                           ("What does vent do?", 37), ("what is greenhouse", 27), ("What is care?", 1)]:
        best = index.search(question, k=1)[0]
        assert (best.line, bool(best.titles)) == (line, True), question


def test_a_summary_reads_as_text_after_a_signature_line_and_without_rest_markup():
    source = '''
def fork():
    """fork() -> (pid, master_fd)
    Fork and make the child a session leader."""


class BufferedReader:
    """BufferedReader(raw[, buffer_size])

    A buffer for a readable :class:`RawIOBase` object, see ``peek``.
    """


def always_iterable(obj):
    """If *obj* is iterable, return an iterator over its items::

        >>> list(always_iterable(1))
    """
'''
    assert [(d.name, d.summary) for d in documented(source, "io.py")] == [
        ("fork", "Fork and make the child a session leader."),
        ("BufferedReader", "A buffer for a readable `RawIOBase` object, see `peek`."),
        ("always_iterable", "If *obj* is iterable, return an iterator over its items:")]
