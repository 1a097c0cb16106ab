import codecs
import os
import sys
import zipfile

import pytest

import gpt.documents as documents_module
from gpt.documents import BUILTIN, DataError, Document, collect_files, iter_documents, read_documents


def test_folder_documents_binary_and_non_utf8(folder, capsys):
    files = collect_files([str(folder)])
    docs = ["".join(d) for d in iter_documents(files)]
    assert "skipping binary file" in capsys.readouterr().err
    assert "first record" in docs and "second record" in docs
    assert "café naïve" in docs  # not UTF-8, and nothing in it is: read as Windows-1252 (Latin-1's superset)
    assert len(docs) == 5


def test_a_stray_bad_byte_in_utf8_text_is_replaced_not_a_reason_to_change_encoding(tmp_path):
    (tmp_path / "mixed.txt").write_bytes("naïve ".encode() + b"\xff" + " café".encode())
    (tmp_path / "quotes.txt").write_bytes(b"\x93Monstera\x94 is a plant\x85 " + ("x" * 8190).encode() + "é".encode())
    docs = ["".join(d) for d in iter_documents(collect_files([str(tmp_path)]))]
    assert docs[0] == "naïve \ufffd café"
    assert docs[1].startswith("“Monstera” is a plant… ")  # the UTF-8 "é" past 8 KiB decodes as cp1252 then


def test_byte_order_marks_are_dropped_and_utf16_is_read(tmp_path, capsys):
    text = "## Monstera\nMonstera is a plant. Café.\n"
    (tmp_path / "bom.md").write_bytes(codecs.BOM_UTF8 + text.encode())
    (tmp_path / "le.md").write_bytes(text.encode("utf-16"))  # Windows' "Unicode": a BOM, then UTF-16-LE
    (tmp_path / "be.md").write_bytes(codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    (tmp_path / "r.jsonl").write_bytes(codecs.BOM_UTF8 + b'{"text": "first"}\n{"text": "second"}\n')
    (tmp_path / "u32be.md").write_bytes(codecs.BOM_UTF32_BE + text.encode("utf-32-be"))
    (tmp_path / "u32le.md").write_bytes(text.encode("utf-32"))  # "FF FE 00 00" opens it, and UTF-16-LE's "FF FE"
    docs = ["".join(d) for d in iter_documents(collect_files([str(tmp_path)]))]
    assert docs == [text, text, text, "first", "second", text, text] and capsys.readouterr().err == ""


def test_parquet_records_are_documents(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    path = tmp_path / "wiki.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "body": ["Monstera is a plant.", None, "Water it weekly."]}), path)
    assert [list(d) for d in iter_documents([str(path)], "body")] == [["Monstera is a plant."], ["Water it weekly."]]
    with pytest.raises(DataError, match="no column 'text'"):
        list(iter_documents([str(path)]))
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list(iter_documents([str(broken)]))


def test_globs_and_missing_paths(folder):
    assert [os.path.basename(f) for f in collect_files([str(folder / "**" / "*.txt")])] == ["latin1.txt", "b.txt"]
    with pytest.raises(DataError, match="does not exist"):
        collect_files([str(folder / "nope.txt")])
    with pytest.raises(DataError, match="no files match"):
        collect_files([str(folder / "*.zzz")])


def test_text_without_safe_cuts_is_still_read_in_bounded_pieces(tmp_path, monkeypatch):
    digits = "".join(str(i % 10) for i in range(50_000))  # no letter anywhere: no safe cut point
    (tmp_path / "digits.txt").write_text(digits)
    monkeypatch.setattr(documents_module, "_READ_BYTES", 256)
    pieces = list(documents_module._read_pieces(str(tmp_path / "digits.txt")))
    assert "".join(pieces) == digits and max(map(len, pieces)) <= 16 * 256


def test_documents_name_their_record_or_topic(tmp_path):
    """A passage's `source: ...` line must point at one document: a record of a JSONL file, a built-in topic."""
    notes, records = tmp_path / "notes.md", tmp_path / "r.jsonl"
    notes.write_text("# A\ntext\n")
    records.write_text('{"text": "one"}\n{"text": "two"}\n')
    assert read_documents([str(notes), str(records)]) == [
        Document(str(notes), "# A\ntext\n"), Document(f"{records}#1", "one"), Document(f"{records}#2", "two")]
    builtin = read_documents([BUILTIN])
    from pydoc_data.topics import topics
    assert Document("builtin:pydoc#with", topics["with"]) in builtin
    assert len({d.source for d in builtin}) == len(builtin)


def test_broken_links_link_loops_and_pipes_in_a_folder_are_passed_over(tmp_path, capsys):
    (tmp_path / "a.md").write_text("Monstera is a plant.")
    (tmp_path / "gone.md").symlink_to(tmp_path / "deleted.md")
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")
    os.mkfifo(tmp_path / "pipe.md")  # reading it would wait for a writer forever
    assert collect_files([str(tmp_path)]) == [str(tmp_path / "a.md")]
    assert capsys.readouterr().err.count("not a file (a broken link?)") == 3
    with pytest.raises(DataError, match="does not exist"):  # named on the command line, it is still an error
        collect_files([str(tmp_path / "gone.md")])


def test_a_file_reached_by_several_names_is_read_once(tmp_path, capsys):
    (tmp_path / "grep.1").write_text("Print lines that match patterns.")
    (tmp_path / "egrep.1").symlink_to("grep.1")  # /usr/share/man's aliases
    os.link(tmp_path / "grep.1", tmp_path / "fgrep.1")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "plants.md").write_text("Monstera is a plant.")
    assert collect_files([str(tmp_path), str(tmp_path / "notes" / "plants.md")]) == [
        str(tmp_path / "egrep.1"), str(tmp_path / "notes" / "plants.md")]  # the first name met is kept
    assert capsys.readouterr().err == "warning: skipping 2 links to files already read\n"


# ----------------------------------------------------------------------------- books and word-processor files

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def zipped(path, parts: dict[str, str]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def epub(path, chapters: dict[str, str], spine: list[str], nav: str = "nav.xhtml"):
    """An EPUB 3 book: the package in OEBPS/, chapters by href, the spine in order, a navigation document."""
    items = "".join(f'<item id="{h}" href="{h}" media-type="application/xhtml+xml"/>' for h in chapters)
    refs = "".join(f'<itemref idref="{h}"/>' for h in spine)
    return zipped(path, {
        "mimetype": "application/epub+zip",
        "META-INF/container.xml": '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:'
                                  'opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/book.opf" '
                                  'media-type="application/oebps-package+xml"/></rootfiles></container>',
        "OEBPS/book.opf": f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
                          f'<manifest>{items}<item id="nav" href="{nav}" properties="nav" '
                          f'media-type="application/xhtml+xml"/></manifest><spine><itemref idref="nav"/>{refs}'
                          f'<itemref idref="notes.xhtml" linear="no"/></spine></package>',
        f"OEBPS/{nav}": "<html><body><ol><li>Chapter one</li></ol></body></html>",
        **{f"OEBPS/{h}": c for h, c in chapters.items()}})


def test_an_epub_is_its_chapters_in_reading_order(tmp_path, capsys):
    chapter = '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>x' \
              '</title></head><body><h1>{}</h1><p>{}</p></body></html>'
    book = epub(tmp_path / "plants.epub", {
        "two.xhtml": chapter.format("Ficus", "Ficus is a genus of trees."),
        "one.xhtml": chapter.format("Monstera", "Monstera is a genus of plants.<br/>It climbs."),
        "notes.xhtml": chapter.format("Notes", "Left out of the reading order.")},
        spine=["one.xhtml", "two.xhtml"])
    docs = ["".join(d) for d in iter_documents([str(book)])]
    assert docs == ["# Monstera\n\nMonstera is a genus of plants.\nIt climbs.\n\n"
                    "# Ficus\n\nFicus is a genus of trees.\n"]
    assert capsys.readouterr().err == ""


def docx(path, paragraphs: str, styles: str | None = None):
    parts = {"[Content_Types].xml": "<Types/>",
             "word/document.xml": f"<w:document {W}><w:body>{paragraphs}<w:sectPr/></w:body></w:document>"}
    if styles is not None:
        parts["word/styles.xml"] = f"<w:styles {W}>{styles}</w:styles>"
    return zipped(path, parts)


def para(text: str, style: str = "", extra: str = "") -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/>{extra}</w:pPr>' if style or extra else ""
    return f"<w:p>{props}<w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>"


def test_a_word_document_reads_its_headings_by_style_in_any_language(tmp_path):
    # German Word: the style ids are "berschrift1"/"Titel"; their names say what they are.
    styles = ('<w:style w:type="paragraph" w:styleId="Titel"><w:name w:val="Title"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="Verzeichnis1"><w:name w:val="toc 1"/></w:style>'
              '<w:style w:type="paragraph" w:styleId="Aufzhlungszeichen"><w:name w:val="List Bullet"/></w:style>')
    body = (para("Pflanzen", "Titel") + para("Monstera 3", "Verzeichnis1") + para("Monstera", "berschrift2")
            + "<w:p><w:r><w:t>Monstera is a </w:t></w:r><w:hyperlink><w:r><w:t>genus</w:t></w:r></w:hyperlink>"
              "<w:r><w:delText>deleted </w:delText><w:t xml:space=\"preserve\"> of plants.</w:t></w:r></w:p>"
            + para("Water weekly", extra='<w:numPr><w:numId w:val="1"/></w:numPr>')
            + para("Bright light", "Aufzhlungszeichen")
            + para("Not a list", extra='<w:numPr><w:numId w:val="0"/></w:numPr>')
            + "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Light</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>bright"
              "</w:t></w:r></w:p></w:tc></w:tr></w:tbl>")
    path = docx(tmp_path / "Pflanzen.docx", body, styles)
    assert read_documents([str(path)]) == [Document(str(path), (
        "# Pflanzen\n\n## Monstera\n\nMonstera is a genus of plants.\n\n- Water weekly\n- Bright light\n\n"
        "Not a list\n\n| Light | bright |\n"))]
    english = docx(tmp_path / "plain.docx", para("Ficus", "Heading1") + para("Ficus is a tree."))  # no styles.xml
    assert "".join(*iter_documents([str(english)])) == "# Ficus\n\nFicus is a tree.\n"


def test_an_opendocument_file_reads_headings_lists_and_tables(tmp_path):
    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"')
    content = (f'<office:document-content {ns}><office:body><office:text>'
               '<text:h text:outline-level="2">Monstera</text:h>'
               '<text:p>Monstera is a<text:s text:c="2"/>genus<text:note><text:note-body><text:p>a footnote'
               '</text:p></text:note-body></text:note> of <text:span>plants</text:span>.</text:p>'
               '<text:list><text:list-item><text:p>Water weekly</text:p></text:list-item>'
               '<text:list-item><text:p>Bright light</text:p></text:list-item></text:list>'
               '<table:table><table:table-row><table:table-cell><text:p>Soil</text:p></table:table-cell>'
               '<table:table-cell><text:p>loose</text:p></table:table-cell></table:table-row></table:table>'
               '</office:text></office:body></office:document-content>')
    path = zipped(tmp_path / "notes.odt", {"mimetype": "application/vnd.oasis.opendocument.text",
                                           "content.xml": content})
    assert "".join(*iter_documents([str(path)])) == ("## Monstera\n\nMonstera is a genus of plants.\n\n"
                                                     "- Water weekly\n- Bright light\n\n| Soil | loose |\n")


RELS = 'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"'
R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def relations(targets: dict[str, str]) -> str:
    rows = "".join(f'<Relationship Id="{rid}" Type="x" Target="{target}"/>' for rid, target in targets.items())
    return f"<Relationships {RELS}>{rows}</Relationships>"


def test_a_spreadsheet_is_its_rows_with_two_cells_as_glossary_lines(tmp_path):
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    strings = (f'<sst {ns}><si><t>Term</t></si><si><t>Definition</t></si><si><t>Monstera</t></si>'
               '<si><r><t>A genus of </t></r><r><t>plants.</t></r><rPh><t>ふりがな</t></rPh></si></sst>')
    sheet = (f'<worksheet {ns}><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
             '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>'
             '<row r="3"><c r="A3" t="inlineStr"><is><t>Perlite</t></is></c><c r="B3" t="inlineStr"><is><t>A '
             'volcanic\nglass.</t></is></c></row>'
             '<row r="5"><c r="A5"><v>3.5</v></c><c r="C5" t="b"><v>1</v></c></row></sheetData></worksheet>')
    path = zipped(tmp_path / "glossary.xlsx", {
        "xl/workbook.xml": f'<workbook {ns} {R}><sheets><sheet name="Hidden" sheetId="2" state="hidden" '
                           'r:id="rId2"/><sheet name="Plants" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": relations({"rId1": "worksheets/sheet1.xml", "rId2": "/xl/worksheets/sheet2.xml"}),
        "xl/sharedStrings.xml": strings, "xl/worksheets/sheet1.xml": sheet,
        "xl/worksheets/sheet2.xml": sheet.replace("Perlite", "Hidden")})
    assert "".join(*iter_documents([str(path)])) == (
        "- Term: Definition\n- Monstera: A genus of plants.\n- Perlite: A volcanic glass.\n- 3.5, TRUE\n")
    from gpt.qa import derive_from_files
    assert [(p.question, p.answer) for p in derive_from_files([str(path)], phrasings=1)] == [
        ("What is Monstera?", "A genus of plants."), ("What is Perlite?", "A volcanic glass.")]



def test_a_spreadsheets_dates_read_as_dates_not_day_counts(tmp_path):
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    styles = (f'<styleSheet {ns}><numFmts><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm"/>'
              '<numFmt numFmtId="165" formatCode="0.0 &quot;days&quot;"/>'
              '<numFmt numFmtId="166" formatCode="[Red]0.00"/></numFmts><cellXfs><xf numFmtId="0"/>'
              '<xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="165"/><xf numFmtId="166"/></cellXfs></styleSheet>')

    def book(name: str, cells: list[tuple[str, int]], date1904: str = "") -> str:
        row = "".join(f'<c r="{chr(65 + i)}1" s="{style}"><v>{value}</v></c>' for i, (value, style) in enumerate(cells))
        return str(zipped(tmp_path / name, {
            "xl/workbook.xml": f'<workbook {ns} {R}><workbookPr {date1904}/><sheets><sheet name="Log" sheetId="1" '
                               'r:id="rId1"/></sheets></workbook>',
            "xl/_rels/workbook.xml.rels": relations({"rId1": "worksheets/sheet1.xml"}), "xl/styles.xml": styles,
            "xl/worksheets/sheet1.xml": f'<worksheet {ns}><sheetData><row r="1">{row}</row></sheetData></worksheet>'}))

    # a built-in date format, a custom one with a time, a time alone; a number of "days", [Red] (no date), General
    log = book("log.xlsx", [("45413", 1), ("45413.6041666667", 2), ("0.6041666667", 2), ("3", 3), ("2.5", 4),
                            ("45413", 0)])
    assert "".join(*iter_documents([log])) == "- 2024-05-01, 2024-05-01 14:30, 14:30, 3, 2.5, 45413\n"
    mac = book("mac.xlsx", [("Planted", 0), ("43951", 1)], date1904='date1904="1"')  # days from 1904-01-01
    assert "".join(*iter_documents([mac])) == "- Planted: 2024-05-01\n"

def test_a_slide_deck_is_its_slides_titles_and_points_in_order(tmp_path):
    ns = ('xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
          'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"')

    def shape(placeholder: str, *paragraphs: str) -> str:
        ph = f'<p:nvSpPr><p:nvPr><p:ph {placeholder}/></p:nvPr></p:nvSpPr>' if placeholder else ""
        return f"<p:sp>{ph}<p:txBody>{''.join(paragraphs)}</p:txBody></p:sp>"

    def point(text: str, props: str = "") -> str:
        return f"<a:p>{props}<a:r><a:t>{text}</a:t></a:r></a:p>"

    first = shape('type="title"', point("Monstera")) + shape(
        'idx="1"', point("Monstera is a genus of plants."), point("Water weekly", '<a:pPr lvl="1"/>'),
        point("Not a point", '<a:pPr lvl="1"><a:buNone/></a:pPr>'))
    second = shape('type="ctrTitle"', point("Plant "), point("care")) + shape("", point("In a text box."))

    def row(*cells: str) -> str:  # a cell of two paragraphs reads as one line
        return "<a:tr>" + "".join(f"<a:tc><a:txBody>{''.join(point(p) for p in c.split('|'))}</a:txBody></a:tc>"
                                  for c in cells) + "</a:tr>"

    second += ("<p:graphicFrame><a:graphic><a:graphicData><a:tbl>" + row("Term", "Meaning")
               + row("Perlite", "A volcanic|glass.") + row("", "")
               + "</a:tbl></a:graphicData></a:graphic></p:graphicFrame>")
    path = zipped(tmp_path / "deck.pptx", {
        "ppt/presentation.xml": f'<p:presentation {ns} {R}><p:sldIdLst><p:sldId id="256" r:id="rId7"/>'
                                '<p:sldId id="257" r:id="rId3"/></p:sldIdLst></p:presentation>',
        "ppt/_rels/presentation.xml.rels": relations({"rId3": "slides/slide1.xml", "rId7": "slides/slide2.xml"}),
        "ppt/slides/slide1.xml": f"<p:sld {ns}><p:cSld><p:spTree>{second}</p:spTree></p:cSld></p:sld>",
        "ppt/slides/slide2.xml": f"<p:sld {ns}><p:cSld><p:spTree>{first}</p:spTree></p:cSld></p:sld>"})
    assert "".join(*iter_documents([str(path)])) == (
        "# Monstera\n\nMonstera is a genus of plants.\n\n- Water weekly\n\nNot a point\n\n"
        "# Plant care\n\nIn a text box.\n\n- Term: Meaning\n- Perlite: A volcanic glass.\n")


ODF = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
       'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
       'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
       'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
       'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"')


def test_opendocument_sheets_and_slides_read_as_excel_and_powerpoint_files_are(tmp_path):
    def row(*cells: str, repeat: str = "") -> str:
        return (f'<table:table-row{repeat}>' + "".join(
            f"<table:table-cell><text:p>{c}</text:p></table:table-cell>" if c else
            '<table:table-cell table:number-columns-repeated="16384"/>' for c in cells) + "</table:table-row>")

    sheet = (row("Term", "Definition") + row("Monstera", "A genus of plants.", "")  # an empty cell to the last column
             + row("", repeat=' table:number-rows-repeated="1048000"') + row("Perlite", "A volcanic glass."))
    ods = zipped(tmp_path / "terms.ods", {"content.xml": f"<office:document-content {ODF}><office:body>"
                 f'<office:spreadsheet><table:table table:name="Plants">{sheet}</table:table></office:spreadsheet>'
                 "</office:body></office:document-content>"})
    assert "".join(*iter_documents([str(ods)])) == (
        "- Term: Definition\n- Monstera: A genus of plants.\n\n- Perlite: A volcanic glass.\n")

    def frame(kind: str, inner: str) -> str:
        return f'<draw:frame presentation:class="{kind}"><draw:text-box>{inner}</draw:text-box></draw:frame>'

    points = ("<text:list><text:list-item><text:p>Monstera is a genus of plants.</text:p><text:list><text:list-item>"
              "<text:p>Water weekly</text:p></text:list-item></text:list></text:list-item></text:list>")
    table = ('<draw:frame><table:table><table:table-row><table:table-cell><text:p>Perlite</text:p></table:table-cell>'
             "<table:table-cell><text:p>A volcanic glass.</text:p></table:table-cell></table:table-row></table:table>"
             "</draw:frame>")
    slide = (frame("title", "<text:p>Monstera</text:p>") + frame("outline", points) + table
             + f'<presentation:notes>{frame("notes", "<text:p>Speaker notes</text:p>")}</presentation:notes>')
    odp = zipped(tmp_path / "talk.odp", {"content.xml": f"<office:document-content {ODF}><office:body>"
                 f"<office:presentation><draw:page>{slide}</draw:page></office:presentation></office:body>"
                 "</office:document-content>"})
    assert "".join(*iter_documents([str(odp)])) == (
        "# Monstera\n\nMonstera is a genus of plants.\n\n- Water weekly\n\n- Perlite: A volcanic glass.\n")


def test_questions_come_from_a_word_document(tmp_path):
    from gpt.qa import derive_from_files
    path = docx(tmp_path / "plants.docx", para("Monstera", "Heading1") + para("Monstera is a genus of plants."))
    pairs = derive_from_files([str(path)], phrasings=1)
    assert [(p.question, p.answer, p.source, p.line) for p in pairs] == [
        ("What is Monstera?", "Monstera is a genus of plants.", str(path), 1)]


def test_damaged_or_hostile_zipped_documents_are_skipped_with_a_warning(tmp_path, capsys, monkeypatch):
    (tmp_path / "a.md").write_text("Monstera is a plant.\n")
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not a zip at all")
    docx(tmp_path / "laughs.docx", "").unlink()
    zipped(tmp_path / "laughs.docx", {"word/document.xml": '<!DOCTYPE d [<!ENTITY a "aaaaaaaa">]><d>&a;</d>'})
    zipped(tmp_path / "empty.epub", {"mimetype": "application/epub+zip"})  # no container.xml
    zipped(tmp_path / "empty.xlsx", {"xl/styles.xml": "<styleSheet/>"})  # no workbook
    docx(tmp_path / "big.docx", para("x" * 2000))
    monkeypatch.setattr("gpt.zip_documents.MAX_PART_BYTES", 1000)
    (tmp_path / "paper").write_bytes(b"%PDF-1.7\n%text-like header with no NUL in it\n")  # a PDF not named .pdf
    assert ["".join(d) for d in iter_documents(collect_files([str(tmp_path)]))] == ["Monstera is a plant.\n"]
    err = capsys.readouterr().err.splitlines()
    expected = ["big.docx: word/document.xml is over 0 MB once unpacked", "broken.docx: not a readable .docx file",
                "empty.epub: not a readable .epub file", "empty.xlsx: not a readable .xlsx file",
                "laughs.docx: word/document.xml declares XML entities",
                "skipping binary file"]
    assert len(err) == len(expected) and all(e in line for e, line in zip(expected, err)), err


def pdf(path, pages: list[list[str]], outline: list[tuple[str, int, int]]):
    """A PDF written by pypdf: each page's lines in Helvetica, and bookmarks (title, page, depth 1 or 2)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject
    writer, name = PdfWriter(), NameObject
    font = writer._add_object(DictionaryObject({name("/Type"): name("/Font"), name("/Subtype"): name("/Type1"),
                                                name("/BaseFont"): name("/Helvetica")}))
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        stream.set_data(("BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"({t}) Tj T*" for t in lines) + " ET").encode())
        page[name("/Contents")] = writer._add_object(stream)
        page[name("/Resources")] = DictionaryObject({name("/Font"): DictionaryObject({name("/F1"): font})})
    parent = None
    for title, page_number, depth in outline:
        item = writer.add_outline_item(title=title, page_number=page_number, parent=parent if depth == 2 else None)
        parent = item if depth == 1 else parent
    writer.write(path)
    return path


def test_a_pdf_is_its_pages_text_with_its_bookmarks_as_titles(tmp_path):
    pytest.importorskip("pypdf")
    path = pdf(tmp_path / "plants.pdf", [["Plant notes", "Monstera", "Monstera is a genus of flowering plants na-",
                                          "tive to tropical America."], ["Watering", "Water when the soil is dry."]],
               [("Monstera", 0, 1), ("Watering", 1, 2)])
    assert "".join(*iter_documents([str(path)])) == (
        "Plant notes\n# Monstera\nMonstera is a genus of flowering plants native to tropical America.\n"
        "## Watering\nWater when the soil is dry.\n")
    from gpt.qa import derive_from_files
    assert [(p.question, p.answer) for p in derive_from_files([str(path)], phrasings=1)] == [
        ("What is Monstera?", "Monstera is a genus of flowering plants native to tropical America."),
        ("What is Watering?", "Water when the soil is dry.")]


def test_a_pdf_line_with_a_bullet_is_a_list_item_and_control_codes_are_dropped():
    from gpt.pdf_text import _plain
    assert [_plain(line) for line in ("• Water weekly.", "  ◦ Less in winter.", "\x88 Voxel grids (TeX's bullet).",
                                      "Tab\x08s and 1 • 2", "•Not a bullet")] == [
        "- Water weekly.", "  - Less in winter.", "- Voxel grids (TeX's bullet).", "Tabs and 1 • 2", "•Not a bullet"]


def test_a_pdf_without_text_or_pypdf_is_skipped_with_a_warning(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pypdf")
    pdf(tmp_path / "scan.pdf", [[]], [])
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a PDF")
    assert list(iter_documents(collect_files([str(tmp_path)]))) == []
    err = capsys.readouterr().err.splitlines()
    assert "broken.pdf: not a readable PDF" in err[0] and "scan.pdf: the PDF has no text (a scan?" in err[1], err
    assert list(iter_documents(collect_files([str(tmp_path)]))) == [] and capsys.readouterr().err == ""  # said once
    pdf(tmp_path / "other.pdf", [["Text"]], [])
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if the extra were not installed
    assert list(iter_documents([str(tmp_path / "other.pdf")])) == []
    assert "reading PDF needs pypdf (pip install 'gpt[pdf]')" in capsys.readouterr().err


def test_a_document_is_converted_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """gpt train reads its input three times; a PDF is read from disk once, and again once it changes."""
    pytest.importorskip("pypdf")
    import gpt.pdf_text
    path, calls = pdf(tmp_path / "notes.pdf", [["Monstera is a plant."]], []), []
    convert = gpt.pdf_text.pdf_to_markdown
    monkeypatch.setattr(documents_module, "pdf_to_markdown", lambda p: calls.append(p) or convert(p))
    for _ in range(3):
        assert "".join(*iter_documents([str(path)])) == "Monstera is a plant.\n"
    assert read_documents([str(path)]) == [Document(str(path), "Monstera is a plant.\n", (1,))] and len(calls) == 1
    pdf(path, [["Monstera is a plant."], ["Water it."]], [])
    assert read_documents([str(path)])[0].text == "Monstera is a plant.\nWater it.\n" and len(calls) == 2


def test_warnings_are_said_once_and_a_folders_many_binary_files_in_a_few_lines(tmp_path, capsys):
    (tmp_path / "notes.md").write_text("Monstera is a plant.\n")
    for n in range(8):
        (tmp_path / f"photo{n}.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    files = collect_files([str(tmp_path)])
    for _ in range(3):  # as gpt train reads its inputs: tokenizer, token cache, questions
        assert ["".join(d) for d in iter_documents(files)] == ["Monstera is a plant.\n"]
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: skipping binary file {tmp_path / f'photo{n}.jpg'}" for n in range(5)] + [
        "warning: skipping more binary files without naming them"]


def test_compressed_files_read_as_what_they_hold(tmp_path, capsys):
    import bz2
    import gzip
    import lzma

    from gpt.conversations import is_conversation_file
    from gpt.qa import derive_from_files
    (tmp_path / "Monstera.md.gz").write_bytes(gzip.compress(b"Monstera is a genus of plants.\n"))
    (tmp_path / "Ficus.md.bz2").write_bytes(bz2.compress(b"Ficus is a genus of trees.\n"))
    (tmp_path / "pages.jsonl.xz").write_bytes(lzma.compress(b'{"text": "Ficus is a tree."}\n\n{"text": "Fern."}\n'))
    chat = b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n'
    (tmp_path / "chats.jsonl.gz").write_bytes(gzip.compress(chat))  # read as conversations, not documents
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(b"Kept text.\n" * 300_000)[:-20])  # a download cut short
    (tmp_path / "cut.txt.xz").write_bytes(lzma.compress(b"Kept text.\n" * 300_000)[:-20])
    (tmp_path / "fake.gz").write_bytes(b"not gzip at all")
    (tmp_path / "fake.bz2").write_bytes(b"not bzip2 at all")
    files = [f for f in collect_files([str(tmp_path)]) if not is_conversation_file(f)]
    docs = {os.path.basename(d.source): d.text for d in read_documents(files)}
    assert docs["Monstera.md.gz"] == "Monstera is a genus of plants.\n"
    assert docs["Ficus.md.bz2"] == "Ficus is a genus of trees.\n"
    assert (docs["pages.jsonl.xz#1"], docs["pages.jsonl.xz#2"]) == ("Ficus is a tree.", "Fern.")
    for cut in ("cut.txt.gz", "cut.txt.xz"):  # whole blocks before the damage kept
        assert docs[cut].startswith("Kept text.\n") and len(docs[cut]) >= 1 << 20
    assert "fake.gz" not in docs and "fake.bz2" not in docs
    err = capsys.readouterr().err
    assert "cut.txt.gz: damaged compressed data" in err and "cut.txt.xz: damaged compressed data" in err
    assert "skipping unreadable file" in err and "fake.gz" in err and "fake.bz2" in err
    # a note named for its subject is asked about by its name, compressed or not; conversations are found inside
    assert [(p.question, p.answer) for p in derive_from_files([str(tmp_path / "Monstera.md.gz")], phrasings=1)] == [
        ("What is Monstera?", "Monstera is a genus of plants.")]
    assert is_conversation_file(tmp_path / "chats.jsonl.gz") and not is_conversation_file(tmp_path / "pages.jsonl.xz")


def test_a_manual_is_converted_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """gpt train reads its input three times (tokenizer, token cache, questions): a folder of manual pages, or a
    long PDF, is converted on the first pass only."""
    page = tmp_path / "tool.1"
    page.write_text('.TH TOOL 1\n.SH NAME\ntool \\- do one thing\n.SH DESCRIPTION\nIt does it well.\n')
    calls = []
    convert = documents_module.man_to_markdown
    monkeypatch.setattr(documents_module, "man_to_markdown", lambda text: calls.append(text) or convert(text))
    texts = [read_documents([str(page)])[0].text for _ in range(3)]
    assert len(calls) == 1 and texts[0] == texts[2] and texts[0].startswith("# tool\n")
    os.utime(page, ns=(0, 0))  # changed since: converted again
    assert read_documents([str(page)])[0].text == texts[0] and len(calls) == 2


def test_conversions_are_kept_up_to_a_number_of_characters(tmp_path):
    kept = documents_module._ConvertedTexts(budget=10)
    files = [tmp_path / name for name in "abc"]
    for path in files:
        path.write_text("x")
    assert [kept.get(str(path), "kind", lambda: "1234") for path in files] == ["1234"] * 3
    assert kept.size == 8 and len(kept.kept) == 2  # the first given up: 12 characters would pass 10
    assert kept.get(str(files[2]), "kind", lambda: "new") == "1234"  # kept: not converted again
    assert kept.get(str(files[0]), "kind", lambda: "new") == "new"
    assert kept.get(str(files[1]), "pdf", lambda: ("123456789012", (1,))) == ("123456789012", (1,))
    assert list(kept.kept) == [(str(files[1]), 1, os.stat(files[1]).st_mtime_ns, "pdf")]  # alone: more than 10
