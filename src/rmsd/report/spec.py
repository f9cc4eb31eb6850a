"""Which cached results each table and figure of the report reads (config ``report:``).

:class:`ReportSpec` turns the config into file lists for the report rules (rules/report.smk reads
them through rules/common.smk) and into the row descriptions the tables are built from. Rows of the
sensitivity tables are variant names; their K, tau and matching weights are read from each
variant's resolved recipe, never from the name, so a row cannot be mislabelled.

A name listed in ``k_variants``, ``tau_variants`` or ``task_adaptive_variants`` that is not a
defined variant is not an error: it is left out and the table's caption names it as "not run" (the
default config lists ``k8``, which needs ``sampling.K >= 8``). Every other name must exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rmsd.config import TEACHER_PREFIX, resolve_variant, variant_seeds
from rmsd.errors import ConfigError

VSTAR = "V-STaR"
"""Benchmark name of Table 2 (rmsd.evaluation.benchmarks)."""

SENSITIVITY_KEYS = ("k_variants", "tau_variants", "task_adaptive_variants")
DEFAULT_PASS_AT_K = {"samples": 0, "items_per_task": 50, "temperature": 1.0, "threshold": 0.5}


def eval_metrics_path(variant: str, seed: int, benchmark: str) -> str:
    return f"results/eval/{variant}/seed{seed}/{benchmark}/metrics.json"


def pass_at_k_metrics_path(variant: str, seed: int, benchmark: str) -> str:
    return f"results/pass_at_k/{variant}/seed{seed}/{benchmark}/metrics.json"


@dataclass
class ReportSpec:
    """The report's view of the config: rows per table, seeds per variant, input files.

    Build with :meth:`from_config` (validates the ``report`` block against the variants).
    """

    config: dict
    main: list[str]
    ablation: list[str]
    k: list[str]
    tau: list[str]
    task_adaptive: list[str]
    curves: list[str]
    pass_at_k: dict
    benchmark: str
    not_run: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict) -> "ReportSpec":
        """Read ``config["report"]``.

        Raises:
            ConfigError: an unknown variant in ``main_variants``, ``ablation_variants``,
                ``curve_variants`` or ``pass_at_k.variants``; an untrained variant in
                ``curve_variants``; ``benchmark`` not in ``evaluation.benchmarks``.
        """
        rep = config["report"]
        variants = config["variants"]
        teachers = [f"{TEACHER_PREFIX}{t}" for t in sorted(config["models"]["teachers"])]  # not YAML order
        benchmarks = config["evaluation"]["benchmarks"]

        def known(key: str, names: list[str], allow_teachers: bool = True) -> list[str]:
            for n in names:
                if n not in variants and not (allow_teachers and n in teachers):
                    raise ConfigError(f"report.{key}: unknown variant {n!r}; valid: {sorted(variants)}")
            return list(names)

        main = known("main_variants", rep["main_variants"])
        if rep.get("teacher_rows", True):
            main += [t for t in teachers if t not in main]
        ablation = known("ablation_variants", rep.get("ablation_variants", []))
        not_run, sens = {}, {}
        for key in SENSITIVITY_KEYS:
            names = list(rep.get(key, []))
            sens[key] = [n for n in names if n in variants]
            not_run[key] = [n for n in names if n not in variants]
        trained = [v for v in variants if resolve_variant(config, v)["train"]]
        curves = known("curve_variants", rep.get("curve_variants", [v for v in main if v in trained]),
                       allow_teachers=False)
        if bad := [v for v in curves if v not in trained]:
            raise ConfigError(f"report.curve_variants: {bad} are not trained (no train_log.jsonl)")
        pak = {**DEFAULT_PASS_AT_K, **rep.get("pass_at_k", {})}
        pak["variants"] = known("pass_at_k.variants", pak.get("variants", [v for v in ("sft_rl_single", "rmsd")
                                                                         if v in variants]))
        for pair in rep.get("comparisons", []):
            known("comparisons", list(pair))
            if pair[0] == pair[1]:
                raise ConfigError(f"report.comparisons: {list(pair)} compares a variant with itself")
        bench = rep.get("benchmark", benchmarks[0])
        if bench not in benchmarks:
            raise ConfigError(f"report.benchmark = {bench!r} is not in evaluation.benchmarks {benchmarks}")
        spec = cls(config=config, main=main, ablation=ablation, k=sens["k_variants"],
                   tau=sens["tau_variants"], task_adaptive=sens["task_adaptive_variants"],
                   curves=curves, pass_at_k=pak, benchmark=bench, not_run=not_run)
        spec._check_rows()
        return spec

    def _check_rows(self) -> None:
        """The recipes must fit the rows they fill: Table 3's A-D, one row per K / tau value.

        Raises:
            ConfigError: naming the ``report`` key, the variant and what its recipe lacks.
        """
        if self.ablation:
            if len(self.ablation) != 4:
                raise ConfigError(f"report.ablation_variants: needs exactly 4 rows (A-D), got {self.ablation}")
            a, b, c, d = (self.row(v) for v in self.ablation)
            checks = [(a, a.get("K") == 1, "row A (single-sample) needs K = 1"),
                      (b, (b.get("K") or 0) > 1 and b.get("tau") == 0,
                       "row B (multi-sample) needs K > 1 and tau = 0"),
                      (c, (c.get("tau") or 0) > 0 and (c.get("weighting") or {}).get("closed") == "uniform",
                       "row C (+ filtering) needs tau > 0 and closed weighting uniform"),
                      (d, (d.get("tau") or 0) > 0 and (d.get("weighting") or {}).get("closed") == "quality",
                       "row D (full R-MSD) needs tau > 0 and closed weighting quality")]
            for row, ok, what in checks:
                if not row["train"] or not ok:
                    raise ConfigError(f"report.ablation_variants: {row['variant']!r} is in the wrong place: {what}")
        for key, field_, names in (("k_variants", "K", self.k), ("tau_variants", "tau", self.tau)):
            seen: dict = {}
            for v in names:
                val = self.row(v).get(field_)
                if val in seen:
                    raise ConfigError(f"report.{key}: {seen[val]!r} and {v!r} both have {field_} = {val} "
                                      f"(one row per {field_} value in Table {4 if field_ == 'K' else 5}): "
                                      f"change the value, or drop one of them from report.{key}")
                seen[val] = v

    # ---------------------------------------------------------------- variants and seeds
    @property
    def benchmarks(self) -> list[str]:
        return list(self.config["evaluation"]["benchmarks"])

    def trained(self, variant: str) -> bool:
        return bool(resolve_variant(self.config, variant)["train"])

    def seeds(self, variant: str) -> list[int]:
        """The variant's seeds (:func:`rmsd.config.variant_seeds`)."""
        return variant_seeds(self.config, variant)

    def ablation_variants(self) -> list[str]:
        """Every variant the ablations target needs (Tables 3-6), in first-seen order."""
        return list(dict.fromkeys(self.ablation + self.k + self.tau + self.task_adaptive))

    def row(self, variant: str) -> dict:
        """What a table shows about a variant's recipe (also the rule's params: a recipe change
        reruns the tables that show it)."""
        v = resolve_variant(self.config, variant)
        if not v["train"]:
            return {"variant": variant, "train": False, "teacher": v.get("teacher")}
        sel = v["selection"]
        return {"variant": variant, "train": True, "K": sel["K"], "tau": sel["tau"],
                "format_filter": sel["format_filter"], "weighting": dict(sel["weighting"]),
                "sft_target": dict(sel["sft_target"]), "stage2": v["stage2"]["mode"],
                "disc_weight": (v["stage2"].get("rl") or {}).get("disc_weight", "quality"),
                "n_seeds": len(self.seeds(variant))}

    def rows(self, variants: list[str]) -> list[dict]:
        return [self.row(v) for v in variants]

    @property
    def comparisons(self) -> list[list[str]]:
        """``report.comparisons``: the ``[a, b]`` pairs of the paired-comparison table."""
        return [list(p) for p in self.config["report"].get("comparisons", [])]

    def comparison_variants(self) -> list[str]:
        return list(dict.fromkeys(v for p in self.comparisons for v in p))

    def roles(self) -> dict:
        """Which variant plays which part in the paper's findings (rmsd.report.findings).

        ``base``: the main row named base, else the first untrained main row; ``sft_rl``: the first
        main row with Stage 2 ``rule``; ``single``/``multi``/``filtered``/``full``: ablation rows A-D
        (without four rows: ``single`` = the first adversarial main row with K = 1, ``full`` =
        ``rmsd`` when defined); ``gt``: the first main row with a ground-truth SFT target; ``k`` and
        ``tau``: ``{"4": variant}`` / ``{"0.3": variant}`` of the sensitivity rows; ``match``:
        ``{"closed/open" weighting: variant}`` of Table 6 (string keys: the dict is a rule param); ``pass_at_k``: the pass@k variants (baseline first); ``teachers``:
        the teacher reference rows.
        """
        rows = {v: self.row(v) for v in dict.fromkeys(self.main + self.ablation + self.k + self.tau
                                                         + self.task_adaptive)}
        trained = [v for v in self.main if rows[v]["train"]]
        base = "base" if "base" in self.main else next(
            (v for v in self.main if not rows[v]["train"] and not rows[v].get("teacher")), None)
        out: dict = {"base": base, "teachers": [v for v in self.main if rows[v].get("teacher")],
                     "sft_rl": next((v for v in trained if rows[v]["stage2"] == "rule"), None),
                     "gt": next((v for v in trained if "ground_truth" in rows[v]["sft_target"].values()), None)}
        if len(self.ablation) == 4:
            out.update(zip(("single", "multi", "filtered", "full"), self.ablation))
        else:
            out["single"] = next((v for v in trained if rows[v]["K"] == 1 and rows[v]["stage2"] == "adversarial"),
                                 None)
            out["full"] = "rmsd" if "rmsd" in self.config["variants"] else None
        out["k"] = {str(int(rows[v]["K"])): v for v in self.k}
        out["tau"] = {f"{float(rows[v]['tau']):g}": v for v in self.tau}
        out["match"] = {f"{rows[v]['weighting']['closed']}/{rows[v]['weighting']['open']}": v
                        for v in self.task_adaptive}
        out["pass_at_k"] = list(self.pass_at_k["variants"])
        return out

    def roles_variants(self) -> list[str]:
        """Every variant :meth:`roles` names (the findings table's metrics)."""
        r = self.roles()
        names = [r[k] for k in ("base", "sft_rl", "gt", "single", "multi", "filtered", "full") if r.get(k)]
        names += r["teachers"] + list(r["k"].values()) + list(r["tau"].values()) + list(r["match"].values())
        return list(dict.fromkeys(names))

    # ---------------------------------------------------------------- input files
    def metrics(self, variants: list[str], benchmarks: list[str] | None = None) -> list[str]:
        """metrics.json of every (variant, seed, benchmark)."""
        bs = self.benchmarks if benchmarks is None else benchmarks
        return [eval_metrics_path(v, s, b) for v in variants for s in self.seeds(v) for b in bs]

    def selection_stats(self, variants: list[str]) -> list[str]:
        return [f"results/select/{v}/seed{s}.stats.json" for v in variants if self.trained(v)
                for s in self.seeds(v)]

    def model_dirs(self, variants: list[str]) -> list[str]:
        return [f"results/models/{v}/seed{s}" for v in variants if self.trained(v) for s in self.seeds(v)]

    def vstar_metrics(self) -> list[str]:
        """V-STaR metrics of the main rows, or none when V-STaR is not evaluated."""
        return self.metrics(self.main, [VSTAR]) if VSTAR in self.benchmarks else []

    @property
    def pass_at_k_source(self) -> str:
        """``eval`` (evaluation.pass_k_samples > 0: every eval_run has pass@k), ``report`` (the
        report_eval_pass_at_k rule samples the pass@k variants), or ``off``."""
        if self.config["evaluation"].get("pass_k_samples", 0) > 0:
            return "eval"
        return "report" if self.pass_at_k["samples"] > 0 else "off"

    def pass_at_k_metrics(self) -> list[str]:
        src = self.pass_at_k_source
        if src == "eval":
            return self.metrics(self.pass_at_k["variants"], [self.benchmark])
        if src == "report":
            return [pass_at_k_metrics_path(v, s, self.benchmark) for v in self.pass_at_k["variants"]
                    for s in self.seeds(v)]
        return []

    def pass_at_k_params(self) -> dict:
        """Settings of the pass@k samples (what the figure reports and report_eval_pass_at_k uses)."""
        ev = self.config["evaluation"]
        if self.pass_at_k_source == "eval":
            return {"source": "eval", "samples": ev["pass_k_samples"],
                    "temperature": ev.get("pass_k_temperature", 1.0),
                    "threshold": ev.get("pass_k_threshold", 0.5), "items_per_task": None,
                    "benchmark": self.benchmark}
        return {"source": self.pass_at_k_source, "benchmark": self.benchmark,
                **{k: self.pass_at_k[k] for k in ("samples", "temperature", "threshold", "items_per_task")}}
