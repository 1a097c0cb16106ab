"""Typed configuration: dataclasses, presets, TOML files and command-line overrides.

Resolution order (later wins): dataclass defaults -> ``--config FILE`` (TOML) ->
``--preset NAME`` -> ``--section.key value`` overrides. Every value is checked once,
here, so the rest of the code can trust it. This module must not import torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt.errors import InputError
from gpt.presets import PRESETS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class ConfigError(InputError):
    """A bad configuration value; the CLI prints it as one line and exits with 2."""


def parse_duration(value: str | float | int) -> float:
    """'70s', '5m', '1.5h', '90' -> seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 70s, 5m, 1h)")
    scale = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale


@dataclass
class ModelConfig:
    vocab_size: int = 0  # 0: taken from the tokenizer
    block_size: int = 128
    n_layer: int = 6
    n_head: int = 6
    n_kv_head: int = 0  # 0: same as n_head; fewer gives grouped-query attention
    n_embd: int = 384
    mlp_hidden: int = 0  # 0: 4 * n_embd (gelu, relu2) or the Llama rule (swiglu)
    dropout: float = 0.0
    drop_path: float = 0.0  # stochastic depth: a sample skips a block's branch with this probability in training
    bias: bool = True
    qkv_bias: bool = False  # biases on the query/key/value projection alone (Qwen2), when bias is off
    norm: str = "layernorm"  # layernorm | rmsnorm
    norm_eps: float = 1e-5
    mlp: str = "gelu"  # gelu | swiglu | relu2
    pos: str = "learned"  # learned | rope
    rope_theta: float = 10000.0
    qk_norm: bool = False
    tie_embeddings: bool = True
    zero_init_proj: bool = False  # zero the residual output projections at init


@dataclass
class TokenizerConfig:
    vocab_size: int = 512
    pattern: str = "gpt4"  # gpt4 | gpt2 | none | a custom regex
    special_tokens: list[str] = field(default_factory=lambda: ["<|endoftext|>"])


@dataclass
class DataConfig:
    input: list[str] = field(default_factory=list)  # files, folders, globs
    val_input: list[str] = field(default_factory=list)  # optional separate validation text
    val_fraction: float = 0.1  # the last fraction of tokens, when val_input is empty
    jsonl_field: str = "text"
    workers: int = 0  # 0: one per CPU core
    chat_weight: float = 0.5  # share of each batch from conversations (given or derived) when there is text too
    chat_weight_decay: float = -1.0  # the share while the lr decays (the run's last train.decay_fraction); -1: the same
    qa: str = "auto"  # questions from the text's structure, mixed in (gpt/qa_mix.py): auto | on | off
    skip_bad: bool = False  # skip (and count) malformed conversation records instead of stopping
    skip_long: bool = False  # skip (and count) conversations longer than the context instead of stopping


LORA_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # the projections LoRA may wrap


@dataclass
class TrainConfig:
    batch_size: int = 64
    grad_accum: int = 1
    max_iters: int = 5000
    max_time: float = field(default=0.0, metadata={"parse": parse_duration})  # 0: no budget
    max_epochs: float = 0.0  # 0: no cap; else the run (and its lr schedule) ends after this many passes over train
    lr: float = 1e-3
    embedding_lr_scale: float = 1.0  # the untied token embedding learns at lr x this (10 in the speedrun)
    min_lr_ratio: float = 0.1
    warmup_iters: int = -1  # -1: derived (2% of the run, at most 200)
    schedule: str = "cosine"  # cosine | wsd | constant
    decay_fraction: float = 0.2  # wsd: final fraction spent decaying
    optimizer: str = "adamw"  # adamw | muon | normuon (Muon or NorMuon for the hidden matrices, AdamW for the rest)
    muon_lr: float = 0.0  # 0: train.lr (Muon's updates are scaled to AdamW's RMS, so AdamW's lr carries over)
    weight_decay: float = 0.1
    regularise_after: float = 0.0  # passes over the text before drop_path and weight decay past 0.1 set in; 0: at once
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    weight_average: float = 0.99  # decay per step of the weights' moving average, kept if it validates better; 0: off
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: str = "auto"  # auto | on | off
    threads: int = 0  # CPU threads; 0: derived from the cores that are free
    eval_interval: int = 250
    eval_iters: int = 20
    ckpt_interval: int = 250
    log_interval: int = 10
    sample_tokens: int = 120  # sample printed at each eval; 0 turns it off
    device: str = "auto"  # auto | cpu | cuda | mps
    seed: int = 1337
    tensorboard: bool = False
    wandb: bool = False
    lora_rank: int = 0  # > 0: freeze the model, train rank-r adapters on lora_targets (gpt/lora.py); 0: off
    lora_alpha: float = 16.0  # the adapters' update is scaled by lora_alpha / lora_rank
    lora_dropout: float = 0.0  # dropout on the adapters' input
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@dataclass
class SampleConfig:
    """How to sample: one type from a run's [sample] table, the CLI and the server down to the sampler."""
    max_new_tokens: int = 200
    temperature: float = 0.8  # 0: greedy
    top_k: int = 0  # 0: off
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0  # 0: random
    num_samples: int = 1
    stop: list[str] = field(default_factory=list)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


def all_keys(cfg: Config | None = None) -> list[str]:
    cfg = cfg or Config()
    return [f"{s.name}.{f.name}" for s in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, s.name))]


def _field(cfg: Config, key: str) -> tuple[Any, dataclasses.Field]:
    section_name, _, name = key.partition(".")
    section = getattr(cfg, section_name, None) if section_name in {f.name for f in dataclasses.fields(cfg)} else None
    fields = {f.name: f for f in dataclasses.fields(section)} if section is not None else {}
    if name not in fields:
        hint = difflib.get_close_matches(key, all_keys(cfg), n=1, cutoff=0.6)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"unknown config key '{key}'{suggestion}")
    return section, fields[name]


def _convert(key: str, value: Any, f: dataclasses.Field, section: Any) -> Any:
    """Turn a TOML value or a command-line string into the field's type, or fail naming the key."""
    hint = typing.get_type_hints(type(section))[f.name]
    try:
        if "parse" in f.metadata:
            return f.metadata["parse"](value)
        if typing.get_origin(hint) is list:
            if isinstance(value, str):
                return [v for v in value.split(",") if v] if value else []
            if isinstance(value, list):
                return [str(v) for v in value]
            raise TypeError
        if hint is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in {"true", "1", "yes", "on"}:
                return True
            if lowered in {"false", "0", "no", "off"}:
                return False
            raise TypeError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
            if not math.isfinite(number):
                raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
            return number
        if hint is str:
            if not isinstance(value, (str, int, float)):
                raise TypeError
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"config key '{key}' expects {name}, got {value!r}")


def get_value(cfg: Config, key: str) -> Any:
    section, f = _field(cfg, key)
    return getattr(section, f.name)


def set_value(cfg: Config, key: str, value: Any) -> None:
    section, f = _field(cfg, key)
    setattr(section, f.name, _convert(key, value, f, section))


def apply(cfg: Config, overrides: dict[str, Any]) -> Config:
    for key, value in overrides.items():
        set_value(cfg, key, value)
    return cfg


def flatten_toml(table: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for section, values in table.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config key '{section}' must be a [section] table")
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file as nested dicts; a missing, non-UTF-8 or malformed file is one ConfigError line."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    return flatten_toml(read_toml(path))


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """['--train.max_iters', '50', '--model.n_layer=2'] -> {'train.max_iters': '50', 'model.n_layer': '2'}."""
    overrides, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0]:
            raise ConfigError(f"unrecognised argument '{arg}' (config overrides look like --train.max_iters 50)")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"config key '{key}' needs a value")
            value, i = args[i + 1], i + 1
        overrides[key] = value
        i += 1
    return overrides


def resolve(config_file: str | None = None, preset: str | None = None, overrides: dict[str, Any] | None = None,
            base: Config | None = None) -> Config:
    """Defaults (or base) -> TOML file -> preset -> overrides, then validate."""
    cfg = base or Config()
    if config_file:
        apply(cfg, load_toml(config_file))
    if preset:
        if preset not in PRESETS:
            hint = difflib.get_close_matches(preset, PRESETS, n=1)
            raise ConfigError(f"unknown preset '{preset}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                              + f"; presets: {', '.join(PRESETS)}")
        apply(cfg, PRESETS[preset])
    apply(cfg, overrides or {})
    if cfg.train.lora_rank and "train.optimizer" not in (overrides or {}):
        cfg.train.optimizer = "adamw"  # a preset's or a base run's Muon: it cannot train adapters (check_lora)
    validate(cfg)
    return cfg


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got '{value}'")


def validate(cfg: Config) -> None:
    """Reject impossible combinations with one line naming the keys involved."""
    m, t, tr, d, s = cfg.model, cfg.tokenizer, cfg.train, cfg.data, cfg.sample
    positive = {"model.block_size": m.block_size, "model.n_layer": m.n_layer, "model.n_head": m.n_head,
                "model.n_embd": m.n_embd, "train.batch_size": tr.batch_size, "train.grad_accum": tr.grad_accum,
                "train.max_iters": tr.max_iters, "train.eval_interval": tr.eval_interval,
                "train.eval_iters": tr.eval_iters, "train.ckpt_interval": tr.ckpt_interval,
                "train.log_interval": tr.log_interval}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
    if m.n_embd % m.n_head:
        raise ConfigError(f"model.n_embd ({m.n_embd}) must be divisible by model.n_head ({m.n_head})")
    n_kv = m.n_kv_head or m.n_head
    if n_kv < 0 or m.n_head % n_kv:
        raise ConfigError(f"model.n_head ({m.n_head}) must be divisible by model.n_kv_head ({m.n_kv_head})")
    if m.pos == "rope" and (m.n_embd // m.n_head) % 2:
        raise ConfigError(f"model.pos = 'rope' needs an even head size, got n_embd/n_head = {m.n_embd // m.n_head}")
    min_vocab = 256 + len(t.special_tokens)
    if t.vocab_size < min_vocab:
        raise ConfigError(f"tokenizer.vocab_size ({t.vocab_size}) must be >= 256 bytes + "
                          f"{len(t.special_tokens)} special tokens = {min_vocab}")
    if len(set(t.special_tokens)) != len(t.special_tokens) or any(not tok for tok in t.special_tokens):
        raise ConfigError("tokenizer.special_tokens must be distinct and non-empty")
    if not 0.0 <= m.dropout < 1.0 or not 0.0 <= m.drop_path < 1.0:
        raise ConfigError(f"model.dropout and model.drop_path must be in [0, 1), got {m.dropout}, {m.drop_path}")
    if not 0.0 < d.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
    if not 0.0 <= d.chat_weight <= 1.0:
        raise ConfigError(f"data.chat_weight must be in [0, 1], got {d.chat_weight}")
    if not (0.0 <= d.chat_weight_decay <= 1.0 or d.chat_weight_decay == -1.0):
        raise ConfigError(f"data.chat_weight_decay must be in [0, 1], or -1 for data.chat_weight; got "
                          f"{d.chat_weight_decay}")
    if tr.lr <= 0 or tr.muon_lr < 0 or tr.embedding_lr_scale <= 0:
        raise ConfigError("train.lr and train.embedding_lr_scale must be > 0, train.muon_lr >= 0")
    if not 0.0 <= tr.weight_average < 1.0:
        raise ConfigError(f"train.weight_average must be in [0, 1) (0: off); got {tr.weight_average}")
    if not 0.0 <= tr.min_lr_ratio <= 1.0 or not 0.0 < tr.decay_fraction <= 1.0:
        raise ConfigError("train.min_lr_ratio must be in [0, 1] and train.decay_fraction in (0, 1]")
    if tr.max_time < 0 or tr.max_epochs < 0 or tr.regularise_after < 0:
        raise ConfigError("train.max_time, train.max_epochs and train.regularise_after must be >= 0, got "
                          f"{tr.max_time}, {tr.max_epochs}, {tr.regularise_after}")
    check_sample(s)
    check_lora(tr)
    _choice("model.norm", m.norm, ("layernorm", "rmsnorm"))
    _choice("model.mlp", m.mlp, ("gelu", "swiglu", "relu2"))
    _choice("model.pos", m.pos, ("learned", "rope"))
    _choice("data.qa", d.qa, ("auto", "on", "off"))
    _choice("train.schedule", tr.schedule, ("cosine", "wsd", "constant"))
    _choice("train.optimizer", tr.optimizer, ("adamw", "muon", "normuon"))
    _choice("train.precision", tr.precision, ("auto", "fp32", "bf16", "fp16"))
    _choice("train.compile", tr.compile, ("auto", "on", "off"))
    _choice("train.device", tr.device.split(":")[0], ("auto", "cpu", "cuda", "mps"))


def check_lora(tr: TrainConfig) -> None:
    if tr.lora_rank < 0:
        raise ConfigError(f"train.lora_rank must be >= 0 (0 is off), got {tr.lora_rank}")
    if tr.lora_alpha <= 0 or not 0.0 <= tr.lora_dropout < 1.0:
        raise ConfigError("train.lora_alpha must be > 0 and train.lora_dropout in [0, 1)")
    unknown = [t for t in tr.lora_targets if t not in LORA_TARGETS]
    if unknown or not tr.lora_targets or len(set(tr.lora_targets)) != len(tr.lora_targets):
        raise ConfigError(f"train.lora_targets must be distinct names from {', '.join(LORA_TARGETS)}, got "
                          f"{','.join(tr.lora_targets) or '(none)'}")
    if tr.lora_rank and tr.optimizer != "adamw":  # Muon orthogonalises whole matrices; adapters are thin factors
        raise ConfigError(f"train.optimizer {tr.optimizer} cannot train LoRA adapters; use adamw with train.lora_rank")


MAX_SEED = 2**63 - 1


def check_sample(s: SampleConfig, max_new_tokens_limit: int | None = None, prefix: str = "sample.") -> None:
    """Refuse sampling options that would crash or silently mislead (shared by config, CLI, chat and server)."""
    def bad(name: str, rule: str, value: Any) -> ConfigError:
        return ConfigError(f"{prefix}{name} must be {rule}, got {value!r}")
    limit = max_new_tokens_limit or 1_000_000
    if not 1 <= s.max_new_tokens <= limit:
        raise bad("max_new_tokens", f"between 1 and {limit}", s.max_new_tokens)
    for name in ("temperature", "top_p", "repetition_penalty"):
        if not math.isfinite(getattr(s, name)):
            raise bad(name, "a finite number", getattr(s, name))
    if s.temperature < 0:
        raise bad("temperature", ">= 0 (0 is greedy)", s.temperature)
    if not 0.0 < s.top_p <= 1.0:
        raise bad("top_p", "in (0, 1]", s.top_p)
    if s.top_k < 0:
        raise bad("top_k", ">= 0 (0 is off)", s.top_k)
    if s.repetition_penalty <= 0:
        raise bad("repetition_penalty", "> 0 (1 is off)", s.repetition_penalty)
    if not 0 <= s.seed <= MAX_SEED:
        raise bad("seed", f"between 0 and {MAX_SEED} (0 is random)", s.seed)
    if s.num_samples < 1:
        raise bad("num_samples", ">= 1", s.num_samples)


# Keys that change how fast a run goes or what it prints, never what it computes: a resume may change them.
RESULT_NEUTRAL = {"data.workers", "data.skip_bad", "data.skip_long"}
# [train] keys a resumed run must keep: they decide which tensors a checkpoint holds.
RESULT_TRAIN = {"train.lora_rank", "train.lora_alpha", "train.lora_dropout", "train.lora_targets"}


def result_changes(saved: Config, new: Config) -> list[str]:
    """What differs between two configs in a way that changes the model a resumed run would produce."""
    return [line for line in diff(saved, new, ("model", "tokenizer", "data"))
            if line.split(":")[0] not in RESULT_NEUTRAL] + \
        [line for line in diff(saved, new, ("train",)) if line.split(":")[0] in RESULT_TRAIN]


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(cfg)


def from_dict(table: dict[str, Any]) -> Config:
    """Rebuild a Config saved by to_dict/to_toml, validating every key."""
    cfg = apply(Config(), flatten_toml(table))
    validate(cfg)
    return cfg


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_toml(cfg: Config) -> str:
    """The resolved config as TOML that --config reads back unchanged."""
    lines = []
    for section, values in to_dict(cfg).items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {_toml_value(value)}" for name, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def diff(a: Config, b: Config, sections: tuple[str, ...] = ("model", "tokenizer")) -> list[str]:
    """Keys whose values differ, as 'key: a -> b' lines."""
    da, db = to_dict(a), to_dict(b)
    return [f"{s}.{k}: {da[s][k]!r} -> {db[s][k]!r}" for s in sections for k in da[s] if da[s][k] != db[s][k]]

