"""An OpenAI-compatible HTTP server for a run directory (FastAPI + uvicorn, the [serve] extra).

Endpoints: POST /v1/completions, POST /v1/chat/completions (``stream: true`` sends server-sent
events), GET /v1/models, GET /health, and GET / (a chat page for the browser, gpt/web/chat.html).
A run trained to answer from its text (it has passages.safetensors) answers chat questions as `gpt ask` does: the
last user message's passages retrieved into the prompt, the reply quoted from them, and the passage it
came from named in the response's extra "sources" field (in the last chunk when streaming); earlier turns give
way to the passages when the context cannot hold both (gpt/ask.py). --closed serves the weights alone.
Concurrency: one model, requests take turns under the Generator's lock (no batching queue), so
concurrent requests never share a KV cache. Generation runs in a worker thread; a client that
disconnects mid-stream cancels its generation and frees the lock. Every bad request is a 400 with an
OpenAI-style JSON error, and one request's total work is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpt.ask import Asked, ask, passages_to_ask
from gpt.chat import check_messages
from gpt.config import SampleConfig
from gpt.errors import GPTError
from gpt.generate import Completion, Generator, plain_chat_prompt
from gpt.retrieval import PassageIndex

MAX_TOKENS_LIMIT = 4096  # new tokens per choice
MAX_CHOICES = 16  # prompts x n in one request
MAX_REQUEST_TOKENS = 16384  # choices x max_tokens: one request cannot hold the model for hours


# ----------------------------------------------------------------------------- requests

class SamplingFields(BaseModel):
    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=8)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[str] = ""
    max_tokens: int = Field(16, ge=1, le=MAX_TOKENS_LIMIT)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(SamplingFields):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        self.status, self.message, self.code, self.param = status, message, code, param


def error_response(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


# ----------------------------------------------------------------------------- responses

def envelope(kind: str, model: str) -> dict[str, Any]:
    return {"id": f"{'chatcmpl' if 'chat' in kind else 'cmpl'}-{uuid.uuid4().hex[:24]}", "object": kind,
            "created": int(time.time()), "model": model}


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def build_response(kind: str, model: str, completions: list[Completion],
                   choice: Callable[[int, Completion], dict]) -> dict[str, Any]:
    """One response body for both endpoints: the choices and the summed usage."""
    prompt = sum(c.prompt_tokens for c in completions)
    generated = sum(c.completion_tokens for c in completions)
    return {**envelope(kind, model), "choices": [choice(i, c) for i, c in enumerate(completions)],
            "usage": {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}}


def text_choice(i: int, c: Completion) -> dict:
    return {"text": c.text, "index": i, "logprobs": None, "finish_reason": c.finish_reason}


def chat_choice(i: int, c: Completion) -> dict:
    return {"index": i, "message": {"role": "assistant", "content": c.text}, "logprobs": None,
            "finish_reason": c.finish_reason}


def sources(passages: list) -> list[dict]:
    """The passages a reply came from, as the extra "sources" field (a "page" too where the source has pages)."""
    return [{"source": p.source, "line": p.line, **({"page": p.page} if p.page else {})} for p in passages]


def seeded(opts: SampleConfig, i: int) -> SampleConfig:
    """The i-th of n choices: seed + i, so a seeded request's choices differ but repeat (0 stays random)."""
    return dataclasses.replace(opts, seed=opts.seed + i if opts.seed else 0)


# ----------------------------------------------------------------------------- the service

class Service:
    """Request handling around one Generator: validation, bounded work, streaming pieces from a thread."""

    def __init__(self, generator: Generator, passages: PassageIndex | None = None):
        self.generator, self.passages = generator, passages
        self.requests = 0
        self.count_lock = threading.Lock()

    def check_model(self, name: str) -> None:
        if name not in (self.generator.name, "gpt"):
            raise APIError(404, f"the model '{name}' does not exist; this server has '{self.generator.name}'",
                           "model_not_found", "model")

    def check_prompt(self, prompt: str) -> None:
        try:
            n = len(self.generator.tokenizer.encode(prompt, disallowed_special=()))
        except GPTError as exc:  # e.g. a lone surrogate: not valid Unicode
            raise APIError(400, str(exc), "invalid_value", "prompt") from None
        if n >= self.generator.block_size:
            raise APIError(400, f"the prompt has {n} tokens; this model's context is {self.generator.block_size} "
                           "tokens", "context_length_exceeded", "prompt")

    def options(self, req: SamplingFields, max_tokens: int, choices: int, extra_stop: list[str] = ()) -> SampleConfig:
        if choices > MAX_CHOICES:
            raise APIError(400, f"{choices} choices (prompts x n) in one request; at most {MAX_CHOICES}",
                           "invalid_value", "n")
        if choices * max_tokens > MAX_REQUEST_TOKENS:
            raise APIError(400, f"{choices} choices x {max_tokens} max_tokens is more than {MAX_REQUEST_TOKENS} new "
                           "tokens in one request", "invalid_value", "max_tokens")
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        try:
            return self.generator.options(
                MAX_TOKENS_LIMIT, max_new_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p,
                top_k=getattr(req, "top_k", 0), repetition_penalty=getattr(req, "repetition_penalty", 1.0),
                stop=stops + list(extra_stop), seed=req.seed or 0)
        except GPTError as exc:
            raise APIError(400, str(exc), "invalid_value", str(exc).split()[0]) from None

    async def complete_all(self, prompts: list[str], opts: SampleConfig) -> list[Completion]:
        out = []
        for i, prompt in enumerate(prompts):
            out.append(await run_in_threadpool(self.generator.complete, prompt, seeded(opts, i), lambda m: None))
        return out

    async def pieces(self, stream: Callable[[dict], Iterator[str]], info: dict) -> AsyncIterator[str]:
        """Run a generator stream in a worker thread and hand its pieces over; stop it if the client goes away."""
        loop, queue, cancel = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

        def work() -> None:
            try:
                for piece in stream(info):
                    if cancel.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            except Exception as exc:  # reported in-stream; the server keeps running
                loop.call_soon_threadsafe(queue.put_nowait, ("error", str(exc)))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        worker = loop.run_in_executor(None, work)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    break
                if kind == "error":
                    raise RuntimeError(value)
                yield value
        finally:
            cancel.set()
            await asyncio.shield(worker)

    async def stream_completion(self, prompt: str, opts: SampleConfig, model: str) -> AsyncIterator[str]:
        base, info = envelope("text_completion", model), {}
        async for piece in self.pieces(lambda i: self.generator.stream(prompt, opts, lambda m: None, i), info):
            yield sse({**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]})
        yield sse({**base, "choices": [{"text": "", "index": 0, "logprobs": None,
                                        "finish_reason": info.get("finish_reason", "length")}]})
        yield sse("[DONE]")

    async def stream_chat(self, asked: Asked, opts: SampleConfig, model: str) -> AsyncIterator[str]:
        base, info = envelope("chat.completion.chunk", model), {}
        constraint = await run_in_threadpool(asked.quote, self.generator)
        yield sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]})
        async for piece in self.pieces(lambda i: self.generator.stream_chat(asked.messages, opts, i, constraint), info):
            yield sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        finish = info.get("finish_reason", "length")
        yield sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                   **({"sources": sources(asked.sources())} if asked.passages else {})})
        yield sse("[DONE]")

    async def completions(self, req: CompletionRequest):
        self.check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise APIError(400, "prompt must not be an empty list", "invalid_value", "prompt")
        opts = self.options(req, req.max_tokens, len(prompts) * req.n)
        for prompt in prompts:
            self.check_prompt(prompt)
        if req.stream:
            if len(prompts) * req.n != 1:
                raise APIError(400, "stream supports one prompt with n = 1", "invalid_value", "stream")
            return StreamingResponse(self.stream_completion(prompts[0], opts, req.model),
                                     media_type="text/event-stream")
        done = await self.complete_all(prompts * req.n, opts)
        return build_response("text_completion", req.model, done, text_choice)

    async def chat(self, req: ChatRequest):
        self.check_model(req.model)
        messages = [m.model_dump() for m in req.messages]
        opts = self.options(req, req.max_completion_tokens or req.max_tokens or 256, req.n)
        self.check_conversation(messages)
        asked = await run_in_threadpool(self.open_book, messages)  # retrieval off the event loop
        opts = asked.options(opts, "temperature" in req.model_fields_set)  # as gpt ask: passages, greedy
        if req.stream:
            if req.n != 1:
                raise APIError(400, "stream supports n = 1", "invalid_value", "stream")
            return StreamingResponse(self.stream_chat(asked, opts, req.model), media_type="text/event-stream")
        done = []
        for i in range(req.n):  # a new Quote for each choice: one follows a single reply
            quote = await run_in_threadpool(asked.quote, self.generator)
            done.append(await run_in_threadpool(self.generator.chat, asked.messages, seeded(opts, i), quote))
        return {**build_response("chat.completion", req.model, done, chat_choice),
                **({"sources": sources(asked.sources())} if asked.passages else {})}

    def open_book(self, messages: list[dict]) -> Asked:
        """With the run's passages, the last user message asked as `gpt ask` asks it (gpt.ask); else as it is."""
        if self.passages is None or not self.generator.chat_format:
            return Asked(messages)
        return ask(self.generator, self.passages, messages)

    def check_conversation(self, messages: list[dict]) -> None:
        """Roles, content and length, through the run's chat format (or the plain prompt of a base run)."""
        try:
            if self.generator.chat_format:
                self.generator.chat_ids(messages)
            else:
                check_messages(messages)
                self.check_prompt(plain_chat_prompt(messages))
        except GPTError as exc:
            code = "context_length_exceeded" if "context" in str(exc) else "invalid_value"
            raise APIError(400, str(exc), code, "messages") from None


# ----------------------------------------------------------------------------- the app

async def chat_page():
    """GET / and /chat: the browser chat page (gpt/web/chat.html, package data); it needs no API key to load."""
    from importlib.resources import files

    from fastapi.responses import HTMLResponse
    return HTMLResponse(files("gpt").joinpath("web", "chat.html").read_text(encoding="utf-8"))


async def on_api_error(request: Request, exc: APIError):
    return error_response(exc.status, exc.message, exc.code, exc.param)


async def on_validation_error(request: Request, exc: RequestValidationError):
    first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        return error_response(400, "the request body is not valid JSON", "invalid_json")
    param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    return error_response(400, f"{param or 'request'}: {first['msg']}", "invalid_value", param)


async def on_http_error(request: Request, exc: StarletteHTTPException):
    return error_response(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error")


def create_app(generator: Generator, api_key: str | None = None, passages: PassageIndex | None = None) -> FastAPI:
    service = Service(generator, passages)
    app = FastAPI(title="gpt", version="1")
    app.state.service = service
    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return error_response(401, "missing or wrong API key (send 'Authorization: Bearer KEY')",
                                      "invalid_api_key")
        with service.count_lock:
            service.requests += 1
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": generator.name, "requests": service.requests}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": generator.name, "object": "model", "created": 0, "owned_by": "gpt"}]}

    for path in ("/", "/chat"):
        app.get(path, include_in_schema=False)(chat_page)
    app.post("/v1/completions")(service.completions)
    app.post("/v1/chat/completions")(service.chat)
    return app


def serve(run_dir: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          device: str = "auto", closed: bool = False, compile: bool = False) -> int:
    """Load the run and serve it until Ctrl-C; a port in use is a one-line error. The run's passages, unless
    `closed`, are what chat questions are answered from. With `compile`, the decode forward is compiled before
    the server listens: seconds at start-up for faster replies from a small model (benchmarks/README.md)."""
    import socket

    import uvicorn
    passages = passages_to_ask(run_dir, None, closed)
    generator = Generator(run_dir, device, compile=compile)
    if compile:
        started = time.perf_counter()
        generator.warm_up()
        print(f"compiled the decode step in {time.perf_counter() - started:.1f} s", flush=True)
    with socket.socket() as probe:  # uvicorn would log a traceback and exit 1; say it plainly instead
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise GPTError(f"cannot listen on {host}:{port}: {exc.strerror}", 2) from None
    app = create_app(generator, api_key, passages)
    book = f"; chat answers quoted from {len(passages.passages):,} passages of its text" if passages else ""
    print(f"serving {run_dir} as model '{generator.name}' on http://{host}:{port}/v1 "
          f"({'API key required' if api_key else 'no API key'}{book}); Ctrl-C to stop", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
