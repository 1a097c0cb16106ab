"""Question/answer pairs from the structure of a user's notes.

A model trained only on "Monstera: a genus of climbing plants" has seen the fact but was never asked for it.
Allen-Zhu & Li (Physics of Language Models 3.1, arXiv 2309.14316) show that such knowledge becomes extractable
by questions when (a) question/answer data is mixed into training and (b) the text itself is augmented: the
same fact in several renderings, in shuffled order. This module finds the facts, in structure notes already have
(gpt/qa_mix.py mixes their questions into training and re-renders them):

- markdown headings with text under them:  ``## Monstera`` + paragraph  -> "What is Monstera?"
- glossary lines: ``Term: definition``, ``Term - definition``, ``Term — definition``
- definition lists: a term alone on its line, its definition under it indented (Sphinx's glossary) or after ``: ``
- FAQ blocks: ``Q:``/``A:`` or ``Question:``/``Answer:`` (answers may span lines)
- definitional sentences at a sentence start, in prose or a list item: "A monstera is a ..." -> "What is a monstera?"
- code's docstrings and doc comments (gpt/docstrings.py): ``def collect_files`` -> "What does collect_files do?"

Every answer is the input's own text (whitespace collapsed, cut at a sentence or word boundary), never
generated; text without such structure yields none, and phrasings are drawn by a seeded generator.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpt.docstrings import CODE_TEMPLATES, documented
from gpt.documents import read_documents
from gpt.errors import InputError
from gpt.man_page import is_man_page
from gpt.markup import HEADING, fenced, front_matter_lines, is_code, markdown_lines, note_title

MAX_ANSWER = 400  # characters; an answer is the first sentences of a section, not the whole section
MAX_TERM = 60  # characters; longer "terms" are prose, not names
TEMPLATES = ("What is {t}?", "What does {t} mean?", "Tell me about {t}.", "Define {t}.", "What is meant by {t}?",
             "Explain {t}.", "Can you describe {t}?", "Give me a definition of {t}.")  # the first: how people ask
_PLURAL = "What are {t}?"  # replaces "What is" for "Modules are a ..."
# A term in Chinese or Japanese is asked as people asking in those languages would (retrieval reads each as naming
# its subject); Japanese where the entry has kana, else Chinese. Python's names: docstrings.CODE_TEMPLATES.
ZH_TEMPLATES = ("{t}是什么？", "什么是{t}？", "{t}是什么意思？")
JA_TEMPLATES = ("{t}とは何ですか？", "{t}って何？", "{t}とはなんですか？")
_IDEOGRAPH_OR_KANA = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile("[\u3040-\u30ff]")
TERM_KINDS = ("heading", "glossary", "definition")  # kinds whose entries have a term; "faq" has a question

# Words that make a would-be term a piece of prose ("The reason is simple: ...", "He said - ...").
_PROSE = frozenset("""
i you he she it we they me him her us them my your his its our their this that these those there here is are was were
be been being am do does did have has had will would can could should shall may might must said says not no if when
then so but because as which who whom what why how where while than also just note warning tip example examples todo
update edit ps nb q a question answer see step each every all some any both many most such other another below above
following else otherwise however thus therefore first finally in on at for with by from after before during of to and
or into over under about
""".split())
# A sentence that opens with an adverb is not saying what its first word is: "Now is the time to repot.",
# "Technically R is an expression language." (but "Assembly language is ...")
_ADVERB = re.compile(r"now|yet|still|too|very|only|even|ever|never|always|often|soon|again|perhaps|indeed|hence"
                     r"|\w{3,}(?:al|ent|ant|ous|ive|ful|ar|ate|ual)ly", re.IGNORECASE)
LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_TERM_WORD = r"[^\W_][\w'’().+&/-]*"
_EMPHASIS = r"(?:\*\*|__|[*_`])"  # a glossary term in bold, italics or backticks
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")  # "## Title ##"; "C#" keeps its hash
_LINK = re.compile(r"\[\[(?:[^\]|]*\|)?(?P<wiki>[^\]|]+)\]\]|\[(?P<md>[^\]]+)\]\([^)]*\)")  # wiki and markdown links
# "2.1 ", "3. ", an appendix's "A.1 ", a chapter's "1 Introduction" (one or two digits, a capital after); not
# "1984 (novel)", nor "J. R. R. Tolkien"
_SECTION_NUMBER = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.[ \t]+(?=\S)|\d+(?:\.\d+)+[ \t]+(?=\S)"
                             r"|[A-Z](?:\.\d+)+\.?[ \t]+(?=\S)|\d{1,2}[ \t]+(?=[A-Z]))")
# Paragraphs that say when or how, not what, often first under a title. Notation, no prose at all: version notes
# ("New in version 3.5.", "Added in: v10.0.0"), grammar ("lambda_expr ::= ..."), sessions (">>>"), reST directives
# (".. glossary::"), lists of contents or links ("* [Windows](#windows)", "- [[Monstera]]"). And what may hold a fact
# but does not say what the title is: quoted notes and callouts ("> Stability: 1 - Experimental", "> [!TIP]"), an
# option's default ("**Default** - ``10``"), tables ("| plant | water |"), raw HTML ("<details>"). The entry is next.
_NOTATION = re.compile(r"\s*(?:(?:New|Added|Changed) in(?: version|:) v?\d|Deprecated since version \d|\S+\s+::=|>>>"
                       r"|\.\. [\w:-]+::|(?:[-*+]|\d{1,3}[.)])[ \t]+(?:\[[^\]\n]*\]\(#|\[\[))")
_NOT_AN_ENTRY = re.compile(rf"{_NOTATION.pattern}|\s*(?:>|\||</?[A-Za-z]|(?:\*\*|__)?Default(?:\*\*|__)?[ \t]*[-:—–])")
_GLOSSARY = re.compile(
    rf"^ {{0,3}}(?:[-*+][ \t]+)?{_EMPHASIS}?(?P<term>{_TERM_WORD}(?:[ \t]+{_TERM_WORD}){{0,4}}?){_EMPHASIS}?"
    r"(?::[ \t]+|[ \t]*[—–][ \t]*|[ \t]+-[ \t]+)(?:\*\*|__)?[ \t]*(?P<definition>\S.*)$")
# a definition that looks like code; a semicolon followed by a space is prose ("a loser; an obnoxious person")
_CODE = re.compile(r"[{}=<>`]|;(?!\s)|(?:^|\s)#\s|\(\)|^\s*[\[\"']|^return\b")
_LABEL = re.compile(r"^ {0,3}\S[^:\n]{0,59}:[ \t]+\S")  # "label: text", the shape of a glossary line
_BULLET = re.compile(r"^ {0,3}[-*+][ \t]")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,3}[.)])[ \t]")  # bulleted or numbered, not indented as code
_ITEM_MARKERS = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+", re.MULTILINE)
_LIST_TERM = re.compile(rf"^[ \t]*{_EMPHASIS}?(?P<term>[^\W_][^:]*?){_EMPHASIS}?[ \t]*$")  # a line that may name a term
_LIST_TERM_CODE = re.compile(r"[=\[\]{}<>;]|\w\(|\($|\(\s")  # "x = (", "return [a", "f(x)": code, not a term
_LIST_DEFINITION = re.compile(r"^ {0,3}:[ \t]+(\S.*)$")  # ": definition" under its term (Markdown Extra, Pandoc)
_CALL = re.compile(r"\w\(")  # a "term" such as "def water(plant)" is code
_LABELLED = r"^ {{0,3}}(?:[-*+][ \t]+)?(?:\*\*|__)?(?:{})(?:\*\*|__)?[ \t]*:(?:\*\*|__)?[ \t]*(.*)$"  # "**Q:** ..."
_QUESTION = QUESTION_LINE = re.compile(_LABELLED.format("Q|Question"), re.IGNORECASE)  # for retrieval's titles too
_ANSWER = ANSWER_LINE = re.compile(_LABELLED.format("A|Answer"), re.IGNORECASE)
DEFINITION = re.compile(r"^(?P<term>(?:(?:The|A|An)\s+)?[A-Z][\w'’-]*(?:\s+[\w'’-]+){0,3}?)\s+(?P<verb>is|are)\s+"
                         r"(?:a|an|the)\s+\w")
SENTENCE_END = _SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“(]?[A-Z])|(?:(?<=[。！？])|(?<=[。！？][」』”’）]))"
                                          r"\s*(?=[^\s。！？」』”’）])")  # CJK: no space, maybe a closing bracket


class QAError(InputError):
    """Input question derivation cannot use (a phrasing count, a form); the CLI prints it as one line."""


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    source: str
    kind: str  # "heading", "glossary", "faq" or "definition"
    line: int = 0  # 1-based line of the entry in its source, 0 when unknown


@dataclass(frozen=True)
class Entry:
    """One fact found in the notes: a term and its definition, or (kind "faq") a question and its answer."""
    term: str
    definition: str
    kind: str
    source: str = ""
    line: int = 0


# ----------------------------------------------------------------------------- small text helpers

def _collapse(text: str) -> str:
    return " ".join(text.split())


def _bounded(text: str, limit: int = MAX_ANSWER) -> str:
    """The first whole sentences of `text` within `limit` characters, else its first words; never rewritten."""
    text = _collapse(text)
    if len(text) <= limit:
        return text
    cut = max((m.start() for m in _SENTENCE_END.finditer(text[:limit + 1])), default=0) or text.rfind(" ", 0, limit + 1)
    return text[:cut if cut > 0 else limit].rstrip()


def _is_term(term: str, max_words: int = 5) -> bool:
    """A short name, not a piece of prose: few words, none of them a pronoun, verb or label."""
    words = LEADING_ARTICLE.sub("", term).lower().split()
    return (0 < len(words) <= max_words and len(term) <= MAX_TERM and any(c.isalpha() for c in term)
            and not any(w.strip("()'’.") in _PROSE for w in words))


def heading_title(text: str | None) -> str:
    """The title of a heading: closing #s, a section number ("2.1 ", "3. "), a "Q:", bold, backticks and a trailing
    colon removed, a link's text kept ("[[Monstera]]", "[[plants/monstera|Monstera]]", "[Monstera](monstera.md)")."""
    text = _CLOSING_HASHES.sub("", text or "") if len(text or "") <= 4 * MAX_TERM else ""
    text = _LINK.sub(lambda m: m.group("wiki") or m.group("md"), _SECTION_NUMBER.sub("", text))
    text = asked.group(1) if (asked := _QUESTION.match(text)) else text  # "Q: Can I ...?" asks "Can I ...?"
    return _collapse(text.replace("**", "").replace("`", "").rstrip(":"))


def not_an_entry(line: str, notation: bool = False) -> bool:
    """Whether a paragraph opening with `line` never says what a title means, so never answers "What is X?"
    (with `notation`: whether it is no prose at all, which retrieval ranks after prose)."""
    return bool((_NOTATION if notation else _NOT_AN_ENTRY).match(line))


def bare_term(term: str) -> str:
    return LEADING_ARTICLE.sub("", term)


def entry_key(entry: Entry) -> tuple[bool, str]:
    """Entries with one key state one fact's answer: a question's, or a term's (no case, no leading article)."""
    return entry.kind == "faq", bare_term(entry.term).lower()


# ----------------------------------------------------------------------------- finding entries

def _code_mask(lines: list[str]) -> list[bool]:
    """True for lines inside (or opening/closing) fenced code blocks and for front matter: neither is notes."""
    front = front_matter_lines(lines)
    return [True] * front + fenced(lines[front:])


def _paragraphs(lines: list[str], code: list[bool]) -> list[tuple[int, list[str]]]:
    """(index of first line, lines) of every run of prose lines; headings and code end a paragraph."""
    found, current = [], []
    for i, line in enumerate(lines + [""]):
        if i < len(lines) and line.strip() and not code[i] and not HEADING.match(line):
            if not current:
                found.append((i, current))  # the list is filled in place by the lines that follow
            current.append(line)
        else:
            current = []
    return found


def _heading_entries(lines: list[str], paragraphs: list[tuple[int, list[str]]]) -> list[Entry]:
    first_after: dict[int, list[str]] = {}  # heading line -> the paragraph directly under it
    after_note: dict[int, int] = {}  # last line of a non-entry (not_an_entry) under a heading -> that heading
    introduced: dict[int, int] = {}  # last line of an answer ending in ":" ("... in 3 ways:") -> its heading
    for start, para in paragraphs:
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        heading = prev if prev >= 0 and HEADING.match(lines[prev]) else after_note.get(prev)
        if (lead := introduced.get(prev)) is not None and _LIST_ITEM.match(para[0]):  # the list it introduces
            first_after[lead] = first_after[lead] + para
        elif heading is not None and not_an_entry(para[0]):  # the entry comes next
            after_note[start + len(para) - 1] = heading
        elif heading is not None:
            first_after[heading] = para
            if para[-1].rstrip().endswith(":"):
                introduced[start + len(para) - 1] = heading
    entries = []
    for i, para in first_after.items():
        title = heading_title(HEADING.match(lines[i]).group(2))
        listed = _BULLET.match(para[0]) or len(para) > 1 and glossary_entry(para[1], 0)  # a glossary's lines
        own = _QUESTION.match(para[0]) or definition_list_item(para, 0) or listed and glossary_entry(para[0], 0)
        if own or not 0 < len(title) <= MAX_TERM * 2:  # entries of their own, or no title
            continue
        answer = _bounded("\n".join(para))
        if title.endswith("?"):
            entries.append(Entry(title, answer, "faq", line=i + 1))
        elif len(title) <= MAX_TERM and len(title.split()) <= 8 and title.split()[0].lower() not in _PROSE:
            entries.append(Entry(title, answer, "heading", line=i + 1))
    return entries


def glossary_entry(line: str, number: int, opens: bool = True, more: Sequence[str] = ()) -> Entry | None:
    """The entry of a "Term: definition" line, its definition carried on by the lines `more` (a wrapped list item).
    `opens`: the line starts a paragraph or follows another entry; a wrapped line inside a paragraph ("... its own
    breakpoint: which could ...") is prose unless it is a list item."""
    if not (opens or _BULLET.match(line)) or len(line) > 4 * MAX_ANSWER or _QUESTION.match(line) or _ANSWER.match(line):
        return None
    match = _GLOSSARY.match(line)
    if not match:
        return None
    term, definition = match.group("term"), match.group("definition").strip()
    if (not _is_term(term) or _CALL.search(term) or len(definition.split()) < 3 or _CODE.search(definition)
            or definition.endswith("?")):
        return None
    return Entry(term, _bounded(" ".join([definition, *more])), "glossary", line=number)


def continued(lines: list[str], i: int) -> list[str]:
    """The lines from lines[i] on that carry on the line before: up to a blank line, heading, list item, label or
    glossary line, or a line indented past where its text starts (a definition under a title, not its wrapped end)."""
    bullet = _BULLET.match(lines[i - 1])
    column, end = bullet.end() if bullet else _indent(lines[i - 1]), i
    while end < len(lines) and lines[end].strip() and _indent(lines[end]) <= column and not (HEADING.match(lines[end])
            or _LABEL.match(lines[end]) or _BULLET.match(lines[end]) or _GLOSSARY.match(lines[end])):
        end += 1
    return lines[i:end]


def _faq_entries(lines: list[str], code: list[bool]) -> list[Entry]:
    """Q:/A: blocks. A question runs until its A: line (a blank line may come between); an answer runs over
    the following lines until a blank line, heading, code or the next Q:."""
    entries: list[Entry] = []
    question: list[str] | None = None
    answer: list[str] | None = None
    start, gap = 0, False
    for i, line in enumerate(lines + [""]):
        q = _QUESTION.match(line) if i < len(lines) and not code[i] and len(line) <= 4 * MAX_ANSWER else None
        a = _ANSWER.match(line) if question is not None and q is None else None
        ends = not line.strip() or i == len(lines) or code[i] or q or HEADING.match(line)
        if answer is not None and ends:
            if any(c.isalnum() for c in " ".join(answer)):
                entries.append(Entry(_collapse(" ".join(question)), _bounded("\n".join(answer)), "faq", line=start))
            question = answer = None
        if q:
            question, answer, start, gap = [q.group(1)], None, i + 1, False
        elif a and answer is None:
            answer = [a.group(1)]
        elif question is not None and answer is None and not line.strip():
            gap = True  # "Q: ...", blank line, "A: ..." is still one block
        elif question is not None and (ends or gap and answer is None):
            question = answer = None
        elif answer is not None:
            answer.append(line)
        elif question is not None:
            question.append(line)
    return entries


def defined_term(sentence: str) -> str | None:
    """The term a sentence such as "A monstera is a genus of ..." defines (a short noun phrase), else None."""
    match = DEFINITION.match(sentence)
    if not (match and sentence.endswith((".", "!")) and _is_term(match.group("term"), 4)) \
            or _ADVERB.fullmatch(match.group("term").split()[0]):
        return None
    term = match.group("term")
    return term[0].lower() + term[1:] if LEADING_ARTICLE.match(term) else term


def _indent(line: str) -> int:
    return len(line[:len(line) - len(line.lstrip())].expandtabs(4))


def definition_list_item(para: list[str], i: int) -> tuple[str, list[str]] | None:
    """(term, definition lines) when para[i] is a term of a definition list: a short name alone on its line, its
    definition on the next lines, indented deeper (reStructuredText, Sphinx's glossary, dictionaries) or opening
    with ": " (Markdown Extra), at least three words of prose."""
    match = _LIST_TERM.match(para[i]) if i + 1 < len(para) else None
    if not (match and _is_term(match.group("term")) and not match.group("term").endswith((".", ",", ";", "!", "?"))
            and not _LIST_TERM_CODE.search(para[i]) and not _BULLET.match(para[i]) and not _QUESTION.match(para[i])):
        return None
    colon = _LIST_DEFINITION.match(para[i + 1])
    if not colon and _indent(para[i + 1]) <= _indent(para[i]):
        return None
    body = [colon.group(1) if colon else para[i + 1]]
    if len(body[0].split()) < 3 or _CODE.search(body[0]):
        return None
    for line in para[i + 2:]:
        if _indent(line) <= _indent(para[i]) or _LIST_DEFINITION.match(line):
            break
        body.append(line)
    return match.group("term").replace("**", "").replace("`", ""), body


def _definition_list_entries(paragraphs: list[tuple[int, list[str]]]) -> list[Entry]:
    entries = []
    for start, para in paragraphs:
        i = 0
        while i < len(para):
            if item := definition_list_item(para, i):
                entries.append(Entry(item[0], _bounded("\n".join(item[1])), "glossary", line=start + i + 1))
            i += 1 + len(item[1]) if item else 1  # past the item's definition: each line is read once or twice
    return entries


def _definition_entries(paragraphs: list[tuple[int, list[str]]]) -> list[Entry]:
    """Sentences such as "A monstera is a genus of ..." whose subject is a short noun phrase."""
    entries = []
    for start, para in paragraphs:
        if len(para) == 1 and (_GLOSSARY.match(para[0]) or _QUESTION.match(para[0]) or _ANSWER.match(para[0])):
            continue
        text = "\n".join(para)  # each list item alone ("- Monstera is a ..." in an outline), cited at its line
        marks = [(0, 0), *(m.span() for m in _ITEM_MARKERS.finditer(text)), (len(text), len(text))]
        for (_, begin), (end, _) in zip(marks, marks[1:]):
            line = start + 1 + text.count("\n", 0, begin)
            sentences = map(sentence_under_title, _SENTENCE_END.split(text[begin:end]))
            entries += [Entry(t, _bounded(s), "definition", line=line) for s in sentences if (t := defined_term(s))]
    return entries


def sentence_under_title(sentence: str) -> str:
    """The sentence on one line, without a plain-text title line above it (is_title_line): "Ficus\nFicus is ..."."""
    first, _, rest = sentence.partition("\n")
    return _collapse(rest if rest and is_title_line(first, rest) else sentence)


def is_title_line(line: str, below: str) -> bool:
    """Whether `line` is a plain-text title over the definition `below` ("Monstera" over "The monstera is a ...")."""
    title, defining = _collapse(line).casefold(), DEFINITION.match(_collapse(below))
    subject = LEADING_ARTICLE.sub("", defining.group("term")).casefold() if defining else ""
    return bool(title) and title[-1] not in ".:;,!?" and (subject == title or subject.startswith(title + " "))


def titled_lines(text: str, source: str) -> tuple[list[str], int]:
    """markdown_lines, with the title of a note that opens with prose and writes no title (markup.note_title) as a
    heading inserted after its front matter: (lines, the index of that heading, -1 if none)."""
    lines = markdown_lines(text, source)
    front = front_matter_lines(lines)
    first = next((line for line in lines[front:] if line.strip()), "")
    if _LIST_ITEM.match(first) or glossary_entry(first, 0) or _QUESTION.match(first):
        return lines, -1  # a glossary, a list or an FAQ: entries of their own, not what a title means
    if title := note_title(lines, front, source):
        return lines[:front] + [f"# {title}"] + lines[front:], front
    return lines, -1


def source_line(line: int, inserted: int) -> int:
    """A line number (from 1) of titled_lines as the file's: the inserted title's is that of the line under it."""
    return line - 1 if 0 <= inserted < line - 1 else line


def derive_entries(text: str, source: str = "") -> list[Entry]:
    """Every fact the notes state in a recognised form, in document order, one per term (the first wins). Code
    states none but its documented names (gpt/docstrings.py): its comments are read as code (markup.is_code)."""
    if is_code(source):
        return [Entry(d.name, _bounded(d.summary), d.kind, source, d.line) for d in documented(text, source)]
    lines, inserted = titled_lines(text, source)
    code = _code_mask(lines)
    paragraphs = _paragraphs(lines, code)
    man = is_man_page(source)  # a man page's sections ("## Exit status") are its format's, not subjects to ask about
    found = [e for e in _heading_entries(lines, paragraphs) if not (man and lines[e.line - 1].startswith("## "))]
    found += _faq_entries(lines, code) + _definition_entries(paragraphs) + _definition_list_entries(paragraphs)
    for start, para in paragraphs:
        opens, j = True, 0
        while j < len(para):
            entry, more = glossary_entry(para[j], start + j + 1, opens), []
            if entry and (more := continued(para, j + 1)):  # a wrapped definition: read again, whole
                entry = glossary_entry(para[j], start + j + 1, opens, more)
            if entry:
                found.append(entry)
            opens = entry is not None or _LABEL.match(para[j]) is not None  # a refused entry keeps a glossary going
            j += 1 + len(more)
    entries, seen = [], set()
    for entry in sorted(found, key=lambda e: e.line):
        named = any(c.isalnum() for c in entry.definition) and any(c.isalnum() for c in entry.term)
        if named and (key := entry_key(entry)) not in seen:
            seen.add(key)
            entries.append(Entry(entry.term, entry.definition, entry.kind, source, source_line(entry.line, inserted)))
    return entries


def questions_for(entry: Entry, phrasings: int = 3, seed: int = 0) -> list[str]:
    """"What is X?" and phrasings - 1 others drawn by a generator seeded with (seed, term): reproducible."""
    if entry.kind == "faq":
        return [entry.term]
    rng = random.Random(f"{seed}|{entry.term}")
    templates = CODE_TEMPLATES.get(entry.kind, TEMPLATES)  # "What does collect_files do?"
    if _IDEOGRAPH_OR_KANA.search(entry.term):
        templates = JA_TEMPLATES if _KANA.search(entry.term + entry.definition) else ZH_TEMPLATES
    plural = entry.kind == "definition" and (m := DEFINITION.match(entry.definition)) and m.group("verb") == "are"
    first = _PLURAL if plural and templates is TEMPLATES else templates[0]
    chosen = [first] + rng.sample(templates[1:], min(phrasings, len(templates)) - 1)
    return [t.format(t=entry.term) for t in chosen]


def term_of(question: str) -> str | None:
    """The X of a question made from TEMPLATES ("What is meant by X?" is tried before "What is X?")."""
    for template in sorted(TEMPLATES + (_PLURAL,) + ZH_TEMPLATES + JA_TEMPLATES, key=len, reverse=True):
        head, tail = template.split("{t}")
        if question.startswith(head) and question.endswith(tail) and len(question) > len(head) + len(tail):
            return question[len(head):len(question) - len(tail)]
    return None


def derive_pairs(text: str, source: str = "", phrasings: int = 3, seed: int = 0) -> list[QAPair]:
    """Question/answer pairs from the headings, glossary lines, FAQ blocks and definitions in `text`."""
    return pairs_of_documents([(source, text)], phrasings, seed)


def pairs_of_documents(documents: Iterable[tuple[str, ...]], phrasings: int = 3, seed: int = 0) -> list[QAPair]:
    """derive_pairs of each (source, text) or documents.Document, less the terms two documents define differently,
    markup and punctuation aside ("What is Watering?" of each plant's note, "What is Installation?" of each
    README; not one page as Markdown and as HTML): taught both answers, a model learns neither."""
    if phrasings < 1:
        raise QAError(f"phrasings must be at least 1, got {phrasings}")
    entries = [e for source, text, *_ in documents for e in derive_entries(text, source)]
    answers = defaultdict(set)
    for e in entries:
        answers[entry_key(e)].add("".join(c for c in e.definition.casefold() if c.isalnum()))
    return [QAPair(q, e.definition, e.source, e.kind, e.line)
            for e in entries if len(answers[entry_key(e)]) == 1 for q in questions_for(e, phrasings, seed)]


def derive_from_files(files: list[str], phrasings: int = 3, seed: int = 0) -> list[QAPair]:
    """pairs_of_documents of every document of files (text, JSONL, Parquet, the built-in corpus; binary skipped)."""
    return pairs_of_documents(read_documents(files), phrasings, seed)


def chat_record(pair: QAPair) -> dict:
    """A pair as a line of qa.jsonl: a conversation, as `gpt train --input qa.jsonl` reads it, and its origin."""
    return {"messages": [{"role": "user", "content": pair.question}, {"role": "assistant", "content": pair.answer}],
            "source": pair.source, "line": pair.line, "kind": pair.kind}
