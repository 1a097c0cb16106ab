import pytest

from gpt.config import (
    PRESETS,
    Config,
    ConfigError,
    all_keys,
    load_toml,
    parse_duration,
    parse_overrides,
    resolve,
    to_toml,
)


def test_defaults_are_the_design_defaults():
    cfg = resolve(preset="default")
    assert (cfg.train.batch_size, cfg.model.block_size, cfg.model.n_embd, cfg.model.n_head, cfg.model.n_layer,
            cfg.tokenizer.vocab_size) == (64, 128, 384, 6, 6, 512)


def test_order_file_then_preset_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[model]\nn_layer = 3\nn_embd = 96\n[train]\nbeta2 = 0.5\nmax_time = "2m"\n')
    cfg = resolve(str(f), "tiny", {"model.n_layer": "5", "train.batch_size": 3})
    assert cfg.model.n_layer == 5  # override beats preset beats file
    assert cfg.model.n_embd == 32  # preset beats file
    assert cfg.train.beta2 == 0.5  # file beats defaults
    assert cfg.train.max_time == 120.0
    assert cfg.train.batch_size == 3


def test_parse_overrides_both_forms():
    assert parse_overrides(["--train.max_iters", "50", "--model.n_layer=2"]) == {"train.max_iters": "50",
                                                                               "model.n_layer": "2"}


@pytest.mark.parametrize("key,value,expected", [
    ("model.bias", "false", False), ("model.bias", "1", True), ("train.lr", "3e-4", 3e-4),
    ("tokenizer.special_tokens", "<|a|>,<|b|>", ["<|a|>", "<|b|>"]), ("train.max_time", "1.5h", 5400.0),
])
def test_types_convert(key, value, expected):
    cfg = resolve(overrides={key: value})
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) == expected


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'modle.n_layer' \(did you mean 'model.n_layer'\?\)"):
        resolve(overrides={"modle.n_layer": 2})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="model.n_layer.*expects int"):
        resolve(overrides={"model.n_layer": "two"})
    with pytest.raises(ConfigError, match="model.n_layer"):
        resolve(overrides={"model.n_layer": 2.5})


@pytest.mark.parametrize("overrides,pattern", [
    ({"model.n_head": 5}, r"model.n_embd \(384\).*model.n_head \(5\)"),
    ({"tokenizer.vocab_size": 200}, "tokenizer.vocab_size"),
    ({"model.block_size": 0}, "model.block_size"),
    ({"model.mlp": "tanh"}, "model.mlp"),
    ({"model.n_kv_head": 4}, "n_kv_head"),
    ({"train.precision": "fp8"}, "train.precision"),
    ({"train.weight_average": 1.0}, r"train.weight_average must be in \[0, 1\) \(0: off\); got 1.0"),
])
def test_impossible_values_fail(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve(preset="default", overrides=overrides)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="did you mean 'tiny'"):
        resolve(preset="tiyn")


def test_toml_round_trip(tmp_path):
    cfg = resolve(preset="llama", overrides={"data.input": ["a b.txt", 'q"uote']})
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    again = resolve(str(path))
    assert again == cfg


def test_bad_toml_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(path)


def test_every_preset_is_valid():
    keys = set(all_keys(Config()))
    for name, preset in PRESETS.items():
        assert set(preset) <= keys, name
        resolve(preset=name)


def test_parse_duration():
    assert parse_duration("70s") == 70 and parse_duration("5m") == 300 and parse_duration(12) == 12
    with pytest.raises(ValueError):
        parse_duration("soon")
