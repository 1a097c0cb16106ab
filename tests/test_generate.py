import pytest
import torch

from gpt.bpe import Tokenizer
from gpt.checkpoint import save_weights, write_run_files
from gpt.config import SampleConfig as SampleParams
from gpt.config import resolve
from gpt.decode import generation_precision
from gpt.generate import Generator
from gpt.model import GPT


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Generator:
    """A run directory with a random model over a tokenizer whose tokens split multi-byte characters."""
    text = "héllo wörld ünïcödé 日本語 🎉🎉 " * 30
    tok = Tokenizer.train([text], 300, pattern="none")  # few merges: many characters stay split into bytes
    cfg = resolve(preset="tiny")
    cfg.model.vocab_size = tok.vocab_size
    run = tmp_path_factory.mktemp("gen") / "run"
    write_run_files(run, cfg, tok)
    torch.manual_seed(0)
    save_weights(GPT(cfg.model), run / "model.safetensors")
    return Generator(run, "cpu")


def test_stream_yields_whole_characters(generator):
    pieces = list(generator.stream("日", SampleParams(max_new_tokens=60, temperature=1.5, seed=1)))
    text = "".join(pieces)
    raw = generator.tokenizer.decode_bytes(generator.tokenizer.encode(text))
    assert raw.decode("utf-8", errors="replace") == text
    for piece in pieces[:-1]:  # every piece but a final flush holds complete characters only
        assert "\ufffd" not in piece or "\ufffd" in raw.decode("utf-8", errors="replace")


def test_same_seed_same_text_and_completion_counts(generator):
    params = SampleParams(max_new_tokens=20, temperature=1.0, seed=5)
    a, b = generator.complete("hé", params), generator.complete("hé", params)
    assert a == b and a.completion_tokens == 20 and a.finish_reason == "length"


def test_stop_strings_cut_the_text(generator):
    free = generator.complete("", SampleParams(max_new_tokens=40, temperature=1.0, seed=3)).text
    assert len(free) > 4
    stop = free[2:4]
    stopped = generator.complete("", SampleParams(max_new_tokens=40, temperature=1.0, seed=3, stop=[stop]))
    assert stopped.finish_reason == "stop" and stop not in stopped.text and free.startswith(stopped.text)


def test_long_prompt_is_truncated_with_a_warning(generator):
    warnings = []
    out = generator.complete("wörld " * 200, SampleParams(max_new_tokens=3, seed=1), warn=warnings.append)
    assert out.prompt_tokens == generator.block_size - 1 and "keeping its last" in warnings[0]


def test_batch_matches_per_prompt_shapes(generator):
    outs = generator.batch(["hé", "日本", "hé"], SampleParams(max_new_tokens=8, temperature=0))
    assert len(outs) == 3 and outs[0] == outs[2]  # greedy: the same prompt gives the same text


def test_replies_use_the_runs_training_tokens_as_drafts_and_keep_their_tokens(generator, tmp_path):
    """A run with a token cache is indexed for drafting; speculative replies equal one-token-per-forward ones."""
    from gpt.data import prepare
    source = tmp_path / "notes.txt"
    source.write_text("héllo wörld ünïcödé 日本語 🎉🎉 " * 40, encoding="utf-8")
    prepare([str(source)], generator.tokenizer, generator.run_dir / "data", progress=False, log=lambda m: None)
    fast, plain = Generator(generator.run_dir, "cpu"), Generator(generator.run_dir, "cpu", draft_tokens=0)
    assert fast.corpus is not None and len(fast.corpus.sorted) > 0
    for params in (SampleParams(max_new_tokens=40, temperature=0), SampleParams(max_new_tokens=40, seed=4)):
        assert fast.complete("héllo", params) == plain.complete("héllo", params)
    assert generator.corpus is None  # made before the cache: no index, and no error


def test_no_drafts_no_index(generator, tmp_path):
    """draft_tokens=0 reads and indexes nothing at load, though the run has a token cache."""
    from gpt.data import prepare
    source = tmp_path / "notes.txt"
    source.write_text("héllo wörld ünïcödé 日本語 🎉🎉 " * 40, encoding="utf-8")
    prepare([str(source)], generator.tokenizer, generator.run_dir / "data", progress=False, log=lambda m: None)
    assert Generator(generator.run_dir, "cpu").corpus is not None
    assert Generator(generator.run_dir, "cpu", draft_tokens=0).corpus is None


def test_a_compiled_forward_gives_the_same_logits_and_replies(generator):
    """gpt serve --compile: the decode forward compiled once (warm_up) for every position and draft length;
    its logits are the eager forward's within rounding, its greedy and seeded replies the same tokens, and a
    reply that reaches the end of the window compiles nothing more."""
    from gpt.decode import decode_block, prefill
    compiled = Generator(generator.run_dir, "cpu", compile=True)
    assert compiled.forward is not decode_block and generator.forward is decode_block
    compiled.warm_up()
    tokens = torch.tensor([generator.tokenizer.encode("héllo wörld")])
    for width in (1, 4):
        _, eager_cache = prefill(generator.model, tokens)
        _, compiled_cache = prefill(compiled.model, tokens)
        step = torch.tensor([[5] * width])
        with torch.inference_mode():
            want = decode_block(generator.model, eager_cache, step, tokens.size(1))
            got = compiled.forward(compiled.model, compiled_cache, step, tokens.size(1))
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    past_the_window = compiled.block_size + 10
    with torch._dynamo.config.patch(error_on_recompile=True):  # warm_up compiled every graph a reply needs
        for params in (SampleParams(max_new_tokens=30, temperature=0), SampleParams(max_new_tokens=30, seed=2),
                       SampleParams(max_new_tokens=past_the_window, temperature=0)):
            assert compiled.complete("héllo", params) == generator.complete("héllo", params)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_generation_is_fp32_unless_asked(device):
    """bf16 autocast recasts every weight at every token: slower than fp32 at batch 1 on a CPU and on a GPU."""
    assert generation_precision("auto", torch.device(device)) == "fp32"
    assert generation_precision("bf16", torch.device(device)) == "bf16"
