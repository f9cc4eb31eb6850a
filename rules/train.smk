from rmsd.errors import ConfigError


def distill_items_known():
    """Items of the distill split when the count is known at parse time: a data.external file
    (counted), or the synthetic generator (data.n_per_task.distill x tasks); else None."""
    n = dataset_items_hint(DISTILL)
    if n is None and config["data"]["generator"] == "synth":
        n = int(config["data"]["n_per_task"]["distill"]) * len(config["data"]["tasks"])
    return n


def check_stage_split():
    """recipe.stage1.n_items + recipe.stage2.n_items (per trained variant) fit the distill items,
    checked when the workflow is parsed instead of when training starts."""
    n = distill_items_known()
    if n is None:
        return
    for name in config.get("variants") or {}:
        v = variant_cfg(name)
        if not v["train"]:
            continue
        n1, n2 = v["stage1"].get("n_items"), v["stage2"].get("n_items")
        if (n1 or 0) + (n2 or 0) > n:
            raise ConfigError(
                f"variant {name!r}: recipe.stage1.n_items ({n1}) + recipe.stage2.n_items ({n2}) "
                f"leave no disjoint items for both stages among the {n} items of the {DISTILL!r} "
                "split; set them for your data (null = the rest), e.g. in your config file: "
                "recipe: {stage1: {n_items: null}, stage2: {n_items: null}} for both stages on every item")


check_stage_split()


rule train_config:
    input:
        student=student_base_dir(),
        selection="results/select/{variant}/seed{seed}.jsonl",
        jsonl=f"results/data/{DISTILL}/items.jsonl",
        frames=f"results/frames/{DISTILL}/manifest.jsonl",
    output:
        cfg="results/train/{variant}/seed{seed}/config.yaml",
    log:
        "results/logs/train_config/{variant}/seed{seed}.log",
    params:
        stage1=lambda wc: variant_cfg(wc.variant)["stage1"],
        stage2=lambda wc: variant_cfg(wc.variant)["stage2"],
        scoring=config["scoring"],
        template=config["template"],
    script:
        "../scripts/train_config.py"


def train_resources(rule):
    """rule_resources plus checkpoint-and-exit before the Slurm time limit (slurm/README.md):
    runtime grows with the attempt (runtime x attempt, at most runtime_max), and slurm_extra
    --signal=SIG@SECONDS makes Slurm send preempt_signal that long before the limit to every process
    of the job's steps; training checkpoints, exits with status 75 and the retry resumes."""
    out = rule_resources(rule)
    base, cap = res(rule, "runtime"), res(rule, "runtime_max")
    out["runtime"] = lambda wc, attempt: min(base * attempt, cap) if cap else base * attempt
    lead = res(rule, "preempt_seconds")
    if lead and lead * 2 > base * 60:
        raise ConfigError(f"resources.{rule}.preempt_seconds = {lead} is more than half the runtime of "
                          f"{base} min: the job would be signalled to stop soon after it starts; "
                          "lower it (0 = no signal) or raise runtime")
    if lead:
        out["slurm_extra"] = f"--signal={res(rule, 'preempt_signal')}@{res(rule, 'preempt_seconds')}"
    return out


def stop_signals(rule):
    """Signals training checkpoints and exits on: the Slurm one, USR1 and TERM."""
    return ",".join(dict.fromkeys([res(rule, "preempt_signal"), "USR1", "TERM"]))


rule train_student:
    input:
        cfg="results/train/{variant}/seed{seed}/config.yaml",
    output:
        directory("results/models/{variant}/seed{seed}"),
    log:
        "results/logs/train_student/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_student/{variant}/seed{seed}.tsv"
    params:
        launch=launch_cmd("train_student", "rmsd.train"),
        stop_signals=stop_signals("train_student"),
    threads: 1
    retries: res("train_student", "retries")
    resources:
        **train_resources("train_student"),
    shell:
        "{params.launch} --config {input.cfg} --out {output} --threads {threads}"
        " --stop-signals {params.stop_signals} > {log} 2>&1"
