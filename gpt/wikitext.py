"""Wiki pages as Markdown: MediaWiki's wikitext (a .wiki file, a wiki's XML export) and DokuWiki's pages.

A wiki is the plainest kind of "notes with structure": a page per thing, titled by its name, its first paragraph
saying what it is. Two kinds are common enough to read as they are kept:

- MediaWiki (Wikipedia, Fandom, most team wikis): pages in a .wiki file, or many pages in one XML export
  (Special:Export, a database dump: "plants.xml", "pages.xml.bz2"), each page becoming a document "# Title" over
  its text. "== Care ==" is a level-2 title, '''bold''' and ''italic'' Markdown's, "[[Monstera|the plant]]" its
  text; templates (infoboxes), references, files and categories are dropped; "; Term" over ": definition" is a
  definition list, "* item" a list item.
- DokuWiki (data/pages/**/*.txt): "====== Title ======" is level 1 (fewer "=" are deeper), //italic//,
  ''monospace'', "^ head ^" and "| cell | cell |" table rows, <code> blocks.

Each page is rewritten line for line, so a passage's line is still the page's line. This module knows nothing of
files beyond reading an export's XML.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable, Iterator
from typing import BinaryIO

from gpt.files import xml_elements
from gpt.markup import blank_markup, table_row_line

EXPORT_MARKER = b"<mediawiki"  # the root element of MediaWiki's XML export, within its first bytes
_REDIRECT = re.compile(r"^\s*#REDIRECT\b", re.IGNORECASE)
# "<ref name=x />", "<ref>...</ref>": a source cited, not the text (bounded: an unclosed one costs no quadratic scan)
_REF = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.{0,5000}?</ref\s*>", re.IGNORECASE | re.DOTALL)
_CODE_OPEN = re.compile(r"^\s*<(pre|syntaxhighlight|source|gallery)\b[^>]*>(.*)$", re.IGNORECASE)
_TERM_COLON = re.compile(r"\s*:(?:\s+|$)")  # "; Term: definition", not "; 10:30"
_ATTRIBUTE = r"""[\w-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s|="']+)"""  # class="x", width=20: one way to split a line
_CELL_ATTRIBUTES = re.compile(rf"^\s*{_ATTRIBUTE}(?:\s+{_ATTRIBUTE})*\s*\|(?!\|)")
_INLINE_CODE = re.compile(r"<(code|tt|pre|syntaxhighlight|source)\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE)
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# HTML that wikitext allows, its text kept: a "<" in prose ("x<y and y>z") is no tag
_TAG = re.compile(r"</?(?:span|div|small|big|sup|sub|center|font|u|s|del|ins|blockquote|poem|b|i|em|strong|abbr|"
                  r"cite|q|p|hr|references|onlyinclude|includeonly|noinclude|nowiki|math|chem|section|ul|ol|li|dl|dt|"
                  r"dd|table|tr|td|th|caption|wbr|var|kbd|samp|mark|ruby|rb|rt|rp|time|bdi|bdo)\b[^<>]*>",
                  re.IGNORECASE)
_MAGIC_WORD = re.compile(r"__[A-Z]+__")  # __TOC__, __NOTOC__
_INNER_LINK = re.compile(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]")  # a link with no link inside it
_NOT_SHOWN = re.compile(r"^\s*:?\s*(?:file|image|media|category|[a-z]{2,3}(?:-[a-z]+)?)\s*:", re.IGNORECASE)
_EXTERNAL_LINK = re.compile(r"\[(?:https?|ftp|mailto):[^\s\]]*(?:\s+([^\]]*))?\]")
_BOLD_ITALIC = ((re.compile(r"'{5}"), "***"), (re.compile(r"'{3}"), "**"), (re.compile(r"'{2}"), "*"))
_LIST = re.compile(r"^([*#:;]+)[ \t]*(.*)$")
_TABLE_CELLS = re.compile(r"\|\||!!")
_DOKU_LIST = re.compile(r"^( {2,}|\t+)([*-])[ \t]*(.*)$")
_DOKU_CODE = re.compile(r"^\s*<(code|file)\b[^>]*>(.*)$", re.IGNORECASE)
# Spans of at most 1,000 characters: a long line of unclosed marks costs no quadratic scan
_DOKU_ITALIC = re.compile(r"//(?=\S)(.{1,1000}?)(?<=\S)//")
_DOKU_MONO = re.compile(r"''(?=\S)(.{1,1000}?)(?<=\S)''")
# "{{:plants:leaf.jpg?200|A leaf}}": a picture or a file, by its extension (a "{{ name }}" template stays)
_DOKU_MEDIA = re.compile(r"\{\{ ?[^{}|\s]+\.(?:png|jpe?g|gif|svg|webp|bmp|pdf|mp3|mp4|ogg|ogv|webm|wav|zip)"
                         r"(?:\?[^{}|\s]*)?(?:\|[^{}]*)? ?\}\}", re.IGNORECASE)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\[\]|]+", re.IGNORECASE)
# "((a footnote))": shown at the page's foot, not in the text; it stops at the next "((" (no quadratic scan)
_DOKU_FOOTNOTE = re.compile(r"\(\(((?:(?!\(\(|\)\)).){0,1000})\)\)")
_DOKU_UNDERLINE = re.compile(r"__(?=\S)(.{1,1000}?)(?<=\S)__")
_DOKU_NOWIKI = re.compile(r"%%(.{0,1000}?)%%|<nowiki>(.{0,1000}?)</nowiki>")


# ----------------------------------------------------------------------------- MediaWiki

def equals_title(line: str, fewest: int) -> tuple[int, str] | None:
    """(number of "=", title) of a title line "== Care ==" with `fewest` to 6 "=" on each side (the fewer of the
    two sides counts, as MediaWiki reads "== Care ===")."""
    line = line.strip()
    left, right = len(line) - len(line.lstrip("=")), len(line) - len(line.rstrip("="))
    title = line[left:len(line) - right].strip()
    if not (title and fewest <= left <= 6 and fewest <= right <= 6):
        return None
    return min(left, right), title


def mediawiki_to_markdown(text: str) -> str:
    """A MediaWiki page's text as Markdown, line for line; "" for a redirect (a page with nothing of its own)."""
    if _REDIRECT.match(text):
        return ""
    lines = _definition_lists_joined(_without_templates(_REF.sub(_newlines_of, blank_markup(text))).split("\n"))
    return "\n".join(_outside_blocks(lines, _CODE_OPEN, _mediawiki_line))


def _mediawiki_line(lines: list[str], i: int) -> str:
    line, stripped = lines[i], lines[i].strip()
    if heading := equals_title(stripped, 1):
        return f"{'#' * heading[0]} {_inline(heading[1])}"
    if stripped.startswith(("{|", "|}", "|-")) or re.fullmatch(r"-{4,}", stripped):
        return ""  # a table's frame and a rule: no text
    if stripped.startswith(("|", "!")):  # a table's cells, "| a || b" or "! head", one row per line
        return table_row_line([_inline(_CELL_ATTRIBUTES.sub("", cell))
                               for cell in _TABLE_CELLS.split(stripped.lstrip("|!+"))])
    if not (listed := _LIST.match(line)):
        return _inline(line)
    marks, body = listed.groups()
    if marks == ";":  # "; Term: definition" (_definition_lists_joined wrote the two-line form so too): a glossary item
        term, *definition = _TERM_COLON.split(body, maxsplit=1)
        return f"- {_inline(term)}: {_inline(definition[0])}" if definition and definition[0].strip() else _inline(term)
    if marks[-1] in ":;":  # text indented (talk pages), a deeper list's term
        return _inline(body)
    return f"{'  ' * (len(marks) - 1)}{'-' if marks[-1] == '*' else '1.'} {_inline(body)}"


def _definition_lists_joined(lines: list[str]) -> list[str]:
    """Each definition list ("; Term" over ": definition" lines) as "; Term: definition" lines, one after another,
    the lines they take up no more left blank after them: a glossary's lines, in one paragraph."""
    def one_level(line: str) -> bool:  # "; Term" or ": definition", not a deeper list's ";;" or ";:"
        return line[:1] in (";", ":") and line[1:2] not in (";", ":")

    out, i = [], 0
    while i < len(lines):
        if not (lines[i].startswith(";") and one_level(lines[i])):
            out.append(lines[i])
            i += 1
            continue
        end, joined = i, []
        while end < len(lines) and one_level(lines[end]):
            if lines[end].startswith(";"):
                joined.append(lines[end].rstrip())
            else:  # a definition, joined onto its term
                joined[-1] += (": " if ":" not in joined[-1][1:] else " ") + lines[end][1:].strip()
            end += 1
        out += joined + [""] * (end - i - len(joined))
        i = end
    return out


def _outside_blocks(lines: list[str], opener: re.Pattern, rewrite: Callable[[list[str], int], str]) -> list[str]:
    """rewrite(lines, i) for each line but those of blocks that `opener` opens up to their closing tag (<pre>,
    <code>): those as written, between fences where both tags stand on lines of their own; a gallery's (files and
    captions) blanked. A block never closed is text."""
    out, i, closing_lines = [], 0, {}
    while i < len(lines):
        end, opened = None, opener.match(lines[i])
        if opened:
            close = re.compile(rf"</{opened.group(1)}\s*>", re.IGNORECASE)
            if close.search(opened.group(2)):
                end = i
            else:  # the next line with its closing tag, found by bisection: a page of unclosed tags stays linear
                if close.pattern not in closing_lines:
                    closing_lines[close.pattern] = [j for j, line in enumerate(lines) if close.search(line)]
                found = closing_lines[close.pattern]
                k = bisect.bisect_right(found, i)
                end = found[k] if k < len(found) else None
        if end is None:
            out.append(rewrite(lines, i))
            i += 1
            continue
        body = [opened.group(2), *lines[i + 1:end + 1]] if end > i else [opened.group(2)]
        body[-1] = close.split(body[-1], maxsplit=1)[0]
        if opened.group(1).lower() == "gallery":
            body = [""] * len(body)
        elif len(body) > 1 and not body[0].strip() and not body[-1].strip():
            body[0] = body[-1] = "```"
        out.extend(body)
        i = end + 1
    return out


def _inline(text: str) -> str:
    """A line's links as their text, bold and italic as Markdown's, tags and magic words gone, entities decoded."""
    text = _INLINE_CODE.sub(lambda m: f"`{m.group(2)}`", _BREAK.sub(" ", text))
    while (linked := _INNER_LINK.sub(_link_text, text)) != text:  # a file's caption may hold links
        text = linked
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    for quotes, stars in _BOLD_ITALIC:
        text = quotes.sub(stars, text)
    return html.unescape(_MAGIC_WORD.sub("", _TAG.sub("", text))).replace("\xa0", " ").rstrip()


def _link_text(link: re.Match) -> str:
    """"[[Monstera|the plant]]" as "the plant", "[[Monstera#Care]]" as "Monstera"; files, categories and links to
    other languages as nothing."""
    target, shown = link.group(1), link.group(2)
    if _NOT_SHOWN.match(target):
        return ""
    return shown if shown else target.lstrip(":").split("#")[0] or target


def _without_templates(text: str) -> str:
    """The text without its templates ("{{...}}", nested, over many lines: an infobox), their line breaks kept so
    that lines keep their numbers."""
    out, depth, i = [], 0, 0
    while (start := text.find("{{", i)) != -1 or depth:
        if depth == 0:
            out.append(text[i:start])
            depth, i = 1, start + 2
            continue
        opens, closes = text.find("{{", i), text.find("}}", i)
        if closes == -1:  # never closed: the rest is kept as text
            out.append(text[i:])
            return "".join(out)
        if opens != -1 and opens < closes:
            out.append("\n" * text.count("\n", i, opens + 2))
            depth, i = depth + 1, opens + 2
        else:
            out.append("\n" * text.count("\n", i, closes + 2))
            depth, i = depth - 1, closes + 2
    out.append(text[i:])
    return "".join(out)


def _newlines_of(match: re.Match) -> str:
    return "\n" * match.group().count("\n")


def is_mediawiki_export(head: bytes) -> bool:
    """Whether a file's first bytes open MediaWiki's XML export (its root element, after any XML declaration)."""
    return EXPORT_MARKER in head[:4096].lower()


def mediawiki_pages(stream: BinaryIO) -> Iterator[tuple[str, str]]:
    """(title, Markdown) of each article in a MediaWiki XML export: "# Title" over the page's latest text. Pages
    of other namespaces (talk, templates, categories) and redirects are skipped. Streams: a dump larger than memory
    is read page by page. A damaged file raises xml.etree.ElementTree.ParseError where the damage is met."""
    for page in xml_elements(stream, "page"):
        fields = {_local(child.tag): child for child in page}
        revisions = [child for child in page if _local(child.tag) == "revision"]
        text = next((c.text for c in revisions[-1] if _local(c.tag) == "text"), None) if revisions else None
        title = (fields["title"].text or "").strip() if "title" in fields else ""
        namespace = (fields["ns"].text or "0").strip() if "ns" in fields else "0"
        if title and text and namespace == "0" and "redirect" not in fields:
            if body := mediawiki_to_markdown(text).strip("\n"):
                yield title, f"# {title}\n\n{body}\n"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # "{http://www.mediawiki.org/xml/export-0.11/}page" -> "page"


# ----------------------------------------------------------------------------- DokuWiki

def wiki_dialect(text: str) -> str | None:
    """How to read a plain-text file with titles such as "== Title ==": "dokuwiki" where one has five or six "="
    (DokuWiki's top levels, which other text seldom reaches), else "titles" (those lines as titles, the rest as it
    is: a README's "== Notes ==" says nothing of how its "*" and "|" lines are meant); None for a file with none."""
    if "==" not in text:  # most text files: no title line to look for, line by line
        return None
    levels = {title[0] for line in text.split("\n") if (title := equals_title(line, 2))}
    return None if not levels else "dokuwiki" if max(levels) >= 5 else "titles"


def wiki_to_markdown(text: str, dialect: str) -> str:
    """A page as Markdown, line for line, as `dialect` ("mediawiki", "dokuwiki" or "titles") reads it."""
    if dialect == "titles":
        return "\n".join(f"{'#' * title[0]} {title[1]}" if (title := equals_title(line, 2)) else line
                         for line in text.split("\n"))
    return dokuwiki_to_markdown(text) if dialect == "dokuwiki" else mediawiki_to_markdown(text)


def dokuwiki_to_markdown(text: str) -> str:
    """A DokuWiki page as Markdown, line for line: "====== Title ======" as "# Title" ("==" as "#####"), its
    <code> and <file> blocks as fences, lists, tables' rows, links, //italic// and ''monospace'' as Markdown's."""
    return "\n".join(_outside_blocks(text.split("\n"), _DOKU_CODE, lambda lines, i: _dokuwiki_line(lines[i])))


def _dokuwiki_line(line: str) -> str:
    if heading := equals_title(line, 2):
        return f"{'#' * (7 - heading[0])} {_doku_inline(heading[1])}"
    stripped = line.strip()
    if stripped.startswith(("^", "|")) and stripped.endswith(("^", "|")) and len(stripped) > 1:
        return table_row_line([_doku_inline(cell) for cell in re.split(r"[|^]", stripped[1:-1])])
    if re.fullmatch(r"-{4,}|~~\w+~~", stripped):
        return ""
    if listed := _DOKU_LIST.match(line):
        depth = max(len(listed.group(1).expandtabs(2)) // 2 - 1, 0)
        return f"{'  ' * depth}{'-' if listed.group(2) == '*' else '1.'} {_doku_inline(listed.group(3))}"
    return _doku_inline(line)


def _doku_inline(text: str) -> str:
    kept: list[str] = []  # %%unformatted%% text and web addresses, kept out of the rewriting below
    text = _DOKU_NOWIKI.sub(lambda m: kept.append(m.group(1) or m.group(2) or "") or f"\0{len(kept) - 1}\0", text)
    text = _INNER_LINK.sub(_doku_link_text, _DOKU_MEDIA.sub("", _DOKU_FOOTNOTE.sub("", text.replace("\\\\ ", " "))))
    text = _URL.sub(lambda m: kept.append(m.group()) or f"\0{len(kept) - 1}\0", text)
    text = _DOKU_UNDERLINE.sub(r"\1", _DOKU_MONO.sub(r"`\1`", _DOKU_ITALIC.sub(r"*\1*", text)))
    return re.sub(r"\0(\d+)\0", lambda m: kept[int(m.group(1))], text).rstrip()


def _doku_link_text(link: re.Match) -> str:
    """"[[plants:monstera|Monstera]]" as "Monstera", "[[plants:monstera]]" as "monstera", "[[wp>Wiki]]" (another
    wiki's page) as "Wiki", a web address as itself; a link shown as a picture ("[[x|{{logo.png}}]]") as nothing."""
    target, shown = link.group(1).strip(), link.group(2)
    if shown is not None:
        return shown.strip()
    if "://" in target:
        return target
    return target.split(">")[-1].split(":")[-1].split("#")[0] or target
