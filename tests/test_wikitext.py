"""Wiki pages read as Markdown: MediaWiki's wikitext (a .wiki file, an XML export of many pages) and DokuWiki's."""

import bz2
import os

from hypothesis import example, given
from hypothesis import strategies as st

from gpt.documents import collect_files, iter_texts, read_documents
from gpt.passages import passages_of
from gpt.qa import derive_entries, derive_from_files
from gpt.wikitext import dokuwiki_to_markdown, mediawiki_to_markdown, wiki_dialect, wiki_to_markdown

MEDIAWIKI = """{{Infobox plant
| name = Monstera
| family = [[Araceae]]
}}
'''Monstera''' is a genus of [[flowering plant]]s in the [[Araceae|arum family]].<ref name="kew">{{cite web
|url=https://x.org/ |title=Kew}}</ref> Its leaves are ''fenestrated''.<ref name="x/y" /> See [https://x.org the guide].
__TOC__
== Care ==
Water when the top 5&nbsp;cm are dry; x<y and y>z.
* Bright light
** Not direct sun
# Repot every two years
; Fenestration
: Holes in mature leaves that let wind through.
; Aerial root: A root that grows above the ground.
{| class="wikitable"
! Species !! Leaf
|-
| ''M. deliciosa'' || Large, split leaves
|-
| style="color:red" | M. adansonii || Oval leaves with holes
|}
<syntaxhighlight lang="python">
* water(plant)  # '''code''', as written
</syntaxhighlight>
<gallery>
File:Leaf.jpg|A leaf
</gallery>
[[File:Leaf.jpg|thumb|A leaf of [[Monstera deliciosa]].]][[Category:Araceae]][[fr:Monstera]]
----
:An indented remark."""

MEDIAWIKI_AS_MARKDOWN = """



**Monstera** is a genus of flowering plants in the arum family.
 Its leaves are *fenestrated*. See the guide.

## Care
Water when the top 5 cm are dry; x<y and y>z.
- Bright light
  - Not direct sun
1. Repot every two years
- Fenestration: Holes in mature leaves that let wind through.
- Aerial root: A root that grows above the ground.


- Species: Leaf

- *M. deliciosa*: Large, split leaves

- M. adansonii: Oval leaves with holes

```
* water(plant)  # '''code''', as written
```





An indented remark."""

DOKUWIKI = """====== Monstera ======

[[doku>x|{{wiki:logo.png }}]] **Monstera** is a genus of //flowering plants//((A footnote.)), see [[plants:pothos]],
[[wp>Araceae]], [[wp>Americas|the Americas]], https://x.org//a//.

===== Care =====
  * Bright light
    * not direct sun
  - Repot every two years
^ Term ^ Meaning ^
| Fenestration | Holes in mature leaves that let wind through |
<code python>
  * water(plant)  # //as written//
</code>
{{:plants:leaf.jpg?200|}}
Use ''chunky'' soil, %%//not//%% __mud__.\\\\ Done.
~~NOTOC~~"""

DOKUWIKI_AS_MARKDOWN = """# Monstera

 **Monstera** is a genus of *flowering plants*, see pothos,
Araceae, the Americas, https://x.org//a//.

## Care
- Bright light
  - not direct sun
1. Repot every two years
- Term: Meaning
- Fenestration: Holes in mature leaves that let wind through
```
  * water(plant)  # //as written//
```

Use `chunky` soil, //not// mud. Done.
"""

EXPORT = """<?xml version="1.0" encoding="utf-8"?>
<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">
  <siteinfo><sitename>Plant Wiki</sitename></siteinfo>
  <page>
    <title>Monstera</title><ns>0</ns><id>1</id>
    <revision><id>10</id><text xml:space="preserve">'''Monstera''' is an old draft.</text></revision>
    <revision><id>11</id><text xml:space="preserve">{{Infobox plant|name=Monstera}}
'''Monstera''' is a genus of flowering plants &amp; vines.&lt;ref&gt;Kew&lt;/ref&gt;

== Care ==
Water when the soil is dry.</text></revision>
  </page>
  <page>
    <title>Swiss cheese plant</title><ns>0</ns><id>2</id><redirect title="Monstera" />
    <revision><id>12</id><text xml:space="preserve">#REDIRECT [[Monstera]]</text></revision>
  </page>
  <page>
    <title>Talk:Monstera</title><ns>1</ns><id>3</id>
    <revision><id>13</id><text xml:space="preserve">Is this right?</text></revision>
  </page>
  <page>
    <title>Pothos</title><ns>0</ns><id>4</id>
    <revision><id>14</id><text xml:space="preserve">'''Pothos''' is a trailing vine that tolerates low light.</text>
    </revision>
  </page>
</mediawiki>
"""


def test_a_mediawiki_page_as_markdown_line_for_line():
    assert mediawiki_to_markdown(MEDIAWIKI) == MEDIAWIKI_AS_MARKDOWN
    assert mediawiki_to_markdown("#REDIRECT [[Monstera]]") == ""


def test_a_dokuwiki_page_as_markdown_line_for_line():
    assert dokuwiki_to_markdown(DOKUWIKI) == DOKUWIKI_AS_MARKDOWN


def test_which_wiki_wrote_a_text_file():
    assert wiki_dialect(DOKUWIKI) == "dokuwiki"
    readme = "*uganda.txt*  For Vim\n== Notes ==\n|sponsor|. '''x''' {{ name }}\n=== Light ===\n"
    assert wiki_dialect(readme) == "titles"  # only its titles are read as titles: the rest is as written
    assert wiki_to_markdown(readme, "titles") == readme.replace("== Notes ==", "## Notes").replace("=== Light ===",
                                                                                                  "### Light")
    assert wiki_dialect("Plain notes. Nothing == special == here.\n==\n") is None


@given(st.text(alphabet=st.sampled_from("'=*#:;|!{}[]<>/-^%~_\\ \naZ"), max_size=300))
@example(";:x")  # a deeper list's term, on which the first version looped for ever (CI's hypothesis found it)
def test_every_line_keeps_its_number(text):
    lines = text.count("\n") + 1
    assert mediawiki_to_markdown(text).count("\n") + 1 in (lines, 1)  # 1: a redirect, nothing
    assert dokuwiki_to_markdown(text).count("\n") + 1 == lines


def test_questions_from_a_wiki_page_titled_by_its_file(tmp_path):
    (tmp_path / "Monstera.wiki").write_text(MEDIAWIKI, encoding="utf-8")
    entries = {e.term: (e.definition, e.line) for e in derive_entries(*_read(tmp_path / "Monstera.wiki"))}
    assert entries["Monstera"] == ("**Monstera** is a genus of flowering plants in the arum family. Its leaves are "
                                   "*fenestrated*. See the guide.", 1)  # its title: the file's name
    assert entries["Fenestration"] == ("Holes in mature leaves that let wind through.", 13)
    assert entries["Aerial root"] == ("A root that grows above the ground.", 14)
    assert entries["M. adansonii"] == ("Oval leaves with holes", 21)


def test_dokuwiki_pages_in_a_folder_of_text_files(tmp_path):
    pages = tmp_path / "data" / "pages" / "plants"
    pages.mkdir(parents=True)
    (pages / "monstera.txt").write_text(DOKUWIKI, encoding="utf-8")
    (pages / "plain.txt").write_text("Plain notes, https://x.org//a// and {{braces}}.\n", encoding="utf-8")
    by_source = {d.source: d.text for d in read_documents([str(pages / "monstera.txt"), str(pages / "plain.txt")])}
    assert by_source[str(pages / "monstera.txt")] == DOKUWIKI_AS_MARKDOWN
    assert by_source[str(pages / "plain.txt")] == "Plain notes, https://x.org//a// and {{braces}}.\n"  # as it is
    pairs = {p.question: p.answer for p in derive_from_files(collect_files([str(tmp_path)]))}
    assert pairs["What is Monstera?"].startswith("**Monstera** is a genus of *flowering plants*, see pothos")
    assert pairs["What is Fenestration?"] == "Holes in mature leaves that let wind through"


def test_an_export_is_a_document_per_article(tmp_path):
    export = tmp_path / "plants.xml.bz2"  # as dumps come
    export.write_bytes(bz2.compress(EXPORT.encode()))
    documents = read_documents([str(export)])
    assert [(d.source, d.text) for d in documents] == [
        (f"{export}#Monstera", "# Monstera\n\n**Monstera** is a genus of flowering plants & vines.\n\n## Care\n"
                               "Water when the soil is dry.\n"),
        (f"{export}#Pothos", "# Pothos\n\n**Pothos** is a trailing vine that tolerates low light.\n")]
    assert list(iter_texts([str(export)])) == [d.text for d in documents]  # what the tokenizer reads
    pairs = {p.question: p.answer for p in derive_from_files([str(export)])}
    assert pairs["What is Monstera?"] == "**Monstera** is a genus of flowering plants & vines."
    assert "Talk:Monstera" not in str(pairs) and "Swiss cheese plant" not in str(pairs) and "draft" not in str(pairs)
    assert passages_of(documents[1].text, documents[1].source)[0].cited() == f"{export}#Pothos:3"


def test_a_damaged_export_keeps_the_pages_before_the_damage(tmp_path, capsys):
    export = tmp_path / "plants.xml"
    export.write_text(EXPORT[:EXPORT.index("<title>Pothos")], encoding="utf-8")  # cut off mid-file
    assert [d.source for d in read_documents([str(export)])] == [f"{export}#Monstera"]
    assert f"skipping the rest of {export}: not a well-formed export" in capsys.readouterr().err
    other = tmp_path / "config.xml"  # any other XML is read as it is (as code: no questions)
    other.write_text("<config><name>x</name></config>\n", encoding="utf-8")
    assert [d.text for d in read_documents([str(other)])] == ["<config><name>x</name></config>\n"]


def _read(path: os.PathLike) -> tuple[str, str]:
    document = read_documents([str(path)])[0]
    return document.text, document.source
