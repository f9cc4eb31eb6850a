"""Config files a user can write: `base` + `replace`, duplicate keys, short schema errors, API keys
checked at parse time, duplicate selection teachers, params compared by value."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rmsd.config import (
    canonical, check_api_keys, check_unique_teachers, compare_params_by_value, load_config_files,
    read_config_file, schema_errors, validate_config,
)
from rmsd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_and_replace_give_only_my_teacher(tmp_path):
    user = write(tmp_path / "exp" / "mine.yaml", f"""
base: {ROOT / 'config' / 'config.yaml'}
replace: [models.teachers, sampling.teachers, recipe.selection.teachers]
seeds: [0, 1]
models: {{teachers: {{}}}}
sampling:
  K: 4
  teachers:
    mine: {{backend: openai, endpoint: "http://127.0.0.1:8000/v1", model: mine}}
recipe: {{selection: {{teachers: [mine]}}}}
""")
    cfg = load_config_files([user], {"sampling": {"shards": 1}})
    assert cfg["models"]["teachers"] == {}
    assert cfg["sampling"]["teachers"] == {"mine": {"backend": "openai", "endpoint": "http://127.0.0.1:8000/v1",
                                                    "model": "mine"}}
    assert (cfg["sampling"]["K"], cfg["sampling"]["shards"], cfg["sampling"]["chunk_items"]) == (4, 1, 64)
    assert cfg["seeds"] == [0, 1] and cfg["recipe"]["selection"]["teachers"] == ["mine"]
    assert cfg["recipe"]["selection"]["tau"] == DEFAULT["recipe"]["selection"]["tau"]  # merged, not replaced
    assert cfg["models"]["student"] == DEFAULT["models"]["student"]
    assert "base" not in cfg and "replace" not in cfg
    validate_config(cfg, SCHEMA)


def test_base_is_relative_to_the_file_and_merges_without_replace(tmp_path):
    write(tmp_path / "a" / "base.yaml", "sampling: {K: 8, teachers: {t1: {backend: hf}}}\nseeds: [0]\n")
    user = write(tmp_path / "b" / "user.yaml", "base: ../a/base.yaml\nsampling: {teachers: {t2: {backend: hf}}}\n")
    assert load_config_files([user]) == {"sampling": {"K": 8, "teachers": {"t1": {"backend": "hf"},
                                                                           "t2": {"backend": "hf"}}},
                                         "seeds": [0]}
    with pytest.raises(ConfigError, match=r"user.yaml: base: 'nope.yaml' does not exist .*relative to the file"):
        load_config_files([write(tmp_path / "b" / "user.yaml", "base: nope.yaml\n")])
    with pytest.raises(ConfigError, match=r"replace: lists 'variants', which this file does not set"):
        load_config_files([write(tmp_path / "c.yaml", "replace: [variants]\nseeds: [0]\n")])
    write(tmp_path / "x.yaml", "base: y.yaml\n")
    with pytest.raises(ConfigError, match="`base` cycle"):
        load_config_files([write(tmp_path / "y.yaml", "base: x.yaml\n")])


def test_duplicate_keys_are_errors_at_any_depth(tmp_path):
    f = write(tmp_path / "d.yaml", "sampling:\n  teachers:\n    t: {backend: hf}\n    t: {backend: vllm}\n")
    with pytest.raises(ConfigError, match=r"d.yaml: line 4: duplicate key 't' \(first at line 3\)"):
        read_config_file(f)
    assert read_config_file(write(tmp_path / "ok.yaml", "a: {t: 1}\nb: {t: 2}\n")) == {"a": {"t": 1}, "b": {"t": 2}}


def test_schema_errors_are_a_few_lines_naming_key_and_allowed_values():
    cfg = copy.deepcopy(DEFAULT)
    cfg["sampling"]["teachers"]["weak"]["temprature"] = 0.9
    cfg["frames"]["policy"] = "random"
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("  frames.policy: 'random' is not allowed; allowed values: ['uniform', 'head']")
    assert lines[2].startswith("  sampling.teachers.weak: unknown key(s) ['temprature']; allowed: ['api_key_env', ")
    assert "'temperature'" in lines[2]
    cfg = copy.deepcopy(DEFAULT)
    cfg["sampling"]["K"] = "eight"
    (msg,) = schema_errors(cfg, yaml.safe_load(SCHEMA.read_text()))
    assert msg.startswith("sampling.K: 'eight': 'eight' is not of type 'integer'")
    assert len(msg) < 400


def test_api_keys_are_checked_at_parse_time(monkeypatch):
    cfg = copy.deepcopy(DEFAULT)
    cfg["sampling"]["teachers"]["served"] = {"backend": "openai", "endpoint": "http://h/v1", "model": "m",
                                             "api_key_env": "RMSD_TEST_UNSET_KEY"}
    monkeypatch.delenv("RMSD_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"sampling.teachers.served.api_key_env names RMSD_TEST_UNSET_KEY, "
                                          r"which is not set"):
        check_api_keys(cfg)
    monkeypatch.setenv("RMSD_TEST_UNSET_KEY", "k")
    check_api_keys(cfg)


def test_duplicate_selection_teachers_are_errors():
    cfg = copy.deepcopy(DEFAULT)
    check_unique_teachers(cfg)
    cfg["variants"]["rmsd"] = {"selection": {"teachers": ["strong", "weak", "strong"]}}
    with pytest.raises(ConfigError, match=r"variants.rmsd.selection.teachers: teacher\(s\) \['strong'\] listed more"):
        check_unique_teachers(cfg)


def test_params_are_serialized_in_canonical_key_order():
    from snakemake.persistence import PersistenceBase

    compare_params_by_value()
    compare_params_by_value()  # idempotent
    a = {"temperature": 0.7, "backend": "hf", "extra": {"y": 1, "x": [{"b": 2, "a": 1}]}}
    b = {"extra": {"x": [{"a": 1, "b": 2}], "y": 1}, "backend": "hf", "temperature": 0.7}
    ser = PersistenceBase._serialize_param_builtin
    assert repr(a) != repr(b)
    assert ser(None, a) == ser(None, b) == repr(canonical(a))
    assert ser(None, {"temperature": 0.8}) != ser(None, {"temperature": 0.7})
    assert ser(None, 3) == "3" and ser(None, "s") == "'s'"


def test_own_evaluation_items_are_checked_at_parse_time(tmp_path):
    from rmsd.config import check_eval_items, check_paths

    cfg = copy.deepcopy(DEFAULT)
    cfg["evaluation"]["items"] = {"mytest": str(tmp_path / "test.jsonl")}
    with pytest.raises(ConfigError, match=r"evaluation.items.mytest: not listed in evaluation.benchmarks"):
        check_eval_items(cfg)
    cfg["evaluation"]["benchmarks"] = ["synth-test", "mytest"]
    check_eval_items(cfg)
    validate_config(cfg, SCHEMA)
    with pytest.raises(ConfigError, match=r"evaluation.items.mytest: file .*test.jsonl does not exist"):
        check_paths(cfg)
    (tmp_path / "test.jsonl").write_text("{}\n")
    check_paths(cfg)
    cfg["evaluation"]["items"] = {"VideoMME": "x.jsonl"}
    with pytest.raises(ConfigError, match=r"evaluation.items.VideoMME: the name is taken by a built-in"):
        check_eval_items(cfg)


def test_external_data_needs_a_train_split_when_models_are_built_here():
    from rmsd.config import check_external_splits

    cfg = copy.deepcopy(DEFAULT)
    cfg["data"] = {"generator": "external", "external": {"distill": "d.jsonl"}}
    with pytest.raises(ConfigError, match=r"data.external.train is not set, but \['models.teachers.strong', "
                                          r"'models.teachers.weak', 'models.student'\] are built"):
        check_external_splits(cfg)
    cfg["models"] = {"teachers": {}, "student": {"path": "ckpt/student"}}
    check_external_splits(cfg)
    check_external_splits(DEFAULT)


def test_non_finite_numbers_fail_at_parse_time():
    """JSON-schema bounds never reject NaN (comparisons with it are false): checked separately."""
    import math

    from rmsd.config import non_finite_numbers

    cfg = {"recipe": {"stage1": {"sft": {"lr": math.nan}}, "stage2": {"rl": {"epochs": math.inf}}},
           "variants": {"k2": {"selection": {"tau": 0.3}}}, "x": [1.0, -math.inf]}
    assert non_finite_numbers(cfg) == ["recipe.stage1.sft.lr: nan is not a finite number",
                                       "recipe.stage2.rl.epochs: inf is not a finite number",
                                       "x[1]: -inf is not a finite number"]
