"""Doc comments of other languages' code: the comment written right above a declaration, and the name it declares.

Most languages document a function or a type in a comment above it, in a form their tools read: `/** ... */`
(JSDoc, Javadoc, KDoc, Doxygen, PHPDoc), `///` lines (Rust, C#, Swift, Dart, Doxygen) and, in Go, `//` lines
that open with the name they document ("Serve accepts ..."). Such a comment counts only when the next line,
past attributes and annotations ("@Override", "#[inline]", "[Obsolete]"), declares a name; a license header
above an import, or a comment above a statement, is not documentation. No parser: a line is read as a
declaration by its shape, which is why only comments in these forms count. gpt/docstrings.py turns what this
finds into questions and passages, as it does Python's docstrings.
"""

from __future__ import annotations

import itertools
import re

from gpt.files import uncompressed_name

BLOCK_SUFFIXES = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".java", ".kt", ".kts", ".scala", ".groovy", ".php",
                  ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".m", ".mm", ".cs", ".swift", ".dart", ".rs")
SLASHES_SUFFIXES = (".rs", ".cs", ".swift", ".dart", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh")  # "///"
GO_SUFFIXES = (".go",)
_MODIFIERS = (r"(?:(?:export|default|public|private|protected|internal|static|final|abstract|sealed|open|data|"
              r"override|virtual|async|unsafe|extern|inline|const|pub(?:\([\w:]+\))?|declare|readonly)\s+)*")
_TYPE = re.compile(rf"\s*{_MODIFIERS}(?:class|interface|struct|enum|trait|record|type|object|protocol|union)"
                   r"\s+([A-Za-z_$][\w$]*)")
_CALLABLE = re.compile(r"\s*(?:[\w$<>\[\],.?*&:]+\s+)*?(?:function\s*\*?\s*|fn\s+|fun\s+|func\s+(?:\([^)]*\)\s*)?)?"
                       r"([A-Za-z_$][\w$]*)\s*(?:<[^>()]*>)?\s*\(")
_ARROW = re.compile(r"\s*(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=]+)?=\s*(?:async\s+)?"
                    r"(?:function\b|\([^)]*\)\s*(?::[^=]+)?=>|[\w$]+\s*=>)")
_ANNOTATION = re.compile(r"\s*(?:@[\w.]+(?:\(.*\))?|#!?\[.*\]|\[[\w.]+(?:\(.*\))?\])\s*$")
_STATEMENTS = frozenset("if for while switch return catch sizeof new await typeof throw else do case yield".split())
# what a call in a statement may be named ("} else if (x)"); "constructor" is JavaScript's, like Python's __init__
_NOT_NAMES = _STATEMENTS - {"new"} | {"constructor"}  # Rust's "pub fn new(" declares new
# {@link Foo}, {@code x}; Doxygen's \p x, @p x, \ref y, and "\brief" before a description
_INLINE_TAG = re.compile(r"\{@\w+\s+([^}|]+?)(?:\s*\|[^}]*)?\}|[\\@](?:p|c|a|e|b|ref|brief|details)\s+(?=\S)")
_BLOCK_TAG = re.compile(r"\s*(?:[@\\]\w|# |```)")  # where a doc comment's description ends
_XML_REFERENCE = re.compile(r"<(?:see|seealso|paramref|typeparamref)\s+\w+=\"([^\"]+)\"\s*/>")


def doc_comments(text: str, source: str) -> list[tuple[str, str, str, int]]:
    """(name, "function" or "class", the comment's text, the declaration's line) of each documented
    declaration, in order; [] for a file in none of these languages."""
    file = uncompressed_name(source).lower()
    block, slashes, go = file.endswith(BLOCK_SUFFIXES), file.endswith(SLASHES_SUFFIXES), file.endswith(GO_SUFFIXES)
    if not (block or slashes or go):
        return []
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        start, stripped = i, lines[i].strip()
        if block and stripped.startswith("/**") and not stripped.startswith(("/**/", "/***")):
            end = lines[i].find("*/", lines[i].find("/**") + 3)
            while end < 0 and i + 1 < len(lines):  # to the line that closes it
                i += 1
                end = lines[i].find("*/")
            comment = _unblock(lines[start:i + 1])
        elif (slashes and stripped.startswith("///")) or (go and stripped.startswith("//")):
            marker = "///" if slashes else "//"
            while i + 1 < len(lines) and lines[i + 1].strip().startswith(marker):
                i += 1
            comment = "\n".join(line.strip()[len(marker):].removeprefix(" ") for line in lines[start:i + 1])
        else:
            i += 1
            continue
        after = i + 1
        while after < len(lines) and _ANNOTATION.match(lines[after]):
            after += 1
        declared = _declared(lines[after]) if after < len(lines) else None
        if declared and (comment := _as_text(comment)) and (not go or _names(comment, declared[0])):
            found.append((*declared, comment, after + 1))
        i += 1
    return found


def _declared(line: str) -> tuple[str, str] | None:
    """(name, kind) of a line that declares a type or a callable, else None ("return run(x);" is no declaration)."""
    if kind := _TYPE.match(line):
        return kind.group(1), "class"
    call = _ARROW.match(line) or _CALLABLE.match(line)
    if call and call.group(1) not in _NOT_NAMES and line.split(None, 1)[0] not in _STATEMENTS:
        return call.group(1), "function"
    return None


def _names(comment: str, name: str) -> bool:
    """Whether a Go comment documents `name`: by Go's convention it opens with it ("Serve accepts ...", "A Server
    is ..."); other comments above a declaration are notes, not its documentation."""
    words = comment.split(None, 2)
    return bool(words) and (words[0] == name or (words[0] in ("A", "An", "The") and words[1:2] == [name]))


def _as_text(comment: str) -> str:
    """The comment's description, its tags left out ("@param", "\\return", Rust's "# Examples" and their code) and
    inline markup read as text: {@link Foo} and {@code x}, Doxygen's \\p x, C#'s <summary> and <see cref="x"/>."""
    comment = _INLINE_TAG.sub(lambda tag: tag.group(1) or "", comment)
    if "<summary>" in comment:
        comment = comment.split("<summary>", 1)[1].split("</summary>", 1)[0]
        comment = re.sub(r"<[^>]+>", "", _XML_REFERENCE.sub(r"\1", comment))
    return "\n".join(itertools.takewhile(lambda line: not _BLOCK_TAG.match(line), comment.splitlines())).strip()


def _unblock(lines: list[str]) -> str:
    """A `/** ... */` comment's text: its delimiters and the stars that open its lines taken away."""
    text = "\n".join(lines).strip()
    text = text[3:text.rfind("*/")] if text.rfind("*/") >= 3 else text[3:]
    return "\n".join(re.sub(r"^\s*\*(?: |$)?", "", line) for line in text.splitlines())
