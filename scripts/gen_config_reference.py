"""Regenerate docs/config_reference.md from config/schema.yaml (run after editing the schema).

Usage: python scripts/gen_config_reference.py [--check]
--check exits 1 (without writing) when the committed file is stale.
"""

import sys
from pathlib import Path

from rmsd.report.config_doc import generate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA, OUT = ROOT / "config" / "schema.yaml", ROOT / "docs" / "config_reference.md"

if __name__ == "__main__":
    text = generate(SCHEMA)
    if "--check" in sys.argv[1:]:
        stale = not OUT.exists() or OUT.read_text() != text
        print(f"{OUT.relative_to(ROOT)} is {'STALE: run python scripts/gen_config_reference.py' if stale else 'up to date'}")
        sys.exit(1 if stale else 0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
