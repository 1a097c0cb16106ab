"""Fine-tuning a Hugging Face model with LoRA, end to end through the real CLI, on a random-weight Llama.

The source directory is what a user downloads: config.json + model.safetensors written by `transformers`
itself, tokenizer.json and a tokenizer_config.json with special tokens and a chat template.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gpt.bpe import Tokenizer
from gpt.bpe_formats import save_hf_tokenizer
from gpt.config import ConfigError, resolve
from gpt.hf import from_hf_state, load_hf, save_hf

from .conftest import TINY, kill_after, losses, pydoc_text, run_gpt

transformers = pytest.importorskip("transformers")

TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
RANK, ALPHA = 4, 8.0
TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """A Llama-architecture model directory: GQA, untied head, rope_theta 5e5, built offline by transformers."""
    root = tmp_path_factory.mktemp("hf")
    tok = Tokenizer.train([pydoc_text(20_000)], 300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    config = transformers.LlamaConfig(vocab_size=tok.vocab_size, hidden_size=48, intermediate_size=96,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=32, rope_theta=500000.0, tie_word_embeddings=False,
                                      bos_token_id=tok.special_tokens["<|im_start|>"],
                                      eos_token_id=tok.special_tokens["<|im_end|>"])
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p += 0.05 * torch.randn_like(p)
    model.save_pretrained(root)
    save_hf_tokenizer(tok, root / "tokenizer.json")
    (root / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>", "special": True},
        "chat_template": TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast"}))
    return root


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("notes") / "notes.txt"
    path.write_text("Monstera deliciosa likes bright, indirect light and a chunky, airy soil mix.\n" * 60)
    return path


def tune_args(hf_dir, notes, out, *extra, precision="fp32"):
    return ["train", *TINY, "--init-from", str(hf_dir), "--input", str(notes), "--out", str(out),
            "--train.lora_rank", str(RANK), "--train.lora_alpha", str(ALPHA), "--train.precision", precision,
            "--train.log_interval", "1", "--train.sample_tokens", "0", *extra]


def test_lora_fine_tune_of_a_hf_llama_then_generate_and_export(hf_dir, notes, tmp_path):
    tuned = tmp_path / "tuned"
    proc = run_gpt(*tune_args(hf_dir, notes, tuned, "--train.max_iters", "12"), check=True)
    assert "init: weights from" in proc.stdout and "lora: rank 4 adapters on 8 projections" in proc.stdout
    seen = losses(tuned)
    assert seen[12] < seen[1]

    # the model's own chat template and special tokens came with it
    assert (tuned / "chat_template.jinja").read_text() == TEMPLATE
    assert json.loads((tuned / "special.json").read_text()) == {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}

    # base.safetensors is the source, untouched; checkpoints hold adapters and their optimizer state only
    source = from_hf_state(load_file(str(hf_dir / "model.safetensors")), load_hf(hf_dir).config)
    base = load_file(str(tuned / "base.safetensors"))
    assert base.keys() == source.keys() and all(torch.equal(base[k], source[k]) for k in source)
    last = tuned / "checkpoints" / "step-00000012"
    assert sorted(p.name for p in last.iterdir()) == ["adapters.safetensors", "meta.json", "state.pt"]
    adapters = load_file(str(last / "adapters.safetensors"))
    assert len(adapters) == 2 * len(TARGETS) * 2  # A and B, four projections, two layers
    state = torch.load(last / "state.pt", weights_only=True)
    moments = [s["exp_avg"].shape for opt in state["optimizers"] for s in opt["state"].values()]
    assert sorted(moments) == sorted(t.shape for t in adapters.values())

    # model.safetensors holds W + (alpha / r) B A on the targets and the source's tensors everywhere else
    merged = load_file(str(tuned / "model.safetensors"))
    assert merged.keys() == source.keys()
    for key, value in source.items():
        module = key.removesuffix(".weight")
        if key.endswith(".weight") and module.split(".", 2)[-1] in TARGETS:
            delta = (adapters[module + ".lora_B"] @ adapters[module + ".lora_A"]) * (ALPHA / RANK)
            assert delta.abs().max() > 0, key  # the adapters were trained
            assert torch.equal(merged[key], value + delta), key
        else:
            assert torch.equal(merged[key], value), key

    out = run_gpt("generate", "Monstera", "--out", str(tuned), "--device", "cpu", "--max-new-tokens", "8",
                  "--temperature", "0", check=True)
    assert out.stdout.startswith("Monstera")

    exported = tmp_path / "exported"
    run_gpt("export", "--out", str(tuned), "--format", "hf", "--to", str(exported), check=True)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(exported).eval()
    from gpt.checkpoint import load_run
    ours, tokenizer, _ = load_run(tuned)
    idx = torch.tensor([tokenizer.encode("Monstera deliciosa likes bright light")])
    with torch.no_grad():
        assert (ours.all_logits(idx) - theirs(idx).logits).abs().max().item() < 1e-4


def test_export_carries_the_chat_template_and_special_tokens(hf_dir, tmp_path):
    from gpt.run_setup import carry_hf_chat_files, read_chat_files
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("")  # read_chat_files reads a run's files, not a tokenizer_config.json
    carry_hf_chat_files(read_chat_files(hf_dir), run)
    chat = read_chat_files(run)
    assert chat == {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "chat_template": TEMPLATE}
    from gpt.hf import load_hf_tokenizer
    save_hf(load_hf(hf_dir), load_hf_tokenizer(hf_dir), tmp_path / "out", chat)
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert (fast.bos_token, fast.eos_token) == ("<|im_start|>", "<|im_end|>")
    text = fast.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n"
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["eos_token_id"] == fast.convert_tokens_to_ids("<|im_end|>")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16: the frozen base is held (and stored) in bf16
def test_lora_resume_after_sigkill_equals_uninterrupted(hf_dir, notes, tmp_path, precision):
    common = ("--train.max_iters", "160", "--train.ckpt_interval", "10", "--train.eval_interval", "1000",
              "--train.lora_dropout", "0.1")  # dropout: the RNG state must resume too
    straight = tmp_path / "straight"
    proc = run_gpt(*tune_args(hf_dir, notes, straight, *common, precision=precision), check=True)
    assert ("the frozen base held in bf16" in proc.stdout) == (precision == "bf16")
    base, merged = load_file(str(straight / "base.safetensors")), load_file(str(straight / "model.safetensors"))
    matrix = torch.float32 if precision == "fp32" else torch.bfloat16
    assert base["h.0.attn.c_attn.weight"].dtype == base["wte.weight"].dtype == base["lm_head.weight"].dtype == matrix
    assert base["h.0.ln_1.weight"].dtype == torch.float32 and merged.keys() == base.keys()
    assert all(t.dtype == torch.float32 for t in merged.values())  # the export is an ordinary fp32 model
    assert torch.equal(merged["wte.weight"], base["wte.weight"].float())  # not wrapped: the base, upcast

    killed = tmp_path / "killed"
    kill_after(tune_args(hf_dir, notes, killed, *common, precision=precision),
               killed / "checkpoints" / "step-00000020")
    assert not (killed / "checkpoints" / "step-00000160").exists()
    resumed = run_gpt(*tune_args(hf_dir, notes, killed, *common, precision=precision), check=True)
    assert "resume: continuing from" in resumed.stdout
    a, b = losses(straight), losses(killed)
    assert sorted(b) == list(range(1, 161))
    assert [a[s] for s in range(1, 161)] == [b[s] for s in range(1, 161)]  # bit-identical, not close
    assert torch.equal(load_file(str(straight / "model.safetensors"))["h.0.attn.c_attn.weight"],
                       load_file(str(killed / "model.safetensors"))["h.0.attn.c_attn.weight"])

    other = run_gpt(*tune_args(hf_dir, notes, killed, *common[:-2], "--train.lora_rank", "8"))
    assert other.returncode == 2 and "train.lora_rank: 4 -> 8" in other.stderr and "Traceback" not in other.stderr


@pytest.mark.parametrize("overrides, message", [
    ({"train.lora_rank": "-1"}, "train.lora_rank must be >= 0"),
    ({"train.lora_rank": "4", "train.optimizer": "muon"}, "muon cannot train LoRA adapters"),
    ({"train.lora_targets": "attn.c_attn,attn.q_proj"}, "train.lora_targets must be distinct names"),
    ({"train.lora_targets": ""}, "train.lora_targets must be distinct names"),
    ({"train.lora_alpha": "0"}, "train.lora_alpha must be > 0"),
    ({"train.lora_dropout": "1"}, "train.lora_dropout in"),
])
def test_bad_lora_options_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve(overrides=overrides)


def test_lora_adapters_train_with_adamw_where_muon_was_only_the_preset_s_choice():
    assert resolve(preset="cpu").train.optimizer == "normuon"
    assert resolve(preset="cpu", overrides={"train.lora_rank": "4"}).train.optimizer == "adamw"
    base = resolve(preset="cpu")  # a fine-tune starts from its base run's config
    assert resolve(base=base, overrides={"train.lora_rank": "4"}).train.optimizer == "adamw"


def test_lora_options_round_trip_through_the_run_config():
    from gpt.config import from_dict, to_dict, to_toml
    cfg = resolve(overrides={"train.lora_rank": "8", "train.lora_targets": "attn.c_attn,mlp.c_proj"})
    assert cfg.train.lora_targets == ["attn.c_attn", "mlp.c_proj"]
    assert to_toml(from_dict(to_dict(cfg))) == to_toml(cfg)


def test_a_fine_tune_on_the_automatic_cpu_preset_drops_its_from_scratch_regulariser(hf_dir, notes, tmp_path):
    """The cpu preset's stochastic depth and weight decay 1.0 are for training from scratch: a fine-tune that
    leaves the preset to `gpt train` gets neither (weight decay back at the default 0.1), unless asked for."""
    from gpt.checkpoint import read_config
    common = ["--init-from", str(hf_dir), "--input", str(notes), "--device", "cpu", "--train.max_iters", "1",
              "--train.sample_tokens", "0", "--train.eval_iters", "1"]
    run_gpt("train", *common, "--out", str(tmp_path / "auto"), check=True)
    auto = read_config(tmp_path / "auto")
    assert resolve(preset="cpu").model.drop_path == 0.2  # what the preset would have given
    assert (auto.model.drop_path, auto.train.weight_decay, auto.train.batch_size) == (0.0, 0.1, 32)
    run_gpt("train", *common, "--out", str(tmp_path / "asked"), "--model.drop_path", "0.1", check=True)
    assert read_config(tmp_path / "asked").model.drop_path == 0.1
