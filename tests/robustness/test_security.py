"""Security audit as a test: dangerous calls may appear in the source tree only where an
allowlist entry says why they are safe.

Scanned: src/, scripts/, rules/*.smk, Snakefile, tests/ (this file excepted), .ci/ and setup.sh.
Checked: eval/exec (not the ``.eval()`` method), pickle/marshal/shelve loading, ``torch.load``
without ``weights_only=True``, ``numpy.load`` with ``allow_pickle=True``, ``yaml.load``
without a safe loader, ``shell=True``, ``os.system``/``os.popen``, ``trust_remote_code=True``,
``importlib.import_module``/``__import__`` (code chosen at run time), and ``shell:`` directives
of rules that interpolate anything but Snakemake's own paths and schema-checked params.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SELF = Path(__file__).resolve()

PATTERNS: dict[str, re.Pattern] = {
    "eval": re.compile(r"(?<![\w.])(?<!def )eval\s*\("),
    "exec": re.compile(r"(?<![\w.])(?<!def )exec\s*\("),
    "pickle": re.compile(r"\b(?:c?pickle|dill|joblib|marshal|shelve)\.(?:loads?|open|Unpickler)\b"),
    "torch.load": re.compile(r"\btorch\.load\s*\("),
    "np.load pickle": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load": re.compile(r"\byaml\.(?:load|load_all|unsafe_load|full_load)\s*\("),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"\bos\.(?:system|popen|exec[lv]p?e?)\s*\("),
    "trust_remote_code": re.compile(r"trust_remote_code\s*=\s*True"),
    "dynamic import": re.compile(r"\b(?:importlib\.import_module|__import__)\s*\("),
}

# (path relative to the repo, pattern name, text on the line) -> why it is safe
ALLOWLIST: dict[tuple[str, str, str], str] = {
    ("src/rmsd/teachers/base.py", "dynamic import", "importlib.import_module(BUILTIN_BACKENDS[name])"):
        "imports one of the fixed built-in backend modules (hf, vllm, openai) by name from a "
        "constant table; no user- or model-supplied module names",
    ("src/rmsd/evaluation/benchmarks/judge.py", "dynamic import", "importlib.import_module(mod_name)"):
        "evaluation.judge.factory 'module:function' from the (trusted, schema-validated) config, "
        "the documented plug-in point for judges; never from data or model output",
    ("src/rmsd/envs.py", "dynamic import", "func = getattr(importlib.import_module(mod), fn)"):
        "runs one of the fixed jobs of rmsd.envs.JOBS (a constant table) in the vLLM environment's "
        "interpreter; the job name is checked against the table before the child starts",
    ("tests/robustness/test_bad_videos.py", "np.load pickle", "allow_pickle=True"):
        "the test *writes* an object array to check that load_frames refuses to unpickle it",
}


def scanned_files() -> list[Path]:
    files = []
    for sub in ("src", "scripts", "tests", ".ci"):
        d = ROOT / sub
        if d.is_dir():
            files += [p for p in d.rglob("*") if p.is_file() and p.suffix in (".py", ".smk", "")
                      and "__pycache__" not in p.parts]
    files += sorted((ROOT / "rules").glob("*.smk"))
    files += [p for p in (ROOT / "Snakefile", ROOT / "setup.sh") if p.exists()]
    return [p for p in files if p.resolve() != SELF]


def logical_call(lines: list[str], i: int) -> str:
    """The line plus continuation lines up to the balancing parenthesis (at most 6 lines)."""
    text, depth = "", 0
    for line in lines[i:i + 6]:
        text += line
        depth += line.count("(") - line.count(")")
        if depth <= 0:
            break
    return text


def code_only(text: str) -> list[str]:
    """The source's lines with string literals and comments blanked (Python tokenizer), so payload
    strings in tests and docstrings that mention a call do not count; the raw lines when the
    file does not tokenize (shell scripts)."""
    lines = text.splitlines(keepends=True)
    out = [list(line) for line in lines]
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT):
                (r0, c0), (r1, c1) = tok.start, tok.end
                for r in range(r0, r1 + 1):
                    a = c0 if r == r0 else 0
                    b = c1 if r == r1 else len(out[r - 1])
                    for c in range(a, min(b, len(out[r - 1]))):
                        if out[r - 1][c] != "\n":
                            out[r - 1][c] = " "
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return lines
    return ["".join(x) for x in out]


def hits() -> list[tuple[str, int, str, str]]:
    out = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        lines = text.splitlines(keepends=True)
        codes = code_only(text)
        rel = str(path.relative_to(ROOT))
        for i, (line, code) in enumerate(zip(lines, codes)):
            for name, pat in PATTERNS.items():
                if not pat.search(code):
                    continue
                if name == "torch.load" and re.search(r"weights_only\s*=\s*True",
                                                      logical_call(lines, i)):
                    continue
                if name == "yaml.load" and re.search(r"Loader\s*=\s*yaml\.(?:C?SafeLoader)",
                                                     logical_call(lines, i)):
                    continue
                out.append((rel, i + 1, name, line.strip()))
    return out


def allowed(rel: str, name: str, line: str) -> bool:
    return any(r == rel and n == name and text in line for (r, n, text) in ALLOWLIST)


def test_no_dangerous_calls_outside_the_allowlist():
    bad = [f"{rel}:{ln}: {name}: {line}" for rel, ln, name, line in hits()
           if not allowed(rel, name, line)]
    assert not bad, "dangerous call(s) without an allowlist entry:\n" + "\n".join(bad)


def test_patterns_catch_what_they_should():
    for name, code in [("eval", "x = eval(text)"), ("exec", "exec(code)"),
                       ("pickle", "pickle.load(f)"), ("torch.load", "torch.load(p)"),
                       ("shell=True", "subprocess.run(c, shell=True)"), ("os.system", "os.system(c)"),
                       ("yaml.load", "yaml.load(s)"), ("dynamic import", "__import__(m)")]:
        assert PATTERNS[name].search(code), name
    assert not PATTERNS["eval"].search("model.eval()")
    assert not PATTERNS["exec"].search("self.executor(x)")


def test_rule_shell_commands_interpolate_no_data():
    """``shell:`` strings may only use Snakemake's own input/output/log/threads and params whose
    values come from the schema-checked config (launch_cmd; stop_signals: signal names matching
    ``^[A-Z0-9]+$``), never item or model text."""
    allowed_fields = {"input.cfg", "output", "log", "threads", "params.launch", "params.stop_signals"}
    found = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^\s*shell:\s*\n((?:\s+\".*\"\s*\n)+)", text, re.M):
            cmd = "".join(re.findall(r"\"(.*)\"", m.group(1)))
            fields = set(re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", cmd))
            found.append((smk.name, fields))
            assert fields <= allowed_fields, (smk.name, fields - allowed_fields)
    assert found  # the scan saw the shell rules


def test_openai_api_key_only_from_the_environment():
    """The key is read from the variable named by api_key_env, never configured, and never in a
    repr, an error message or a pool record."""
    import os

    from rmsd.teachers.openai_api import OpenAITeacher

    os.environ["RMSD_TEST_SECRET_KEY"] = "sk-test-0123456789"
    try:
        t = OpenAITeacher(teacher="t", endpoint="http://127.0.0.1:9/v1", model="m",
                          api_key_env="RMSD_TEST_SECRET_KEY", max_retries=0, timeout_s=0.5)
        assert "sk-test" not in repr(t) and "sk-test" not in str(vars(t).get("url"))
        assert t._scrub("error sk-test-0123456789 here") == "error *** here"
    finally:
        del os.environ["RMSD_TEST_SECRET_KEY"]
    schema = (ROOT / "config" / "schema.yaml").read_text()
    assert "api_key:" not in schema and "api_key_env" in schema  # only the variable's name
