import codecs
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt.chat import ChatError
from gpt.conversations import read_conversations
from gpt.errors import describe
from gpt.files import write_jsonl
from gpt.qa import (
    TEMPLATES,
    QAError,
    chat_record,
    derive_entries,
    derive_from_files,
    derive_pairs,
    pairs_of_documents,
)

MARKDOWN = """# Houseplants

## Monstera

Monstera is a genus of flowering plants. It is native to tropical America.

A second paragraph that is not part of the answer.

## Empty section

### Pothos ##

Pothos grows fast
in low light.

```
## Not a heading: code
```

## How often do I water?

Once a week.
"""

GLOSSARY = """Glossary

- **Repotting**: moving a plant into a bigger pot.
Node — the point on a stem where leaves grow.
Aerial root - a root that grows above the soil.

""" + "\n\n".join([  # each false positive opens a paragraph, where a glossary line would be read
    "The reason is simple: we ran out of time for it.",
    "Meet at 10:30 in the hall: bring cake and some friends.",
    "See https://example.com: the docs are over there.",
    "def water(plant): return plant.soil + water",
    "class C: pass # a class with no methods",
    "He said - the plants need much more light.",
    "Note: this list is not complete yet.",
    "Very long term that keeps going on and on: a definition of some kind.",
    "Author: Jane Doe",
    "Some prose that wraps onto a line where a word\nbreakpoint: which could have its own command list.",
]) + "\n"

FAQ = """# FAQ

Q: How often should I water a cactus?
A: Every two weeks
in summer, less in winter.

Question: Which soil suits succulents?

Answer: Sandy, fast-draining soil.

Q: A question without an answer?

Some prose after it.
"""


def short(pairs):
    return [(p.question, p.answer, p.kind, p.line) for p in pairs]


def test_markdown_sections_give_exact_pairs():
    pairs = derive_pairs(MARKDOWN, "plants.md", phrasings=1)
    assert short(pairs) == [
        ("What is Monstera?", "Monstera is a genus of flowering plants. It is native to tropical America.", "heading",
         3),
        ("What is Pothos?", "Pothos grows fast in low light.", "heading", 11),
        ("How often do I water?", "Once a week.", "faq", 20),
    ]
    assert {p.source for p in pairs} == {"plants.md"}


def test_glossary_lines_and_their_false_positives():
    pairs = derive_pairs(GLOSSARY, phrasings=1)
    assert short(pairs) == [
        ("What is Repotting?", "moving a plant into a bigger pot.", "glossary", 3),
        ("What is Node?", "the point on a stem where leaves grow.", "glossary", 4),
        ("What is Aerial root?", "a root that grows above the soil.", "glossary", 5),
    ]
    # the wrapped line is refused for its place inside a paragraph, not for its words
    assert short(derive_pairs("breakpoint: which could have its own command list.", phrasings=1)) == [
        ("What is breakpoint?", "which could have its own command list.", "glossary", 1)]


def test_faq_blocks_with_multiline_answers_and_a_gap():
    pairs = derive_pairs(FAQ, "faq.md", phrasings=3)
    assert short(pairs) == [
        ("How often should I water a cactus?", "Every two weeks in summer, less in winter.", "faq", 3),
        ("Which soil suits succulents?", "Sandy, fast-draining soil.", "faq", 7),
    ]


def test_definitional_sentences_need_a_short_noun_phrase_subject():
    text = ("A cactus is a plant that stores water. It is a good plant. There is a pot here.\n\n"
            "The reason this works is a mystery. The Eiffel Tower is the tallest tower in Paris.\n"
            "Below is a list. Each plant is a friend. Modules are a unit of code. Now is the time to repot.\n\n"
            "Technically R is an expression language. Normally labels is a vector. "
            "Assembly language is a low-level programming language.\n")
    assert short(derive_pairs(text, phrasings=1)) == [
        ("What is a cactus?", "A cactus is a plant that stores water.", "definition", 1),
        ("What is the Eiffel Tower?", "The Eiffel Tower is the tallest tower in Paris.", "definition", 3),
        ("What are Modules?", "Modules are a unit of code.", "definition", 3),
        ("What is Assembly language?", "Assembly language is a low-level programming language.", "definition", 6),
    ]


def test_phrasings_are_seeded_and_start_with_what_is():
    one = derive_pairs(GLOSSARY, phrasings=4, seed=1)
    assert one == derive_pairs(GLOSSARY, phrasings=4, seed=1)
    questions = [p.question for p in one if p.answer.startswith("moving")]
    assert questions[0] == "What is Repotting?" and len(set(questions)) == 4
    assert {q for q in questions} <= {t.format(t="Repotting") for t in TEMPLATES}
    others = {tuple(p.question for p in derive_pairs(GLOSSARY, phrasings=4, seed=s)) for s in range(6)}
    assert len(others) > 1  # the seed matters
    assert len(derive_pairs(GLOSSARY, phrasings=100)) == 3 * len(TEMPLATES)
    with pytest.raises(QAError):
        derive_pairs(GLOSSARY, phrasings=0)


def test_long_sections_are_cut_at_a_sentence():
    text = "## Ficus\n\n" + "Ficus likes light and warmth. " * 40
    (pair,) = derive_pairs(text, phrasings=1)
    assert pair.answer == ("Ficus likes light and warmth. " * 13).strip()


@pytest.mark.parametrize("text", [
    "", "\n\n\n", "I walked to the shop and bought bread. Then I went home, tired but happy.\n",
    "x" * 2_000_000, "# " * 500_000,
    "Q:\nA: an answer without a question", "Q: **\nA: no question here", "a: " * 300_000,
    "\x00\x01\xff\ufffd" * 1000, "```\nQ: inside code\nA: no\n",
])
def test_structureless_and_hostile_text_gives_no_pairs(text):
    assert derive_pairs(text) == []


def test_files_skip_binary(tmp_path, capsys):
    (tmp_path / "notes.md").write_text(MARKDOWN)
    (tmp_path / "glossary.txt").write_text(GLOSSARY)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    files = sorted(str(p) for p in tmp_path.iterdir())
    pairs = derive_from_files(files)
    assert "skipping binary file" in capsys.readouterr().err
    assert {p.source for p in pairs} == {str(tmp_path / "notes.md"), str(tmp_path / "glossary.txt")}
    assert len(pairs) == 3 * 2 + 1 + 3 * 3


def test_files_from_windows_editors_give_the_same_pairs(tmp_path):
    (tmp_path / "notes.md").write_bytes(codecs.BOM_UTF8 + MARKDOWN.replace("\n", "\r\n").encode())
    (tmp_path / "glossary.txt").write_bytes(GLOSSARY.encode("utf-16"))
    pairs = derive_from_files(sorted(str(p) for p in tmp_path.iterdir()))
    plain = derive_pairs(GLOSSARY, str(tmp_path / "glossary.txt")) + derive_pairs(MARKDOWN, str(tmp_path / "notes.md"))
    assert pairs == plain  # the BOM hides no heading, the first glossary line is not lost


def test_jsonl_round_trip_and_format(tmp_path):
    pairs = derive_pairs(MARKDOWN + FAQ, "notes.md")
    path = tmp_path / "qa.jsonl"
    write_jsonl(map(chat_record, pairs), path)
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"messages": [{"role": "user", "content": "What is Monstera?"},
                                  {"role": "assistant", "content": pairs[0].answer}],
                     "source": "notes.md", "line": 3, "kind": "heading"}
    conversations, skipped = read_conversations(path)  # what `gpt train --input qa.jsonl` reads
    assert conversations == [[{"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}]
                             for p in pairs] and skipped == 0
    assert [p.name for p in tmp_path.iterdir()] == ["qa.jsonl"]  # no temporary file left behind


@pytest.mark.parametrize("line", [
    "{broken", "[1, 2]", '{"messages": [{"role": "user", "content": "q"}]}',
    '{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}'])
def test_broken_jsonl_line_is_one_line_error(tmp_path, line):
    path = tmp_path / "qa.jsonl"
    write_jsonl(map(chat_record, derive_pairs(GLOSSARY, phrasings=1)), path)
    path.write_text(path.read_text() + "\n" + line + "\n")
    with pytest.raises(ChatError) as info:  # an edited qa.jsonl, read back for training
        read_conversations(path)
    message, code = describe(info.value)
    assert message.startswith(f"{path}:5: ") and "\n" not in message and code == 2


def _flat(text: str) -> str:
    return " ".join(text.split())


LINES = st.sampled_from(["## Monstera", "# Title", "Q: What is it?", "A: A plant.", "Answer: yes it is.", "",
                         "Term: a thing that is.", "Node — the point.", "A cat is a small animal.", "```",
                         "Question: why?", "   ", "- **Bold**: a bold item here.", "The x is the y."])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(LINES, st.text(max_size=40)), max_size=30), st.integers(1, 8), st.integers(0, 5))
def test_property_never_raises_and_answers_come_from_the_text(lines, phrasings, seed):
    text = "\n".join(lines)
    for pair in derive_pairs(text, phrasings=phrasings, seed=seed):
        assert pair.answer and _flat(pair.answer) in _flat(text)
        assert any(c.isalnum() for c in pair.question)
        assert pair.kind in {"heading", "glossary", "faq", "definition"}


def test_a_refused_glossary_line_does_not_end_the_glossary():
    text = ("(TM): a mark that means trademark, in hacker usage.\n"
            "Kluge: a clever programming trick intended to solve a problem; an ugly hack.\n"
            "Cruft: an unpleasant substance, the dust that gathers under your bed.\n")
    pairs = {(p.question, p.answer) for p in derive_pairs(text, phrasings=1)}
    assert pairs == {("What is Kluge?", "a clever programming trick intended to solve a problem; an ugly hack."),
                     ("What is Cruft?", "an unpleasant substance, the dust that gathers under your bed.")}
    assert derive_pairs("Loop: i = 0;i++ until it stops.\n", phrasings=1) == []  # a semicolon in code is code


def test_a_wrapped_glossary_item_keeps_its_whole_definition():
    """A list item's definition carried on the next lines (as API docs wrap them) is the whole answer, up to the
    next item, label or glossary line; the line after a wrapped definition still opens the next entry."""
    text = ("The values for `mode`:\n\n"
            "* `off`: No mapping will be attempted. This is the default.\n"
            "* `silent`: If supported by the OS, mapping will be attempted. Failure to map\n"
            "  will be ignored and will not be reported.\n\n"
            "Alpha: the first letter of\nthe Greek alphabet.\nBeta: the second letter of it.\n"
            "Gamma — the third one, a line of its own.\n")
    assert [(e.term, e.definition, e.line) for e in derive_entries(text)] == [
        ("off", "No mapping will be attempted. This is the default.", 3),
        ("silent", "If supported by the OS, mapping will be attempted. Failure to map will be ignored and will not "
                   "be reported.", 4),
        ("Alpha", "the first letter of the Greek alphabet.", 7),
        ("Beta", "the second letter of it.", 9),
        ("Gamma", "the third one, a line of its own.", 10)]


def test_html_comments_and_quoted_notes_are_not_answers():
    """Metadata in comments under a title (Node's API docs: "<!-- YAML added: v8.0.0 -->") and a quoted note after
    it are passed over: the title's answer is the paragraph after them; an inline comment goes, an unclosed one
    leaves the text as it is."""
    text = ("## path.delimiter\n\n<!-- YAML\nadded: v0.9.3\n-->\n\n> Stability: 2 - Stable\n\n"
            "Provides the path delimiter.\n\n## zlib <!-- a note -->\n\nCompression <!-- inline --> bindings.\n")
    assert [(e.term, e.definition, e.line) for e in derive_entries(text)] == [
        ("path.delimiter", "Provides the path delimiter.", 1), ("zlib", "Compression bindings.", 11)]
    assert derive_entries("## Title\n\nText <!-- never closed.\n")[0].definition == "Text <!-- never closed."
    page = "## fs.open()\n\nAdded in: v0.0.2\n\nOpens a file.\n"  # the same docs as a web page: the note is text
    assert [(e.term, e.definition) for e in derive_entries(page)] == [("fs.open()", "Opens a file.")]


def test_an_answer_takes_the_list_it_introduces_and_passes_over_a_default():
    """Config references: an answer ending in ":" goes on with the list it introduces; an option's "**Default** - ..."
    line is not what the option is; a "Q: ...?" title is a question without its "Q:"."""
    text = ("## Credentials\n\nCredentials can be specified in several ways:\n\n* Environment variables\n"
            "* The config file\n\nMore text.\n\n## max_queue_size\n\n**Default** - ``1000``\n\n"
            "The maximum number of tasks in the queue.\n\n## Q: Does the CLI check sums?\n\nYes, when it can.\n\n"
            "## Closures\n\nThis code prints 42:\n\n    i = 42\n    print(i)\n")
    assert [(e.term, e.definition, e.kind, e.line) for e in derive_entries(text)] == [
        ("Credentials", "Credentials can be specified in several ways: * Environment variables * The config file",
         "heading", 1),
        ("max_queue_size", "The maximum number of tasks in the queue.", "heading", 10),
        ("Does the CLI check sums?", "Yes, when it can.", "faq", 16),
        ("Closures", "This code prints 42:", "heading", 20)]  # code is not a list: an answer's end stays


def test_pictures_and_tables_are_not_answers():
    """A wiki's picture under a title (markdown, Obsidian's embed, HTML) is not what the title means: the text
    after it is; a table or raw HTML is passed over like a note; a picture inside a sentence stays."""
    text = ("# Monstera\n\n![monstera](monstera.jpg)\n\nMonstera is a climbing plant.\n\n## Pothos\n\n"
            "![[pothos.png]] ![[pothos-2.png]]\nPothos is a trailing vine.\n\n## Fig\n<img src=\"fig.png\">\n\n"
            "A tree from Africa.\n\n## Watering\n\n| plant | how often |\n| --- | --- |\n<details>\n\n## Ivy\n\n"
            "Ivy ![leaf](leaf.png) climbs walls.\n")
    assert [(e.term, e.definition, e.line) for e in derive_entries(text) if e.kind == "heading"] == [
        ("Monstera", "Monstera is a climbing plant.", 1), ("Pothos", "Pothos is a trailing vine.", 7),
        ("Fig", "A tree from Africa.", 12), ("Ivy", "Ivy ![leaf](leaf.png) climbs walls.", 23)]


def test_a_term_two_documents_define_differently_gives_no_question():
    """One note per plant, each with "## Watering": "What is Watering?" has as many answers as notes, so it is
    not asked; a term each note defines once is, and a document repeated word for word still agrees with itself."""
    notes = [(f"{plant}.md", f"# {plant}\n\n{plant} is a houseplant.\n\n## Watering\n\n{how}\n")
             for plant, how in (("Monstera", "Once a week."), ("Cactus", "Once a month."))]
    pairs = pairs_of_documents([*notes, notes[0]], phrasings=1)
    assert [(p.question, p.answer, p.source) for p in pairs] == [
        ("What is Monstera?", "Monstera is a houseplant.", "Monstera.md"),
        ("What is Cactus?", "Cactus is a houseplant.", "Cactus.md"),
        ("What is Monstera?", "Monstera is a houseplant.", "Monstera.md")]
    assert [p.question for p in derive_pairs(notes[1][1], phrasings=1)] == ["What is Cactus?", "What is Watering?"]
    page = ("care.html.md", "# Cactus\n\n*Cactus* is a `houseplant`.\n")  # the same note as a web page, its markup
    assert [(p.answer, p.source) for p in pairs_of_documents([notes[1], page], phrasings=1)
            if p.question == "What is Cactus?"] == [("Cactus is a houseplant.", "Cactus.md"),
                                                     ("*Cactus* is a `houseplant`.", "care.html.md")]


def test_a_list_of_links_or_of_entries_does_not_answer_its_title():
    """A note's "## Related" list of wiki links is no answer; a "## Glossary" title over glossary lines is no term:
    the lines are the entries."""
    text = ("## Glossary\n\n- **Node**: the point on a stem where leaves grow.\n- **Perlite**: a volcanic glass "
            "that drains soil.\n\n## Related\n\n- [[Monstera]]\n- [[Pothos]]\n")
    assert [(e.term, e.kind) for e in derive_entries(text)] == [("Node", "glossary"), ("Perlite", "glossary")]
    one = "## YHBT\n\nAbbreviation: You Have Been Trolled, as the Jargon File puts it.\n"  # one label is no glossary
    assert [(e.term, e.kind) for e in derive_entries(one)] == [("YHBT", "heading"), ("Abbreviation", "glossary")]


def test_underlined_titles_are_headings():
    """Markdown's setext and reStructuredText's underlined (and overlined) titles give heading pairs; a line of
    dashes under a two-line paragraph is a rule, not a title."""
    text = ("*******\nLambdas\n*******\n\nA lambda is a small anonymous function.\n\n"
            "Closures\n========\nA closure keeps its scope.\n\nA paragraph of\ntwo lines\n---\n")
    assert [(e.term, e.definition, e.line) for e in derive_entries(text) if e.kind == "heading"] == [
        ("Lambdas", "A lambda is a small anonymous function.", 2), ("Closures", "A closure keeps its scope.", 7)]


def test_notes_app_markup_numbered_headings_and_emphasised_terms():
    """What note apps write: YAML front matter gives nothing, section numbers are not part of a title, and a
    glossary term may be in italics or backticks as well as in bold, a linked title is its link's text; "1984
    (novel)" keeps its number, and "J. R. R. Tolkien" his initials."""
    text = ("---\ntitle: Monstera\ndescription: notes about the plant by the window.\n---\n\n"
            "## 1. Light\n\nBright, indirect light suits it.\n\n"
            "## 2.3 Soil\n\nA chunky, well-drained mix.\n\n## 1984 (novel)\n\nA novel by George Orwell.\n\n"
            "## 3 Repotting\n\nEvery second spring.\n\n## A.1 Sources\n\nThe society's guide.\n\n"
            "## J. R. R. Tolkien\n\nAn English writer.\n\n"
            "## [[plants/pothos|Pothos]]\n\nA trailing vine.\n\n## [Ficus](ficus.md)\n\nA genus of trees.\n\n"
            "- *Aerial roots* - roots that grow above the ground.\n- `gpt qa`: derives questions from notes.\n"
            "- **Fenestration**: the holes and splits in the leaves.\n")
    assert [(e.term, e.kind) for e in derive_entries(text)] == [
        ("Light", "heading"), ("Soil", "heading"), ("1984 (novel)", "heading"), ("Repotting", "heading"),
        ("Sources", "heading"), ("J. R. R. Tolkien", "heading"), ("Pothos", "heading"),
        ("Ficus", "heading"), ("Aerial roots", "glossary"),
        ("gpt qa", "glossary"), ("Fenestration", "glossary")]


def test_definition_lists_markdown_extra_rst_and_indented():
    """A term alone on its line with its definition under it, after ": " or indented deeper, is a glossary entry;
    a reST glossary's heading and directive give none, and indented code or prose is not a definition list."""
    text = ("Monstera\n: A genus of flowering plants in the arum family.\n\n"
            "Glossary\n========\n\n.. glossary::\n\n   decorator\n      A function returning another function,\n"
            "      applied with the @wrapper syntax.\n\n   generator\n      A function which returns an iterator.\n\n"
            "**PEP 484** - Type hints\n   The proposal that added the typing module.\n\n"
            "return (\n    a or b and c)\n\nShall I compare thee\n   to a summer's day\n\nFicus\n   Too short.\n")
    assert [(e.term, e.definition, e.kind, e.line) for e in derive_entries(text)] == [
        ("Monstera", "A genus of flowering plants in the arum family.", "glossary", 1),
        ("decorator", "A function returning another function, applied with the @wrapper syntax.", "glossary", 9),
        ("generator", "A function which returns an iterator.", "glossary", 13),
        ("PEP 484 - Type hints", "The proposal that added the typing module.", "glossary", 16)]
    stairs = "\n".join(" " * i + "alpha beta gamma" for i in range(20_000))  # each line read once, not once a line
    assert [(e.term, e.line) for e in derive_entries(stairs)] == [("alpha beta gamma", 1)]


def test_chinese_and_japanese_terms_are_asked_in_their_language():
    from gpt.qa import term_of
    from gpt.retrieval import question_subject
    zh = derive_pairs("## 龟背竹\n\n龟背竹是天南星科的植物。\n", phrasings=3)
    ja = derive_pairs("## モンステラ\n\nモンステラはサトイモ科の植物です。\n", phrasings=3)
    assert zh[0].question == "龟背竹是什么？" and ja[0].question == "モンステラとは何ですか？"
    assert {p.question for p in zh} == {"龟背竹是什么？", "什么是龟背竹？", "龟背竹是什么意思？"}
    for pairs, term in ((zh, "龟背竹"), (ja, "モンステラ")):  # each names its term: for re-rendering, for retrieval
        assert all(term_of(p.question) == question_subject(p.question) == term for p in pairs), pairs
    kanji_only = derive_pairs("## 盆栽\n\n盆栽は鉢で育てる木です。\n", phrasings=1)  # kana in the answer: Japanese
    assert [p.question for p in kanji_only] == ["盆栽とは何ですか？"]
    assert derive_pairs("## Monstera\n\nMonstera is a genus.\n", phrasings=1)[0].question == "What is Monstera?"


def test_a_title_line_above_a_definition_is_no_part_of_its_subject():
    text = ("Ficus\nFicus is a genus of trees.\n\nMonstera\nThe monstera is a genus of plants.\n\n"
            "The Royal\nHorticultural Society is a charity for gardeners.\n")  # a wrapped subject stays whole
    assert short(derive_pairs(text, phrasings=1)) == [
        ("What is Ficus?", "Ficus is a genus of trees.", "definition", 1),
        ("What is the monstera?", "The monstera is a genus of plants.", "definition", 4),
        ("What is the Royal Horticultural Society?", "The Royal Horticultural Society is a charity for gardeners.",
         "definition", 7)]
