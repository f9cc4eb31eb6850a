# Validation and input functions. No rules here.
import os
import sys

from snakemake.utils import validate

from rmsd.config import check_config, resolve_variant
from rmsd.report.spec import ReportSpec

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Shell rules run the interpreter (and torchrun, accelerate, deepspeed) of the environment that runs
# Snakemake, also when it was started as .venv/bin/snakemake without activating the environment.
ENV_BIN = os.path.dirname(sys.executable)
if ENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = ENV_BIN + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rmsd.config import canonical, check_api_keys, check_eval_items, check_external_splits, check_unique_teachers, compare_params_by_value, validate_config
validate_config(config, os.path.join(workflow.basedir, "config", "schema.yaml"))  # a few lines per bad key
validate(config, schema="../config/schema.yaml")  # fills in the schema's defaults
check_config(config)
check_unique_teachers(config)
check_eval_items(config)
check_api_keys(config)  # a dry run fails too: the key is needed by the jobs it lists
compare_params_by_value()  # params recorded in canonical key order: reformatting reruns nothing
if "--report" in sys.argv or any(a.startswith("--report=") for a in sys.argv):
    from rmsd.report.run_config import check_report_config

    check_report_config(config)  # the report's front page must describe the run it reports
from rmsd.config import check_paths; check_paths(config)  # input paths exist before any job starts
check_external_splits(config)  # after the paths: a missing file is the first thing to report

SYNTH_SPLITS = ["train", "distill", "test"]
SYNTHETIC = config["data"]["generator"] == "synth"
TRAIN = "synth-train" if SYNTHETIC else "train"
DISTILL = "synth-distill" if SYNTHETIC else "distill"


wildcard_constraints:
    split="|".join(SYNTH_SPLITS),
    dataset=r"[A-Za-z0-9_.\-]+",
    teacher="|".join(sorted(set(config["models"]["teachers"]) | set(config["sampling"]["teachers"]))),
    variant=r"[A-Za-z0-9_.\-]+",
    seed=r"\d+",


def variant_cfg(variant):
    return resolve_variant(config, variant)


def is_trained(variant):
    return variant_cfg(variant)["train"]





def teacher_dir(teacher):
    """A pretrained teacher's own directory, or the one the models_teacher rule trains."""
    return config["models"]["teachers"][teacher].get("path", f"results/models/teachers/{teacher}")


def student_base_dir():
    return config["models"]["student"].get("path", "results/models/student_base")


def model_dir(variant, seed):
    v = variant_cfg(variant)
    if "teacher" in v:
        return teacher_dir(v["teacher"])
    if not v["train"]:
        return student_base_dir()
    return f"results/models/{variant}/seed{seed}"


def get_model_dir(wildcards):
    return model_dir(wildcards.variant, wildcards.seed)


def selection_teachers(wildcards):
    return variant_cfg(wildcards.variant)["selection"]["teachers"]


def get_pool_files(wildcards):
    return expand("results/pool/{teacher}/{dataset}.jsonl", teacher=sorted(config["sampling"]["teachers"]),
                  dataset=wildcards.dataset)


def teacher_model_input(wildcards):
    """Model input of teacher sampling: teacher_dir (trained here or models.teachers.NAME.path); none for sampling.teachers.NAME.path or .endpoint."""
    t = config["sampling"]["teachers"][wildcards.teacher]
    if t.get("path") or t.get("endpoint"):
        return {}
    return {"model": teacher_dir(wildcards.teacher)}


##### report: which cached results each table and figure reads (rmsd.report.spec) #####
REPORT = ReportSpec.from_config(config)
TABLE_FORMATS = ("csv", "md", "tex", "html")


def report_files(kind, name):
    """The files of table or figure ``name``: results/tables/NAME.{csv,md,tex,html} or results/figures/NAME.{png,pdf}."""
    exts = TABLE_FORMATS if kind == "tables" else ("png", "pdf")
    return [f"results/{kind}/{name}.{ext}" for ext in exts]


def get_main_outputs():
    """Target all: Tables 1, 2, teacher unreliability and the paired comparisons; the main,
    teacher-variance, pass@k, training-curve and pipeline figures (no ablation-only variant is trained)."""
    out = [f for t in ("main", "vstar", "teacher_unreliability") for f in report_files("tables", t)]
    if REPORT.comparisons:
        out += report_files("tables", "comparisons")
    out += [f for fig in ("main", "teacher_variance", "pass_at_k", "training_curves", "pipeline")
            for f in report_files("figures", fig)]
    if config["data"].get("clips", False):
        out.append("results/frames/clips/manifest.jsonl")
    return out + ["results/config/resolved.yaml"]


def get_ablation_outputs():
    """Target ablations: Tables 3-6, the findings table and the K/tau sensitivity figure."""
    out = [f for t in ("ablation", "k_sensitivity", "tau_sensitivity", "task_adaptive", "findings")
           for f in report_files("tables", t)]
    return out + report_files("figures", "sensitivity") + ["results/config/resolved.yaml"]


def get_report_outputs():
    """Target report: every table and figure (what `snakemake --report results/report.html report` shows)."""
    return list(dict.fromkeys(get_main_outputs() + get_ablation_outputs()))


def get_pass_at_k_eval_cfg(wildcards):
    """Evaluation config of one report_eval_pass_at_k job: the dataset's eval_run settings."""
    return eval_params(config["evaluation"], wildcards.dataset)


def get_workflow_sources():
    """The Snakefile and rule files: the pipeline figure is redrawn when they change."""
    rules_dir = os.path.join(workflow.basedir, "rules")
    return [workflow.main_snakefile] + sorted(
        os.path.join(rules_dir, f) for f in os.listdir(rules_dir) if f.endswith(".smk"))


##### cluster resources of the GPU rules (config "resources"; read by the Slurm executor) #####
RESOURCE_DEFAULTS = {"gpu": 0, "cpus": 1, "mem_mb": 2000, "runtime": 60, "nodes": 1, "launcher": "python",
                     "retries": 1, "preempt_seconds": 600, "preempt_signal": "URG"}  # last three: train_student
LAUNCHERS = ("python", "torchrun", "accelerate", "deepspeed")


def res(rule, key):
    """config["resources"][rule][key], or its default from RESOURCE_DEFAULTS (None if it has none)."""
    return config.get("resources", {}).get(rule, {}).get(key, RESOURCE_DEFAULTS.get(key))


def rule_resources(rule, teacher_rule=None):
    """Snakemake resources of a GPU rule from config["resources"][rule] (local runs ignore them).

    The Slurm executor maps them to sbatch options: gpu -> --gpus=N (gpu_model -> --gpus=MODEL:N;
    0 -> none), cpus -> --cpus-per-task, mem_mb -> --mem (per node), runtime -> -t (minutes),
    constraint -> -C. nodes > 1 (train_student with launcher torchrun only) asks for N nodes with
    `gpu` GPUs each (--gres=gpu[:MODEL]:N is per node) and one task per node; resource mpi tells the
    jobstep not to wrap the job in its own srun, because the rule's command (launch_cmd) runs srun.
    teacher_rule: jobs whose {variant} is teacher-NAME (a teacher evaluated as is) get that rule's
    gpu/cpus/mem_mb/runtime instead, so evaluating a 235B teacher asks for a sampling-sized job.
    """
    gpus, nodes, model = res(rule, "gpu"), res(rule, "nodes"), res(rule, "gpu_model")
    out = {"gpu": gpus, "cpus_per_task": res(rule, "cpus"), "mem_mb": res(rule, "mem_mb"),
           "runtime": res(rule, "runtime")}
    if nodes > 1:
        if res(rule, "launcher") != "torchrun":
            raise ValueError(f"resources.{rule}.nodes = {nodes} needs launcher torchrun "
                             "(srun + torchrun rendezvous)")
        out.update(gpu=0, nodes=nodes, tasks=nodes, tasks_per_gpu=0, mpi="srun")
        if gpus:
            out["gres"] = f"gpu:{model}:{gpus}" if model else f"gpu:{gpus}"
    else:
        out["nodes"] = 1  # all GPUs of a job on one node (--nodes=1): Slurm may otherwise split --gpus=8
        if gpus and model:
            out["gpu_model"] = model
    if res(rule, "constraint"):
        out["constraint"] = res(rule, "constraint")
    if teacher_rule is not None:
        alt = {"gpu": res(teacher_rule, "gpu"), "cpus_per_task": res(teacher_rule, "cpus"),
               "mem_mb": res(teacher_rule, "mem_mb"), "runtime": res(teacher_rule, "runtime")}
        for key, value in alt.items():
            out[key] = _teacher_or_own(out[key], value)
    return out


def _teacher_or_own(own, teacher):
    def value(wildcards):
        return teacher if wildcards.variant.startswith("teacher-") else own

    return value


def launch_cmd(rule, module):
    """Command that runs `python -m module` as one process per allocated GPU (one on CPU).

    launcher python: a single process; torchrun / accelerate / deepspeed: nproc = resources gpu
    (at least 1). With nodes > 1: srun starts one torchrun per node, joined by a c10d rendezvous
    on the first node (the batch host, where this command runs).
    """
    launcher, gpus, nodes = res(rule, "launcher"), res(rule, "gpu"), res(rule, "nodes")
    nproc = max(1, gpus)
    if launcher not in LAUNCHERS:
        raise ValueError(f"resources.{rule}.launcher = {launcher!r}; valid: {list(LAUNCHERS)}")
    if launcher == "python":
        return f"python -m {module}"
    if launcher == "torchrun":
        if nodes > 1:
            return (f"srun --nodes={nodes} --ntasks={nodes} --ntasks-per-node=1 "
                    f"--cpus-per-task={res(rule, 'cpus')} "
                    f"torchrun --nnodes={nodes} --nproc-per-node={nproc} --rdzv-backend=c10d "
                    f"--rdzv-endpoint=$(hostname):29500 --rdzv-id=$SLURM_JOB_ID -m {module}")
        return f"torchrun --standalone --nproc-per-node={nproc} -m {module}"
    if launcher == "accelerate":
        device = "--multi_gpu " if nproc > 1 else ("--cpu " if not gpus else "")
        return (f"accelerate launch {device}--num_machines=1 --num_processes={nproc} --mixed_precision=no "
                f"--dynamo_backend=no -m {module}")
    return f"deepspeed --num_gpus={nproc} --module {module}"
