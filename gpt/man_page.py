"""Manual pages read as Markdown: troff's man(7) macros, and the common part of BSD's mdoc(7).

A man page is how a program's authors document it (`ls.1.gz` under /usr/share/man). Its source is troff: a line
that starts with "." is a request or a macro (".SH DESCRIPTION", ".TP", ".B bold"), and "\\fB", "\\-" or "\\(em"
inside text are escapes. Read as text, those marks would be much of what a model learns and of what a passage
quotes, so the page is rewritten whole as Markdown, as a web page is (gpt/rich_text.py):
- the NAME section ("ls \\- list directory contents") as the page's title and the paragraph under it ("List
  directory contents."), so that `gpt qa` asks "What is ls?" and retrieval finds the page by its name;
- sections as headings, ".TP" and ".IP" items as definition lists ("-a, --all" then ": do not ignore ..."), or
  as bullets; ".nf" and ".EX" blocks as fences; a table's rows as a sheet's (gpt/markup.py's table_row_line);
- escapes as the characters they print.
Only what pages say is read, not troff as a language: macro definitions are skipped, and a conditional is taken
as a terminal's formatter (nroff) would take it.
"""

from __future__ import annotations

import re
import unicodedata

from gpt.files import uncompressed_name
from gpt.markup import table_row_line

# ls.1, CA.pl.1ssl, Carp.3perl, foo.man: told apart from "notes.2" by the text (man_to_markdown gives None)
MAN_SUFFIX = re.compile(r"\.(?:[1-9][a-z]{0,6}|man)$", re.IGNORECASE)
_PAGE_START = re.compile(r"^[.'][ \t]*(?:TH|Dd|Dt)\b", re.MULTILINE)
_INCLUDES_ONLY = re.compile(r"\s*\.so\s+\S+\s*$")
_COMMENT = re.compile(r'(?<!\\)\\".*|^[.\'][ \t]*\\".*')  # \" to the end of the line
_ARG = re.compile(r'"((?:[^"]|"")*)"?|((?:\\.|[^\s"])(?:\\.|\S)*)')  # a quoted argument, or a word
_ESCAPE = re.compile(r"""\\(?:
    f(?:\[[^\]]*\]|\(..|.)                              # a font
   |s(?:\[[^\]]*\]|[-+]?\(\d\d|\([-+]?\d\d|[-+]?\d|'[^']*')  # a size
   |[hvwoxlLbDHSRXNZ]'[^']*'                           # a motion, a width, a line drawing
   |[*n][-+]?(?P<var>\[[^\]]*\]|\(..|.)                  # a string or a number register
   |\((?P<two>..)|\[(?P<named>[^\]]*)\]                  # a special character
   |[kmz]|(?P<one>.)                                     # a mark; a single-character escape
)""", re.VERBOSE)
_ONE = {"-": "-", "e": "\\", "\\": "\\", ".": ".", "'": "'", "`": "`", " ": " ", "~": " ", "0": " ", "t": " ", "_": "_"}
_SPECIAL = {"em": "\u2014", "en": "\u2013", "hy": "-", "bu": "\u2022", "aq": "'", "dq": '"', "lq": "\u201c",
            "rq": "\u201d", "oq": "\u2018", "cq": "\u2019", "ga": "`", "ti": "~", "ha": "^", "rs": "\\", "sl": "/",
            "co": "\u00a9", "rg": "\u00ae", "tm": "\u2122", "de": "\u00b0", "mu": "\u00d7", "di": "\u00f7",
            "+-": "\u00b1", "<=": "\u2264", ">=": "\u2265", "!=": "\u2260", "->": "\u2192", "<-": "\u2190",
            "ss": "\u00df", "ae": "\u00e6", "AE": "\u00c6", "/o": "\u00f8", "/O": "\u00d8", "/l": "\u0142",
            "Fo": "\u00ab", "Fc": "\u00bb", "Eu": "\u20ac", "eu": "\u20ac", "Po": "\u00a3", "ct": "\u00a2",
            "pl": "+", "mi": "-", "eq": "=", "sc": "\u00a7", "ps": "\u00b6", "dg": "\u2020", "ba": "|", "br": "|",
            "ul": "_", "oa": "\u00e5", "oA": "\u00c5", "lB": "[", "rB": "]", "lC": "{", "rC": "}", "la": "<",
            "ra": ">", "at": "@", "sh": "#", "Do": "$"}
_ACCENTS = {":": "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", ",": "\u0327", "v": "\u030c"}
_GREEK = dict(zip("abgdezyhiklmncoprstufxqw", "\u03b1\u03b2\u03b3\u03b4\u03b5\u03b6\u03b7\u03b8\u03b9\u03ba\u03bb"
                  "\u03bc\u03bd\u03be\u03bf\u03c0\u03c1\u03c3\u03c4\u03c5\u03c6\u03c7\u03c8\u03c9"))
_BULLETS = {"\u2022", "*", "-", "o", "+", "\u2014", "\u2013", "\u00b7"}
_ONE_FONT = {"B", "I", "SM", "SB", "SY"}  # their words in one font
_TWO_FONTS = {"BR", "BI", "IB", "IR", "RI", "RB"}  # words alternating between two fonts, with no space between
_SKIPPED_BLOCKS = {"de": "..", "de1": "..", "am": "..", "ig": "..", "PS": ".PE", "EQ": ".EN"}
# mdoc macros that print their arguments with a mark around or before them; the rest print them as they are
_MDOC_ENCLOSED = {"Dq": ("\u201c", "\u201d"), "Sq": ("\u2018", "\u2019"), "Ql": ("\u2018", "\u2019"),
                  "Pq": ("(", ")"), "Bq": ("[", "]"), "Brq": ("{", "}"), "Aq": ("<", ">"), "Op": ("[", "]"),
                  "Qq": ('"', '"'), "In": ("<", ">")}
_MDOC_OPEN = {"Oo": "[", "Po": "(", "Do": "\u201c", "So": "\u2018", "Ao": "<", "Bo": "[", "Qo": '"', "Bro": "{"}
_MDOC_CLOSE = {"Oc": "]", "Pc": ")", "Dc": "\u201d", "Sc": "\u2019", "Ac": ">", "Bc": "]", "Qc": '"', "Brc": "}"}
_MDOC_CALLABLE = {*_MDOC_ENCLOSED, *_MDOC_OPEN, *_MDOC_CLOSE, *"""Ad An Ar Cd Cm Dv Em Er Ev Fa Fl Fn Ft Ic Li Lk Ms Mt
    Nm No Ns Pa Sy Tn Va Vt Xr Ux Bx At Fx Nx Ox St Xo Xc""".split()}
_DELIMITER = re.compile(r"^[.,:;)\]?!]+$")


def is_man_page(path: str) -> bool:
    """Whether the file's name is a manual page's (its text decides: man_to_markdown gives None for prose)."""
    return bool(MAN_SUFFIX.search(uncompressed_name(path)))


def looks_like_man_page(head: str) -> bool:
    """Whether a text opening with `head` is a man page: a .TH, .Dd or .Dt among its first 200 lines, or only a
    .so (a page that includes another)."""
    return bool(_PAGE_START.search("\n".join(head.splitlines()[:200])) or _INCLUDES_ONLY.match(head))


def man_to_markdown(text: str) -> str | None:
    """The page as Markdown; None when the text is no man page (looks_like_man_page), "" for one that only
    includes another (".so man1/grep.1": the other is read in its own right)."""
    if not looks_like_man_page(text):
        return None
    if _INCLUDES_ONLY.match(text):
        return ""
    writer = _ManWriter()
    for line in _logical_lines(text):
        writer.feed(line)
    return writer.markdown()


def _logical_lines(text: str) -> list[str]:
    """The lines, comments removed and lines ending in a backslash joined to the next."""
    out, carried = [], ""
    for line in text.splitlines():
        line = _COMMENT.sub("", line)
        if line.endswith("\\") and not line.endswith("\\\\"):
            carried += line[:-1]
            continue
        out.append(carried + line)
        carried = ""
    return out + [carried] if carried else out


def arguments(line: str) -> list[str]:
    """A request's arguments, troff's way: words, or "quoted words" in which "" is a quote."""
    return [m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2) for m in _ARG.finditer(line)]


def unescape(text: str, strings: dict[str, str] | None = None) -> str:
    """troff's escapes as the characters they print; fonts, sizes and motions as nothing."""
    def one(match: re.Match) -> str:
        if (var := match.group("var")) is not None:
            return (strings or {}).get(var.strip("[]").lstrip("("), "") if match.group(0)[1] == "*" else ""
        if (name := match.group("two") or match.group("named")) is not None:
            return special_character(name)
        return _ONE.get(match.group("one") or "", "")
    return _ESCAPE.sub(one, text)


def special_character(name: str) -> str:
    """\\(em, \\[u00E9], \\(:a, \\(*a: the character; "" for one not known."""
    if name in _SPECIAL:
        return _SPECIAL[name]
    if re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name) and int(name[1:], 16) <= 0x10FFFF:
        return chr(int(name[1:], 16))
    if len(name) == 2 and name[0] in _ACCENTS and name[1].isalpha():
        return unicodedata.normalize("NFC", name[1] + _ACCENTS[name[0]])
    if len(name) == 2 and name[0] == "*" and name[1].lower() in _GREEK:
        return _GREEK[name[1].lower()].upper() if name[1].isupper() else _GREEK[name[1]]
    return ""


def _unquoted(text: str) -> str:
    """pod2man's "Next" (code, quoted for a terminal) as Next."""
    return text[1:-1] if len(text) > 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1] else text


class _ManWriter:
    """Markdown lines from a page's logical lines, one at a time (feed), in the state a formatter keeps: filling
    or not, a list item's tag to come, a block being skipped, the page's strings and conditionals."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.words: list[str] = []  # the line being filled
        self.prefix = ""  # what the filled line starts with: "- ", ": "
        self.literal = False  # inside .nf/.EX: lines as they are, fenced
        self.tag_next = False  # after .TP: the next line is an item's tag
        self.heading_next = 0  # after a .SH with no words: the next line is a heading of this level
        self.skip_until = ""  # inside a macro definition or a picture: the line that ends it
        self.skip_depth = 0  # inside a false conditional's \{ ... \}: how many braces are open
        self.table: str | None = None  # inside .TS: its cell separator ("" while its format lines are read)
        self.table_tab = "\t"  # the separator a table's options name ("tab(:);")
        self.strings: dict[str, str] = {}
        self.last_condition = True
        self.name_section = False
        self.mdoc_lists: list[str] = []  # open .Bl lists' kinds: "tag", "bullet", "enum"
        self.name = ""

    def markdown(self) -> str:
        self.end_name_section()
        self.flush()
        if self.literal:
            self.lines.append("```")
        if self.name and not (self.lines and self.lines[0].startswith("# ")):
            self.lines[:0] = [f"# {self.name}", ""]
        text = "\n".join(self.lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"

    def flush(self) -> None:
        if self.name_section:  # NAME's words are read whole at its end (end_name_section)
            return
        if self.words:
            self.lines.append(self.prefix + " ".join(self.words))
        self.words, self.prefix = [], ""

    def paragraph(self) -> None:
        self.flush()
        if self.lines and self.lines[-1]:
            self.lines.append("")

    def feed(self, line: str) -> None:
        if self.skip_until:
            self.skip_until = "" if line.strip() == self.skip_until else self.skip_until
        elif self.skip_depth:
            self.skip_depth += line.count("\\{") - line.count("\\}")
            self.skip_depth = max(self.skip_depth, 0)
        elif line[:1] in (".", "'"):
            self.request(line[1:].strip())
        elif self.table is not None:
            self.table_line(line)
        else:
            self.text(unescape(line, self.strings))

    def text(self, text: str) -> None:
        if self.literal:
            self.lines.append(text.rstrip())
        elif self.heading_next:
            self.heading(text, self.heading_next)
        elif self.tag_next:
            self.tag(text.strip())
        elif text.strip():
            self.words.append(text.strip())
        else:
            self.paragraph()

    def tag(self, text: str) -> None:
        """A list item's tag: a bullet, a number, or a term whose definition follows after ": "."""
        self.tag_next, text = False, _unquoted(text)
        if self.prefix == ": " and not self.words and self.lines and text and text not in _BULLETS:
            self.lines[-1] += f", {text}"  # .TQ: a second tag for the same item ("-a" then "--all")
            return
        self.paragraph()
        if text in _BULLETS:
            self.prefix = "- "
        elif re.fullmatch(r"\(?\d{1,3}[.)]?", text):
            self.prefix = f"{text.strip('()').rstrip('.)')}. "
        elif text:
            self.lines.append(text)
            self.prefix = ": "

    def heading(self, text: str, level: int) -> None:
        self.heading_next = 0
        self.end_name_section()
        self.paragraph()
        title = " ".join(text.split())
        title = _unquoted(title)
        if level == 2 and title.isupper() and len(title) > 3:  # a section: "SEE ALSO" -> "See also"
            title = title.capitalize()
        self.name_section = title.lower() == "name"
        if not self.name_section:
            self.lines += [f"{'#' * level} {title}", ""]

    def end_name_section(self) -> None:
        """NAME's "grep, egrep \\- print lines that match patterns": the page's title, its description as the
        paragraph under it ("Print lines that match patterns."), and the other names it documents."""
        if not self.name_section:
            return
        text, self.words, self.name_section = " ".join(self.words), [], False
        named = re.match(r"(.+?)\s+[-\u2013\u2014]+\s+(\S.*)", text)
        if not named:
            self.lines[:0] = [text, ""] if text else []
            return
        names = [n.strip() for n in named.group(1).split(",") if n.strip()]
        self.name, description = names[0], named.group(2).strip()
        head = [f"# {self.name}", "", description[0].upper() + description[1:].rstrip(".") + ".", ""]
        if len(names) > 1:
            head += [f"The same page documents {', '.join(names[1:-1])}{' and ' if len(names) > 2 else ''}"
                     f"{names[-1]}.", ""]
        self.lines[:0] = head

    def table_line(self, line: str) -> None:
        if self.table == "":  # the options and format lines: the last of them ends in "."
            if (tab := re.search(r"tab\s*\((.)\)", line)) and ";" in line:
                self.table_tab = tab.group(1)
            if line.rstrip().endswith("."):
                self.table, self.table_tab = self.table_tab, "\t"
            return
        if line.strip() in ("_", "=") or not line.strip():
            return
        cells = [unescape(c, self.strings).strip().removeprefix("T{").removesuffix("T}").strip()
                 for c in line.split(self.table)]
        self.flush()
        self.lines.append(table_row_line(cells))

    def request(self, line: str) -> None:
        name = re.match(r"[^\s\\]*", line).group(0)  # ".el\{\": "el"; ".br\}": "br"
        rest = line[len(name):].removeprefix("\\}").strip()
        if name in _SKIPPED_BLOCKS:
            self.skip_until = _SKIPPED_BLOCKS[name]
        elif name in ("if", "ie", "el"):
            self.conditional(name, rest)
        elif name == "ds" and (args := rest.split(None, 1)):
            self.strings[args[0]] = unescape(args[1].removeprefix('"') if len(args) > 1 else "", self.strings)
        elif name in ("TS", "TE"):
            self.paragraph()
            self.table = "" if name == "TS" else None
        elif not self.man_request(name, rest) and name[:1].isupper():
            self.mdoc_request(name, rest)

    def conditional(self, name: str, rest: str) -> None:
        """.if n ..., .ie t ..., .el ...: true for a terminal (n), false for a typesetter (t) or a test of the
        formatter's state. A true one's body is read as a line; a false one's is skipped, \\{ to \\}."""
        if name == "el":
            holds, body = not self.last_condition, rest
        else:
            condition, body = re.match(r"(\S*?)(\\\{.*|\s.*|$)", rest).groups()  # "n .IP", "n\{\"
            bare, negated = condition.lstrip("!"), condition.startswith("!")
            holds = bare in ("n", "t", "v") and (bare == "n") != negated
            self.last_condition = holds if name == "ie" else self.last_condition
        body = body.strip()
        if not holds:
            self.skip_depth = max(body.count("\\{") - body.count("\\}"), 0)
        elif body:
            self.feed(body.replace("\\{", "", 1).lstrip())

    def man_request(self, name: str, rest: str) -> bool:
        """A man(7) macro; False for a name it does not know."""
        args = [unescape(a, self.strings) for a in arguments(rest)]
        if name in ("SH", "SS", "Sh", "Ss"):
            level = 2 if name in ("SH", "Sh") else 3
            if args:
                self.heading(" ".join(args), level)
            else:  # the title is the next line
                self.heading_next = level
        elif name in ("PP", "LP", "P", "sp", "HP", "Pp", "Lp", "YS"):
            self.paragraph()
        elif name == "br":
            self.flush()
        elif name in ("TP", "TQ"):  # .TQ: another tag for the item .TP opened
            self.tag_next = True
        elif name == "IP" and args:
            self.tag(args[0].strip())
        elif name == "IP":
            self.paragraph()
        elif name in ("nf", "EX", "Vb", "fi", "EE", "Ve"):
            self.fence(name in ("nf", "EX", "Vb"))
        elif name in _ONE_FONT or name in _TWO_FONTS:
            if args:  # with no words, the font is the next line's
                self.text((" " if name in _ONE_FONT else "").join(args))
        elif name == "OP":
            self.text(f"[{' '.join(args)}]")
        elif name == "TH":
            if args and not self.name:  # "LS": the page's name as NAME will write it
                self.name = args[0].lower() if args[0].isupper() else args[0]
        else:
            return not name[:1].isupper()  # a request that changes only the look (.ad, .ft, .in): nothing to read
        return True

    def fence(self, opens: bool) -> None:
        if opens == self.literal:
            return
        self.paragraph()
        while not opens and self.lines and not self.lines[-1]:
            self.lines.pop()  # a code block's blank lines at its end
        self.lines += ["```"] if opens else ["```", ""]
        self.literal = opens

    def mdoc_request(self, name: str, rest: str) -> None:
        """An mdoc(7) macro: the page's name and description, lists, literal displays, and text."""
        if name == "Dt":
            self.name = self.name or (arguments(rest) or [""])[0].lower()
        elif name in ("Nm", "Nd") and self.name_section:  # read at the section's end, as a man page's is
            self.words.append(("- " if name == "Nd" else "") + self.mdoc_text(rest))
        elif name == "Bl":
            self.paragraph()
            self.mdoc_lists.append("bullet" if "-bullet" in rest or "-dash" in rest else
                                   "enum" if "-enum" in rest else "tag")
        elif name == "El":
            self.paragraph()
            self.mdoc_lists = self.mdoc_lists[:-1]
        elif name == "It":
            kind = self.mdoc_lists[-1] if self.mdoc_lists else "tag"
            self.tag("\u2022" if kind == "bullet" else "1." if kind == "enum" else self.mdoc_text(rest))
        elif name in ("Bd", "Ed"):
            self.fence(name == "Bd" and ("-literal" in rest or "-unfilled" in rest))
        elif name in _MDOC_CALLABLE:
            self.text(self.mdoc_text(f"{name} {rest}"))

    def mdoc_text(self, rest: str) -> str:
        """An mdoc line's words, its callable macros applied: "Fl a Ar file" -> "-a file", "Xr ls 1" -> "ls(1)"."""
        words, out, glue = [unescape(a, self.strings) for a in arguments(rest)], [], False
        i = 0
        while i < len(words):
            word, i, glue_next = words[i], i + 1, False
            if word == "Ns":
                glue = True
                continue
            if word in _MDOC_ENCLOSED:  # encloses the rest of the line, less the punctuation that ends it
                end = len(words)
                while end > i and _DELIMITER.match(words[end - 1]):
                    end -= 1
                inner = self.mdoc_text(" ".join(f'"{w}"' if " " in w or not w else w for w in words[i:end]))
                word, i = _MDOC_ENCLOSED[word][0] + inner + _MDOC_ENCLOSED[word][1], end
            elif word == "Fl":  # "Fl a" is "-a", "Fl Fl all" is "--all"
                flag = words[i] if i < len(words) and words[i] not in _MDOC_CALLABLE | {"Ns"} else ""
                word, i, glue_next = "-" + flag, i + bool(flag), not flag and words[i:i + 1] == ["Fl"]
            elif word in _MDOC_OPEN or word in _MDOC_CLOSE:  # "Oo", "Oc": brackets around the words between
                word, glue, glue_next = _MDOC_OPEN.get(word) or _MDOC_CLOSE[word], glue or word in _MDOC_CLOSE, \
                    word in _MDOC_OPEN
            elif word == "Xr" and i + 1 < len(words):
                word, i = f"{words[i]}({words[i + 1]})", i + 2
            elif word == "Nm" and (i == len(words) or words[i] in _MDOC_CALLABLE or _DELIMITER.match(words[i])):
                word = self.name
            elif word in _MDOC_CALLABLE:
                continue
            if out and (glue or _DELIMITER.match(word)):
                out[-1] += word
            else:
                out.append(word)
            glue = glue_next
        return " ".join(out)
