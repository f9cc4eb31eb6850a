"""Config: the schema rejects unknown keys and wrong types by name; variants resolve as documented."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rmsd.config import check_config, resolve_variant
from rmsd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = str(ROOT / "config" / "schema.yaml")


def load(name="config.yaml"):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "gpu.yaml"])
def test_shipped_configs_validate(name):
    if not (ROOT / "config" / name).exists():
        pytest.skip(f"{name} not present")
    cfg = load(name)
    validate(cfg, SCHEMA)
    check_config(cfg)


def test_workflow_test_config_validates():
    cfg = yaml.safe_load((ROOT / "tests" / "workflow" / "config.yaml").read_text())
    validate(cfg, SCHEMA)
    check_config(cfg)


def test_unknown_key_is_named():
    cfg = load()
    cfg["recipe"]["selection"]["tua"] = 0.3
    with pytest.raises(WorkflowError, match="tua"):
        validate(cfg, SCHEMA)


def test_wrong_type_is_named():
    cfg = load()
    cfg["recipe"]["selection"]["tau"] = "high"
    with pytest.raises(WorkflowError, match="tau"):
        validate(cfg, SCHEMA)


def test_resolve_variant_merges_recipe():
    cfg = load()
    v = resolve_variant(cfg, "single_sample")
    assert v["selection"]["K"] == 1
    assert v["selection"]["tau"] == 0.0
    assert v["selection"]["weighting"] == {"closed": "uniform", "open": "uniform"}
    assert v["stage2"]["mode"] == "adversarial"
    assert resolve_variant(cfg, "rmsd")["selection"]["tau"] == cfg["recipe"]["selection"]["tau"]
    assert resolve_variant(cfg, "base")["train"] is False
    assert resolve_variant(cfg, "teacher-strong") == {"train": False, "teacher": "strong"}


def test_unknown_variant_lists_valid():
    with pytest.raises(ConfigError, match="valid"):
        resolve_variant(load(), "rmds")


def test_cross_references_checked():
    cfg = load()
    bad = copy.deepcopy(cfg)
    bad["variants"]["rmsd"] = {"selection": {"teachers": ["nobody"]}}
    with pytest.raises(ConfigError, match="nobody"):
        check_config(bad)
    bad = copy.deepcopy(cfg)
    bad["variants"]["rmsd"] = {"selection": {"K": 99}}
    with pytest.raises(ConfigError, match="exceeds sampling.K"):
        check_config(bad)
