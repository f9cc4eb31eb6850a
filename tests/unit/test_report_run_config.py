"""The report describes the run it reports: the saved resolved config is compared by value."""

from __future__ import annotations

import pytest
import yaml

from rmsd.errors import ConfigError
from rmsd.report.run_config import check_report_config, config_diff, write_resolved


def test_same_config_in_another_key_order_passes(tmp_path):
    run = {"seeds": [0, 1], "sampling": {"K": 4, "teachers": {"t": {"backend": "hf", "seed": 0}}}}
    write_resolved(run, tmp_path / "resolved.yaml")
    assert list(yaml.safe_load((tmp_path / "resolved.yaml").read_text())) == ["sampling", "seeds"]
    check_report_config({"sampling": {"teachers": {"t": {"seed": 0, "backend": "hf"}}, "K": 4},
                         "seeds": [0, 1]}, tmp_path / "resolved.yaml")


def test_another_config_fails_naming_the_keys(tmp_path):
    write_resolved({"seeds": [0, 1], "sampling": {"K": 4}}, tmp_path / "config" / "resolved.yaml")
    with pytest.raises(ConfigError) as err:
        check_report_config({"seeds": [0, 1, 2, 3, 4], "sampling": {"K": 8}, "extra": 1},
                            tmp_path / "config" / "resolved.yaml")
    msg = str(err.value).splitlines()
    assert msg[0] == (f"--report: the config given differs from the one the results were made with "
                      f"({tmp_path / 'config' / 'resolved.yaml'}), so the report would describe another run:")
    assert msg[1:4] == ["  extra: run '<unset>', given 1", "  sampling.K: run 4, given 8",
                        "  seeds: run [0, 1], given [0, 1, 2, 3, 4]"]
    assert msg[-1] == "Pass the run's --configfile (and --config) to snakemake --report."
    with pytest.raises(ConfigError, match="does not exist: no run has saved its config here yet"):
        check_report_config({}, tmp_path / "nope.yaml")


def test_config_diff():
    assert config_diff({"a": {"b": 1, "c": [1]}}, {"a": {"c": [1], "b": 1}}) == []
    assert config_diff({"a": {"b": 1}}, {"a": {"b": 2, "d": 3}}) == [("a.b", 1, 2), ("a.d", "<unset>", 3)]
