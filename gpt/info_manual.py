"""GNU info manuals read as Markdown: the text of their nodes, without the navigation around it.

An info file (`sed.info.gz` under /usr/share/info, what `info sed` shows) is text that makeinfo wrote from a
Texinfo manual: nodes, each opened by a 0x1F byte and a "File: sed.info,  Node: Introduction,  Next: ..." line,
titles underlined with "*", "=", "-" or ".", and at the end of a node a "* Menu:" of links to others. The index
nodes are menus too ("* igncr:  Input.  (line 31)"), and their lines have the shape of glossary lines, so read as
text they would be thousands of questions answered "Input. (line 31)". So a manual is read as its nodes' text:
the navigation lines, menus and tag table left out, titles as Markdown headings, "*note X::" as "see X".
A manual split in parts (`find.info-1.gz`, `find.info-2.gz`) is read part by part, each a document.
"""

from __future__ import annotations

import re

from gpt.files import uncompressed_name

INFO_NAME = re.compile(r"\.info(?:-\d+)?$", re.IGNORECASE)
_NODE_LINE = re.compile(r"^File: [^,\n]+,\s+Node: ")
_NODE_START = re.compile(r"\x1f\n*File: [^,\n]+,\s+Node: ")
INFO_MARKER = re.compile(r"\x00\x08\[[^\x00]*\x00\x08\]")  # "\0\b[index\0\b]", "\0\b[image ...\0\b]": for info readers
_UNDERLINES = {"*": 1, "=": 2, "-": 3, ".": 4}
# "14.2 ‘stty’: Print or change terminal characteristics", a command's node, is about "stty"
_COMMAND_TITLE = re.compile(r"^((?:\d+(?:\.\d+)*\s+)?)\u2018([^\u2019]+)\u2019: .*$")
_NOTE = re.compile(r"\*[Nn]ote[ \t\n]+([^:]+?)::|\*[Nn]ote[ \t\n]+([^:]+?):[ \t\n]*[^.,]*?[.,]")


def is_info_manual(path: str) -> bool:
    """Whether the file's name is an info manual's (its text decides: info_to_markdown gives None for prose)."""
    return bool(INFO_NAME.search(uncompressed_name(path)))


def looks_like_info_manual(head: str) -> bool:
    """Whether a text opening with `head` is an info manual: an info node ("\\x1f" then a "File: ..." line)."""
    return bool(_NODE_START.search(head))


def info_to_markdown(text: str) -> str | None:
    """The manual's nodes as Markdown; None when the text is no info manual (looks_like_info_manual)."""
    if not looks_like_info_manual(text):
        return None
    nodes = text.split("\x1f")
    out: list[str] = []
    for node in nodes[1:]:  # before the first: the preamble, a copyright notice and the directory entry
        lines = node.lstrip("\n").split("\n")
        if not _NODE_LINE.match(lines[0]):
            continue  # the tag table, local variables
        for line in _node_text(lines[1:]):
            out.append(line)
    text = INFO_MARKER.sub("", _NOTE.sub(lambda m: f"see {m.group(1) or m.group(2)}", "\n".join(out)))
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _node_text(lines: list[str]) -> list[str]:
    """A node's lines up to its menu, a title and its underline as one Markdown heading."""
    out: list[str] = []
    for line in lines:
        if line.startswith("* Menu:"):
            break  # makeinfo puts a node's menu at its end; an index node is a menu alone
        stripped = line.strip()
        mark = stripped[:1]
        if (out and out[-1].strip() and mark in _UNDERLINES and stripped == mark * len(stripped)
                and abs(len(stripped) - len(out[-1].strip())) <= 2):  # "1 Introduction" over "**************"
            title = _COMMAND_TITLE.sub(r"\1\2", out[-1].strip())
            out[-1] = f"{'#' * _UNDERLINES[mark]} {title}"
        else:
            out.append(line.rstrip())
    return out
