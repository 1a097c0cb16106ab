import dataclasses
import json
import math

import numpy as np
import pytest

from gpt import retrieval
from gpt.errors import describe
from gpt.passage_store import Postings
from gpt.qa import derive_entries
from gpt.retrieval import PassageIndex, RetrievalError, open_book, passages_of, words

PLANTS = {
    "Monstera": "a climbing plant with large split leaves from Central America.",
    "Pothos": "a trailing vine with heart-shaped leaves that tolerates low light.",
    "Fern": "a plant without flowers or seeds that reproduces by spores.",
    "Aloe": "a succulent whose gel soothes burns.",
    "Cactus": "a succulent with spines that stores water in its stem.",
    "Orchid": "a flowering plant with intricate blooms and aerial roots.",
    "Ficus": "a genus of woody trees that includes the fig and rubber plant.",
    "Basil": "a fragrant herb used in Italian cooking.",
    "Mint": "a fast-spreading herb with cool-tasting leaves.",
    "Rose": "a thorny shrub grown for its scented flowers.",
    "Tulip": "a spring bulb with cup-shaped flowers.",
    "Lily": "a bulb plant with large trumpet-shaped flowers.",
    "Ivy": "an evergreen climber that clings to walls.",
    "Bamboo": "a fast-growing grass with hollow woody stems.",
    "Palm": "a tree with a single trunk and a crown of fronds.",
    "Sage": "a grey-leaved herb used with roast meat.",
    "Thyme": "a small-leaved herb that likes dry sunny soil.",
    "Lavender": "a purple-flowered shrub prized for its scent.",
    "Begonia": "a plant grown for its colourful leaves and flowers.",
    "Peperomia": "a compact plant with thick waxy leaves.",
}
GLOSSARY = "# Plant glossary\n\n" + "".join(f"{name}: {text}\n" for name, text in PLANTS.items()) + """
## Watering

What is the right amount of water? Most plants want water when the top of the soil is dry.
Succulents and cacti want less.
"""


@pytest.fixture(scope="module")
def index() -> PassageIndex:
    return PassageIndex.build([("plants.md", GLOSSARY)])


def test_passages_are_glossary_entries_and_paragraphs_with_their_heading(index):
    assert len(index.passages) == 21
    first, last = index.passages[0], index.passages[-1]
    assert (first.text, first.source, first.line) == ("Plant glossary\nMonstera: " + PLANTS["Monstera"], "plants.md", 3)
    assert last.text.startswith("Plant glossary > Watering\nWhat is the right amount") and last.line == 26


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_what_is_x_finds_x_first(index, name):
    best = index.search(f"What is {name}?", k=3)[0]
    assert best.text.endswith(f"{name}: {PLANTS[name]}") and best.score > 0


def test_question_words_do_not_dominate(index, monkeypatch):
    (best,) = index.search("Which is the Orchid?", k=1)  # not a question the titles answer: BM25 alone
    assert "Orchid" in best.text
    # "which" and "is" occur only in the Watering paragraph, so their IDF is high: kept, they would win
    monkeypatch.setattr(retrieval, "QUESTION_WORDS", frozenset())
    assert index.search("Which is the Orchid?", k=1)[0].line == 26
    monkeypatch.undo()
    assert index.search("what is the")[0].line == 26  # a query of question words only still searches


def test_scores_are_okapi_bm25(index):
    (best,) = index.search("monstera", k=1)
    n, N = 1, len(index.passages)
    length = len(words(best.text))
    average = sum(len(words(p.text)) for p in index.passages) / N
    idf = math.log(1 + (N - n + 0.5) / (n + 0.5))
    expected = idf * 1 * 2.5 / (1 + 1.5 * (1 - 0.75 + 0.75 * length / average))
    assert best.score == pytest.approx(expected, abs=1e-6)


def test_ties_empty_queries_and_k(index):
    twins = PassageIndex.build([("a.txt", "Twin passage here.\n\nOther words."), ("b.txt", "Twin passages here.")])
    assert [(p.source, p.line) for p in twins.search("twin")] == [("a.txt", 1), ("b.txt", 1)]
    same = PassageIndex.build([("a.txt", "# Twin\nTwin here."), ("b.txt", "# Top\n## Twin\nTwin here.\n\nTwin too.")])
    assert [(p.source, p.line) for p in same.search("What is a twin?")] == [("a.txt", 2), ("b.txt", 5)]  # once
    assert index.search("") == [] and index.search("?!") == [] and index.search("zzz unknown") == []
    assert index.search("monstera", k=0) == [] and len(index.search("herb", k=2)) == 2
    assert PassageIndex([]).search("anything") == []


def test_long_paragraphs_are_cut_and_keep_heading_and_line():
    text = "## Care\n\n" + "\n".join(f"Sentence number {i} is about watering the plant." for i in range(60))
    passages = passages_of(text, "care.md", max_chars=300)
    assert len(passages) > 5 and all(len(p.text) <= 300 for p in passages)
    assert all(p.text.startswith("Care\n") for p in passages)
    assert passages[0].line == 3 and passages[1].line > 3
    for p in passages:
        assert p.text.split("\n", 1)[1].startswith(f"Sentence number {p.line - 3} ")


def test_files_and_binary(tmp_path, capsys):
    (tmp_path / "notes.md").write_text(GLOSSARY)
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")
    index = PassageIndex.build([tmp_path / "notes.md", str(tmp_path / "blob.bin")])
    assert "skipping binary file" in capsys.readouterr().err
    assert index.search("What is Basil?")[0].source == str(tmp_path / "notes.md")


def test_save_load_round_trip(index, tmp_path):
    path = tmp_path / "index.safetensors"
    index.save(path)
    again = PassageIndex.load(path)
    assert list(again.passages) == index.passages and again.passages[-1] == index.passages[-1]
    assert again.passages[1:3] == index.passages[1:3]
    for query in ("What is Monstera?", "herb for cooking", "water", "What is a plant?"):
        assert again.search(query) == index.search(query)
    assert [p.name for p in tmp_path.iterdir()] == ["index.safetensors"]
    assert not path.read_bytes().startswith(b"{")  # binary: the reader tells it from a run's JSON passages


def test_a_loaded_index_is_the_built_one(tmp_path):
    texts = [("notes.md", "# Ünïcode\nCafé means coffee.\n\n## 東京\n東京は日本の首都です。\n"), ("empty.md", ""),
             ("more.md", "Term: a word of\nwrapped length.\n\n* x\n")]
    built = PassageIndex.build(texts)
    built.save(tmp_path / "i.safetensors")
    loaded = PassageIndex.load(tmp_path / "i.safetensors")
    assert list(loaded.passages) == built.passages and loaded._titled == built._titled
    for field in ("starts", "passages", "counts", "lengths"):
        assert getattr(loaded._postings, field).tolist() == getattr(built._postings, field).tolist()
    assert loaded._postings.rows == built._postings.rows and "東京" in loaded._postings.rows
    PassageIndex([]).save(tmp_path / "none.safetensors")
    assert PassageIndex.load(tmp_path / "none.safetensors").search("What is Café?") == []


def test_postings_are_each_words_passages_and_counts():
    postings = Postings.of([["a", "b", "a"], [], ["b", "c"]])
    assert postings.of_word("a")[0].tolist() == [0] and postings.of_word("a")[1].tolist() == [2]
    assert postings.of_word("b")[0].tolist() == [0, 2] and postings.of_word("b")[1].tolist() == [1, 1]
    assert postings.of_word("zebra")[0].tolist() == [] and postings.lengths.tolist() == [3, 0, 2]


@pytest.mark.parametrize("content, says", [
    ('{"format": "gpt-passag', "damaged JSON"),
    ('{"format": "something-else", "version": 1}', "is not a passage index"),
    ('{"format": "gpt-passages", "version": 99, "passages": []}', "version 99"),
    ('{"format": "gpt-passages", "version": 1, "k1": 1.5, "b": 0.75, "passages": []}', "version 1"),
    ('{"format": "gpt-passages", "version": 5, "k1": 1.5, "b": 0.75, "passages": [["text", "src", 1]]}', "damaged"),
    ('{"format": "gpt-passages", "version": 5, "passages": []}', "damaged"),
    ('[1, 2, 3]', "is not a passage index"),
    ("", "is not a passage index"),
])
def test_load_refuses_damaged_or_foreign_files_in_one_line(tmp_path, content, says):
    path = tmp_path / "index"
    path.write_text(content)
    with pytest.raises(RetrievalError) as info:
        PassageIndex.load(path)
    message, code = describe(info.value)
    assert says in message and str(path) in message and "\n" not in message and code == 2


@pytest.mark.parametrize("damage, says", [
    (lambda data: data[:len(data) // 2], "is not a passage index"),
    (lambda data: data.replace(b'"version":"6"', b'"version":"7"'), "of format version 7; this gpt reads version 6"),
    (lambda data: data.replace(b'"format":"gpt-passages"', b'"format":"gpt-other-xx"'), "is not a passage index"),
    (lambda data: data.replace(b'"postings"', b'"postingz"'), "damaged passage index (no postings)"),
    (lambda data: data.replace(b'"k1":"1.5"', b'"k1":"one"'), "damaged passage index"),
])
def test_load_refuses_a_damaged_store_in_one_line(index, tmp_path, damage, says):
    path = tmp_path / "index.safetensors"
    index.save(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(RetrievalError) as info:
        PassageIndex.load(path)
    message, code = describe(info.value)
    assert says in message and str(path) in message and "\n" not in message and code == 2


@pytest.mark.parametrize("name, change, says", [
    ("postings", lambda a, n: a.astype(np.int64) + n, "its postings disagree"),
    ("counts", lambda a, n: a.astype(np.float32), "its counts are not integers"),
    ("text_starts", lambda a, n: a[::-1].copy(), "its text offsets disagree"),
    ("titled", lambda a, n: a.astype(np.int64) - n, "its titles disagree"),
])
def test_load_refuses_columns_that_disagree(index, tmp_path, name, change, says):
    from safetensors import safe_open
    from safetensors.numpy import save_file
    index.save(tmp_path / "good.safetensors")
    with safe_open(str(tmp_path / "good.safetensors"), framework="numpy") as fh:  # metadata kept as it is
        metadata, columns = fh.metadata(), {name: fh.get_tensor(name) for name in fh.keys()}
    columns[name] = change(columns[name], len(index.passages))
    save_file(columns, tmp_path / "bad.safetensors", metadata=metadata)
    with pytest.raises(RetrievalError, match=f"damaged passage index \\({says}\\)"):
        PassageIndex.load(tmp_path / "bad.safetensors")


def test_a_small_texts_index_is_saved_in_small_integers(index, tmp_path):
    from safetensors import safe_open
    index.save(tmp_path / "i.safetensors")
    with safe_open(str(tmp_path / "i.safetensors"), framework="numpy") as fh:
        assert {fh.get_tensor(name).dtype for name in ("postings", "counts", "line")} == {np.dtype(np.uint8)}


def test_runs_from_before_keep_their_json_passages(index, tmp_path):
    rows = [[p.text, p.source, p.line, list(p.titles), p.body, p.page] for p in index.passages]
    record = {"format": "gpt-passages", "version": 5, "k1": 1.5, "b": 0.75, "passages": rows}
    (tmp_path / "v5.json").write_text(json.dumps(record))
    assert list(PassageIndex.load(tmp_path / "v5.json").passages) == index.passages
    (tmp_path / "v4.json").write_text(json.dumps({**record, "version": 4, "passages": [row[:-1] for row in rows]}))
    again = PassageIndex.load(tmp_path / "v4.json")  # version 4 wrote the same rows without a page
    assert list(again.passages) == index.passages and again.search("water") == index.search("water")


def test_a_pdf_passage_is_cited_by_its_page(tmp_path):
    pytest.importorskip("pypdf")
    from .test_documents import pdf
    path = pdf(tmp_path / "plants.pdf", [["Plant notes", "Monstera", "Monstera is a genus of flowering plants."],
                                         ["12"],  # a page with nothing but its number: no text of its own
                                         ["Watering", "Water when the soil is dry."], ["Repotting", "In spring."]],
               [("Monstera", 0, 1), ("Watering", 2, 1), ("Repotting", 3, 1)])
    index = PassageIndex.build([path])
    watering = index.search("What is Watering?")[0]
    assert watering.text == "Watering\nWater when the soil is dry." and (watering.page, watering.cited()) == (
        3, f"{path}, page 3")
    assert [(p.page, p.line) for p in index.passages] == [(1, 1), (1, 3), (3, 5), (4, 7)]  # page 2 gave no line
    index.save(tmp_path / "index.safetensors")
    assert list(PassageIndex.load(tmp_path / "index.safetensors").passages) == index.passages
    assert passages_of("# Notes\nText.\n", "notes.md")[0].cited() == "notes.md:2"  # a text: its line


TITLED = """# Widgets

## Foo

A widget used for bar. It has two ends.

More about foo, later.

## Foo bar

Foo bar foo bar foo, foo foo: a foo of foos.

Baz: a thing that bazzes now and then.

Q: How do I reset the baz?
A: Hold its button. Then wait.
"""


def test_passages_know_their_titles_and_where_their_entry_starts():
    got = [(p.titles, p.text[p.body:]) for p in passages_of(TITLED, "w.md")]
    assert got == [
        (("Foo",), "A widget used for bar. It has two ends."),
        ((), "More about foo, later."),  # not the first paragraph under its heading: no entry of its own
        (("Foo bar",), "Foo bar foo bar foo, foo foo: a foo of foos."),
        (("Baz",), "a thing that bazzes now and then."),
        (("How do I reset the baz?",), "Hold its button. Then wait."),
    ]


@pytest.mark.parametrize("question, line", [
    ("What is Foo?", 5), ("what does FOO mean", 5), ("Tell me about the foo bar.", 11), ("Define baz.", 13),
    ("Explain  Baz", 13), ("How do I reset the baz?", 15), ("how do i reset the baz", 15),
])
def test_a_passage_titled_with_the_questions_subject_ranks_first(question, line):
    index = PassageIndex.build([("w.md", TITLED)])
    assert index.search(question, k=2)[0].line == line


def test_without_titles_bm25_would_rank_a_neighbour_first():
    index = PassageIndex.build([("w.md", TITLED)])
    untitled = PassageIndex([dataclasses.replace(p, titles=()) for p in index.passages])
    assert untitled.search("What is Foo?", k=1)[0].line == 11  # "Foo bar foo bar foo ...": more foo
    assert index.search("What is Foo?", k=3)[0].line == 5 and index.search("What is Foo?", k=3)[1].line == 11
    assert index.search("What is Qux?") == [] and index.search("Which widget is foo?")[0].line == 11


def test_question_subject_and_title_key():
    assert retrieval.question_subject("What is meant by  the Foo Bar ?") == "the Foo Bar"
    assert retrieval.question_subject("Can you describe X?") == "X"
    assert retrieval.question_subject("How do I water it?") == "How do I water it?"
    assert [retrieval.question_subject(q) for q in ("Who was Ada Lovelace?", "who's alice", "Who are the Montagues?")] \
        == ["Ada Lovelace", "alice", "the Montagues"]
    assert retrieval.title_key("The **Foo  Bar**:") == "foo bar" == retrieval.title_key("foo bar?")
    assert [retrieval.title_key(t) for t in ("Lambdas", "Classes", "boxes", "class", "bus")] == [
        "lambda", "class", "box", "class", "bus"]


def test_a_definitional_sentence_titles_its_untitled_paragraph():
    """The sentences before the definition become a passage of their own: the titled one opens with its entry,
    so a small context shows the definition with nothing before it to cut."""
    text = ("Statements come in groups.\n\n"
            "Compound statements contain other statements. A suite is a group of statements\n"
            "controlled by a clause. A suite can be one line.\n\n"
            "The try statement specifies exception handlers for a suite of statements and a clause.\n")
    index = PassageIndex.build([("lang.rst", text)])
    best = index.search("What is a suite?", 1)[0]
    assert best.line == 3 and best.titles == ("a suite",)
    assert best.text == "A suite is a group of statements\ncontrolled by a clause. A suite can be one line."
    assert [p.text for p in index.passages][:2] == ["Statements come in groups.",
                                                    "Compound statements contain other statements."]
    assert [p.titles for p in index.passages] == [(), (), ("a suite",), ()]  # no other sentence defines a term
    book = open_book(index, "What is a suite?", 128)
    assert book.answer == "A suite is a group of statements controlled by a clause."
    assert open_book(index, "What is a suite?", 40).answer.startswith("A suite is")  # a context of 40 tokens


def test_setext_and_rst_headings_title_passages_and_leave_their_text():
    """Underlined titles (Markdown's setext, reStructuredText with or without an overline) are headings, nested
    in the order their underline characters first appear; no underline is left in a passage's text."""
    text = ("*******\nLambdas\n*******\n\nA lambda is a small anonymous function.\n\n"
            "Syntax\n======\n\nlambda_expr ::= \"lambda\" [parameters] \":\" expression\n\n"
            "*******\nClosures\n*******\n\nSecond chapter.\n\n"
            "Details\n-------\nA paragraph of\ntwo lines\n---\n")
    got = [(p.text, p.titles, p.line) for p in passages_of(text, "ref.rst")]
    assert got == [
        ("Lambdas\nA lambda is a small anonymous function.", ("Lambdas",), 5),
        ("Lambdas > Syntax\nlambda_expr ::= \"lambda\" [parameters] \":\" expression", (), 10),  # grammar: no entry
        ("Closures\nSecond chapter.", ("Closures",), 16),
        ("Closures > Details\nA paragraph of\ntwo lines\n---", ("Details",), 20),  # a rule, not an underline
    ]
    assert PassageIndex.build([("ref.rst", text)]).search("What is a lambda?", 1)[0].line == 5


def test_a_title_that_starts_with_the_subject_and_version_notes():
    """'generator' finds "Generator functions" when no title is exactly it; a Sphinx version note right under a
    title is not the title's entry: the paragraph after it is."""
    text = ("Coroutines\n**********\n\nNew in version 3.5.\n\nA coroutine can be suspended and resumed.\n\n"
            "Generator functions\n===================\n\nA function that uses yield is a generator function.\n\n"
            "Other\n=====\n\nThe generator protocol: a generator yields, a generator returns, a generator ends.\n")
    index = PassageIndex.build([("ref.rst", text)])
    assert index.search("What is a generator?", 1)[0].line == 11  # BM25 alone: the "Other" paragraph
    best = index.search("What is a coroutine?", 1)[0]
    assert (best.line, best.titles) == (6, ("Coroutines",))
    assert best.text == "Coroutines\nA coroutine can be suspended and resumed."
    assert [(e.term, e.definition) for e in derive_entries(text)][:1] == [
        ("Coroutines", "A coroutine can be suspended and resumed.")]


def test_grammar_and_sessions_are_not_answers_and_emphasis_marks_the_term():
    """A grammar production or an interpreter session under a title is not the title's entry (nor a derived
    answer): the prose after it is. Among untitled passages, prose ranks before grammar, and a passage where the
    subject is *emphasized* (where the term is introduced) before ones that only use it, however often."""
    text = ("Lambdas\n*******\n\n   lambda_expr ::= \"lambda\" [parameters] \":\" expression\n\n"
            "Lambda expressions create anonymous functions.\n\n"
            "Sessions\n========\n\n>>> 1 + 1\n2\n\nA session shows code and its output.\n\n"
            "Function definitions\n====================\n\n"
            "   decorators ::= decorator+\n   decorator ::= \"@\" name\n\n"
            "Decorators of decorators are decorators: decorators decorate decorators.\n\n"
            "A function definition may be wrapped by one or more *decorator* expressions.\n")
    index = PassageIndex.build([("ref.rst", text)])
    assert index.search("What is a lambda?", 1)[0].text == "Lambdas\nLambda expressions create anonymous functions."
    assert index.search("What is a session?", 1)[0].titles == ("Sessions",)
    assert index.search("What is a session?", 1)[0].line == 14
    ranked = [p.line for p in index.search("What is a decorator?", 3)]
    assert ranked == [24, 22, 19]  # emphasized, then the most mentions in prose, then the grammar
    assert [(e.term, e.definition) for e in derive_entries(text)][:2] == [
        ("Lambdas", "Lambda expressions create anonymous functions."),
        ("Sessions", "A session shows code and its output.")]


def test_definition_list_items_are_passages_titled_with_their_term():
    """A Sphinx glossary and Markdown Extra's "Term / : definition" give one passage per term, titled with it, its
    entry starting at the definition, so open-book answers and derived pairs agree; the heading above titles none."""
    text = ("Glossary\n========\n\n.. glossary::\n\n   decorator\n      A function returning another function,\n"
            "      applied with the @wrapper syntax.\n\n"
            "Monstera\n: A genus of flowering plants in the arum family.\n"
            "Ficus\n: A genus of woody trees and shrubs.\n")
    titled = [(p.text, p.titles, p.line) for p in passages_of(text, "g.rst") if p.titles]
    assert titled == [
        ("Glossary\n   decorator\n      A function returning another function,\n"
         "      applied with the @wrapper syntax.",
         ("decorator",), 6),
        ("Glossary\nMonstera\n: A genus of flowering plants in the arum family.", ("Monstera",), 10),
        ("Glossary\nFicus\n: A genus of woody trees and shrubs.", ("Ficus",), 12)]
    index = PassageIndex.build([("g.rst", text)])
    for entry in derive_entries(text):
        assert open_book(index, f"What is {entry.term}?", 128).answer == entry.definition


def test_among_passages_titled_with_the_subject_the_one_that_opens_with_it_comes_first():
    text = ("Sequences\n   The items of a list are arbitrary objects, in order.\n\n"
            "## Lists\n\nLists are mutable sequences of items, in order.\n")
    index = PassageIndex.build([("types.md", text)])
    assert [p.titles for p in index.passages] == [("Sequences",), ("Lists",)]
    text = text.replace("Sequences\n", "Lists\n")
    index = PassageIndex.build([("types.md", text)])
    assert [p.titles for p in index.passages] == [("Lists",), ("Lists",)]
    assert open_book(index, "What is a list?", 128).answer == "Lists are mutable sequences of items, in order."


def test_front_matter_is_not_a_passage():
    text = "---\ntitle: Monstera care\ntags: [plants, light]\n---\n\n## Monstera\n\nA climbing plant.\n"
    passages = passages_of(text, "monstera.md")
    assert [(p.text, p.line) for p in passages] == [("Monstera\nA climbing plant.", 8)]
    unclosed = "---\ntitle: a note that only starts with a rule\n\nA paragraph.\n"
    assert len(passages_of(unclosed, "note.md")) == 2  # no closing line: no front matter, the text is kept


def test_html_comments_are_not_passage_text():
    text = "## path.delimiter\n\n<!-- YAML\nadded: v0.9.3\n-->\n\nProvides the path delimiter.\n"
    assert [(p.text, p.line, p.titles) for p in passages_of(text, "path.md")] == [
        ("path.delimiter\nProvides the path delimiter.", 7, ("path.delimiter",))]


def test_a_wrapped_glossary_item_is_one_passage():
    text = ("* `silent`: If supported, mapping will be attempted. Failure to map\n"
            "  will be ignored.\n* `off`: No mapping will be attempted.\n")
    assert [(p.text, p.line, p.titles) for p in passages_of(text, "cli.md")] == [
        ("* `silent`: If supported, mapping will be attempted. Failure to map will be ignored.", 1, ("silent",)),
        ("* `off`: No mapping will be attempted.", 3, ("off",))]


def test_a_list_of_contents_ranks_after_prose_and_a_table_does_not():
    """A README's table of contents names every section, so BM25 likes it; it is notation, ranked after prose. A
    table is not: it may be where the fact is."""
    text = ("# Building\n\n* [Building on Windows](#building-on-windows)\n* [Building on Linux](#building-on-linux)\n\n"
            "## Windows\n\nInstall Visual Studio, then run vcbuild.bat to build.\n\n"
            "## Watering\n\nPlants like water.\n\n| plant | watering |\n| --- | --- |\n| Monstera | weekly |\n")
    index = PassageIndex.build([("BUILDING.md", text)])
    assert index.search("How do I build on Windows?", k=1)[0].line == 8
    assert index.search("Monstera watering", k=1)[0].text.endswith("| Monstera | weekly |")
    assert [e.term for e in derive_entries("## Contents\n\n* [Windows](#windows)\n* [Linux](#linux)\n")] == []


def test_a_faq_title_is_its_question_without_q():
    assert [p.titles for p in passages_of("## Q: Does the CLI check sums?\n\nYes, when it can.\n", "faq.md")] == [
        ("Does the CLI check sums?",)]


def test_only_question_words_leave_a_query():
    """The words of a question that say what it asks about all count: "dropped" picks its passage here."""
    text = "Key frame: a frame stored whole, the others as changes.\n\nDropped frame: a frame the player skipped.\n"
    index = PassageIndex.build([("video.md", text)])
    assert index.search("Which frame was dropped?", k=1)[0].text.startswith("Dropped frame")
    assert retrieval.QUESTION_WORDS >= {"what", "which", "was"} and not retrieval.QUESTION_WORDS & {"dropped", "frame"}


CHINESE_NOTES = """# 龟背竹

龟背竹是天南星科龟背竹属的植物，原产于墨西哥南部的热带雨林。它的叶片有独特的裂口和孔洞。

## 浇水

土壤表面干燥时浇水，冬季减少浇水次数。

# 仙人掌

仙人掌是一种耐旱的多肉植物。它需要充足的阳光，很少需要浇水。
"""


def test_chinese_and_japanese_are_searched_by_character_pairs():
    assert words("龟背竹是什么？ Plants of 日本") == ["龟背", "背竹", "竹是", "是什", "什么", "plant", "of", "日本"]
    assert words("花") == ["花"] and words("カメラ") == ["カメ", "メラ"]
    index = PassageIndex.build([("植物.md", CHINESE_NOTES)])
    asked = [("龟背竹是什么？", "龟背竹"), ("冬季怎么浇水？", "龟背竹 > 浇水"), ("仙人掌需要阳光吗？", "仙人掌")]
    for question, title in asked:
        assert index.search(question, k=1)[0].text.startswith(title + "\n"), question  # before: nothing found
    assert [retrieval.question_subject(q) for q in ("龟背竹是什么？", "什么是浇水", "モンステラとは何ですか？")] == [
        "龟背竹", "浇水", "モンステラ"]  # asked about a title: that passage first, as for "What is X?"
    crowded = PassageIndex.build([("植物.md", CHINESE_NOTES), ("问答.md", "什么是什么？这是一个问题。" * 3)])
    assert crowded.search("龟背竹是什么？", k=1)[0].text.startswith("龟背竹\n")
    book = open_book(index, "龟背竹是什么？", block_size=256)
    assert book.answer == "龟背竹是天南星科龟背竹属的植物，原产于墨西哥南部的热带雨林。"  # a sentence ends at "。"


def test_a_definition_under_another_title_titles_its_passage_too():
    """A README's "## Description" opening with "Alda is a ..." answers "What is Alda?", not the paragraph that
    says Alda most often."""
    text = ("# Alda layer\n\n## Description\nAlda is a music composition language.\n\n"
            "This layer adds key bindings for Alda: Alda code played by the Alda server, started if Alda is not.\n")
    best = PassageIndex.build([("README.md", text)]).search("What is Alda?", 1)[0]
    assert best.titles == ("Description", "Alda") and best.line == 4
    monstera = passages_of("## Monstera\nMonstera is a genus of plants.\n", "m.md")[0]
    assert monstera.titles == ("Monstera",)  # one title when the two name the same thing


def test_a_passage_after_form_feeds_is_cited_at_its_line():
    """An RFC puts a form feed between its pages; str.splitlines counts one more line at each."""
    page = "Some text of the page.\n\n[Page 1]\n\f\n"
    text = page * 3 + "Monstera is a genus of plants.\n"
    (found,) = PassageIndex.build([("rfc.txt", text)]).search("What is Monstera?", 1)
    assert found.cited() == "rfc.txt:13" == f"rfc.txt:{text.split(chr(10)).index('Monstera is a genus of plants.') + 1}"
    assert [e.line for e in derive_entries(text, "rfc.txt")] == [13]


def test_a_section_titled_with_the_question_is_found_by_its_subject():
    """An FAQ's "## What is CRAN?": the subject asked is CRAN; the section's second paragraph, which BM25 alone
    prefers (more of the question's words), is not its answer."""
    text = ("## What is CRAN?\n\nThe Comprehensive R Archive Network is a collection of sites.\n\n"
            "Each CRAN site has CRAN code, and what CRAN is for is said above.\n\n"
            "## Mirrors\n\nMirrors copy CRAN.\n\nQ: What is a mirror?\nA: A copy of a site.\n")
    index = PassageIndex.build([("faq.md", text)])
    assert index.search("What is CRAN?", 1)[0].line == 3
    assert index.search("What is a mirror?", 1)[0].text.endswith("A: A copy of a site.")


def test_a_plain_text_title_over_its_sentence_heads_its_passage():
    """"Ficus" over "Ficus is a genus of trees.": the passage's entry (what an answer quotes) is the sentence alone,
    under "Ficus" as under a heading; a table's cell over another ("|CodeRay" over "|coderay") is no title."""
    text = "Plants\n\nFicus\nFicus is a genus of trees.\nIt grows.\n\nMore about it.\n\n|CodeRay\n|coderay (>= 1.1)\n"
    ficus, more, table = PassageIndex.build([("notes.txt", text)]).passages[1:]
    assert (ficus.line, ficus.titles) == (4, ("Ficus",))
    assert ficus.text[ficus.body:] == "Ficus is a genus of trees.\nIt grows."
    assert (more.text, more.titles) == ("Ficus\nMore about it.", ())  # still under it, as under a heading
    assert (table.line, table.titles, table.text) == (9, (), "Ficus\n|CodeRay\n|coderay (>= 1.1)")


def test_a_large_text_ranks_its_best_passages_by_bm25_in_full(monkeypatch):
    notes = [f"## Care {i}\n\nFern {'fern ' * (i % 4)}tips {name}." for i, name in enumerate(
        ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"])]
    index = PassageIndex.build([("ferns.md", "\n\n".join(notes))])
    whole = [(p.line, p.score) for p in index.search("fern", k=5)]
    assert [line for line, _ in whole] == [15, 31, 11, 27, 7]  # "fern" 4 times, 3 times, then the first of 2 times
    monkeypatch.setattr(retrieval, "CANDIDATES", 5)  # a text where more passages hold the words than are ranked
    assert [(p.line, p.score) for p in index.search("fern", k=5)] == whole  # the 5 best by BM25, ties: the earlier
    monkeypatch.setattr(retrieval, "CANDIDATES", 2)
    assert [(p.line, p.score) for p in index.search("fern", k=5)] == whole[:2]
