"""The `gpt` command: one subcommand per job, each with --help. Errors are one line and an exit code.

Exit codes: 0 done, 1 failed, 2 bad usage / config / input, 3 training diverged, 130 interrupted.
Heavy modules are imported inside each command so `gpt --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Idle OpenMP threads must sleep, not spin: a spinning team collapses when another process takes a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gpt import __version__  # noqa: E402
from gpt.config import PRESETS, ConfigError, ModelConfig, SampleConfig, TrainConfig, parse_overrides, resolve  # noqa: E402
from gpt.terminal import cmd_ask, cmd_chat, cmd_generate  # noqa: E402

EPILOG_OVERRIDES = ("Any config field can be overridden by its dotted name, e.g. --train.max_iters 50 "
                    "--model.n_layer=2 --model.mlp swiglu. See gpt/config.py for every field.")


def _common(p: argparse.ArgumentParser, out: bool = True, device: bool = True) -> None:
    if out:
        p.add_argument("--out", default="out", help="run directory (default: out/)")
    if device:
        p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: auto)")


def _sample_args(p: argparse.ArgumentParser) -> None:
    """Sampling flags; each defaults to the run's [sample] table (shown values are the built-in defaults)."""
    d = SampleConfig()
    p.add_argument("--max-new-tokens", type=int, help=f"(default: the run's, else {d.max_new_tokens})")
    p.add_argument("--temperature", type=float, help=f"0 = greedy (default: the run's, else {d.temperature})")
    p.add_argument("--top-k", type=int, help="keep the k likeliest tokens; 0 = off")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass; 1 = off")
    p.add_argument("--repetition-penalty", type=float, help="1 = off")
    p.add_argument("--stop", action="append", help="stop string (repeatable)")
    p.add_argument("--seed", type=int, help="same seed, same text; 0 = random")


def _book_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", nargs="+", help="answer open-book from these files/folders: retrieve passages, "
                   "quote the answer from them (greedy unless --temperature is given). Default: the run's own "
                   "text, when it was trained on questions about it (passages.safetensors in the run)")
    p.add_argument("--closed", action="store_true", help="answer from the weights alone, no passages")
    p.add_argument("--free", action="store_true", help="open-book, but generate freely instead of quoting")
    p.add_argument("--passages", type=int, default=2, help="passages put in the context (default 2)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpt", description="Train a GPT on your own text and talk to it.",
                                     epilog="Run 'gpt COMMAND --help' for each command.")
    parser.add_argument("--version", action="version", version=f"gpt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (default: ./input.txt, else the built-in corpus)",
                       description="Train a GPT. With no arguments: ./input.txt if present, else Python's "
                                   "own documentation; a CPU-sized preset when no GPU is present.",
                       epilog=EPILOG_OVERRIDES)
    p.add_argument("--config", help="TOML file with [model], [tokenizer], [data], [train], [sample] tables")
    p.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (default: cpu without a GPU, else default)")
    p.add_argument("--input", nargs="+", help="text files, folders or globs (.txt, .md, .jsonl, .parquet, ...)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--resume", action="store_true", help="require resuming from the run directory's checkpoint")
    p.add_argument("--fresh", action="store_true", help="ignore any checkpoint in the run directory")
    p.add_argument("--init-from", help="start from weights: a gpt run dir or a Hugging Face GPT-2/Llama/Qwen2 dir")
    _common(p)

    p = sub.add_parser("prepare", help="tokenize inputs into the token cache", epilog=EPILOG_OVERRIDES)
    p.add_argument("--config")
    p.add_argument("--preset")
    p.add_argument("--input", nargs="+")
    _common(p, device=False)

    p = sub.add_parser("generate", help="stream a continuation of a prompt from a trained run")
    p.add_argument("prompt", nargs="?", default="", help="text to continue (default: start of a document)")
    p.add_argument("--num-samples", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON object per sample instead of streaming")
    p.add_argument("--best", action="store_true", help="use best.safetensors (best validation loss)")
    _sample_args(p)
    _common(p)

    p = sub.add_parser("chat", help="interactive conversation (Ctrl-D or Ctrl-C to leave); answers as gpt ask does")
    p.add_argument("--system", help="a system message that starts the conversation")
    _book_args(p)
    _sample_args(p)
    _common(p)

    p = sub.add_parser("ask", help="ask a trained run one question; the answer streams, then it exits")
    p.add_argument("question")
    _book_args(p)
    p.add_argument("--system", help="a system message before the question")
    p.add_argument("--best", action="store_true", help="use best.safetensors (best validation loss)")
    _sample_args(p)
    _common(p)

    p = sub.add_parser("qa", help="derive question/answer pairs from the structure of notes, as chat JSONL")
    p.add_argument("--input", nargs="+", required=True, help="notes: files, folders, globs")
    p.add_argument("--to", "--out", dest="to", required=True, help="the JSONL file to write (read, edit, train on it)")
    p.add_argument("--phrasings", type=int, default=3, help="questions per entry (default 3)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("eval", help="loss and bits per byte of a run's model on a text")
    p.add_argument("--input", nargs="+", required=True)
    p.add_argument("--batch-size", type=int, default=16)
    _common(p)

    p = sub.add_parser("inspect", help="the model's top next tokens for a prompt, with probabilities")
    p.add_argument("prompt")
    p.add_argument("-k", type=int, default=10)
    _common(p)

    p = sub.add_parser("tokenizer", help="train, encode or decode with a BPE tokenizer")
    tsub = p.add_subparsers(dest="tok_command", metavar="ACTION", required=True)
    t = tsub.add_parser("train", help="train a tokenizer on files")
    t.add_argument("--input", nargs="+", required=True)
    t.add_argument("--vocab-size", type=int, default=512)
    t.add_argument("--pattern", default="gpt4", help="gpt4 | gpt2 | none | a regex")
    t.add_argument("--special", action="append", default=None, help="special token (repeatable; default <|endoftext|>)")
    t.add_argument("--workers", type=int, default=0, help="processes for counting (default: cores)")
    t.add_argument("--out", required=True, help="tokenizer file to write (.json)")
    for action in ("encode", "decode"):
        t = tsub.add_parser(action, help=f"{action} text with a tokenizer file or run directory")
        t.add_argument("text", nargs="?", help="text (encode) or space-separated ids (decode); default: stdin")
        t.add_argument("--tokenizer", default="out", help="tokenizer .json / tokenizer.json / .tiktoken, or a run dir")
        if action == "encode":
            t.add_argument("--show", action="store_true", help="print each token's text and id")

    p = sub.add_parser("export", help="write a run as a Hugging Face model dir, a GGUF file (llama.cpp, Ollama), "
                                      "or its tokenizer for tiktoken/HF")
    p.add_argument("--format", choices=["hf", "gguf", "tiktoken", "hf-tokenizer"], default="hf")
    p.add_argument("--to", required=True, help="output directory (hf) or file")
    p.add_argument("--quantize", choices=["f32", "f16", "q8_0"], default="f32", help="GGUF weights (default f32)")
    _common(p, device=False)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server (needs the [serve] extra)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("GPT_API_KEY"), help="require this bearer key (env GPT_API_KEY)")
    p.add_argument("--closed", action="store_true", help="answer chat from the weights alone, not the run's passages")
    p.add_argument("--compile", action="store_true", help="compile the decode step first (seconds; then faster)")
    _common(p)
    return parser


# ----------------------------------------------------------------------------- commands

def _resolve_config(args: argparse.Namespace, extra: list[str]):
    overrides = parse_overrides(extra)
    if args.input:
        overrides["data.input"] = args.input
    if getattr(args, "seed", None) is not None:
        overrides["train.seed"] = args.seed
    if getattr(args, "device", None) and args.device != "auto":
        overrides["train.device"] = args.device
    preset, auto_note = args.preset, None
    if preset is None and not args.config:
        import torch
        preset = "default" if torch.cuda.is_available() else "cpu"
        auto_note = f"config: no GPU found, using the '{preset}' preset" if preset == "cpu" else None
        if preset == "cpu" and getattr(args, "init_from", None):  # its regulariser is for training from scratch:
            overrides = {"model.drop_path": ModelConfig.drop_path, "train.weight_decay": TrainConfig.weight_decay,
                         **overrides}  # the defaults: not a trained model's
    cfg = resolve(args.config, preset, overrides)
    return cfg, auto_note


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    cfg, note = _resolve_config(args, extra)
    if args.resume and args.fresh:
        raise ConfigError("--resume and --fresh contradict each other")
    master = int(os.environ.get("RANK", 0)) == 0
    if note and master:
        print(note)
    from gpt.train import Trainer
    resume = "must" if args.resume else "never" if args.fresh else "auto"
    explicit = set(parse_overrides(extra))
    trainer = Trainer(cfg, args.out, resume=resume, init_from=args.init_from, explicit=explicit,
                      progress=sys.stderr.isatty())
    result = trainer.run()
    if master:
        kept = " (the weights' moving average)" if result.get("weights") == "averaged" else ""
        print(f"done: val loss {result['val_loss']:.4f}, {result['val_bpb']:.4f} bits/byte{kept}; run dir {args.out} "
              f"(try: gpt generate \"...\" --out {args.out})")
    return 0


def cmd_prepare(args: argparse.Namespace, extra: list[str]) -> int:
    args.device = "cpu"
    cfg, _ = _resolve_config(args, extra)
    from gpt.run_setup import prepare_only
    data = prepare_only(cfg, Path(args.out), progress=sys.stderr.isatty())
    print(f"prepared: {len(data.train):,} train tokens, {len(data.val):,} val tokens in {Path(args.out) / 'data'}")
    return 0


def cmd_qa(args: argparse.Namespace, extra: list[str]) -> int:
    from gpt.documents import DataError, collect_files
    from gpt.files import write_jsonl
    from gpt.markup import is_code
    from gpt.qa import chat_record, derive_from_files
    files = collect_files(args.input)
    pairs = derive_from_files(files, args.phrasings, args.seed)
    if not pairs:
        code = " (code gives them for its documented names only)" if all(map(is_code, files)) else ""
        raise DataError("no questions found: the notes have no headings, glossary lines (Term: definition), "
                        f"Q:/A: blocks or definitions{code}")
    write_jsonl(map(chat_record, pairs), args.to)
    print(f"wrote {len(pairs):,} question/answer pairs ({', '.join(sorted({p.kind for p in pairs}))}) to {args.to}")
    return 0


def cmd_eval(args: argparse.Namespace, extra: list[str]) -> int:
    import numpy as np

    from gpt.batches import eval_windows
    from gpt.checkpoint import load_run
    from gpt.data import encode_files, token_byte_lengths
    from gpt.documents import DataError, collect_files
    from gpt.evaluate import evaluate
    from gpt.runtime import resolve_device, resolve_precision
    device = resolve_device(args.device)
    model, tokenizer, cfg = load_run(args.out, device)
    tokens = np.asarray(encode_files(collect_files(args.input), tokenizer), dtype=np.int64)
    if len(tokens) < 2:
        raise DataError("the evaluation text is empty")
    windows = eval_windows(tokens, model.config.block_size, args.batch_size)
    result = evaluate(model, windows, token_byte_lengths(tokenizer), device,
                      resolve_precision(cfg.train.precision, device))
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


def cmd_inspect(args: argparse.Namespace, extra: list[str]) -> int:
    import torch

    from gpt.generate import Generator
    gen = Generator(args.out, args.device)
    ids = gen.encode_prompt(args.prompt)
    with torch.inference_mode():
        logits, _ = gen.model(torch.tensor([ids], device=gen.device))
    probs = logits[0, -1].float().softmax(-1)
    top = torch.topk(probs, min(args.k, probs.numel()))
    print(f"prompt: {len(ids)} tokens: " + " ".join(f"{gen.tokenizer.token_text(i)!r}" for i in ids))
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        print(f"{p:8.2%}  {i:6d}  {gen.tokenizer.token_text(i)!r}")
    return 0


def _load_tokenizer(path: str):
    from gpt.bpe_formats import load_tokenizer
    return load_tokenizer(path)


def cmd_tokenizer(args: argparse.Namespace, extra: list[str]) -> int:
    if args.tok_command == "train":
        import time

        from gpt.bpe import ENDOFTEXT
        from gpt.config import Config, TokenizerConfig
        from gpt.documents import collect_files
        from gpt.run_setup import train_tokenizer
        start = time.perf_counter()
        cfg = Config(tokenizer=TokenizerConfig(args.vocab_size, args.pattern, args.special or [ENDOFTEXT]))
        tok = train_tokenizer(collect_files(args.input), cfg, args.workers, sys.stderr.isatty(), log=lambda m: None)
        tok.save(args.out)
        print(f"trained {tok.vocab_size} tokens ({len(tok.merges)} merges) in {time.perf_counter() - start:.1f}s "
              f"-> {args.out}")
        return 0
    tok = _load_tokenizer(args.tokenizer)
    text = args.text if args.text is not None else sys.stdin.read()
    if args.tok_command == "encode":
        ids = tok.encode(text, disallowed_special=())
        if args.show:
            for i in ids:
                print(f"{i:6d}  {tok.token_text(i)!r}")
            print(f"{len(text.encode('utf-8'))} bytes -> {len(ids)} tokens")
        else:
            print(" ".join(map(str, ids)))
        return 0
    try:
        ids = [int(t) for t in text.split()]
    except ValueError:
        raise ConfigError("decode takes space-separated integer token ids") from None
    sys.stdout.write(tok.decode(ids) + "\n")
    return 0


def cmd_export(args: argparse.Namespace, extra: list[str]) -> int:
    if args.format in ("tiktoken", "hf-tokenizer"):
        from gpt.bpe_formats import save_hf_tokenizer, save_tiktoken
        (save_tiktoken if args.format == "tiktoken" else save_hf_tokenizer)(_load_tokenizer(args.out), args.to)
    else:
        from gpt.checkpoint import load_run
        from gpt.run_setup import read_chat_files
        model, tokenizer, _ = load_run(args.out)
        chat = read_chat_files(args.out)  # the run's chat template (ours, or its Hugging Face source's)
        if args.format == "gguf":
            from gpt.gguf_export import export_gguf
            export_gguf(model, tokenizer, args.to, chat_template=chat.get("chat_template"), dtype=args.quantize)
        else:
            from gpt.hf import save_hf
            save_hf(model, tokenizer, args.to, chat)
    print(f"exported {args.out} as {args.format} -> {args.to}")
    return 0


def cmd_serve(args: argparse.Namespace, extra: list[str]) -> int:
    from gpt.serve import serve
    return serve(args.out, args.host, args.port, args.api_key, args.device, args.closed, args.compile)


COMMANDS = {"train": cmd_train, "prepare": cmd_prepare, "generate": cmd_generate, "chat": cmd_chat, "ask": cmd_ask,
            "qa": cmd_qa, "eval": cmd_eval, "inspect": cmd_inspect, "tokenizer": cmd_tokenizer, "export": cmd_export,
            "serve": cmd_serve}
TAKES_OVERRIDES = {"train", "prepare"}
# Commands that only read a run leave without Python's teardown once their answer is out: there, rarely and under
# load, a native library's threads aborted a finished `gpt generate` ("terminate called without an active
# exception", exit code 134; not reproduced in hundreds of runs outside the test suite). Nothing is left to write.
READERS = {"generate", "ask", "chat", "inspect"}


def main(argv: list[str] | None = None) -> None:
    """Entry point of `gpt` and `python -m gpt`; exits with the command's code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(2)
    if extra and args.command not in TAKES_OVERRIDES:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    code = run_command(args, extra)
    if args.command in READERS:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:  # a reader that left early (`gpt generate ... | head -1`): nothing more to say
                pass
        os._exit(code)
    sys.exit(code)


def run_command(args: argparse.Namespace, extra: list[str]) -> int:
    from gpt.errors import describe
    try:
        return COMMANDS[args.command](args, extra)
    except KeyboardInterrupt:
        print("\ngpt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`gpt generate ... | head -1`): stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        return 141
    except Exception as exc:  # every expected failure becomes one line; a real bug keeps its traceback
        known = describe(exc)
        if known is None:
            raise
        message, code = known
        print(f"gpt: error: {message}", file=sys.stderr)
        return code
