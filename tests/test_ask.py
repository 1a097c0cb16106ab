"""From document completer to assistant, through the real CLI: train on conversations, ask, chat, serve, export."""

import json

import pytest

from .conftest import TINY, run_gpt, start_server, stop_server

QA = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a, b in
      [(1, 2), (3, 4), (5, 6), (7, 8), (2, 9), (4, 4), (6, 1), (8, 3), (9, 9), (3, 7)]] + \
     [(f"Name the colour of {thing}.", f"{thing.capitalize()} is {colour}.") for thing, colour in
      [("grass", "green"), ("the sky", "blue"), ("snow", "white"), ("coal", "black"), ("a lemon", "yellow"),
       ("blood", "red"), ("an orange", "orange"), ("a plum", "purple"), ("ash", "grey"), ("chocolate", "brown")]]
TRAINED = QA[:18]  # the last 10% of twenty conversations are held out for the masked validation loss
CHAT_ARGS = ("--train.max_iters", "300", "--model.n_embd", "64", "--train.eval_interval", "100",
             "--train.sample_tokens", "0")


@pytest.fixture(scope="module")
def qa_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("qa") / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QA))
    return path


@pytest.fixture(scope="module")
def chat_run(qa_file):
    run = qa_file.parent / "chat"
    proc = run_gpt("train", *TINY, "--input", str(qa_file), "--out", str(run), *CHAT_ARGS, check=True)
    assert "18 to train on, 2 held out" in proc.stdout
    return run


def test_a_model_trained_on_twenty_pairs_answers_each_trained_question_exactly(chat_run):
    records = [json.loads(line) for line in (chat_run / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records if "loss" in r][-1] < 0.01
    assert "val_chat_loss" in records[-1]
    assert not any("weights" in r for r in records)  # no average tried: held-out loss cannot see trained answers
    assert (chat_run / "chat_template.jinja").exists()
    for question, answer in TRAINED[:2]:  # the real CLI for two, the same Generator path in-process for all
        proc = run_gpt("ask", question, "--out", str(chat_run), "--temperature", "0", check=True)
        assert proc.stdout == answer + "\n", question
    from gpt.generate import Generator
    gen = Generator(chat_run, "cpu")
    for question, answer in TRAINED:
        reply = gen.chat([{"role": "user", "content": question}], gen.options(temperature=0))
        assert (reply.text, reply.finish_reason) == (answer, "stop"), question


def test_a_base_run_answers_as_a_continuation_and_says_so(corpus_file, tmp_path):
    base = tmp_path / "base"
    run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(base), "--train.max_iters", "5",
            "--data.qa", "off", check=True)
    proc = run_gpt("ask", "What is a decorator?", "--out", str(base), "--max-new-tokens", "5", check=True)
    assert proc.stderr.count("base run without a chat format") == 1
    empty = run_gpt("ask", "  ", "--out", str(base))
    assert (empty.returncode, empty.stdout) == (2, "") and empty.stderr.strip().count("\n") == 0
    assert "the question is empty" in empty.stderr


def test_fine_tuning_a_base_run_on_conversations_grows_its_vocabulary(corpus_file, qa_file, tmp_path):
    from safetensors.torch import load_file
    base = tmp_path / "base"
    run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(base), "--train.max_iters", "10",
            "--model.n_embd", "64", "--model.block_size", "64", "--data.qa", "off", check=True)
    tuned = tmp_path / "tuned"
    proc = run_gpt("train", *TINY, "--init-from", str(base), "--input", str(qa_file), "--out", str(tuned),
                   "--train.max_iters", "600", "--train.eval_interval", "300", "--train.sample_tokens", "0", check=True)
    assert "4 new token rows (chat tokens)" in proc.stdout
    old, new = load_file(str(base / "model.safetensors")), load_file(str(tuned / "model.safetensors"))
    assert new["wte.weight"].shape[0] == old["wte.weight"].shape[0] + 4
    question, answer = TRAINED[0]
    assert run_gpt("ask", question, "--out", str(tuned), "--temperature", "0", check=True).stdout == answer + "\n"


def test_text_and_conversations_in_one_run_report_both_losses(corpus_file, qa_file, tmp_path):
    run = tmp_path / "mixed"
    proc = run_gpt("train", *TINY, "--input", str(corpus_file), str(qa_file), "--out", str(run),
                   "--train.max_iters", "20", "--data.chat_weight", "0.25", "--model.block_size", "64", check=True)
    assert "conversations" in proc.stdout
    final = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert {"val_loss", "val_bpb", "val_chat_loss"} <= set(final)


def test_bad_conversations_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                            {"role": "robot", "content": "beep"}]}) + "\n")
    proc = run_gpt("train", *TINY, "--input", str(bad), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and f"{bad}:1" in proc.stderr and "robot" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_hugging_face_chat_template_gives_our_ids(chat_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    from gpt.bpe_formats import load_tokenizer
    from gpt.chat import render
    run_gpt("export", "--out", str(chat_run), "--format", "hf", "--to", str(tmp_path / "hf"), check=True)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    ours = load_tokenizer(chat_run / "tokenizer.json")
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QA[0][0]},
                    {"role": "assistant", "content": QA[0][1]}, {"role": "user", "content": "And snow? ❄️"}]
    for prompt in (True, False):
        expected = render(ours, conversation if prompt else conversation[:3], add_generation_prompt=prompt)[0]
        got = theirs.apply_chat_template(conversation if prompt else conversation[:3], tokenize=True,
                                         add_generation_prompt=prompt, return_dict=False)
        assert list(got) == expected


def test_server_chat_uses_the_template(chat_run):
    openai = pytest.importorskip("openai")
    pytest.importorskip("fastapi")
    proc, base = start_server(chat_run)
    try:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=60)
        question, answer = TRAINED[3]
        messages = [{"role": "user", "content": question}]
        out = client.chat.completions.create(model="chat", messages=messages, temperature=0, max_tokens=30)
        assert out.choices[0].message.content == answer and out.choices[0].finish_reason == "stop"
        stream = client.chat.completions.create(model="chat", messages=messages, temperature=0, max_tokens=30,
                                                stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == answer
    finally:
        stop_server(proc)


NOTES = """# Sums and colours

Sums: 1 plus 2 is 3, and 3 plus 4 is 7; 5 plus 6 is 11.

Colours: grass is green, the sky is blue and snow is white.
"""


def test_open_book_answers_are_quoted_from_the_passages_unless_free(qa_file, tmp_path):
    chat_run = tmp_path / "book"  # a context with room for passages; a few steps: quoting holds for any weights
    run_gpt("train", *TINY, "--input", str(qa_file), "--out", str(chat_run), "--model.block_size", "256",
            "--train.max_iters", "20", "--train.sample_tokens", "0", check=True)
    notes = tmp_path / "notes.md"
    notes.write_text(NOTES)
    question = TRAINED[0][0]
    proc = run_gpt("ask", question, "--out", str(chat_run), "--source", str(notes), check=True)
    (source,) = proc.stderr.splitlines()  # a quote: the one passage it comes from, named after it
    line = int(source.removeprefix(f"source: {notes}:"))
    assert proc.stdout.strip() and proc.stdout.strip() in NOTES.splitlines()[line - 1], (proc.stdout, line)
    free = run_gpt("ask", question, "--out", str(chat_run), "--source", str(notes), "--free", check=True)
    nothing = run_gpt("ask", "What is a zyzzyva?", "--out", str(chat_run), "--source", str(notes), check=True)
    assert nothing.stderr.startswith("note: no passage matches the question") and "source:" not in nothing.stderr
    from gpt.ask import asked_open_book
    from gpt.generate import Generator
    from gpt.retrieval import PassageIndex
    gen = Generator(chat_run, "cpu")
    index = PassageIndex.build([notes])
    book = asked_open_book(gen, index, question)
    assert free.stderr.splitlines() == [f"source: {notes}:{p.line}" for p in book.passages]  # all it was shown
    assert line == book.passages[0].line  # quoted from the best passage, as open-book answers are trained
    from gpt.serve import Service
    both = "Is 1 plus 2 grass green?"  # words of both passages
    asked = Service(gen, index).open_book([{"role": "user", "content": both}])
    assert len(asked.passages) == 2 and len(asked.quote(gen).source_starts) == 1  # the server quotes the best alone
    assert asked.sources() == [asked.passages[0]]
    pytest.importorskip("pypdf")  # the same notes as a PDF: the passage is cited by its page, not a line of text
    from .test_documents import pdf
    paper = pdf(tmp_path / "notes.pdf", [["Colours: grass is green, the sky is blue and snow is white."],
                                         ["Sums: 1 plus 2 is 3, and 3 plus 4 is 7; 5 plus 6 is 11."]], [])
    proc = run_gpt("ask", question, "--out", str(chat_run), "--source", str(paper), check=True)
    assert proc.stderr.splitlines() == [f"source: {paper}, page 2"] and proc.stdout.strip() in NOTES
    talk = run_gpt("chat", "--out", str(chat_run), "--source", str(notes), input=f"{question}\n \n{both}\n",
                   check=True)  # gpt chat answers each question as gpt ask does; a blank line is passed over
    assert talk.stderr.splitlines() == [f"source: {notes}:{line}", f"source: {notes}:{asked.passages[0].line}"]
    assert f"> {proc.stdout.strip()}\n> " in talk.stdout
    messages = [{"role": "user", "content": book.prompt}]
    assert free.stdout == "".join(gen.stream_chat(messages, gen.options(temperature=0))).lstrip() + "\n"
    for question, _ in QA:  # greedy and sampled, every question: a span of one shown passage
        book = asked_open_book(gen, index, question)
        messages = [{"role": "user", "content": book.prompt}]
        for temperature in (0.0, 1.0):
            opts = gen.options(temperature=temperature, seed=3)
            reply = "".join(gen.stream_chat(messages, opts, constraint=gen.quote(messages, list(book.shown))))
            assert reply and any(reply in text for text in book.shown), (question, reply)


def test_asking_gives_the_passages_room_before_old_turns(qa_file, tmp_path):
    from gpt.ask import ask, asked_open_book
    from gpt.generate import Generator
    from gpt.retrieval import PassageIndex
    run = tmp_path / "run"
    run_gpt("train", *TINY, "--input", str(qa_file), "--out", str(run), "--model.block_size", "256",
            "--train.max_iters", "2", "--train.sample_tokens", "0", check=True)
    gen, index = Generator(run, "cpu"), PassageIndex.build([("notes.md", NOTES)])
    question = {"role": "user", "content": TRAINED[0][0]}
    system, old = {"role": "system", "content": "Be brief."}, [{"role": "user", "content": "grass " * 80},
                                                            {"role": "assistant", "content": "green " * 80}]
    asked = ask(gen, index, [system, *old, question])
    assert ask(gen, index, [old[1], question]).messages == asked.messages[1:]  # a reply without its question goes
    book = asked_open_book(gen, index, question["content"], system=[system])
    assert asked.messages == [system, {"role": "user", "content": book.prompt}]  # the old exchange gave way
    assert asked.quoted and asked.passages == tuple(book.passages) and asked.sources() == [book.passages[0]]
    free = ask(gen, index, [question], free=True)
    assert free.quote(gen) is None and free.sources() == list(free.passages)
    closed = ask(gen, None, [*old, question])
    assert closed.messages == [*old, question] and not closed.passages and closed.quote(gen) is None
    nothing = ask(gen, index, [{"role": "user", "content": "What is a zyzzyva?"}])
    assert nothing.missing == "no passage matches the question" and not nothing.passages
    assert nothing.messages[-1]["content"] == "What is a zyzzyva?"
    crowded = ask(gen, index, [{"role": "system", "content": "Be brief. " * 60}, question])  # no room left
    opts = gen.options(temperature=0.8)  # from passages: greedy unless a temperature was asked for
    assert asked.options(opts, False).temperature == free.options(opts, False).temperature == 0.0
    assert asked.options(opts, True).temperature == nothing.options(opts, False).temperature == 0.8
    assert crowded.missing.startswith("the passages found do not fit in this model's 256-token") and not crowded.quoted
