"""Web pages, notebooks and RTF documents read as Markdown, whole: their text, not their tags, JSON or control words."""

import json
import os
import sys

from gpt.documents import Document, collect_files, iter_documents, read_documents
from gpt.qa import derive_from_files
from gpt.rich_text import html_to_markdown

PAGE = """<!DOCTYPE html><html><head><title>Plants</title><style>p { color: green }</style></head><body>
<nav><a href="/">Home</a> <a href="/faq">FAQ</a></nav>
<h1>Plant care</h1><h2 id="m">Monstera</h2>
<p>Monstera is a genus of <b>flowering</b> plants
native to tropical America &amp; Mexico.</p><p>Water weekly.
<ul><li>Bright light</li><li>Humid air<ul><li>misted daily</li></ul></li></ul>
<dl><dt>Perlite</dt><dd>A volcanic glass.</dd></dl>
<pre><code>def water(plant):
    plant.water()
</code></pre>
<table><tr><th>Plant</th><th>Water</th></tr><tr><td>Pothos</td><td>weekly</td></tr></table>
<script>document.write("<h2>Not a title</h2>")</script>First line<br>second line
</body></html>"""


def test_a_web_page_is_read_as_its_text_in_markdown(tmp_path):
    assert html_to_markdown(PAGE) == "\n".join([
        "# Plant care", "", "## Monstera", "",
        "Monstera is a genus of flowering plants native to tropical America & Mexico.", "", "Water weekly.", "",
        "- Bright light", "- Humid air", "- misted daily", "", "Perlite", ": A volcanic glass.", "",
        "```", "def water(plant):", "    plant.water()", "```", "", "| Plant | Water |", "| Pothos | weekly |", "",
        "First line", "second line"]) + "\n"
    page = tmp_path / "care.HTML"
    page.write_text(PAGE, encoding="cp1252")  # the encoding is found as for any text file
    assert read_documents([str(page)]) == [Document(str(page), html_to_markdown(PAGE))]
    asked = {p.question: p.answer for p in derive_from_files([str(page)])}
    assert asked["What is Monstera?"].startswith("Monstera is a genus of flowering plants")
    assert asked["What is Perlite?"] == "A volcanic glass."




def test_a_notebook_is_read_as_its_cells(tmp_path, capsys):
    cells = [{"cell_type": "markdown", "source": ["# Monstera\n", "\n", "Monstera is a genus of plants."]},
             {"cell_type": "code", "source": "water(monstera)", "outputs": [{"text": "done"}]},
             {"cell_type": "code", "source": []}, {"cell_type": "raw", "source": "left out"}]
    notebook = tmp_path / "plants.ipynb"
    notebook.write_text(json.dumps({"cells": cells, "metadata": {"language_info": {"name": "python"}}}))
    text = "# Monstera\n\nMonstera is a genus of plants.\n\n```python\nwater(monstera)\n```\n"
    assert read_documents([str(notebook)]) == [Document(str(notebook), text)]
    assert [p.question for p in derive_from_files([str(notebook)], phrasings=1)] == ["What is Monstera?"]
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    assert read_documents([str(broken)]) == [Document(str(broken), '{"cells": [')]
    assert "broken.ipynb is not a Jupyter notebook's JSON: reading it as text" in capsys.readouterr().err


RTF = r"""{\rtf1\ansi\ansicpg1252\cocoartf2639
\cocoatextscaling0\cocoaplatform0{\fonttbl\f0\fswiss\fcharset0 Helvetica;}
{\colortbl;\red255\green255\blue255;}
{\*\expandedcolortbl;;}
\pard\tx566\tx1133\pardirnatural\partightenfactor0

\f0\fs24 \cf0 Monstera: A genus of plants native to tropical America.\
Perlite: A volcanic glass\'97used in soil, caf\'e9 \u8364 ? prices.\
\
\b Ficus\b0 \
Ficus is a genus of trees.}
"""


def test_an_rtf_document_is_read_as_its_text(tmp_path, capsys, monkeypatch):
    """As macOS TextEdit saves notes: a font table, colours, escaped and Unicode characters, "\\" line ends."""
    notes = tmp_path / "notes.rtf"
    notes.write_text(RTF)
    assert "".join(*iter_documents([str(notes)])) == (
        "Monstera: A genus of plants native to tropical America.\n"
        "Perlite: A volcanic glass\u2014used in soil, caf\u00e9 \u20ac prices.\n\nFicus\nFicus is a genus of trees.\n")
    assert [(p.question, p.answer) for p in derive_from_files([str(notes)], phrasings=1)] == [
        ("What is Monstera?", "A genus of plants native to tropical America."),
        ("What is Perlite?", "A volcanic glass\u2014used in soil, caf\u00e9 \u20ac prices."),
        ("What is Ficus?", "Ficus is a genus of trees.")]  # a title line above its sentence is no part of it
    monkeypatch.setitem(sys.modules, "striprtf.striprtf", None)  # as if the extra were not installed
    os.utime(notes, ns=(0, 0))  # a changed file: converted anew, not taken from the conversions kept
    assert list(iter_documents([str(notes)])) == []  # not trained on as control words
    assert f"skipping {notes}: reading RTF needs striprtf (pip install 'gpt[rtf]')" in capsys.readouterr().err


def test_a_headings_link_to_itself_is_not_part_of_its_title():
    page = ('<h2>Monstera<a class="headerlink" href="#monstera" title="Permalink to this heading">\u00b6</a></h2>'
            '<p>A climbing plant. See <a href="#care">care</a>, or <a href="https://example.org">#</a>.</p>'
            '<h3>fs.open()<span><a class="mark" href="#fs-open" id="fs-open">#</a></span></h3><p>Opens a file.</p>'
            '<h3>Ficus<a class="hash-link" href="#ficus" title="Direct link to heading">\u200b</a></h3>')
    assert html_to_markdown(page) == "\n".join([  # Sphinx and MkDocs, Node.js, Docusaurus
        "## Monstera", "", "A climbing plant. See care, or #.", "", "### fs.open()", "", "Opens a file.", "",
        "### Ficus"]) + "\n"


def test_a_broken_marked_section_is_text():
    """Python 3.11's HTMLParser raises an AssertionError at "<![" with no name after it (found by hypothesis in a
    CSV cell); a page or a cell holding one is read, the "<![" as text."""
    assert html_to_markdown("a <![ b <p>c</p>") == "a <![ b\n\nc\n"
    assert html_to_markdown("<![:") == "<![:\n" and html_to_markdown("<![CDATA[x]]>y") == "y\n"


ENEX = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE en-export SYSTEM "http://xml.evernote.com/pub/evernote-export4.dtd">
<en-export export-date="20261127T101010Z" application="Evernote" version="10.60.4">
  <note>
    <title>Monstera</title>
    <created>20261010T101010Z</created>
    <tag>plants</tag>
    <content><![CDATA[<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE en-note SYSTEM "http://xml.evernote.com/pub/enml2.dtd">
<en-note><div><b>Monstera</b> is a genus of flowering plants native to tropical America.</div><div><br/></div>
<h2>Care</h2><div><en-todo checked="true"/>Water when the top of the soil is dry.</div>
<en-media hash="0f1e" type="image/png"/></en-note>]]></content>
    <resource><data encoding="base64">
iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==</data>
      <mime>image/png</mime></resource>
  </note>
  <note><title>Empty</title><content><![CDATA[<en-note><div><br/></div></en-note>]]></content></note>
  <note>
    <title>Pothos</title>
    <content><![CDATA[<en-note><div>Pothos is a trailing vine that tolerates low light.</div></en-note>]]></content>
  </note>
</en-export>
"""


def test_an_evernote_export_is_a_document_per_note(tmp_path):
    export = tmp_path / "My Notes.enex"
    export.write_text(ENEX, encoding="utf-8")
    assert [(d.source, d.text) for d in read_documents([str(export)])] == [
        (f"{export}#Monstera", "# Monstera\n\nMonstera is a genus of flowering plants native to tropical America.\n\n"
                               "## Care\n\nWater when the top of the soil is dry.\n"),
        (f"{export}#Pothos", "# Pothos\n\nPothos is a trailing vine that tolerates low light.\n")]
    pairs = {p.question: p.answer for p in derive_from_files([str(export)])}
    assert pairs["What is Monstera?"] == "Monstera is a genus of flowering plants native to tropical America."
    assert pairs["What is Pothos?"] == "Pothos is a trailing vine that tolerates low light."


def test_a_damaged_evernote_export_keeps_the_notes_before_the_damage(tmp_path, capsys):
    export = tmp_path / "notes.enex"
    export.write_text(ENEX[:ENEX.index("<title>Pothos")], encoding="utf-8")
    assert [d.source for d in read_documents([str(export)])] == [f"{export}#Monstera"]
    assert f"skipping the rest of {export}: not a well-formed export" in capsys.readouterr().err


def test_google_keep_notes_from_takeout_are_read_from_their_json(tmp_path, capsys):
    keep = tmp_path / "Takeout" / "Keep"
    keep.mkdir(parents=True)
    note = {"color": "DEFAULT", "isTrashed": False, "isPinned": False, "isArchived": False, "title": "Monstera",
            "textContent": "A genus of flowering plants native to tropical America.\nWater it weekly.",
            "userEditedTimestampUsec": 1764237600000000, "labels": [{"name": "plants"}]}
    (keep / "Monstera.json").write_text(json.dumps(note), encoding="utf-8")
    (keep / "Monstera.html").write_text("<html><body><div class='title'>Monstera</div></body></html>", encoding="utf-8")
    todo = {"title": "", "isTrashed": False, "userEditedTimestampUsec": 1, "listContent": [
        {"text": "Repot the pothos", "isChecked": True}, {"text": "Buy perlite", "isChecked": False}]}
    (keep / "2026-11-27.json").write_text(json.dumps(todo), encoding="utf-8")
    (keep / "Old.json").write_text(json.dumps({**note, "title": "Old", "isTrashed": True}), encoding="utf-8")
    (keep / "package.json").write_text('{"name": "x", "version": "1.0.0"}\n', encoding="utf-8")  # as it is
    files = collect_files([str(tmp_path)])
    assert [os.path.basename(f) for f in files] == ["2026-11-27.json", "Monstera.json", "Old.json", "package.json"]
    assert "reading 1 Google Keep notes from their .json files, not their .html twins" in capsys.readouterr().err
    assert [(os.path.basename(d.source), d.text) for d in read_documents(files)] == [
        ("2026-11-27.json#Untitled", "- [x] Repot the pothos\n- [ ] Buy perlite\n"),
        ("Monstera.json#Monstera", "# Monstera\n\nA genus of flowering plants native to tropical America.\n"
                                   "Water it weekly.\n"),
        ("package.json", '{"name": "x", "version": "1.0.0"}\n')]
    pairs = {p.question: p.answer for p in derive_from_files(files)}
    assert pairs["What is Monstera?"] == "A genus of flowering plants native to tropical America. Water it weekly."
