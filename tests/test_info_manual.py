"""GNU info manuals read as Markdown: their nodes' text, without the navigation, menus and indexes around it."""

import gzip

from gpt.documents import Document, read_documents
from gpt.info_manual import info_to_markdown, is_info_manual
from gpt.qa import derive_from_files

MANUAL = """This is plants.info, produced by makeinfo version 7.0 from plants.texi.

INFO-DIR-SECTION Gardening
START-INFO-DIR-ENTRY
* plants: (plants).           Caring for plants.
END-INFO-DIR-ENTRY

\x1f
File: plants.info,  Node: Top,  Next: Repotting,  Up: (dir)

Plant care
**********

This manual is about plants.

* Menu:

* Repotting::      Moving a plant.
* Index::          Every term.

\x1f
File: plants.info,  Node: Repotting,  Next: Index,  Prev: Top,  Up: Top

1 Repotting
***********

1.1 ‘repot’: Move a plant to a larger pot
=========================================

‘repot’ moves each plant to a pot one size up.  *Note Soil::, and
*note watering: Water. before you start.

     repot monstera

\x1f
File: plants.info,  Node: Index,  Prev: Repotting,  Up: Top

Index
*****

\x00\x08[index\x00\x08]
* Menu:

* monstera:                              Repotting.            (line 6)
* repot:                                 Repotting.            (line 3)

\x1f
Tag Table:
Node: Top\x7f200
Node: Repotting\x7f400
\x1f
End Tag Table
"""


def test_an_info_manual_is_read_as_its_nodes_text():
    assert info_to_markdown(MANUAL) == "\n".join([
        "# Plant care", "", "This manual is about plants.", "",
        "# 1 Repotting", "", "## 1.1 repot", "",
        "‘repot’ moves each plant to a pot one size up.  see Soil, and", "see watering before you start.", "",
        "     repot monstera", "",
        "# Index"]) + "\n"


def test_info_manuals_are_found_by_name_and_told_from_prose_by_their_text(tmp_path):
    assert [is_info_manual(n) for n in ("sed.info", "sed.info.gz", "find.info-2.gz", "info.md", "sed.infos")] == [
        True, True, True, False, False]
    assert info_to_markdown("Some notes about info desks.\n") is None
    (tmp_path / "plants.info-1.gz").write_bytes(gzip.compress(MANUAL.encode()))
    (tmp_path / "desk.info").write_text("Some notes about info desks.\n")
    files = [str(tmp_path / n) for n in ("desk.info", "plants.info-1.gz")]
    assert read_documents(files) == [Document(files[0], "Some notes about info desks.\n"),
                                     Document(files[1], info_to_markdown(MANUAL))]


def test_questions_come_from_the_nodes_not_the_index(tmp_path):
    (tmp_path / "plants.info").write_text(MANUAL)
    asked = {p.question: p.answer for p in derive_from_files([str(tmp_path / "plants.info")], phrasings=1)}
    assert asked["What is repot?"].startswith("‘repot’ moves each plant to a pot one size up.")
    assert not any("(line" in answer for answer in asked.values())  # "* repot: Repotting. (line 3)"
