"""docs/config_reference.md is generated from config/schema.yaml and committed up to date."""

from pathlib import Path

import yaml

from rmsd.report.config_doc import config_reference, generate, type_text

ROOT = Path(__file__).resolve().parents[2]


def test_committed_reference_is_up_to_date():
    committed = (ROOT / "docs" / "config_reference.md").read_text()
    assert committed == generate(ROOT / "config" / "schema.yaml"), (
        "docs/config_reference.md is stale: run `python scripts/gen_config_reference.py` after editing "
        "config/schema.yaml")


def test_every_schema_key_is_documented():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    text = config_reference(schema)
    for top, node in schema["properties"].items():
        assert f"## {top}\n" in text
        for key in (node.get("properties") or {}):
            assert f"`{top}.{key}`" in text, f"{top}.{key} missing"
    assert "`report.pass_at_k.samples`" in text and "`models.teachers.NAME.arch.hidden`" in text


def test_refs_defaults_and_types():
    schema = {
        "$defs": {"x": {"type": "object", "description": "an x", "properties": {
            "a": {"type": "integer", "minimum": 1, "default": 2, "description": "A | pipe"}}}},
        "type": "object", "required": ["s"],
        "properties": {"s": {"description": "section", "type": "object", "required": ["y"], "properties": {
            "y": {"$ref": "#/$defs/x", "description": "own description"},
            "e": {"enum": ["p", "q"]}}}},
    }
    text = config_reference(schema)
    assert "| `s.y` | object |  | own description **required** |" in text
    assert "| `s.y.a` | integer (>= `1`) | 2 | A \\| pipe |" in text
    assert "one of `p`, `q`" in text
    assert type_text({"type": ["integer", "null"]}) == "integer or null"
