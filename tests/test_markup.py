"""Other markups read as Markdown, line for line: org-mode and AsciiDoc titles and code, HTML comments, pictures."""

from hypothesis import example, given
from hypothesis import strategies as st

from gpt.markup import front_matter_lines, markdown_lines
from gpt.passages import passages_of
from gpt.qa import derive_entries

ORG = """#+TITLE: Plant notes
#+AUTHOR: Someone
[[file:img/monstera.png]]
* Monstera                                                    :plants:tropical:
:PROPERTIES:
:ID:       5f3c
:END:
Monstera is a genus of flowering plants native to tropical America.
# a comment, not a title
** TODO [#A] Repot it
See [[https://example.org/monstera][the care guide]] and [[Pothos]]; run =repot --deep= (not x=1).
#+BEGIN_SRC python
* not a title: code
#+END_SRC
  * an indented list item
"""

ADOC = """= Plant notes
:toc:

== Monstera ==

NOTE: Keep it out of a cat's reach.

Monstera is a genus of flowering plants native to tropical America.

[source,python]
----
== not a title: code
----

// a comment
Perlite:: A volcanic glass that keeps soil airy. See xref:soil.adoc[Soil], {url-pots}[Pots^] or <<care,Care>>.
====
An example block.
====
"""


def test_org_mode_titles_code_and_metadata():
    assert markdown_lines(ORG, "notes/plants.org") == [
        "# Plant notes", "", "", "# Monstera", "", "", "",
        "Monstera is a genus of flowering plants native to tropical America.", "", "## Repot it",
        "See the care guide and Pothos; run `repot --deep` (not x=1).", "```", "* not a title: code", "```",
        "  * an indented list item"]
    assert markdown_lines(ORG, "plants.md")[3].startswith("* Monstera")  # the suffix decides, as in pandoc
    roam = ":PROPERTIES:\n:ID: 5f3c\n:END:\n#+title: Pothos\n\nPothos is a trailing vine.\n"  # an org-roam note
    assert [(e.term, e.kind) for e in derive_entries(roam, "20261127-pothos.org")] == [("Pothos", "heading")]


def test_asciidoc_titles_code_glossary_and_metadata():
    assert markdown_lines(ADOC, "plants.ADOC") == [
        "# Plant notes", "", "", "## Monstera", "", "> NOTE: Keep it out of a cat's reach.", "",
        "Monstera is a genus of flowering plants native to tropical America.", "", "", "```", "== not a title: code",
        "```", "", "", "Perlite: A volcanic glass that keeps soil airy. See Soil, Pots or Care.", "",
        "An example block.", ""]


def test_an_asciidoc_term_alone_on_its_line_takes_the_definition_under_it():
    text = "Sphagnum::\n  A moss that holds water.\n  It lines pots.\nBark::\nPine bark chips.\n\nLast::\n\nText.\n"
    assert markdown_lines(text, "soil.adoc") == [
        "Sphagnum: A moss that holds water. It lines pots.", "", "", "Bark: Pine bark chips.", "", "", "Last::", "",
        "Text."]
    assert [(e.term, e.definition, e.line) for e in derive_entries(text, "soil.adoc")] == [
        ("Sphagnum", "A moss that holds water. It lines pots.", 1), ("Bark", "Pine bark chips.", 4)]


def test_questions_and_passages_from_org_and_asciidoc_notes():
    for text, source in ((ORG, "plants.org"), (ADOC, "plants.adoc")):
        entries = {(e.term, e.kind, e.line) for e in derive_entries(text, source)}
        assert ("Monstera", "heading", 4) in entries, (source, entries)
        monstera = next(e for e in derive_entries(text, source) if e.term == "Monstera")
        assert monstera.definition.startswith("Monstera is a genus")  # the callout above it is not the answer
        assert not any("not a title" in e.term or "not a title" in e.definition for e in derive_entries(text, source))
        first = next(p for p in passages_of(text, source) if "Monstera is" in p.text)
        assert first.titles == ("Monstera",) and first.text.split("\n")[0].endswith("Monstera"), first  # its path
    assert ("Perlite", "A volcanic glass that keeps soil airy. See Soil, Pots or Care.") in [
        (e.term, e.definition) for e in derive_entries(ADOC, "plants.adoc")]
    assert not derive_entries(ORG, "plants.txt")  # without the suffix its stars are a list, as Markdown reads them


TEX = r"""\documentclass{article}
\usepackage[utf8]{inputenc}
\title{Plant notes}
\begin{document}
\maketitle
\section{Monstera}\label{sec:monstera}
% a comment, not text
Monstera is a genus of \emph{flowering} plants~\cite{kew} native to tropical America (50\% humidity).
\begin{verbatim}
\section{not a title: code}
\end{verbatim}
\begin{description}
\item[Perlite] A volcanic glass that keeps soil airy.
\item[Sphagnum]
  A moss that holds water.
\end{description}
\subsection{Repotting
  in spring}
See \href{https://example.org}{the \textbf{care} guide}.
\end{document}
"""


def test_latex_titles_code_description_lists_and_commands():
    assert markdown_lines(TEX, "notes.tex") == [
        "", "", "# Plant notes", "", "", "## Monstera", "",
        "Monstera is a genus of flowering plants  native to tropical America (50% humidity).", "```",
        "\\section{not a title: code}", "```", "", "Perlite: A volcanic glass that keeps soil airy.",
        "Sphagnum: A moss that holds water.", "", "", "### Repotting in spring", "", "See the care guide.", ""]
    assert [(e.term, e.kind, e.line) for e in derive_entries(TEX, "notes.tex")] == [  # the title has no text under it
        ("Monstera", "heading", 6), ("Perlite", "glossary", 13), ("Sphagnum", "glossary", 14),
        ("Repotting in spring", "heading", 17)]
    assert derive_entries(TEX, "notes.tex")[0].definition == (
        "Monstera is a genus of flowering plants native to tropical America (50% humidity).")


@given(st.text(alphabet=st.sampled_from("*=-#+:[]<!->/ \t\naZ\r.`_{}%\\,\"\f\x0b\u2028"), max_size=300),
       st.sampled_from(["n.org", "n.adoc", "n.md", "n.rst", "n.tex", "n.csv", "n.tsv", "n.py"]))
@example("<![:", "n.csv")  # a cell Python 3.11's HTMLParser raised an AssertionError on
def test_every_line_keeps_its_number(text, source):
    """As `grep -n` numbers them: a form feed between an RFC's pages, or a lone "\r", starts no line."""
    assert len(markdown_lines(text, source)) == text.count("\n") + (text != "" and not text.endswith("\n"))


def test_code_comments_are_not_titles_and_code_states_no_entries():
    code = "# pyright: strict\nimport os\n\n# Monstera\ntimeout: int = 5\n\ndef water():\n    return 1\n"
    assert markdown_lines(code, "src/plants.py")[:4] == ["    # pyright: strict", "import os", "", "    # Monstera"]
    assert derive_entries(code, "src/plants.py") == [] and derive_entries(code, "Makefile") == []
    assert [e.term for e in derive_entries(code, "notes.md")] == ["pyright: strict", "Monstera"]  # as Markdown reads it
    assert all(not p.titles for p in passages_of(code, "src/plants.py"))  # still searchable, untitled


def test_a_line_of_tildes_under_a_title_underlines_it_and_after_a_blank_line_fences_code():
    rst = "Lambdas\n~~~~~~~\n\nA lambda is a small anonymous function.\n"
    assert markdown_lines(rst, "ref.rst")[:2] == ["# Lambdas", ""]
    md = "# Notes\n\n~~~\n\nTitle in code\n---\n~~~\n"
    assert markdown_lines(md, "notes.md") == md.splitlines()  # no title made inside the fence


def test_a_note_that_writes_no_title_is_titled_as_its_app_shows_it():
    care = "Likes bright, indirect light.\n\nRepot every two years.\n"
    (entry,) = derive_entries(care, "vault/Monstera deliciosa.md")
    assert (entry.term, entry.definition, entry.line) == ("Monstera deliciosa", "Likes bright, indirect light.", 1)
    front = '---\ntitle: "Fiddle-leaf fig"\n---\nA fussy tree.\n\nIt hates drafts.\n'
    (entry,) = derive_entries(front, "vault/ficus.md")
    assert (entry.term, entry.line) == ("Fiddle-leaf fig", 4)
    assert [e.term for e in derive_entries("Tolerates neglect.\n", "snake-plant 0123456789abcdef0123456789abcdef.md")] \
        == ["snake plant"]  # a slug, a Notion export's id
    for source in ("README.md", "2026-11-27.md", "notes.md", "plants.txt", "export.jsonl#3", "a long name of a note "
                   "that is a sentence.md"):
        assert derive_entries(care, source) == [], source
    assert [e.term for e in derive_entries("# Pothos\n\nA trailing vine.\n", "Devil's ivy.md")] == ["Pothos"]
    passages = passages_of(front + "\n## Care\nWater weekly.\n", "ficus.md")
    assert [(p.line, p.titles) for p in passages] == [(4, ("Fiddle-leaf fig",)), (6, ()), (9, ("Care",))]
    assert passages[0].text.startswith("Fiddle-leaf fig\nA fussy tree.")


def test_an_outline_note_with_page_properties_as_logseq_writes_it():
    """Logseq's pages are outlines under "key:: value" properties; Obsidian's Dataview writes the same fields."""
    page = "title:: Devil's ivy\ntags:: plants, vines\n\n- Pothos is a trailing vine that tolerates low light.\n" \
           "\t- Water it weekly.\n- Care\n\t- Perlite is a volcanic glass that keeps soil airy.\n"
    assert [(e.term, e.definition, e.line) for e in derive_entries(page, "pages/pothos.md")] == [
        ("Pothos", "Pothos is a trailing vine that tolerates low light.", 4),
        ("Perlite", "Perlite is a volcanic glass that keeps soil airy.", 7)]  # each cited at its item's line
    assert [p.line for p in passages_of(page, "pages/pothos.md")] == [4]  # the properties are no passage
    prose = "title:: Devil's ivy\n\nLikes bright light.\n"
    assert [(e.term, e.line) for e in derive_entries(prose, "pages/pothos.md")] == [("Devil's ivy", 3)]
    glossary = "Monstera:: A genus of flowering plants.\n"  # a term, capitalised: no property
    assert front_matter_lines(glossary.splitlines()) == 0

def test_links_of_note_apps_read_as_they_show():
    note = ("# Monstera\n\nA genus in the [[Araceae|arum family]], like [[Pothos]] ([[Pothos#Care]], [[#Light]])."
            "![[leaf.png]] ^intro-1\n\n## Related\n\n- [[Pothos]]\n")
    assert markdown_lines(note, "vault/monstera.md") == [
        "# Monstera", "", "A genus in the arum family, like Pothos (Pothos, Light).", "", "## Related", "",
        "- [[Pothos]]"]  # a list of links stays one: no answer (tests/test_qa.py)
    (entry,) = derive_entries(note, "vault/monstera.md")
    assert entry.definition == "A genus in the arum family, like Pothos (Pothos, Light)."
    others = "Fixed [[Fixes #52]](https://x.org/52); `[[:<:]]' is a regex; stop it with ^Z\n"  # no links, no id
    assert markdown_lines(others, "NEWS.md") == [others.rstrip("\n")]
    code = "Run `a[[0]]` ^x1\n```sh\nif [[ -f x ]]; then\n```\n"  # code is as written
    assert markdown_lines(code, "vault/shell.md") == ["Run `a[[0]]`", "```sh", "if [[ -f x ]]; then", "```"]

def test_a_table_of_two_columns_is_a_glossary():
    """A glossary kept in a spreadsheet (CSV) or flash cards exported from Anki (TSV, HTML in the cells)."""
    table = 'term,definition\nMonstera,"A genus of flowering plants, native to the Americas."\nid,name,price\n'
    assert markdown_lines(table, "plants.csv") == [
        "- term: definition", "- Monstera: A genus of flowering plants, native to the Americas.", "- id, name, price"]
    cards = "Ficus\t<b>A genus</b> of woody trees<br>and shrubs.\n" + "x\t" + "y" * 200_000 + "\n"
    assert markdown_lines(cards, "deck.tsv")[0] == "- Ficus: A genus of woody trees and shrubs."
    assert markdown_lines("Pothos,A trailing vine.,,\n", "plants.csv") == ["- Pothos: A trailing vine."]  # empty cells
    assert [(e.term, e.definition, e.line) for e in derive_entries(table, "plants.csv")] == [
        ("Monstera", "A genus of flowering plants, native to the Americas.", 2)]
    # each row a passage of its own: the header row above is no part of Monstera's (every row is a list item)
    assert [(p.line, p.titles) for p in passages_of(table, "plants.csv")] == [
        (1, ()), (2, ("Monstera",)), (3, ())]
