"""An OpenAI-compatible HTTP server for a run directory (FastAPI + uvicorn, the [serve] extra).

Endpoints: POST /v1/completions, POST /v1/chat/completions (``stream: true`` sends server-sent
events), GET /v1/models, GET /health. Concurrency: one model, requests take turns under the
Generator's lock (no batching queue), so concurrent requests never share a KV cache. Generation runs
in a worker thread; a client that disconnects mid-stream cancels its generation and frees the lock.
"""


import asyncio
import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from gpt.generate import Generator, SampleParams

MAX_TOKENS_LIMIT = 4096
CHAT_STOP = "\nUser:"


def chat_prompt(messages: list[dict[str, str]]) -> str:
    """A plain template a base model can continue: 'System: ...\\nUser: ...\\nAssistant:'."""
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    lines = [f"{names.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


async def chat_page():
    """GET / and /chat: the browser chat page (gpt/web/chat.html, package data); it needs no API key to load."""
    from importlib.resources import files

    from fastapi.responses import HTMLResponse
    return HTMLResponse(files("gpt").joinpath("web", "chat.html").read_text(encoding="utf-8"))


def create_app(generator: Generator, api_key: str | None = None):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    class CompletionRequest(BaseModel):
        model: str
        prompt: str | list[str] = ""
        max_tokens: int = Field(16, ge=1, le=MAX_TOKENS_LIMIT)
        temperature: float = Field(1.0, ge=0.0, le=2.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        top_k: int = Field(0, ge=0)
        n: int = Field(1, ge=1, le=8)
        stop: str | list[str] | None = None
        stream: bool = False
        seed: int | None = None
        repetition_penalty: float = Field(1.0, gt=0.0)

    class Message(BaseModel):
        role: str
        content: str

    class ChatRequest(BaseModel):
        model: str
        messages: list[Message] = Field(min_length=1)
        max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
        max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
        temperature: float = Field(1.0, ge=0.0, le=2.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        n: int = Field(1, ge=1, le=8)
        stop: str | list[str] | None = None
        stream: bool = False
        seed: int | None = None

    class APIError(Exception):
        def __init__(self, status: int, message: str, code: str, param: str | None = None):
            self.status, self.message, self.code, self.param = status, message, code, param

    app = FastAPI(title="gpt", version="1")
    app.state.generator = generator
    lock = threading.Lock()  # guards nothing but the request counter; the model has its own lock
    stats = {"requests": 0}

    def error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return error(exc.status, exc.message, exc.code, exc.param)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        if first.get("type") == "json_invalid":
            return error(400, "the request body is not valid JSON", "invalid_json")
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error(400, f"{param or 'request'}: {first['msg']}", "invalid_value", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error")

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return error(401, "missing or wrong API key (send 'Authorization: Bearer KEY')", "invalid_api_key")
        with lock:
            stats["requests"] += 1
        return await call_next(request)

    def check_model(name: str) -> None:
        if name not in (generator.name, "gpt"):
            raise APIError(404, f"the model '{name}' does not exist; this server has '{generator.name}'",
                           "model_not_found", "model")

    def check_prompt(prompt: str) -> None:
        n = len(generator.tokenizer.encode(prompt, disallowed_special=()))
        if n >= generator.block_size:
            raise APIError(400, f"the prompt has {n} tokens; this model's context is {generator.block_size} tokens",
                           "context_length_exceeded", "prompt")

    def params(req, max_tokens: int, extra_stop: list[str] = ()) -> SampleParams:
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        return SampleParams(max_new_tokens=max_tokens, temperature=req.temperature, top_k=getattr(req, "top_k", 0),
                            top_p=req.top_p, repetition_penalty=getattr(req, "repetition_penalty", 1.0),
                            stop=stops + list(extra_stop), seed=req.seed or 0)

    async def pieces(prompt: str, p: SampleParams, info: dict) -> AsyncIterator[str]:
        """Run the generator in a worker thread and hand its pieces over; stop it if the client goes away."""
        loop, queue, cancel = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

        def work() -> None:
            try:
                for piece in generator.stream(prompt, p, warn=lambda m: None, info=info):
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

    def envelope(kind: str, model: str) -> dict[str, Any]:
        return {"id": f"{'chatcmpl' if 'chat' in kind else 'cmpl'}-{uuid.uuid4().hex[:24]}", "object": kind,
                "created": int(time.time()), "model": model}

    def sse(data: dict | str) -> str:
        return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"

    def seeded(p: SampleParams, i: int) -> SampleParams:
        return SampleParams(**{**p.__dict__, "seed": p.seed + i if p.seed else 0})

    for path in ("/", "/chat"):
        app.add_api_route(path, chat_page, methods=["GET"], include_in_schema=False)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": generator.name, "requests": stats["requests"]}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": generator.name, "object": "model", "created": 0, "owned_by": "gpt"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise APIError(400, "prompt must not be an empty list", "invalid_value", "prompt")
        for prompt in prompts:
            check_prompt(prompt)
        p = params(req, req.max_tokens)
        if req.stream:
            if len(prompts) * req.n != 1:
                raise APIError(400, "stream supports one prompt with n = 1", "invalid_value", "stream")
            return StreamingResponse(stream_completion(prompts[0], p, req.model), media_type="text/event-stream")
        body = envelope("text_completion", req.model)
        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
        for i, prompt in enumerate(prompts * req.n):
            c = await run_in_threadpool(generator.complete, prompt, seeded(p, i), lambda m: None)
            choices.append({"text": c.text, "index": i, "logprobs": None, "finish_reason": c.finish_reason})
            usage["prompt_tokens"] += c.prompt_tokens
            usage["completion_tokens"] += c.completion_tokens
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {**body, "choices": choices, "usage": usage}

    async def stream_completion(prompt: str, p: SampleParams, model: str):
        base, info = envelope("text_completion", model), {}
        async for piece in pieces(prompt, p, info):
            yield sse({**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]})
        yield sse({**base, "choices": [{"text": "", "index": 0, "logprobs": None,
                                        "finish_reason": info.get("finish_reason", "length")}]})
        yield sse("[DONE]")

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        check_model(req.model)
        prompt = chat_prompt([m.model_dump() for m in req.messages])
        check_prompt(prompt)
        p = params(req, req.max_completion_tokens or req.max_tokens or 256, [CHAT_STOP])
        if req.stream:
            if req.n != 1:
                raise APIError(400, "stream supports n = 1", "invalid_value", "stream")
            return StreamingResponse(stream_chat(prompt, p, req.model), media_type="text/event-stream")
        body = envelope("chat.completion", req.model)
        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
        for i in range(req.n):
            c = await run_in_threadpool(generator.complete, prompt, seeded(p, i), lambda m: None)
            choices.append({"index": i, "message": {"role": "assistant", "content": c.text.strip()},
                            "logprobs": None, "finish_reason": c.finish_reason})
            usage["prompt_tokens"] += c.prompt_tokens
            usage["completion_tokens"] += c.completion_tokens
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {**body, "choices": choices, "usage": usage}

    async def stream_chat(prompt: str, p: SampleParams, model: str):
        base, info = envelope("chat.completion.chunk", model), {}
        yield sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]})
        async for piece in pieces(prompt, p, info):
            yield sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        finish = info.get("finish_reason", "length")
        yield sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        yield sse("[DONE]")

    return app


def serve(run_dir: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          device: str = "auto") -> None:
    """Load the run and serve it until Ctrl-C."""
    try:
        import uvicorn
    except ImportError:
        from gpt.errors import GPTError
        raise GPTError("gpt serve needs the [serve] extra: pip install 'gpt[serve]'", 2) from None
    generator = Generator(run_dir, device)
    app = create_app(generator, api_key)
    print(f"serving {run_dir} as model '{generator.name}' on http://{host}:{port}/v1 "
          f"({'API key required' if api_key else 'no API key'}); Ctrl-C to stop", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
