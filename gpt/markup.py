"""Notes in other markups, read as Markdown: what gpt/qa.py and gpt/retrieval.py look for is Markdown's.

People keep notes in Markdown, reStructuredText, Emacs org-mode, AsciiDoc and LaTeX. Their titles and code blocks
are what questions and passages are made of, so each is rewritten line for line into Markdown's ("* Monstera" in
org-mode, "== Monstera" in AsciiDoc and "\\chapter{Monstera}" in LaTeX become "# Monstera"; their source blocks
become ``` fences); line numbers stay those of the file, so a passage's source line is still right. Org-mode,
AsciiDoc and LaTeX are told by the file's suffix (as pandoc does); underlined titles (Markdown's setext,
reStructuredText) by the text itself.

Web pages, notebooks and RTF are converted whole instead (gpt/rich_text.py); a CSV or TSV file's two-column rows
are glossary lines (table_row_line, which spreadsheets share).

Two more things a note's markup decides live here: whether a file is code (is_code: its "#" lines are comments,
and it states no entries to ask about), and the title of a note that writes none (note_title: the one its app
shows).
"""

from __future__ import annotations

import csv
import re

from gpt.files import uncompressed_name
from gpt.rich_text import html_to_markdown

HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")  # no lazy match: a huge "# # # ..." line stays linear
_COMMENT = re.compile(r"<!--(?:(?!<!--).)*?-->", re.DOTALL)  # stops at the next "<!--": an unclosed one stays linear
_IMAGE = r"(?:!\[[^\]\n]*\]\([^)\n]*\)|!\[\[[^\]\n]*\]\]|<img\b[^>\n]*>)"  # markdown, Obsidian's embed, HTML
_IMAGE_LINE = re.compile(rf"^[ \t]*{_IMAGE}(?:[ \t]*{_IMAGE})*[ \t]*$", re.MULTILINE)
_UNDERLINE = re.compile(r"^ {0,3}([=*~^-])\1{2,}[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_PROPERTY = re.compile(r"^[a-z][a-z0-9_-]*::[ \t]+\S")  # "tags:: plants", "alias:: Swiss cheese plant"
# "[[target#heading|alias]]"; not "[[Fixes #52]](https://...)", a Markdown link whose text is in brackets
_NOTE_LINK = re.compile(r"(!)?\[\[([^\[\]|#\n]*)(?:#\^?([^\[\]|\n]*))?(?:\|([^\[\]\n]*))?\]\](?!\()")
_LINK_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])[ \t]+!?\[\[")
_BLOCK_ID = re.compile(r"[ \t]\^[a-z0-9][a-z0-9-]+[ \t]*$")  # Obsidian's "^care-1", "^a1b2c3"; not a key's "^Z"
_INLINE_CODE = re.compile(r"(`+[^`]*`+)")
FRONT_MATTER_LINES = 100  # a "---" line further down than this closes no front matter

# Source code and configuration: their "# ..." lines are comments, not titles, and they state no entries to ask
CODE_SUFFIXES = tuple(f".{s}" for s in """py pyi pyx js mjs cjs ts tsx jsx c h cc cpp cxx hpp hh java kt kts scala go rs
rb php pl pm sh bash zsh fish ps1 r jl lua swift m mm cs fs hs ml mli ex exs erl clj cljs el lisp scm vim sql css
scss less toml yaml yml ini cfg conf json xml cmake mk gradle dart zig nim tf proto""".split())
CODE_NAMES = ("makefile", "dockerfile", "cmakelists.txt")
ORG_SUFFIXES = (".org",)
ASCIIDOC_SUFFIXES = (".adoc", ".asciidoc", ".asc")
LATEX_SUFFIXES = (".tex", ".latex")
TABLE_SUFFIXES = (".csv", ".tsv")  # a glossary kept in a spreadsheet, flash cards exported from Anki
# "** TODO [#A] Repot the monstera   :plants:home:" -> level 2, "Repot the monstera" (its tags cut in org_to_markdown)
_ORG_HEADING = re.compile(r"^(\*+)[ \t]+(?:(?:TODO|DONE|NEXT|WAITING|CANCELLED)[ \t]+)?(?:\[#[A-Z]\][ \t]+)?(.*)$")
_ORG_TAGS = re.compile(r":[\w@#%:]+:")
_ORG_TITLE = re.compile(r"^[ \t]*#\+title:[ \t]*(\S.*)$", re.IGNORECASE)
_ORG_BLOCK = re.compile(r"^[ \t]*#\+(BEGIN|END)_(SRC|EXAMPLE)\b", re.IGNORECASE)  # code: a fence
_ORG_METADATA = re.compile(r"^[ \t]*(?:#\+\w.*|#(?:[ \t].*)?|:[\w-]+:.*)$")  # keywords, comments, drawer lines
_ORG_IMAGE = re.compile(r"\.(?:png|jpe?g|gif|svg|webp)$", re.IGNORECASE)
_ORG_LINK = re.compile(r"\[\[([^\]\n]*)\](?:\[([^\]\n]*)\])?\]")  # [[target][text]] -> text, [[target]] as is
# =verbatim= and ~code~ as `code`: org's rule, a marker after a space or an opening mark and before a closing one;
# at most 200 characters inside, so that a long line of markers stays linear
_ORG_CODE = re.compile(r"(?<![^\s({'\"-])([=~])(\S(?:.{0,198}?\S)??)\1(?=[\s\-.,;:!?')}\"]|$)")
_ADOC_HEADING = re.compile(r"^(={1,6})[ \t]+(\S.*)$")  # a closing "==" is cut in asciidoc_to_markdown
_ADOC_CODE = re.compile(r"^(-{4,}|\.{4,}|\+{4,})[ \t]*$")  # listing, literal and passthrough blocks: fences
# Attribute lines ("[source,python]", ":toc:"), comments, and the delimiters of example, quote and sidebar blocks
_ADOC_METADATA = re.compile(r"^(?:\[.*\]|:[\w-]+:.*|//.*|={4,}|_{4,}|\*{4,})[ \t]*$")
_ADOC_LABELED = re.compile(r"^(\S[^:\n]*?)::[ \t]+(\S.*)$")  # "Term:: definition", AsciiDoc's glossary
_ADOC_TERM_ALONE = re.compile(r"^(\S[^:\n]*?)::[ \t]*$")  # "Term::", its definition on the lines under it
_ADOC_ADMONITION = re.compile(r"^(?:NOTE|TIP|IMPORTANT|WARNING|CAUTION):[ \t]")  # a callout: quoted, as "> [!NOTE]"
# Links shown as their text: "xref:install.adoc[Install]", "{url-python}[Python^]", "https://x.org[X]", "<<id,X>>"
_ADOC_LINK = re.compile(r"(?:\b(?:xref|link|mailto):(?P<target>[^\s\[\]]+)|\{[\w-]+\}|\bhttps?://[^\s\[\]]+)"
                        r"\[(?P<text>[^\]\n]*)\]|<<(?P<id>[^,>\n]+)(?:,(?P<label>[^>\n]+))?>>")


def text_lines(text: str) -> list[str]:
    """The lines of `text` as an editor and `grep -n` number them: split at "\n" ("\r\n" too) only. str.splitlines
    also splits at a form feed, which plain-text documents such as RFCs put between pages: a line cited after
    the tenth page would be ten lines off."""
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines  # a last line's "\n" ends it, as in splitlines


def blank_markup(text: str) -> str:
    """HTML comments removed, lines that only show an image blanked, line breaks kept: metadata (Node's "<!-- YAML
    added: v8.0.0 -->" under each API title) and pictures are never what a title means or a passage to quote."""
    text = _COMMENT.sub(lambda m: "\n" * m.group().count("\n"), text) if "<!--" in text else text
    return _IMAGE_LINE.sub("", text) if "![" in text or "<img" in text else text


def note_links_as_text(lines: list[str]) -> list[str]:
    """Note apps' links in prose as what they show: "[[Araceae|the arum family]]" as "the arum family",
    "[[Monstera#Care]]" as "Monstera", "[[#Care]]" as "Care"; an embed ("![[leaf.png]]") and a block's id ("...
    ^care-1" at a line's end) as nothing. So an answer quoted from a note reads as the note does on screen
    (Obsidian, Logseq, Foam). Code stays as written (a shell's "[[ -f x ]]", `a[[0]]`), and so does a list item
    that opens with a link: a list of links is no answer."""
    code = fenced(lines)
    return [line if code[i] or ("[[" not in line and "^" not in line) or _LINK_ITEM.match(line)
            else "".join(part if part.startswith("`") else _BLOCK_ID.sub("", _NOTE_LINK.sub(_shown_link, part))
                         for part in _INLINE_CODE.split(line))
            for i, line in enumerate(lines)]


def _shown_link(link: re.Match) -> str:
    if not any(c.isalnum() for c in link.group()):
        return link.group()  # a regular expression's "[[:<:]]", not a link
    return "" if link.group(1) else link.group(4) or link.group(2) or link.group(3) or link.group()


def front_matter_lines(lines: list[str]) -> int:
    """How many lines a note's metadata takes at the top: a YAML front matter block (Obsidian, Jekyll, Hugo), or
    "key:: value" lines and the blank lines under them (Logseq's page properties, Obsidian Dataview's fields)."""
    opened = bool(lines) and lines[0].strip() == "---"
    ends = (i for i, line in enumerate(lines[1:FRONT_MATTER_LINES], 1) if opened and line.strip() in ("---", "..."))
    if opened:
        return next(ends, -1) + 1
    properties = next((i for i, line in enumerate(lines[:FRONT_MATTER_LINES]) if not _PROPERTY.match(line)),
                      min(len(lines), FRONT_MATTER_LINES))
    return next((i for i in range(properties, len(lines)) if lines[i].strip()), len(lines)) if properties else 0


def fenced(lines: list[str], underlines: bool = False) -> list[bool]:
    """True for the lines of fenced code blocks, the fences included. With `underlines`, a line of tildes right
    under a line of text underlines it (a reStructuredText title) instead of opening a fence."""
    mask, fence = [], None
    for i, line in enumerate(lines):
        match = _FENCE.match(line)
        if match and underlines and fence is None and match.group(1) == "~~~" and i and lines[i - 1].strip():
            match = None
        mask.append(fence is not None or match is not None)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.lstrip().startswith(fence):
            fence = None
    return mask


def setext_to_atx(lines: list[str]) -> list[str]:
    """'Title' over a line of =, -, *, ~ or ^ (Markdown's setext and reStructuredText headings) as '# Title'.

    As in reStructuredText, an underline character met first in the text is a higher level than one met later
    (Markdown's = before -), written as that many #s. An RST overline above the title goes too. Underlines and
    overlines become empty lines, so line numbers stay those of the input.
    """
    out, levels, code = list(lines), {}, fenced(lines, underlines=True)
    for i in range(1, len(lines)):
        title, mark = lines[i - 1].strip(), _UNDERLINE.match(lines[i])
        if not (mark and title and not HEADING.match(lines[i - 1]) and len(lines[i].strip()) >= min(len(title), 3)):
            continue
        if code[i - 1] or code[i]:
            continue  # code, or the fence that ends it
        over = i >= 2 and lines[i - 2].strip() == lines[i].strip()
        if i >= 2 and out[i - 2].strip() and not over and not HEADING.match(out[i - 2]):
            continue  # the last line of a paragraph, not a title
        level = levels.setdefault((mark.group(1), over), min(len(levels) + 1, 6))
        out[i - 1], out[i] = f"{'#' * level} {title}", ""
        if over:
            out[i - 2] = ""
    return out


def org_to_markdown(lines: list[str]) -> list[str]:
    """Org-mode's "* Title" and "#+title: Title" as "# Title", its source and example blocks as fences; other
    keywords ("#+AUTHOR:"), comments and drawers (":PROPERTIES:" ... ":END:") blanked, links shown as their text,
    =verbatim= and ~code~ as `code`."""
    out = []
    for line in lines:
        if heading := _ORG_HEADING.match(line):
            title, _, tags = heading.group(2).rstrip().rpartition(" ")
            title = title.rstrip() if title and _ORG_TAGS.fullmatch(tags) else heading.group(2).strip()
            out.append(f"{'#' * min(len(heading.group(1)), 6)} {_org_code(title)}")
        elif title := _ORG_TITLE.match(line):
            out.append(f"# {title.group(1).strip()}")  # an org-roam note's title: often its only one
        elif _ORG_BLOCK.match(line):
            out.append("```")
        else:
            text = _org_code(_ORG_LINK.sub(_org_link_text, line)).rstrip()
            out.append("" if _ORG_METADATA.match(line) else text)
    return _inside_fences_as_written(lines, out)


def _org_code(text: str) -> str:
    return _ORG_CODE.sub(r"`\2`", text)


def _org_link_text(link: re.Match) -> str:
    """A link's description, else its target; a picture shown inline ("[[file:img/alda.png]]") is left out."""
    return link.group(2) or ("" if _ORG_IMAGE.search(link.group(1)) else link.group(1))


def asciidoc_to_markdown(lines: list[str]) -> list[str]:
    """AsciiDoc's "== Title" as "## Title", its listing and literal blocks as fences, "Term:: definition" as
    "Term: definition"; attribute lines ("[source,python]", ":toc:"), comments and other delimiters blanked."""
    out = []
    for line in _adoc_definitions_joined(lines):
        if heading := _ADOC_HEADING.match(line):
            out.append(f"{'#' * len(heading.group(1))} {heading.group(2).rstrip().rstrip('=').rstrip()}")
        elif _ADOC_CODE.match(line):
            out.append("```")
        elif _ADOC_METADATA.match(line):
            out.append("")
        else:
            line = _ADOC_LINK.sub(_link_text, _ADOC_LABELED.sub(r"\1: \2", line))
            out.append(f"> {line}" if _ADOC_ADMONITION.match(line) else line)
    return _inside_fences_as_written(lines, out)


def _adoc_definitions_joined(lines: list[str]) -> list[str]:
    """"Term::" with its definition on the lines under it (up to a blank line) as "Term:: definition" on the
    term's line, the definition's lines blanked: one glossary line, every line keeping its number."""
    out = list(lines)
    for i, line in enumerate(lines):
        if (term := _ADOC_TERM_ALONE.match(line)) and out[i] == line:
            end = i + 1
            while end < len(lines) and lines[end].strip() and not _ADOC_TERM_ALONE.match(lines[end]) \
                    and not _ADOC_CODE.match(lines[end]) and not _ADOC_METADATA.match(lines[end]):
                end += 1
            _join_onto(out, lines, i, end, f"{term.group(1)}::")
    return out


def _join_onto(out: list[str], lines: list[str], i: int, end: int, first: str) -> None:
    """lines[i + 1:end] joined onto `first` at out[i], their own lines blanked: every line keeps its number."""
    if end > i + 1:
        out[i] = " ".join([first] + [part.strip() for part in lines[i + 1:end]])
        out[i + 1:end] = [""] * (end - i - 1)


def _link_text(link: re.Match) -> str:
    text = (link.group("text") or "").rstrip("^") or link.group("label") or link.group("target") or link.group("id")
    return text or link.group()


def _inside_fences_as_written(lines: list[str], out: list[str]) -> list[str]:
    """Lines between two fences are code: the original text, not rewritten ("* x" in Python stays)."""
    return [line if code and mine != "```" else mine for line, mine, code in zip(lines, out, fenced(out))]


def is_code(source: str) -> bool:
    """Whether a document is source code or configuration, by its file's suffix or name."""
    name = uncompressed_name(source).lower().replace("\\", "/").rsplit("/", 1)[-1]
    return name.endswith(CODE_SUFFIXES) or name in CODE_NAMES


MEDIAWIKI_SUFFIXES = (".wiki", ".mediawiki", ".wikitext")  # a wiki's page, read as Markdown by gpt/wikitext.py
NOTE_SUFFIXES = (".md", ".markdown", ".mdx", *MEDIAWIKI_SUFFIXES)  # a note titled by its file's name
_NOT_A_TITLE = {"readme", "index", "notes", "note", "todo", "changelog", "license", "contributing", "untitled", "home",
                "inbox", "draft", "scratch", "main", "test", "glossary", "faq", "terms"}
_NOTION_ID = re.compile(r"\s+[0-9a-f]{32}$")  # "Monstera 1a2b...9f.md" in a Notion export
_FRONT_TITLE = re.compile(r"^title::?[ \t]*(['\"]?)(.+?)\1[ \t]*$", re.IGNORECASE)


def note_title(lines: list[str], front: int, source: str) -> str | None:
    """The title of a note that writes none above its text, as note apps show it: its front matter's "title:",
    else its file's name ("Monstera deliciosa.md" in Obsidian, "monstera-care.md"); None for a note that opens
    with a heading, or whose name says nothing ("README.md", "2026-11-27.md")."""
    first = next((line for line in lines[front:] if line.strip()), "")
    if not first or HEADING.match(first):
        return None
    for line in lines[:front]:
        if (named := _FRONT_TITLE.match(line.strip())) and len(named.group(2)) <= 60:
            return named.group(2).strip()
    name = uncompressed_name(source).replace("\\", "/").rsplit("/", 1)[-1]
    if "#" in source or not name.lower().endswith(NOTE_SUFFIXES):
        return None  # a record of a .jsonl file, the built-in corpus: no file name of its own
    name = _NOTION_ID.sub("", name.rsplit(".", 1)[0]).strip()
    name = name if " " in name else name.replace("_", " ").replace("-", " ")
    words = name.split()
    if not 0 < len(words) <= 5 or name.lower() in _NOT_A_TITLE or sum(c.isalpha() for c in name) < 2 \
            or sum(c.isdigit() for c in name) > len(name) // 3:
        return None
    return " ".join(words)


_TEX_LEVELS = {"title": 1, "part": 1, "chapter": 1, "section": 2, "subsection": 3, "subsubsection": 4, "paragraph": 5}
_TEX_HEADING = re.compile(rf"^\s*\\({'|'.join(_TEX_LEVELS)})\*?(?:\[[^\]]*\])?\{{(.*?)\}}\s*"
                          r"(?:\\label\{[^}]*\}\s*)?$")
_TEX_TITLE_START = re.compile(rf"^\s*\\(?:{'|'.join(_TEX_LEVELS)})\b")  # its braces may close on a later line
_TEX_CODE = re.compile(r"^\s*\\(?:begin|end)\{(?:verbatim|Verbatim|lstlisting|minted|code)\}")  # a fence
_TEX_ITEM = re.compile(r"^\s*\\item(?:\[([^\]]*)\])?\s*(.*)$")  # "\item[Term] definition" or "\item text"
# \begin{itemize}, \maketitle, \usepackage[utf8]{inputenc}: a line of commands and nothing else
_TEX_COMMANDS_ONLY = re.compile(r"^\s*(?:\\[a-zA-Z@]+\*?(?:\[[^\]]*\])*(?:\{[^{}]*\})*\s*)+$")
_TEX_COMMENT = re.compile(r"(?<!\\)%.*$")
_TEX_DROPPED = re.compile(r"\\(?:cite[tp]?|ref|eqref|pageref|label|index|footnote)\*?(?:\[[^\]]*\])*\{[^{}]*\}")
_TEX_LINK = re.compile(r"\\href\{[^{}]*\}\{([^{}]*)\}")
_TEX_UNWRAP = re.compile(r"\\(?!href\b)[a-zA-Z]+\*?(?:\[[^\]]*\])?\{([^{}]*)\}")  # \emph{x}, \textbf{x}, \texttt{x}: x
_TEX_ESCAPES = {"\\%": "%", "\\&": "&", "\\_": "_", "\\#": "#", "\\$": "$", "``": "\u201c", "''": "\u201d", "~": " ",
                "\\\\": ""}


def latex_to_markdown(lines: list[str]) -> list[str]:
    """LaTeX's \\section{Title} (and \\chapter, \\title...) as "## Title", verbatim and listings as fences,
    "\\item[Term] definition" as "Term: definition" and "\\item text" as "- text"; the preamble, comments and lines
    of commands alone blanked; \\emph{x} and the like as their text, citations and labels left out."""
    start = next((i + 1 for i, line in enumerate(lines) if line.strip().startswith("\\begin{document}")), 0)
    out = []
    for i, line in enumerate(_tex_items_joined(lines)):
        line = _TEX_COMMENT.sub("", line).rstrip()
        if heading := _TEX_HEADING.match(line):
            out.append(f"{'#' * _TEX_LEVELS[heading.group(1)]} {_tex_text(heading.group(2))}")
        elif _TEX_CODE.match(line):
            out.append("```")
        elif i < start or _TEX_COMMANDS_ONLY.match(line):
            out.append("")
        elif item := _TEX_ITEM.match(line):
            term, text = _tex_text(item.group(1) or ""), _tex_text(item.group(2))
            out.append(f"{term}: {text}" if term else f"- {text}")
        else:
            out.append(_tex_text(line))
    return _inside_fences_as_written(lines, out)


def _tex_text(text: str) -> str:
    text = _TEX_DROPPED.sub("", text)
    for _ in range(4):  # nested: \textbf{\emph{x}}, \href{url}{the \textbf{care} guide}
        text = _TEX_LINK.sub(r"\1", _TEX_UNWRAP.sub(r"\1", text))
    for escaped, char in _TEX_ESCAPES.items():
        text = text.replace(escaped, char)
    return text


def _tex_items_joined(lines: list[str]) -> list[str]:
    """A title whose braces close on a later line, and "\\item[Term]" with its definition on the lines under it,
    joined onto their first line; the lines joined blanked."""
    out = list(lines)
    for i, line in enumerate(lines):
        if out[i] != line:
            continue
        end = i + 1
        if _TEX_TITLE_START.match(line):
            while end < len(lines) and sum(t.count("{") - t.count("}") for t in lines[i:end]) > 0 and end - i < 5:
                end += 1
        elif (item := _TEX_ITEM.match(line)) and item.group(1) is not None and not item.group(2):
            while end < len(lines) and lines[end].strip() and not lines[end].lstrip().startswith("\\"):
                end += 1
        _join_onto(out, lines, i, end, line.rstrip())
    return out


def table_to_markdown(lines: list[str], delimiter: str) -> list[str]:
    """A table's rows of two cells ("Monstera,A genus of plants") as glossary lines ("- Monstera: A genus of
    plants"), HTML in a cell (Anki's) as its text; other rows as list items ("- id, name, price"). A row that
    names its columns ("term,definition") is no entry: its second cell is one word."""
    out = []
    for line in lines:
        try:
            cells = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:  # a cell past csv's field size limit: no glossary line
            cells = []
        out.append(table_row_line(cells))
    return out


def table_row_line(cells: list[str]) -> str:
    """One row of a table (a CSV line, a spreadsheet's row) as a list item, so that no row reads as the one before
    it carried on (a header row above glossary lines, say): "- Monstera: A genus of plants" for two cells."""
    cells = [" ".join(html_to_markdown(c).split()) if "<" in c else " ".join(c.split()) for c in cells]
    while cells and not cells[-1]:  # "Monstera,A genus of plants," and a sheet's styled empty cells
        cells.pop()
    if len(cells) == 2 and all(cells):
        return f"- {cells[0]}: {cells[1]}"
    return f"- {', '.join(c for c in cells if c)}" if any(cells) else ""


def markdown_lines(text: str, source: str = "") -> list[str]:
    """The lines of a note as Markdown, one for each line of `text`: what questions and passages are read from.
    In code, a comment that would read as a title ("# Monstera") is indented as code instead."""
    if is_code(source):
        return [f"    {line}" if HEADING.match(line) or _UNDERLINE.match(line) else line for line in text_lines(text)]
    suffix = uncompressed_name(source).lower()
    markups = ORG_SUFFIXES + ASCIIDOC_SUFFIXES + LATEX_SUFFIXES + TABLE_SUFFIXES  # "[[...]]" means other things there
    lines = text_lines(blank_markup(text))
    lines = lines if suffix.endswith(markups) or ("[[" not in text and "^" not in text) else note_links_as_text(lines)
    if suffix.endswith(ORG_SUFFIXES):
        lines = org_to_markdown(lines)
    elif suffix.endswith(ASCIIDOC_SUFFIXES):
        lines = asciidoc_to_markdown(lines)
    elif suffix.endswith(LATEX_SUFFIXES):
        lines = latex_to_markdown(lines)
    elif suffix.endswith(TABLE_SUFFIXES):
        lines = table_to_markdown(lines, "\t" if suffix.endswith(".tsv") else ",")
    front = front_matter_lines(lines)  # its closing "---" underlines nothing
    return lines[:front] + setext_to_atx(lines[front:])
