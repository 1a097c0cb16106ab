"""Books, word-processor files, spreadsheets and slides read as Markdown: EPUB (.epub), Word (.docx) and
OpenDocument text (.odt), Excel (.xlsx) and OpenDocument spreadsheets (.ods), PowerPoint (.pptx) and
OpenDocument presentations (.odp).

Each is a zip archive of XML. What questions and passages are made of is the same as in a note: the titles and
the paragraphs under them. So a book's chapters (in its reading order) and a document's headings, paragraphs,
list items and table rows are written as Markdown, as gpt/markup.py writes a web page, and gpt/documents.py reads
the result as the file's text. Line numbers are those of the Markdown.

A spreadsheet's rows are read as a CSV file's are (markup.table_row_line): a row of two cells is a glossary line
("Monstera: A genus of plants"). A slide's title is a title, its text the paragraphs and list items under it.

A Word heading is a paragraph whose style is a heading. Style ids are the user's language ("berschrift1",
"Titre1"), so the level comes from word/styles.xml: the style's English name ("heading 1") or its outline level.

These files come from anywhere, so nothing here trusts them: a part larger than MAX_PART_BYTES once unpacked,
or XML that declares entities (the "billion laughs"), is refused; the caller skips the file with a warning.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from urllib.parse import unquote
from xml.etree import ElementTree

from gpt.markup import table_row_line
from gpt.rich_text import html_to_markdown

ZIPPED_SUFFIXES = (".epub", ".docx", ".odt", ".xlsx", ".ods", ".pptx", ".odp")
MAX_PART_BYTES = 64 << 20  # one chapter, or a document's body: a book's whole text is a few MB
MAX_REPEATED_CELLS = 16  # an .ods row's empty cell may "repeat" to the sheet's last column (16,384)
_DATE_FORMATS = (*range(14, 23), 45, 46, 47)  # Excel's built-in number formats that show a date or a time
_EPOCH, _EPOCH_1904 = datetime(1899, 12, 30), datetime(1904, 1, 1)  # day 0 (1900's day 60, a leap day, is Excel's bug)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
_PRESENTATION = "{urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"
_OPF = "{http://www.idpf.org/2007/opf}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_SHEET = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_SLIDE = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_DRAWING = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_RELATION = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_RELATION = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_HEADING_NAME = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
_HEADING_ID = re.compile(r"^heading(\d)$", re.IGNORECASE)  # a style id written in English, when styles.xml is absent


class UnreadableDocument(ValueError):
    """A zipped document that cannot be read; gpt/documents.py skips it with this message."""


def zipped_to_markdown(path: str) -> str:
    """The text of an EPUB, Word or OpenDocument file as Markdown (see the module's docstring)."""
    kind = path.lower().rsplit(".", 1)[-1]
    try:
        with zipfile.ZipFile(path) as archive:
            return {"epub": epub_to_markdown, "docx": docx_to_markdown, "odt": odt_to_markdown,
                    "xlsx": xlsx_to_markdown, "ods": ods_to_markdown, "pptx": pptx_to_markdown,
                    "odp": odp_to_markdown}[kind](archive)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, EOFError, zlib.error, NotImplementedError,
            RuntimeError) as exc:  # damaged, a compression zipfile lacks, a password (RuntimeError)
        raise UnreadableDocument(f"not a readable .{kind} file ({exc})") from None


def _part(archive: zipfile.ZipFile, name: str) -> bytes:
    if archive.getinfo(name).file_size > MAX_PART_BYTES:
        raise UnreadableDocument(f"{name} is over {MAX_PART_BYTES >> 20} MB once unpacked")
    with archive.open(name) as fh:
        data = fh.read(MAX_PART_BYTES + 1)
    if len(data) > MAX_PART_BYTES:
        raise UnreadableDocument(f"{name} is over {MAX_PART_BYTES >> 20} MB once unpacked")
    return data


def _xml(archive: zipfile.ZipFile, name: str) -> ElementTree.Element:
    data = _part(archive, name)
    if b"<!ENTITY" in data:  # office files and EPUB packages declare none: entities here can only be an attack
        raise UnreadableDocument(f"{name} declares XML entities")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise UnreadableDocument(f"{name} is not well-formed XML ({exc})") from None


# ----------------------------------------------------------------------------- EPUB: a book's chapters in order

def epub_to_markdown(archive: zipfile.ZipFile) -> str:
    """The chapters of the book's spine, in reading order, each as html_to_markdown writes it; the table of
    contents (the navigation document) and the parts the book marks as not in the reading order are left out."""
    rootfile = _xml(archive, "META-INF/container.xml").find(f".//{_CONTAINER}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise UnreadableDocument("META-INF/container.xml names no package document")
    package = rootfile.get("full-path")
    opf = _xml(archive, package)
    items = {item.get("id"): item for item in opf.iter(f"{_OPF}item")}
    names, chapters = set(archive.namelist()), []
    for ref in opf.iter(f"{_OPF}itemref"):
        item = items.get(ref.get("idref"))
        if ref.get("linear") == "no" or item is None or "nav" in (item.get("properties") or "").split():
            continue
        href = unquote((item.get("href") or "").split("#")[0])
        name = posixpath.normpath(posixpath.join(posixpath.dirname(package), href))
        if "html" in (item.get("media-type") or "") and name in names:
            chapters.append(html_to_markdown(_part(archive, name).decode("utf-8", errors="replace")).strip())
    return "\n\n".join(c for c in chapters if c) + "\n"


# ----------------------------------------------------------------------------- Word (.docx)

def docx_to_markdown(archive: zipfile.ZipFile) -> str:
    """The body of a Word document: headings by their style's level, list paragraphs as "- ", table rows as
    "| a | b |"; a table of contents, text boxes, comments, footnotes and tracked deletions left out."""
    styles = _docx_styles(archive)
    body = _xml(archive, "word/document.xml").find(f"{_W}body")
    lines: list[str] = []
    for block in _docx_blocks(body):
        if block.tag == f"{_W}p":
            line = _docx_paragraph(block, styles)
            lines += [line] if line.startswith("- ") else [line, ""]  # a list's items stay together
        else:
            lines += [_table_row(_docx_text(cell) for cell in row.iter(f"{_W}tc"))
                      for row in block.iter(f"{_W}tr")] + [""]
    return _joined(lines)


def _docx_blocks(body: ElementTree.Element | None) -> Iterator[ElementTree.Element]:
    """The body's paragraphs and tables in order, those inside content controls (w:sdt) too."""
    for block in body if body is not None else []:
        if block.tag in (f"{_W}p", f"{_W}tbl"):
            yield block
        elif block.tag == f"{_W}sdt":
            yield from _docx_blocks(block.find(f"{_W}sdtContent"))


_TOC, _LIST = -1, -2  # not heading levels: a table-of-contents style (left out), a list style (an item)


def _docx_styles(archive: zipfile.ZipFile) -> dict[str, int]:
    """{paragraph style id: what it makes a paragraph} from word/styles.xml: "heading N" is level N, "Title" 1,
    a style with an outline level its level + 1; "toc N" _TOC; a numbered style or one named "List ..." _LIST."""
    if "word/styles.xml" not in archive.namelist():
        return {}
    kinds = {}
    for style in _xml(archive, "word/styles.xml").iter(f"{_W}style"):
        name_tag, outline = style.find(f"{_W}name"), style.find(f"{_W}pPr/{_W}outlineLvl")
        name = (name_tag.get(f"{_W}val", "") if name_tag is not None else "").lower()
        outline_level = outline.get(f"{_W}val", "") if outline is not None else ""
        if heading := _HEADING_NAME.match(name):
            kinds[style.get(f"{_W}styleId")] = int(heading.group(1))
        elif name == "title":
            kinds[style.get(f"{_W}styleId")] = 1
        elif name.startswith("toc "):
            kinds[style.get(f"{_W}styleId")] = _TOC
        elif outline_level.isdigit() and int(outline_level) < 9:
            kinds[style.get(f"{_W}styleId")] = int(outline_level) + 1
        elif name.startswith("list ") or style.find(f"{_W}pPr/{_W}numPr") is not None:
            kinds[style.get(f"{_W}styleId")] = _LIST
    return kinds


def _docx_paragraph(paragraph: ElementTree.Element, styles: dict[str, int]) -> str:
    text = _docx_text(paragraph)
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    style_id = style.get(f"{_W}val", "") if style is not None else ""
    kind = styles.get(style_id) or (int(m.group(1)) if (m := _HEADING_ID.match(style_id)) else 0)
    numbering = paragraph.find(f"{_W}pPr/{_W}numPr/{_W}numId")
    if not text or kind == _TOC:
        return ""
    if kind > 0:
        return f"{'#' * min(kind, 6)} {text}"
    numbered = numbering.get(f"{_W}val") != "0" if numbering is not None else kind == _LIST
    return f"- {text}" if numbered else text


def _docx_text(element: ElementTree.Element) -> str:
    """The visible text of a paragraph or cell: runs' text, tabs and breaks; deleted text and field codes are
    other tags (w:delText, w:instrText) and are not read; neither are text boxes inside a drawing."""
    pieces = []
    for node in _without(element, {f"{_W}txbxContent", f"{_W}del"}):
        if node.tag == f"{_W}t":
            pieces.append(node.text or "")
        elif node.tag in (f"{_W}tab", f"{_W}br", f"{_W}cr"):
            pieces.append(" ")
        elif node.tag == f"{_W}p" and pieces:  # a cell's second paragraph
            pieces.append(" ")
    return " ".join("".join(pieces).split())


# ----------------------------------------------------------------------------- OpenDocument (.odt)

def odt_to_markdown(archive: zipfile.ZipFile) -> str:
    """The text of an OpenDocument file: headings by their outline level, list items as "- ", table rows as
    "| a | b |"."""
    text = _xml(archive, "content.xml").find(f"{_OFFICE}body/{_OFFICE}text")
    lines: list[str] = []
    for block in text if text is not None else []:
        lines += _odt_block(block, in_list=False)
    return _joined(lines)


def _odt_block(block: ElementTree.Element, in_list: bool) -> list[str]:
    """The lines of one body element; a paragraph in a list is an item."""
    if block.tag == f"{_TEXT}h":
        level = block.get(f"{_TEXT}outline-level", "1")
        return [f"{'#' * min(max(int(level) if level.isdigit() else 1, 1), 6)} {_odt_text(block)}", ""]
    if block.tag == f"{_TEXT}p":
        line = _odt_text(block)
        return [f"- {line}"] if in_list and line else [line, ""]
    if block.tag in (f"{_TEXT}list-item", f"{_TEXT}list-header", f"{_TEXT}section"):
        return [line for child in block for line in _odt_block(child, in_list)]
    if block.tag == f"{_TEXT}list":
        return [line for child in block for line in _odt_block(child, True)] + ([] if in_list else [""])
    if block.tag == f"{_TABLE}table":
        return [_table_row(_odt_text(cell) for cell in row.iter(f"{_TABLE}table-cell"))
                for row in block.iter(f"{_TABLE}table-row")] + [""]
    return []


def _odt_text(element: ElementTree.Element) -> str:
    """Spans, links and spaces (<text:s text:c="3"/>) in order; notes (footnotes) left out."""
    pieces = [element.text or ""]
    for child in element:
        if child.tag == f"{_TEXT}s":
            pieces.append(" " * int(child.get(f"{_TEXT}c", "1") or 1))
        elif child.tag in (f"{_TEXT}tab", f"{_TEXT}line-break"):
            pieces.append(" ")
        elif child.tag not in (f"{_TEXT}note", f"{_OFFICE}annotation"):
            pieces.append(_odt_text(child))
        pieces.append(child.tail or "")
    return " ".join("".join(pieces).split())


# ----------------------------------------------------------------------------- OpenDocument sheets and slides

def ods_to_markdown(archive: zipfile.ZipFile) -> str:
    """The rows of each sheet, as table_row_line writes them; a row repeated is written once, and a cell
    repeated (an empty one runs to the sheet's last column) at most MAX_REPEATED_CELLS times."""
    body = _xml(archive, "content.xml").find(f"{_OFFICE}body/{_OFFICE}spreadsheet")
    lines: list[str] = []
    for table in body.iter(f"{_TABLE}table") if body is not None else []:
        lines += [table_row_line(_ods_row(row)) for row in table.iter(f"{_TABLE}table-row")] + [""]
    return _joined(lines)


def _ods_row(row: ElementTree.Element) -> list[str]:
    """A row's cells in order, each repeated as the sheet says (number-columns-repeated), up to MAX_REPEATED_CELLS."""
    cells: list[str] = []
    for cell in row:
        if cell.tag in (f"{_TABLE}table-cell", f"{_TABLE}covered-table-cell"):
            repeat = cell.get(f"{_TABLE}number-columns-repeated", "1")
            cells += [_odt_text(cell)] * min(int(repeat) if repeat.isdigit() else 1, MAX_REPEATED_CELLS)
    return cells


def odp_to_markdown(archive: zipfile.ZipFile) -> str:
    """Each slide as pptx_to_markdown writes one: its title frame as a title, its outline's first-level points
    as paragraphs and deeper ones as list items, its tables' rows; speaker notes left out."""
    body = _xml(archive, "content.xml").find(f"{_OFFICE}body/{_OFFICE}presentation")
    lines: list[str] = []
    for page in body.iter(f"{_DRAW}page") if body is not None else []:
        title, points = "", []
        for frame in _without(page, {f"{_PRESENTATION}notes"}):
            if frame.tag == f"{_TABLE}table":  # a table's rows as a sheet's are
                points += ["", *(table_row_line(_ods_row(row)) for row in frame.iter(f"{_TABLE}table-row")), ""]
            box = frame.find(f"{_DRAW}text-box") if frame.tag == f"{_DRAW}frame" else None
            if box is None:
                continue
            if frame.get(f"{_PRESENTATION}class") == "title" and not title:
                title = " ".join(_odt_text(p) for p in box.iter(f"{_TEXT}p"))
            else:
                points += [line for block in box for line in _odp_block(block)]
        lines += ([f"# {title}", ""] if title else []) + points
    return _joined(lines)


def _odp_block(block: ElementTree.Element) -> list[str]:
    """A slide's paragraph, or its list: a first-level item's text a paragraph, the lists inside it items."""
    if block.tag != f"{_TEXT}list":
        return _odt_block(block, in_list=False)
    lines = []
    for item in block:
        for child in item:
            if child.tag == f"{_TEXT}list":
                lines += _odt_block(child, in_list=True)
            elif text := _odt_text(child):
                lines += [text, ""]
    return lines


# ----------------------------------------------------------------------------- Excel (.xlsx) and PowerPoint (.pptx)

def xlsx_to_markdown(archive: zipfile.ZipFile) -> str:
    """The rows of each visible sheet, in the workbook's order, as table_row_line writes them."""
    strings = [_drawn_text(item, _SHEET) for item in _xml(archive, "xl/sharedStrings.xml").iter(f"{_SHEET}si")] \
        if "xl/sharedStrings.xml" in archive.namelist() else []
    workbook, targets = _xml(archive, "xl/workbook.xml"), _relations(archive, "xl/workbook.xml")
    dates, properties = _date_styles(archive), workbook.find(f"{_SHEET}workbookPr")
    epoch = _EPOCH_1904 if properties is not None and properties.get("date1904") in ("1", "true") else _EPOCH
    lines: list[str] = []
    for sheet in workbook.iter(f"{_SHEET}sheet"):
        if sheet.get("state") in ("hidden", "veryHidden") or (name := targets.get(sheet.get(f"{_RELATION}id"))) is None:
            continue
        rows = _xml(archive, name).iter(f"{_SHEET}row")
        lines += [*(table_row_line(_sheet_row(row, strings, dates, epoch)) for row in rows), ""]
    return _joined(lines)


def _sheet_row(row: ElementTree.Element, strings: list[str], dates: set[int], epoch: datetime) -> list[str]:
    """A row's cells by their column ("B7" is the second), text as shown: a shared string, inline text, a value,
    a date (a number in a cell styled as one, days since the workbook's epoch)."""
    cells: list[str] = []
    for cell in row.iter(f"{_SHEET}c"):
        letters = re.match(r"[A-Z]*", cell.get("r", "")).group()
        column = sum(26 ** i * (ord(c) - 64) for i, c in enumerate(reversed(letters))) - 1 if letters else len(cells)
        value = cell.findtext(f"{_SHEET}v") or ""
        if cell.get("t") == "s":
            value = strings[int(value)] if value.isdigit() and int(value) < len(strings) else ""
        elif cell.get("t") == "inlineStr":
            value = _drawn_text(cell.find(f"{_SHEET}is"), _SHEET)
        elif cell.get("t") == "b":
            value = {"1": "TRUE", "0": "FALSE"}.get(value, value)
        elif cell.get("t", "n") == "n" and cell.get("s", "").isdigit() and int(cell.get("s")) in dates:
            value = _date_text(value, epoch)
        if 0 <= column < 1 << 14:  # Excel's last column is XFD
            cells += [""] * (column + 1 - len(cells))
            cells[column] = value
    return cells


def _date_styles(archive: zipfile.ZipFile) -> set[int]:
    """The cell styles (indices into styles.xml's cellXfs) whose number format shows a date or a time: Excel's
    built-in ones, or a format code with d, m, y, h or s outside its quoted text, [colours] and escapes."""
    if "xl/styles.xml" not in archive.namelist():
        return set()
    styles = _xml(archive, "xl/styles.xml")
    dated = set(_DATE_FORMATS) | {int(f.get("numFmtId")) for f in styles.iter(f"{_SHEET}numFmt")
                                  if f.get("numFmtId", "").isdigit() and re.search(
                                      "[dmyhs]", re.sub(r'"[^"]*"|\[[^]]*]|\\.', "", f.get("formatCode", "")), re.I)}
    return {i for i, xf in enumerate(styles.iterfind(f"{_SHEET}cellXfs/{_SHEET}xf"))
            if xf.get("numFmtId", "0").isdigit() and int(xf.get("numFmtId", "0")) in dated}


def _date_text(serial: str, epoch: datetime) -> str:
    """Days since the epoch -> "2024-05-01", with its time if it has one ("2024-05-01 14:30"), or "14:30" alone."""
    try:  # whole seconds: a time typed as 14:30 is stored as 0.6041666...
        when = epoch + timedelta(seconds=round(float(serial) * 86400))
    except (ValueError, OverflowError):
        return serial
    clock = when.strftime("%H:%M:%S" if when.second else "%H:%M") if when.time() != time() else ""
    return (clock or "00:00") if float(serial) < 1 else f"{when:%Y-%m-%d} {clock}".strip()


def pptx_to_markdown(archive: zipfile.ZipFile) -> str:
    """Each slide in the deck's order: its title as a title, its other text as paragraphs, indented or bulleted
    ones as list items (_sub_item), a table's rows as a sheet's are; speaker notes left out."""
    targets = _relations(archive, "ppt/presentation.xml")
    lines: list[str] = []
    for slide in _xml(archive, "ppt/presentation.xml").iter(f"{_SLIDE}sldId"):
        if (name := targets.get(slide.get(f"{_RELATION}id"))) is not None:
            lines += _slide_lines(_xml(archive, name))
    return _joined(lines)


def _slide_lines(slide: ElementTree.Element) -> list[str]:
    title, body = "", []
    for shape in slide.iter():
        if shape.tag == f"{_DRAWING}tbl":
            body += [table_row_line([" ".join(_drawn_text(p, _DRAWING) for p in cell.iter(f"{_DRAWING}p")).strip()
                                     for cell in row.iter(f"{_DRAWING}tc")]) for row in shape.iter(f"{_DRAWING}tr")]
            body.append("")
        if shape.tag != f"{_SLIDE}sp":
            continue
        placeholder = shape.find(f"{_SLIDE}nvSpPr/{_SLIDE}nvPr/{_SLIDE}ph")
        paragraphs = [(p.find(f"{_DRAWING}pPr"), _drawn_text(p, _DRAWING)) for p in shape.iter(f"{_DRAWING}p")]
        if placeholder is not None and placeholder.get("type") in ("title", "ctrTitle") and not title:
            title = " ".join(text for _, text in paragraphs if text)
            continue
        for props, text in paragraphs:
            if text:
                body += [f"- {text}"] if _sub_item(props) else [text, ""]
        body.append("")
    return ([f"# {title}", ""] if title else []) + body


def _sub_item(props: ElementTree.Element | None) -> bool:
    """Whether a slide's paragraph is a list item: indented (lvl) or with a bullet or number of its own. A body's
    first-level points stay paragraphs: "Monstera is a genus of plants." is what the slide's title means."""
    if props is None or props.find(f"{_DRAWING}buNone") is not None:
        return False
    return props.get("lvl", "0") != "0" or any(
        props.find(f"{_DRAWING}{tag}") is not None for tag in ("buChar", "buAutoNum", "buBlip"))


def _relations(archive: zipfile.ZipFile, part: str) -> dict[str, str]:
    """{relationship id: the archive name it points to} from a part's .rels file."""
    folder, base = posixpath.split(part)
    rels = f"{folder}/_rels/{base}.rels"
    if rels not in archive.namelist():
        return {}
    return {rel.get("Id"): posixpath.normpath(target.lstrip("/") if target.startswith("/")
                                              else posixpath.join(folder, target))
            for rel in _xml(archive, rels).iter(f"{_PACKAGE_RELATION}Relationship")
            if (target := unquote(rel.get("Target") or ""))}


def _drawn_text(element: ElementTree.Element | None, namespace: str) -> str:
    """The text of a shared string, a cell's inline string or a slide's paragraph: its <t> runs, without the
    phonetic guides (<rPh>) Japanese spreadsheets add; line breaks as spaces."""
    if element is None:
        return ""
    skipped = {f"{namespace}rPh"}
    pieces = [node.text or "" if node.tag == f"{namespace}t" else " " for node in _without(element, skipped)
              if node.tag in (f"{namespace}t", f"{_DRAWING}br")]
    return " ".join("".join(pieces).split())


# ----------------------------------------------------------------------------- shared

def _without(element: ElementTree.Element, skipped: set[str]) -> Iterator[ElementTree.Element]:
    """element.iter() in document order, without the subtrees whose tag is in skipped."""
    for child in element:
        if child.tag in skipped:
            continue
        yield child
        yield from _without(child, skipped)


def _table_row(cells) -> str:
    cells = list(cells)
    return "| " + " | ".join(cells) + " |" if any(cells) else ""


def _joined(lines: list[str]) -> str:
    """Lines as one text: a list apart from what follows it, no run of blank lines, none at either end."""
    out: list[str] = []
    for line in lines:
        if line and out and out[-1].startswith("- ") and not line.startswith("- "):
            out.append("")
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip() + "\n"
