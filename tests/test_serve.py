"""A real `gpt serve` process on 127.0.0.1, driven by the real `openai` client and by raw HTTP."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import TINY, run_gpt, start_server, stop_server
from .test_qa_mix import GLOSSARY

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

KEY = "test-key"



@pytest.fixture(scope="module")
def server(corpus_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("serve") / "plants"
    run_gpt("train", *TINY, "--input", str(corpus_file), "--out", str(run), "--train.max_iters", "30", check=True)
    proc, base = start_server(run, "--api-key", KEY)
    yield base
    stop_server(proc)


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=60)


def post(base: str, path: str, body, key: str | None = KEY) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(base + path, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_models(client):
    assert [m.id for m in client.models.list().data] == ["plants"]


def test_completion(client):
    out = client.completions.create(model="plants", prompt="The value", max_tokens=12, seed=3)
    again = client.completions.create(model="plants", prompt="The value", max_tokens=12, seed=3)
    assert out.choices[0].text == again.choices[0].text and out.usage.completion_tokens >= 1
    assert out.choices[0].finish_reason in ("stop", "length")


def test_chat(client):
    out = client.chat.completions.create(model="plants", messages=[{"role": "user", "content": "What is Monstera?"}],
                                         max_tokens=10)
    assert out.choices[0].message.role == "assistant" and isinstance(out.choices[0].message.content, str)


def test_streaming_completion_and_chat(client):
    stream = client.completions.create(model="plants", prompt="A", max_tokens=15, stream=True, seed=1)
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks)
    whole = client.completions.create(model="plants", prompt="A", max_tokens=15, seed=1).choices[0].text
    assert text == whole and chunks[-1].choices[0].finish_reason in ("stop", "length")
    chat = client.chat.completions.create(model="plants", messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=8, stream=True)
    deltas = [c.choices[0].delta for c in chat]
    assert deltas[0].role == "assistant"


def test_errors(server):
    assert post(server, "/v1/completions", b"{not json")[0] == 400
    status, body = post(server, "/v1/completions", {"model": "plants", "prompt": "x", "max_tokens": 0})
    assert status == 400 and body["error"]["param"] == "max_tokens"
    status, body = post(server, "/v1/completions", {"model": "nope", "prompt": "x"})
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, body = post(server, "/v1/completions", {"model": "plants", "prompt": "word " * 500})
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    assert post(server, "/v1/completions", {"model": "plants", "prompt": "x"}, key=None)[0] == 401
    assert post(server, "/v1/completions", {"model": "plants", "prompt": "x"}, key="wrong")[0] == 401
    assert post(server, "/v1/chat/completions", {"model": "plants", "messages": []})[0] == 400


def test_bounded_load(server):
    body = {"model": "plants", "prompt": "The", "max_tokens": 4}
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: post(server, "/v1/completions", body)[0], range(200)))
    assert statuses == [200] * 200
    with urllib.request.urlopen(server + "/health", timeout=5) as resp:
        assert json.loads(resp.read())["status"] == "ok"


NOTES = GLOSSARY  # twelve plants, one "Name: definition" line each


def test_chat_answers_are_quoted_from_the_runs_passages_and_name_their_source(tmp_path):
    """As `gpt ask` does: the question's passages in the prompt, the reply quoted from them, the passage named in
    an extra "sources" field (in the last chunk of a stream); --closed serves the weights alone. The first server
    compiles its decode step before it listens (--compile)."""
    notes, run = tmp_path / "glossary.txt", tmp_path / "run"
    notes.write_text(NOTES)
    run_gpt("train", *TINY, "--input", str(notes), "--out", str(run), "--model.block_size", "128",
            "--train.max_iters", "20", "--train.sample_tokens", "0", check=True)
    messages = [{"role": "user", "content": "What is Ivy?"}]
    proc, base = start_server(run, "--compile", timeout=300)
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=60)
        out = client.chat.completions.create(model="gpt", messages=messages, max_tokens=40)
        answer, (source,) = out.choices[0].message.content, out.model_extra["sources"]
        assert source["source"] == str(notes) and answer and answer in NOTES.splitlines()[source["line"] - 1]
        chunks = list(client.chat.completions.create(model="gpt", messages=messages, max_tokens=40, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks).strip() == answer  # greedy both times
        assert chunks[-1].model_extra["sources"] == [source]
    finally:
        stop_server(proc)
    assert "compiled the decode step in" in proc.stdout.read()
    proc, base = start_server(run, "--closed")
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=60)
        out = client.chat.completions.create(model="gpt", messages=messages, max_tokens=10)
        assert "sources" not in (out.model_extra or {})
    finally:
        stop_server(proc)
    from gpt.retrieval import Passage
    from gpt.serve import sources
    assert sources([Passage("Ivy climbs.", "notes.pdf", 12, page=3)]) == [  # a PDF's passage: its page too
        {"source": "notes.pdf", "line": 12, "page": 3}]
