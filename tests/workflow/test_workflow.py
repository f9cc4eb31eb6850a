"""The whole DAG on the small test config: runs, is idempotent, and reruns exactly what a change affects."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rmsd.config import resolve_variant

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def job_counts(out: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a (dry) run."""
    counts = {}
    m = re.search(r"Job stats:\n(.*?)\n\n", out, re.S)
    if not m:
        return counts
    for line in m.group(1).splitlines()[2:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def job_list(out: str) -> dict[tuple[str, frozenset], int]:
    """(rule, wildcards) of every job a (dry) run lists, with how often each occurs."""
    jobs: dict[tuple[str, frozenset], int] = {}
    for m in re.finditer(r"^(?:local)?rule (\S+):\n((?:[ \t]+.*\n?)*)", out, re.M):
        wc = re.search(r"^\s+wildcards: (.*)$", m.group(2), re.M)
        items = frozenset(tuple(kv.split("=", 1)) for kv in wc.group(1).split(", ")) if wc else frozenset()
        key = (m.group(1), items)
        jobs[key] = jobs.get(key, 0) + 1
    return jobs


def resolved_config(path: Path) -> dict:
    """The config Snakemake runs with ``--configfile path``: that file alone (the Snakefile loads
    config/config.yaml only when no --configfile is given)."""
    return yaml.safe_load(Path(path).read_text())


def report_variants(cfg: dict) -> list[str]:
    """The defined variants that some table or figure of the report shows."""
    rep = cfg["report"]
    names = (rep["main_variants"] + rep.get("ablation_variants", []) + rep.get("k_variants", [])
             + rep.get("tau_variants", []) + rep.get("task_adaptive_variants", []) + rep.get("curve_variants", [])
             + rep.get("pass_at_k", {}).get("variants", []))
    return [v for v in dict.fromkeys(names) if v in cfg["variants"]]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A finished run of the test config in a scratch directory (code symlinked from the repo)."""
    wd = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "rules", "scripts", "config", "report"):
        (wd / name).symlink_to(ROOT / name)
    (wd / "test.yaml").write_text((ROOT / "tests" / "workflow" / "config.yaml").read_text())
    snakemake(wd, "all", "ablations", "--configfile", "test.yaml")  # --configfile takes several values: last
    return wd


def test_outputs_exist_and_are_real(workspace):
    main = pd.read_csv(workspace / "results/tables/main.csv")
    assert list(main.variant[:4]) == ["base", "sft_rl_single", "single_sample", "rmsd"]
    assert main["n_seeds"].tolist()[:4] == [1, 2, 2, 2]
    assert main["mean"].between(0, 100).all()
    assert (workspace / "results/tables/main.md").read_text().startswith("Table 1")
    assert (workspace / "results/tables/ablation.md").exists()
    assert (workspace / "results/figures/main.png").stat().st_size > 10_000
    assert (workspace / "results/figures/teacher_variance.png").stat().st_size > 10_000
    metrics = json.loads((workspace / "results/eval/rmsd/seed0/synth-test/metrics.json").read_text())
    assert metrics["n_items"] == 30 and set(metrics["per_task"]) == {"mcq", "temporal", "open"}
    clips = [json.loads(x) for x in (workspace / "results/frames/clips/manifest.jsonl").read_text().splitlines()]
    assert len(clips) >= 2 and all(c["num_frames"] == 8 for c in clips)
    log = [json.loads(x) for x in (workspace / "results/models/rmsd/seed0/train_log.jsonl").read_text().splitlines()]
    rl = [r for r in log if "disc_acc" in r]
    assert rl and all(k in rl[-1] for k in ("reward", "r_outer", "r_task", "r_content", "disc_loss", "kl"))


def test_second_run_does_nothing(workspace):
    out = snakemake(workspace, "all", "ablations", "-n", "--configfile", "test.yaml")
    assert job_counts(out.stdout) == {}, out.stdout[-2000:]


def _reversed_keys(x):
    if isinstance(x, dict):
        return {k: _reversed_keys(x[k]) for k in reversed(list(x))}
    if isinstance(x, list):
        return [_reversed_keys(v) for v in x]
    return x


def test_reordered_config_reruns_nothing(workspace):
    """Params are compared by value: the same config with every mapping's keys in reverse order
    (and flow style) is up to date."""
    cfg = yaml.safe_load((workspace / "test.yaml").read_text())
    swapped = _reversed_keys(cfg)
    assert list(swapped) != list(cfg)
    (workspace / "swapped.yaml").write_text(yaml.safe_dump(swapped, sort_keys=False, default_flow_style=True))
    out = snakemake(workspace, "all", "ablations", "-n", "--configfile", "swapped.yaml")
    assert job_counts(out.stdout) == {}, out.stdout[-2000:]


def test_user_file_on_a_base_with_a_served_teacher(workspace):
    """`base` + `replace`: only the user's teacher is sampled; its API key is checked by a dry run."""
    (workspace / "mine.yaml").write_text(
        "base: test.yaml\nreplace: [sampling.teachers, models.teachers, recipe.selection.teachers]\n"
        "models: {teachers: {}}\n"
        "sampling: {teachers: {mine: {backend: openai, endpoint: 'http://127.0.0.1:9/v1', model: m, "
        "api_key_env: RMSD_WF_TEST_KEY}}}\nrecipe: {selection: {teachers: [mine]}}\n"
        "variants: {rmsd: {}}\nreport: {main_variants: [rmsd]}\n")
    env_key = os.environ.pop("RMSD_WF_TEST_KEY", None)
    out = snakemake(workspace, "-n", "--configfile", "mine.yaml", check=False)
    assert out.returncode != 0
    assert "sampling.teachers.mine.api_key_env names RMSD_WF_TEST_KEY, which is not set" in out.stdout + out.stderr
    os.environ["RMSD_WF_TEST_KEY"] = "k"
    try:
        out = snakemake(workspace, "results/pool/mine/synth-distill.jsonl", "-n", "--configfile", "mine.yaml")
    finally:
        os.environ.pop("RMSD_WF_TEST_KEY")
        if env_key is not None:
            os.environ["RMSD_WF_TEST_KEY"] = env_key
    jobs = job_counts(out.stdout)
    assert jobs == {"sample_teacher_shard": 2, "sample_teacher": 1}, jobs
    assert "models_teacher" not in out.stdout


def test_run_saves_its_config_and_report_checks_it(workspace):
    saved = yaml.safe_load((workspace / "results/config/resolved.yaml").read_text())
    assert saved["seeds"] == [0, 1] and saved["sampling"]["K"] == 4
    assert saved["sampling"]["identical_max_share"] == 0.9  # schema defaults filled in
    pools = [json.loads(x) for x in (workspace / "results/pool/strong/synth-distill.jsonl").read_text().splitlines()]
    assert all(1 <= r["n_distinct"] <= 4 for r in pools)
    out = snakemake(workspace, "--report", "other.html", "report", check=False)  # the default config
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "the config given differs from the one the results" in text
    assert "data.n_per_task.test: run 10, given 300" in text and "more" in text
    assert not (workspace / "other.html").exists()


def test_sampling_param_change_reruns_downstream_only(workspace):
    cfg = yaml.safe_load((workspace / "test.yaml").read_text())
    cfg["sampling"]["teachers"]["weak"]["temperature"] = 0.9
    (workspace / "changed.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))  # key order is part of Snakemake params
    out = snakemake(workspace, "all", "ablations", "-n", "--configfile", "changed.yaml")
    jobs = job_counts(out.stdout)
    assert jobs.get("sample_teacher") == 1  # only the changed teacher
    for rule in ("score_pool", "score_select", "train_config", "train_student", "eval_run",
                 "report_table_main", "report_table_teacher", "report_figure_teacher_variance"):
        assert rule in jobs, (rule, jobs)
    for rule in ("data_synth", "data_clips", "frames_extract", "models_processor", "models_teacher",
                 "models_student_base", "report_figure_pipeline"):
        assert rule not in jobs, (rule, jobs)
    # every trained variant of the tables x 2 seeds; base and teacher rows are not re-evaluated
    trained = [v for v in report_variants(resolved_config(workspace / "test.yaml")) if resolve_variant(resolved_config(workspace / "test.yaml"), v)["train"]]
    assert jobs["train_student"] == 2 * len(trained) and jobs["eval_run"] == 2 * len(trained), (trained, jobs)


def test_tau_change_reruns_only_affected_variants(workspace):
    cfg = yaml.safe_load((workspace / "test.yaml").read_text())
    cfg["recipe"]["selection"]["tau"] = 0.4  # not 0.5: tau0.5 has that value, and Table 5 takes one row per tau
    (workspace / "tau.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))  # key order is part of Snakemake params
    out = snakemake(workspace, "all", "ablations", "-n", "--configfile", "tau.yaml")
    jobs = job_list(out.stdout + out.stderr)
    before, after = resolved_config(workspace / "test.yaml"), resolved_config(workspace / "tau.yaml")
    shown = report_variants(after)
    affected = sorted(v for v in shown if resolve_variant(after, v)["train"]
                      and resolve_variant(after, v)["selection"] != resolve_variant(before, v)["selection"])
    # filtered, rmsd, match_uu inherit tau; sft_rl_single, single_sample, multi_sample, tau0.5 set their own
    assert affected == ["filtered", "match_uu", "rmsd"]
    rep = after["report"]
    seeds, bench = after["seeds"], after["evaluation"]["benchmarks"][0]
    expected = set()
    for v in affected:
        for s in seeds:
            for rule in ("score_select", "train_config", "train_student"):
                expected.add((rule, frozenset({"variant": v, "seed": str(s)}.items())))
            expected.add(("eval_run", frozenset({"variant": v, "seed": str(s), "dataset": bench}.items())))
            if v in rep["pass_at_k"]["variants"]:
                expected.add(("report_eval_pass_at_k", frozenset({"variant": v, "seed": str(s), "dataset": bench}.items())))
    tables_of = {"report_table_main": rep["main_variants"], "report_table_ablation": rep["ablation_variants"],
                 "report_table_k": rep["k_variants"], "report_table_tau": rep["tau_variants"],
                 "report_table_task_adaptive": rep["task_adaptive_variants"],
                 "report_figure_main": rep["main_variants"], "report_figure_training": rep["curve_variants"],
                 "report_figure_pass_at_k": rep["pass_at_k"]["variants"],
                 "report_table_comparisons": [v for pair in rep["comparisons"] for v in pair],
                 "report_table_findings": rep["main_variants"] + rep["ablation_variants"] + rep["k_variants"]
                 + rep["tau_variants"] + rep["task_adaptive_variants"]}
    for rule, variants in tables_of.items():
        if set(variants) & set(affected):
            expected.add((rule, frozenset()))
    expected |= {("report_figure_sensitivity", frozenset()), ("all", frozenset()), ("ablations", frozenset()),
                 ("run_config", frozenset())}  # the saved resolved config follows every config change
    assert set(jobs) == expected, (sorted(set(jobs) - expected), sorted(expected - set(jobs)))
    assert all(n == 1 for n in jobs.values()), jobs


def test_unknown_config_key_fails_at_parse_time(workspace):
    cfg = yaml.safe_load((workspace / "test.yaml").read_text())
    cfg["sampling"]["teachers"]["weak"]["temprature"] = 0.9
    (workspace / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))  # key order is part of Snakemake params
    out = snakemake(workspace, "-n", "--configfile", "bad.yaml", check=False)
    assert out.returncode != 0
    assert "temprature" in out.stdout + out.stderr


MODEL_RULES = ("models_teacher", "models_student_base", "sample_teacher", "sample_teacher_shard", "score_pool",
               "score_select", "train_config", "train_student", "eval_run", "report_eval_pass_at_k")
TABLES = ("main", "vstar", "teacher_unreliability", "ablation", "k_sensitivity", "tau_sensitivity", "task_adaptive",
          "comparisons", "findings")
FIGURES = ("main", "teacher_variance", "pass_at_k", "training_curves", "pipeline", "sensitivity")


def test_report_tables_and_figures(workspace):
    res = workspace / "results"
    for t in TABLES:
        for ext in ("csv", "md", "tex", "html"):
            assert (res / "tables" / f"{t}.{ext}").stat().st_size > 0, (t, ext)
        tex = (res / "tables" / f"{t}.tex").read_text()
        assert "\\toprule" in tex and "\\bottomrule" in tex and "±" not in tex
    for f in FIGURES:
        assert (res / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG", f
        assert (res / "figures" / f"{f}.pdf").read_bytes()[:4] == b"%PDF", f
    main = pd.read_csv(res / "tables/main.csv").set_index("variant")
    assert main.loc["rmsd", "paper_VideoMME"] == 65.3 and "teacher-strong" in main.index
    assert "±" in main.loc["rmsd", "score"] or main.loc["rmsd", "n_seeds"] == 1
    assert "not configured" in (res / "tables/vstar.md").read_text()
    abl = pd.read_csv(res / "tables/ablation.csv")
    assert list(abl.row) == ["A", "B", "C", "D"] and abl.retained_pct_mean.notna().all()
    k = pd.read_csv(res / "tables/k_sensitivity.csv")
    # every K of the paper is a row; ours where a variant has it (k8 is listed but undefined: not run)
    assert list(k.K) == [1, 2, 4, 8] and k.variant.fillna("-").tolist() == ["single_sample", "-", "rmsd", "-"]
    assert "not run: k8" in (res / "tables/k_sensitivity.md").read_text()
    tau = pd.read_csv(res / "tables/tau_sensitivity.csv")
    run = tau[tau.variant.notna()].set_index("variant")
    assert run.loc["rmsd", "tau"] == 0.3 and run.loc["tau0.5", "tau"] == 0.5
    assert run.retained_pct_mean.between(0, 100).all()
    ta = pd.read_csv(res / "tables/task_adaptive.csv")
    assert set(zip(ta.closed_weighting, ta.open_weighting)) == {("quality", "uniform"), ("uniform", "uniform")}
    comp = pd.read_csv(res / "tables/comparisons.csv")
    assert comp[["a", "b"]].values.tolist() == [["rmsd", "single_sample"], ["rmsd", "base"]]
    assert (comp.n_pairs == 2).all()  # 2 seeds; base (one seed) is subtracted from each
    findings = pd.read_csv(res / "tables/findings.csv").set_index("finding")
    assert set(findings.status) <= {"reproduced", "inconclusive", "not reproduced", "not run"}
    assert findings.loc["uniform matching better for open-ended tasks", "status"] == "not run"  # no open: quality
    assert findings.loc["R-MSD > original SFT+RL", "status"] != "not run"
    assert (res / "pass_at_k/rmsd/seed0/synth-test/metrics.json").exists()
    pak = json.loads((res / "pass_at_k/rmsd/seed0/synth-test/metrics.json").read_text())
    assert set(pak["pass_at_k"]) == {"1", "2", "3", "4"} and pak["n_items"] == 6
    dot = (res / "figures/pipeline.dot").read_text()
    for rule in ("train_student", "eval_run", "report_table_main", "score_select"):
        assert f'label="{rule}"' in dot


def test_deleting_a_table_reruns_only_its_report_rule(workspace):
    main_csv = workspace / "results/tables/main.csv"
    before = main_csv.read_text()
    main_csv.unlink()
    out = snakemake(workspace, "all", "ablations", "-n", "--configfile", "test.yaml")
    rules = {rule for rule, _ in job_list(out.stdout + out.stderr)}
    assert rules - {"all", "ablations"} == {"report_table_main"}, rules
    out = snakemake(workspace, "all", "ablations", "--configfile", "test.yaml")  # regenerate it for real
    ran = set(job_counts(out.stdout + out.stderr))
    assert ran - {"all", "ablations"} == {"report_table_main"} and not ran & set(MODEL_RULES), ran
    assert main_csv.read_text() == before


def test_html_report_is_self_contained_and_renders(workspace, tmp_path):
    out = snakemake(workspace, "--report", "results/report.html", "report", "--configfile", "test.yaml")
    html = (workspace / "results/report.html").read_text()
    assert "Report created" in out.stdout + out.stderr
    assert not re.search(r"<script[^>]+src=[\"']https?://", html) and not re.search(
        r"<link[^>]+href=[\"']https?://", html), "report.html loads remote resources"
    for t in TABLES:
        assert f"results/tables/{t}.html" in html, t
    for f in FIGURES:
        assert f"results/figures/{f}.png" in html, f
    chromium = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
    if chromium is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium; .ci/run installs it): "
                    "the report was built and checked statically only")
    # Open every table's result pane in the report's React app and collect what it renders.
    probe = """<script>
window.addEventListener('load', function () {
  var paths = Object.keys(results).filter(function (p) { return p.indexOf('tables/') >= 0 && /\\.html$/.test(p); });
  var box = document.createElement('div'); box.id = 'rmsd-rendered';
  var i = 0;
  function next() {
    if (i > 0) {
      var sec = document.createElement('section');
      sec.setAttribute('data-path', paths[i - 1]);
      sec.innerHTML = document.querySelector('nav').innerHTML;
      box.appendChild(sec);
    }
    if (i >= paths.length) { document.body.appendChild(box); return; }
    app.showResultInfo(paths[i]); i += 1; setTimeout(next, 200);
  }
  setTimeout(next, 500);
});
</script></body>"""
    page = tmp_path / "report_probe.html"
    head, tail = html.rsplit("</body>", 1)  # the last one: report data may contain the string too
    page.write_text(head + probe + tail)
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=240)
    dom = proc.stdout
    assert 'id="rmsd-rendered"' in dom, f"the report did not render in Chromium: {proc.stderr[-2000:]}"
    rendered = dom[dom.index('id="rmsd-rendered"'):]
    for t in TABLES:
        assert f'id="table-{t}"' in rendered, f"table {t} not rendered in the report"
    assert rendered.count("<table") >= len(TABLES)
    assert "R-MSD (full)" in rendered and "65.3 (+1.5)" in rendered and "not configured" in rendered
