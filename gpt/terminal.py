"""Talking to a trained run in the terminal: `gpt generate`, `gpt chat` and `gpt ask`.

Each streams its reply as it is decoded, and `gpt chat` and `gpt ask` answer as gpt/ask.py puts a question
(open-book from the run's passages, quoted, unless --closed), naming on stderr the passage a reply came from.
Heavy modules are imported inside each command, so that `gpt --help` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


def _sample_options(gen, args: argparse.Namespace):
    """The run's [sample] table, with what was given on the command line."""
    return gen.options(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                       top_p=args.top_p, repetition_penalty=args.repetition_penalty, stop=args.stop, seed=args.seed,
                       num_samples=getattr(args, "num_samples", None))


def cmd_generate(args: argparse.Namespace, extra: list[str]) -> int:
    from gpt.generate import Generator
    gen = Generator(args.out, args.device, weights="best.safetensors" if args.best else "model.safetensors")
    opts = _sample_options(gen, args)
    seed = opts.seed
    for i in range(opts.num_samples):
        opts.seed = seed + i if seed else 0
        if args.json:
            c = gen.complete(args.prompt, opts)
            print(json.dumps({"prompt": args.prompt, "text": c.text, "finish_reason": c.finish_reason,
                              "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens}))
            continue
        sys.stdout.write(args.prompt)
        for piece in gen.stream(args.prompt, opts):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n" + ("---\n" if i + 1 < opts.num_samples else ""))
    return 0


def _chat_history(path: Path):
    """Line editing and history for input(), kept across sessions in the run directory; returns the saver."""
    try:
        import readline
    except ImportError:  # e.g. Windows: plain input()
        return lambda: None
    with contextlib.suppress(OSError):
        readline.read_history_file(path)

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)
    return save


def _write_stream(pieces) -> str:
    """Print a reply as it streams, without leading spaces (a quote may start mid-line); returns its text."""
    text = []
    try:
        for piece in pieces:
            piece = piece if text else piece.lstrip()
            if not piece:
                continue
            sys.stdout.write(piece)
            sys.stdout.flush()
            text.append(piece)
    except KeyboardInterrupt:  # Ctrl-C stops this answer, not the session
        pass
    print(flush=True)  # the answer's line is out before any note on stderr (its source), even through a pipe
    return "".join(text)


def _answer(gen, asked, opts, temperature_given: bool) -> str:
    """Stream the reply to a conversation as gpt.ask.ask() put it, then name the passages it came from."""
    if asked.missing:
        print(f"note: {asked.missing}; the answer comes from the model alone", file=sys.stderr)
    opts = asked.options(opts, temperature_given)
    reply = _write_stream(gen.stream_chat(asked.messages, opts, constraint=asked.quote(gen)))
    for passage in asked.sources():
        print(f"source: {passage.cited()}", file=sys.stderr)
    return reply


def _asker(args: argparse.Namespace, base_runs_too: bool = True):
    """The run and its passages for gpt ask / gpt chat: (generator, passage index or None, sample options).
    Without `base_runs_too`, a base run (no chat format, so no question to put passages in) gets none."""
    from gpt.ask import passages_to_ask
    from gpt.generate import Generator
    index = passages_to_ask(args.out, args.source, args.closed, args.free)
    gen = Generator(args.out, args.device, weights="best.safetensors" if getattr(args, "best", False)
                    else "model.safetensors")
    if not (gen.chat_format or base_runs_too):
        index = None
    return gen, index, _sample_options(gen, args)


def cmd_chat(args: argparse.Namespace, extra: list[str]) -> int:
    from gpt.ask import ask
    gen, index, opts = _asker(args, base_runs_too=False)
    save_history = _chat_history(Path(args.out) / ".chat_history")
    answers = "free answers from" if args.free else "answers quoted from"
    book = "" if index is None else f"; {answers} {len(index.passages):,} passages"
    if gen.chat_format:
        print(f"chatting with {args.out} (its chat format keeps the conversation{book}); Ctrl-D to leave")
    else:
        unused = " (it has no questions to put passages in)" if args.source or args.free else ""
        print(f"chatting with {args.out}: a base run without a chat format continues each line you type{unused}; "
              "Ctrl-D to leave")
    messages: list[dict] = [{"role": "system", "content": args.system}] if args.system else []
    while True:
        try:
            prompt = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            save_history()
            return 0
        if not prompt.strip():
            continue
        if not gen.chat_format:
            _write_stream(gen.stream(prompt, opts))
            continue
        messages.append({"role": "user", "content": prompt})
        try:
            asked = ask(gen, index, messages, args.passages, args.free)
            reply = _answer(gen, asked, opts, args.temperature is not None)
        except KeyboardInterrupt:  # during retrieval or before the reply streams: this answer stops, not the session
            print()
            reply = ""
        messages.append({"role": "assistant", "content": reply or "…"})


def cmd_ask(args: argparse.Namespace, extra: list[str]) -> int:
    from gpt.ask import ask
    from gpt.errors import InputError
    if not args.question.strip():
        raise InputError("the question is empty: ask something, e.g. gpt ask \"What is a decorator?\"")
    gen, index, opts = _asker(args)
    if not gen.chat_format:
        print(f"note: {args.out} is a base run without a chat format; answering as the continuation of "
              "'User: ...\nAssistant:'", file=sys.stderr)
    system = [{"role": "system", "content": args.system}] if args.system else []
    asked = ask(gen, index, [*system, {"role": "user", "content": args.question}], args.passages, args.free)
    _answer(gen, asked, opts, args.temperature is not None)
    return 0
