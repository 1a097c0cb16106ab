"""Manual pages (troff's man and mdoc macros) read as Markdown: their text, not their requests and escapes."""

import bz2
import gzip

from gpt.documents import Document, read_documents
from gpt.man_page import is_man_page, man_to_markdown, special_character
from gpt.qa import derive_from_files
from gpt.retrieval import PassageIndex, question_subject

PAGE = r'''.\" A page written for gpt's tests, in the shapes real pages use
.de Vb
.ft CW
.nf
..
.ie n .ds Q" ""
.el .ds Q" \(lq
.TH REPOT 1 "November 2026" "plants 1.0" "User Commands"
.SH NAME
repot, repot\-all \- move a plant to a larger pot
.SH SYNOPSIS
.B repot
[\fIOPTION\fR]... \fIPLANT\fR...
.SH DESCRIPTION
.B repot
moves each \fIPLANT\fR to a pot one size up \(em in spring, na\(:ive
caf\[u00E9] gardeners say \*(Q"gently\*(Q".
.PP
Use \fB\-\-dry\-run\fR first.
.SS Options
.TP
.BR \-s ", " \-\-size =\fISIZE\fR
set the new pot's size in centimetres
.TP
\fB\-n\fR
.TQ
\fB\-\-dry\-run\fR
print what would be done, and do nothing
.IP \(bu 2
Water the day before.
.IP \(bu 2
Do not feed for a month.
.SH EXAMPLES
.nf
repot \-s 20 monstera
.fi
.SH SIZES
.TS
tab(:);
l l.
Size:Diameter
small:12 cm
.TE
.SH FUNCTIONS
.ie n .IP """Next""" 4
.el .IP "\f(CWNext\fR" 4
Moves on to the next plant.
.SH "EXIT STATUS"
0 if every plant was repotted.
.if t .ig
.if n \{\
.\" a terminal's branch
.\}
'''

MDOC = r""".Dd November 27, 2026
.Dt TRIM 8
.Os
.Sh NAME
.Nm trim
.Nd cut back a plant's dead leaves
.Sh SYNOPSIS
.Nm
.Op Fl Fl all
.Op Fl l Ar length
.Ar plant ...
.Sh DESCRIPTION
The
.Nm
utility removes leaves, as
.Xr repot 1
does with pots.
.Bl -tag -width Ds
.It Fl a , Fl Fl all
trim every leaf that is brown at the tip
.It Fl l Ar length
cut each stem back to
.Ar length
centimetres
.El
.Bd -literal
trim -l 5 ficus
.Ed
Run it in
.Dq spring .
"""


def test_a_man_page_is_read_as_its_text_in_markdown():
    assert man_to_markdown(PAGE) == "\n".join([
        "# repot", "", "Move a plant to a larger pot.", "", "The same page documents repot-all.", "",
        "## Synopsis", "", "repot [OPTION]... PLANT...", "",
        "## Description", "",
        "repot moves each PLANT to a pot one size up \u2014 in spring, na\u00efve caf\u00e9 gardeners say \"gently\".",
        "", "Use --dry-run first.", "",
        "### Options", "", "-s, --size=SIZE", ": set the new pot's size in centimetres", "",
        "-n, --dry-run", ": print what would be done, and do nothing", "",
        "- Water the day before.", "", "- Do not feed for a month.", "",
        "## Examples", "", "```", "repot -s 20 monstera", "```", "",
        "## Sizes", "", "- Size: Diameter", "- small: 12 cm", "",
        "## Functions", "", "Next", ": Moves on to the next plant.", "",
        "## Exit status", "", "0 if every plant was repotted."]) + "\n"


def test_a_bsd_mdoc_page_is_read_too():
    assert man_to_markdown(MDOC) == "\n".join([
        "# trim", "", "Cut back a plant's dead leaves.", "",
        "## Synopsis", "", "trim [--all] [-l length] plant...", "",
        "## Description", "", "The trim utility removes leaves, as repot(1) does with pots.", "",
        "-a, --all", ": trim every leaf that is brown at the tip", "",
        "-l length", ": cut each stem back to length centimetres", "",
        "```", "trim -l 5 ficus", "```", "", "Run it in \u201cspring\u201d."]) + "\n"


def test_special_characters():
    assert [special_character(n) for n in ("em", "u00E9", ":a", "'e", ",c", "*a", "*W", "oa", "nosuch")] == [
        "\u2014", "\u00e9", "\u00e4", "\u00e9", "\u00e7", "\u03b1", "\u03a9", "\u00e5", ""]


def test_man_pages_are_found_by_name_and_told_from_prose_by_their_text(tmp_path):
    assert [is_man_page(n) for n in ("ls.1", "ls.1.gz", "CA.pl.1ssl", "Carp.3perl.gz", "repot.man", "notes.md",
                                     "2024.12", "data.json")] == [True, True, True, True, True, False, False, False]
    assert man_to_markdown("Chapter 2 of my notes: no requests here.\n") is None
    assert man_to_markdown(".so man1/repot.1\n") == ""
    (tmp_path / "repot.1.gz").write_bytes(gzip.compress(PAGE.encode()))
    (tmp_path / "trim.8.bz2").write_bytes(bz2.compress(MDOC.encode()))
    (tmp_path / "draft.2").write_text("A draft, second version.\n")  # a man page's name, not its text
    (tmp_path / "repot-all.1").write_text(".so man1/repot.1\n")  # an alias of another page: nothing of its own
    log = "".join(f"Nov 27 10:{i % 60:02d} watered plant {i}\n" for i in range(5000))  # 170 KB, streamed
    (tmp_path / "garden.log.1").write_text(log)  # a rotated log
    files = [str(tmp_path / n) for n in ("draft.2", "repot-all.1", "repot.1.gz", "trim.8.bz2", "garden.log.1")]
    assert read_documents(files) == [Document(files[0], "A draft, second version.\n"),
                                     Document(files[2], man_to_markdown(PAGE)),
                                     Document(files[3], man_to_markdown(MDOC)), Document(files[4], log)]


def test_questions_come_from_a_pages_name_and_items_not_its_sections(tmp_path):
    (tmp_path / "repot.1").write_text(PAGE)
    asked = {p.question: p.answer for p in derive_from_files([str(tmp_path / "repot.1")], phrasings=1)}
    assert asked["What is repot?"] == "Move a plant to a larger pot."
    assert "What is Options?" in asked  # a subsection is named by the page's author
    assert not {"What is Description?", "What is Synopsis?", "What is Exit status?"} & set(asked)


def test_a_page_named_as_asked_comes_before_an_item_of_that_name_in_another_page(tmp_path):
    (tmp_path / "file.1").write_text(".TH FILE 1\n.SH NAME\nfile \\- determine file type\n.SH OPTIONS\n.TP\n"
                                     "tar\nExamines tar files by their checksums.\n")
    (tmp_path / "tar.1").write_text(".TH TAR 1\n.SH NAME\ntar \\- an archiving utility\n")
    index = PassageIndex.build([str(tmp_path / "file.1"), str(tmp_path / "tar.1")])
    for question in ("What is tar?", "What does tar do?", "What is tar used for?"):
        assert question_subject(question) == "tar"
        assert index.search(question, k=1)[0].text == "tar\nAn archiving utility."
