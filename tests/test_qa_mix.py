"""Questions from the user's own text, mixed into training: derived, rendered, trained on, answered."""

import json

import pytest

from gpt import qa_mix
from gpt.config import resolve
from gpt.documents import Document
from gpt.qa import Entry, QAError, QAPair, derive_entries, derive_pairs
from gpt.qa_mix import (
    FORMS,
    aim_at_recall,
    augmented_text,
    conversations,
    derived_pairs,
    entry_share,
    leading_sentences,
    recall_overrides,
    render_entry,
    source_documents,
    text_passages,
)
from gpt.retrieval import PassageIndex

from .conftest import TINY, run_gpt
from .test_qa import FAQ, MARKDOWN
from .test_qa import GLOSSARY as QA_GLOSSARY

GLOSSARY = "\n".join(f"{name}: {text}" for name, text in [
    ("Monstera", "a climbing plant with split leaves."), ("Pothos", "a trailing vine for low light."),
    ("Fern", "a plant that spreads by spores."), ("Cactus", "a succulent that stores water."),
    ("Orchid", "a flower that grows on trees."), ("Basil", "a herb that loves the sun."),
    ("Ivy", "a climber that clings to walls."), ("Aloe", "a succulent with a soothing gel."),
    ("Bamboo", "a grass that grows very fast."), ("Tulip", "a bulb that flowers in spring."),
    ("Moss", "a small plant without roots."), ("Palm", "a tree with a crown of leaves."),
]) + "\n"


@pytest.fixture()
def notes(tmp_path):
    path = tmp_path / "glossary.txt"
    path.write_text(GLOSSARY)
    return path


def test_pairs_and_open_book_conversations_come_from_the_structure(notes, monkeypatch):
    cfg = resolve(preset="tiny", overrides={"data.input": [str(notes)], "model.block_size": 128})
    pairs = derived_pairs(cfg, source_documents(cfg, [str(notes)]), log=lambda m: None)
    assert ("What is Monstera?", "a climbing plant with split leaves.") in {(p.question, p.answer) for p in pairs}
    index = text_passages(source_documents(cfg, [str(notes)]))
    chats = conversations(pairs, index, cfg)
    open_book = [c for c in chats if c[0]["content"].startswith("Context:")]
    typed = [[c[0]["content"], c[1]["content"]] for c in chats if c[0]["content"].startswith("what is ")]
    assert ["what is monstera", "a climbing plant with split leaves."] in typed  # as people type it, too
    assert len(typed) == len(pairs) // 2  # one per entry (of its two phrasings, "What is X?")
    assert len(chats) == 2 * len(pairs) + len(typed) and len(open_book) == len(pairs)  # open-book: one per question
    assert open_book[0] == [
        {"role": "user", "content": "Context:\nMonstera: a climbing plant with split leaves.\n\n"
                                    "Question: What is Monstera?"},  # no other passage says "monstera"
        {"role": "assistant", "content": "a climbing plant with split leaves."}]
    assert all(c[1]["content"] in c[0]["content"].split("\n")[1] for c in open_book)  # copied from the best one
    assert len(conversations(pairs, index, cfg, share=0.5)) == len(pairs) + len(typed) + len(pairs) // 2
    monkeypatch.setattr(qa_mix, "OPEN_BOOK_MAX", 3)  # a large text: a sample of its questions, each a search
    capped = [c[0]["content"] for c in conversations(pairs, index, cfg) if c[0]["content"].startswith("Context:")]
    asked = [q.rsplit("Question: ", 1)[1] for q in capped]
    assert len(capped) == 3 and asked == [p.question for p in pairs if p.question in asked]  # in the text's order
    tiny = resolve(preset="tiny", overrides={"data.input": [str(notes)]})  # a 32-token context: no room for them
    assert not [c for c in conversations(pairs, index, tiny) if c[0]["content"].startswith("Context:")]
    off = resolve(preset="tiny", overrides={"data.input": [str(notes)], "data.qa": "off"})
    assert derived_pairs(off, source_documents(off, [str(notes)]), log=lambda m: None) == []


def test_prose_without_structure_derives_nothing(tmp_path):
    prose = tmp_path / "story.txt"
    prose.write_text("it was a quiet morning and the garden slept under the fog, waiting for the sun. " * 50)
    cfg = resolve(preset="tiny", overrides={"data.input": [str(prose)]})
    assert derived_pairs(cfg, source_documents(cfg, [str(prose)]), log=lambda m: None) == []


def test_a_text_that_is_mostly_entries_is_trained_for_recall(notes, tmp_path):
    cfg = resolve(preset="cpu", overrides={"data.input": [str(notes)]})
    documents = source_documents(cfg, [str(notes)])
    pairs = derived_pairs(cfg, documents, log=lambda m: None)
    definitions = [line.split(": ", 1)[1] for line in GLOSSARY.splitlines()]
    assert entry_share(documents, pairs) == sum(map(len, definitions)) / len(GLOSSARY)  # each once, not per question
    story = "it was a quiet morning and the garden slept under the fog, waiting for the sun. " * 50
    assert entry_share([Document("story", story + GLOSSARY)], pairs) < 0.1  # the same entries in a longer prose text
    assert recall_overrides(cfg, 0.9) == {"model.drop_path": 0.0, "train.weight_decay": 0.1, "train.max_epochs": 0,
                                          "data.chat_weight": 0.25, "data.chat_weight_decay": 0.5,
                                          "tokenizer.vocab_size": 4096, "model.n_layer": 2, "train.muon_lr": 3e-3}
    assert recall_overrides(cfg, 0.1) == {}  # prose with a few definitions: the preset's regulariser stays
    assert recall_overrides(resolve(overrides={"data.chat_weight": 0.25, "data.chat_weight_decay": 0.5,
                                               "tokenizer.vocab_size": 8192}), 0.9) == {}  # another model: as set
    said = []
    assert aim_at_recall(cfg, documents, pairs, {"model.drop_path"}, said.append)
    assert (cfg.model.drop_path, cfg.train.weight_decay, cfg.train.max_epochs) == (0.2, 0.1, 0.0)  # one key was given
    assert (cfg.data.chat_weight, cfg.data.chat_weight_decay) == (0.25, 0.5)
    assert len(said) == 1 and "train.weight_decay 0.1" in said[0] and "drop_path" not in said[0]
    given = resolve(preset="cpu", overrides={"data.input": [str(notes)], "data.chat_weight": 0.75})
    aim_at_recall(given, documents, pairs, {"data.chat_weight"}, said.append)
    assert (given.data.chat_weight, given.data.chat_weight_decay) == (0.75, -1)  # a share given is the run's share
    run = tmp_path / "run"  # end to end: said at start-up, and kept in the run's config
    notes.write_text("".join(f"Plant {a}{b}: a green plant from the {a}{b} garden that likes water and light.\n"
                             for a in "ABCD" for b in "ABCDEFGHIJKLMNOPQRST"))  # enough text for validation
    proc = run_gpt("train", "--preset", "cpu", "--input", str(notes), "--out", str(run), "--train.max_iters", "2",
                   "--train.eval_iters", "1", "--train.sample_tokens", "0", "--model.n_layer", "1", check=True)
    assert "recall: entries are" in proc.stdout and "model.drop_path 0" in proc.stdout
    assert "regularised from pass" not in proc.stdout  # the header does not announce what was turned off
    saved = resolve(str(run / "config.toml"))
    assert (saved.model.drop_path, saved.train.max_epochs, saved.tokenizer.vocab_size) == (0.0, 0.0, 4096)


def test_a_run_on_notes_answers_a_derived_question(notes, tmp_path):
    run = tmp_path / "run"
    text = notes.read_text() * 20  # enough text for the tiny preset's validation split
    notes.write_text(text)
    proc = run_gpt("train", *TINY, "--input", str(notes), "--out", str(run), "--train.max_iters", "400",
                   "--model.n_embd", "64", "--model.block_size", "96", "--data.chat_weight", "0.7",
                   "--train.eval_interval", "200", "--train.sample_tokens", "0", check=True)
    assert "derived from the text's structure" in proc.stdout
    answers = 0
    for question, answer in [("What is Monstera?", "a climbing plant with split leaves."),
                             ("What is Pothos?", "a trailing vine for low light."),
                             ("What is Fern?", "a plant that spreads by spores.")]:
        got = run_gpt("ask", question, "--out", str(run), "--closed", "--temperature", "0", check=True).stdout
        answers += got.strip() == answer
    assert answers >= 2  # held-out questions may miss; trained ones are recalled
    own = run_gpt("ask", "What is Ivy?", "--out", str(run), check=True)  # by default from the run's own text
    assert own.stderr.startswith(f"source: {notes}:") and own.stdout.strip() in " ".join(GLOSSARY.split())
    both = run_gpt("ask", "What is Ivy?", "--out", str(run), "--closed", "--source", str(notes))
    assert both.returncode != 0 and both.stderr.count("\n") == 1 and "--closed" in both.stderr
    kept = PassageIndex.load(run / "passages.safetensors")  # a run from before kept its passages as JSON
    rows = [[p.text, p.source, p.line, list(p.titles), p.body, p.page] for p in kept.passages]
    (run / "passages.json").write_text(json.dumps({"format": "gpt-passages", "version": 5, "k1": 1.5, "b": 0.75,
                                                   "passages": rows}))
    (run / "passages.safetensors").unlink()
    assert run_gpt("ask", "What is Ivy?", "--out", str(run), check=True).stdout == own.stdout
    (run / "passages.json").write_bytes(b"\x00broken")
    broken = run_gpt("ask", "What is Ivy?", "--out", str(run))
    assert broken.returncode != 0 and broken.stderr.count("\n") == 1 and "passages.json" in broken.stderr
    book = run_gpt("ask", "What is Monstera?", "--out", str(run), "--source", str(notes), "--temperature", "0",
                   check=True)  # open-book: passages fitted to the 96-token context, and named
    assert book.stderr.startswith(f"source: {notes}:") and book.stdout.strip()
    from gpt.ask import asked_open_book
    from gpt.generate import Generator
    gen, index = Generator(run, "cpu"), PassageIndex.build([notes])
    documents = source_documents(gen.config, [str(notes)])
    pairs = derived_pairs(gen.config, documents, print)
    trained = [c for c in conversations(pairs, text_passages(documents), gen.config,
                                             tokenizer=gen.tokenizer)
               if c[0]["content"].startswith("Context:")]  # as prepare_run built them
    assert len(trained) >= 12
    for user, answer in trained:  # the run was trained on exactly the prompt gpt ask --source builds for it
        book = asked_open_book(gen, index, user["content"].rsplit("\nQuestion: ", 1)[1])
        assert (book.prompt, book.answer) == (user["content"], answer["content"])


def test_open_book_prompts_keep_the_best_passage_first_and_room_for_its_first_sentence():
    from gpt.retrieval import open_book
    text = ("## Monstera\n\nA climbing plant with split leaves. " + "It grows fast in warm rooms. " * 12 +
            "\n\n## Pothos\n\nA trailing vine. Monstera cuttings root like it.\n")
    index = PassageIndex.build([("p.md", text)])
    big = open_book(index, "Tell me about monstera.", 1024)  # room for both passages, whole
    assert big.prompt.startswith("Context:\nMonstera\nA climbing plant with split leaves. It grows fast")
    assert "\n\nPothos\nA trailing vine." in big.prompt and big.prompt.endswith("\n\nQuestion: Tell me about monstera.")
    assert big.answer == "A climbing plant with split leaves." and [p.line for p in big.passages] == [3, 7]
    small = open_book(index, "Tell me about monstera.", 64)  # 3 * (64 - 12) characters for prompt and answer
    assert small.answer == big.answer and len(small.passages) == 1 and "Pothos" not in small.prompt
    assert small.prompt.startswith("Context:\nMonstera\nA climbing plant with split leaves. It grows fast")
    assert len(small.prompt) + len(small.answer) <= 3 * (64 - 12) + len("Context:\n\n\nQuestion: ")
    cut = open_book(index, "Tell me about monstera.", 44)  # the answer itself is cut at a word, the passage says so
    assert cut.prompt == "Context:\nMonstera\nA climbing plant with split ...\n\nQuestion: Tell me about monstera."
    assert cut.answer == "A climbing plant with split"
    assert open_book(index, "Tell me about monstera.", 40) == retrieval_none("Tell me about monstera.")
    shrunk = open_book(index, "Tell me about monstera.", 64, fits=lambda prompt, answer: len(prompt) < 100)
    assert len(shrunk.prompt) < 100 and shrunk.answer.startswith("A climbing")


def retrieval_none(question):
    from gpt.retrieval import OpenBook
    return OpenBook(question, [], "")


def test_gpt_qa_writes_pairs_and_refuses_notes_without_structure(notes, tmp_path):
    out = tmp_path / "qa.jsonl"
    proc = run_gpt("qa", "--input", str(notes), "--out", str(out), check=True)
    assert "question/answer pairs" in proc.stdout
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "user", "content": "What is Monstera?"}
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "story.txt").write_text("nothing here but a quiet line of prose.\n")
    proc = run_gpt("qa", "--input", str(empty), "--to", str(tmp_path / "none.jsonl"))
    assert proc.returncode == 2 and "no questions found" in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text(out.read_text().splitlines()[0] + "\n{not json\n")
    proc = run_gpt("train", *TINY, "--input", str(broken), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and f"{broken}:2" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_questions_too_long_for_the_context_leave_the_text_to_train_on(tmp_path):
    """Derived questions that cannot fit the context, even cut to their first words, are not the user's error:
    the run trains on the text."""
    notes = tmp_path / "long.md"
    import hashlib  # random words: no vocabulary packs five of them into a tiny context
    words = [" ".join(hashlib.sha256(f"{i} {j}".encode()).hexdigest() for j in range(5)) for i in range(40)]
    notes.write_text("".join(f"## Term{i}\n\nTerm{i} is {words[i]} that runs on well past the few tokens "
                             f"of a tiny context, sentence after sentence, word after word.\n\n" for i in range(40)))
    proc = run_gpt("train", *TINY, "--input", str(notes), "--out", str(tmp_path / "run"), "--train.max_iters", "3",
                   "--train.sample_tokens", "0", check=True)
    assert "questions: none fits the context of 33 tokens; training on the text alone" in proc.stdout


def test_render_entry_forms_read_back():
    for form in FORMS:
        text = render_entry("repotting", "moving a plant into a bigger pot.", form)
        (entry,) = derive_entries(text)
        assert entry.term.lower() == "repotting", (form, text)
    assert render_entry("cactus", "a plant that stores water.", "sentence") == "Cactus is a plant that stores water."
    assert render_entry("Ficus", "Ficus is a genus.", "sentence") == "Ficus is a genus."
    assert render_entry("Ficus", "grows fast here", "sentence") == "Ficus: grows fast here"
    with pytest.raises(QAError):
        render_entry("x", "y", "poem")


def test_augmented_text_shuffles_per_epoch_and_keeps_every_fact():
    pairs = derive_pairs(MARKDOWN + "\n" + QA_GLOSSARY + "\n" + FAQ)
    facts = {(p.answer) for p in pairs}
    epochs = [augmented_text(pairs, seed=0, epoch=e) for e in range(4)]
    assert epochs[0] == augmented_text(pairs, seed=0, epoch=0)
    assert len(set(epochs)) == 4
    for text in epochs:
        assert all(fact in text for fact in facts)
        assert sum(text.count(fact) for fact in facts) == len(facts)  # each fact once, not once per phrasing
        again = {(e.kind == "faq", e.term.lower().removeprefix("a ")) for e in derive_entries(text)}
        assert {(False, t) for t in ("monstera", "pothos", "repotting", "node", "aerial root")} <= again
    entries = [Entry("Fern", "a plant without flowers or seeds.", "glossary")]
    assert augmented_text(entries) in {render_entry("Fern", entries[0].definition, f) + "\n" for f in FORMS}
    assert augmented_text([]) == ""


def test_renderings_carry_the_leading_sentences(monkeypatch):
    definition = "A tropical plant with split leaves. It climbs. Water it weekly."
    assert leading_sentences(definition, 1) == "A tropical plant with split leaves."
    assert leading_sentences(definition, 2) == "A tropical plant with split leaves. It climbs."
    assert leading_sentences(definition, 0) == leading_sentences(definition, 9) == definition
    chinese = "他说：“好。”然后走了。龟背竹是一种植物。它很大！？真的。"  # no spaces; may end after a quote
    assert [leading_sentences(chinese, n) for n in (1, 2, 3)] == [
        "他说：“好。”", "他说：“好。”然后走了。", "他说：“好。”然后走了。龟背竹是一种植物。"]
    assert leading_sentences(chinese, 4) == "他说：“好。”然后走了。龟背竹是一种植物。它很大！？"
    monkeypatch.setattr(qa_mix, "RENDERED_SENTENCES", 1)
    text = augmented_text([Entry("Monstera", definition, "glossary")])
    assert "split leaves." in text and "climbs" not in text


def test_a_closed_book_answer_too_long_for_the_context_is_cut_to_its_first_sentences():
    from gpt.qa_mix import fitted_answer
    first, second = "Monstera is a climbing plant from the forests of Central America.", "Its leaves split."
    answer = f"{first} {second} It likes bright shade."
    pair = QAPair("What is Monstera?", answer, "", "heading")
    room = len(pair.question) + len(first) + len(second) + 1
    fits = lambda question, text: len(question) + len(text) <= room  # noqa: E731 (room counted in characters)
    assert fitted_answer(pair, fits) == f"{first} {second}"
    assert fitted_answer(pair, lambda q, t: len(t) <= 30) == "Monstera is a climbing plant"  # first words
    assert fitted_answer(pair, lambda q, t: len(t) <= 20) == answer  # not even MIN_WORDS: packing skips it
    assert fitted_answer(pair, None) == answer


def test_conversations_fit_long_answers_to_the_runs_context(notes):
    from gpt.bpe import Tokenizer
    from gpt.chat import render
    from gpt.conversations import fits_window
    cfg = resolve(preset="tiny", overrides={"data.input": [str(notes)], "model.block_size": 32})
    tok = Tokenizer.train([GLOSSARY * 3], 300, special_tokens=["<|endoftext|>", "<|user|>", "<|assistant|>",
                                                                "<|system|>", "<|end|>"])
    long = [QAPair(f"What is {n}?", f"{n} is a plant. " * 12 + "It grows.", "", "heading") for n in ("Fern", "Moss")]
    chats = conversations(long, text_passages([]), cfg, 0.0, tok)
    assert len(chats) == 4 and all(fits_window(render(tok, c)[0], 32) for c in chats)  # "what is fern" too
    assert all(c[1]["content"] and long[0].answer.replace("Fern", c[0]["content"][8:-1]).startswith(c[1]["content"])
               for c in chats[:2])
    assert [c[1] for c in chats[2:]] == [c[1] for c in chats[:2]]
