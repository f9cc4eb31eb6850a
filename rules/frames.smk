# Frame extraction (design.md "frames"): items are scattered over shards, each shard a job whose
# threads decode videos in parallel into its own memory-mapped array results/frames/DATASET/shards/
# I.npy (resumable: a killed job keeps its finished items); frames_extract gathers the shards'
# records into manifest.jsonl + index.json. Every stage reads frames with rmsd.frames.open_frames.
# Frame settings per dataset: frames.* defaults, frames.datasets.NAME overrides (e.g. 64 frames for
# evaluation). Resources come from the work (items per shard, frames, threads): see slurm/README.md.

import functools
import math

from rmsd.errors import ConfigError
from rmsd.frames.shards import frame_settings

SOURCE_FRAME_MB = 1920 * 1080 * 3 / 1e6  # one decoded RGB frame of a 1080p source, MB (the bound we size for)


def frames_cfg():
    return config["frames"]


def dataset_items_hint(dataset):
    """Item count of a dataset whose items file exists when the workflow is parsed (data.external
    train / distill: one JSON line per item), else None (synthetic or imported benchmarks)."""
    src = config["data"].get("external", {}).get(dataset) if config["data"]["generator"] == "external" else None
    if not src or not os.path.exists(src):
        return None
    st = os.stat(src)
    return _count_lines(src, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _count_lines(path, size, mtime_ns):
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def frame_shards(dataset):
    """Shard jobs of a dataset: frames.datasets.NAME.shards, else ceil(items / frames.items_per_shard)
    when the item count is known at parse time (data.external files, or frames.datasets.NAME.items),
    else frames.shards (default 1)."""
    own = (frames_cfg().get("datasets") or {}).get(dataset, {}).get("shards")
    if own:
        return int(own)
    n, per = dataset_items_hint(dataset), frames_cfg().get("items_per_shard")
    if n is None:
        n = (frames_cfg().get("datasets") or {}).get(dataset, {}).get("items")
    if n is not None and per:
        return max(1, math.ceil(n / per))
    return int(frames_cfg().get("shards", 1))


def frames_shard_resources(dataset):
    """mem_mb and runtime (minutes) of one shard job, from the work (overridable in
    config resources.frames_extract_shard):
      mem_mb  = 1500 + 2 x threads (videos in flight) x F x (1080p RGB frame 6.2 MB + stored frame)
      runtime = 15 + 1.5 x ceil(items / shards) x sec / threads / 60, sec = frames.datasets.NAME.
                seconds_per_item, else frames.seconds_per_item x F / 16
      out_mb  = ceil(items / shards) x F x S x S x 3 / 1e6 (the shard's array; must stay under
                frames.max_shard_gb)
    The shard's array is written through a memory map (page cache, not counted above)."""
    s, threads = frame_settings(frames_cfg(), dataset), int(frames_cfg().get("threads", 1))
    per_video = s["num_frames"] * (SOURCE_FRAME_MB + s["size_px"] ** 2 * 3 / 1e6)
    n = dataset_items_hint(dataset)
    if n is None:  # not known at parse time: the expected count of frames.datasets.NAME.items
        n = (frames_cfg().get("datasets") or {}).get(dataset, {}).get("items")
    items = math.ceil(n / frame_shards(dataset)) if n is not None else frames_cfg().get("items_per_shard", 1000)
    own_sec = (frames_cfg().get("datasets") or {}).get(dataset, {}).get("seconds_per_item")
    sec = float(own_sec) if own_sec else float(frames_cfg().get("seconds_per_item", 1.0)) * s["num_frames"] / 16
    own = config.get("resources", {}).get("frames_extract_shard", {})
    out_mb = math.ceil(items * s["num_frames"] * s["size_px"] ** 2 * 3 / 1e6)
    limit = frames_cfg().get("max_shard_gb", 64)
    if out_mb > limit * 1000:
        raise ConfigError(f"frames: a shard of {dataset} would be {out_mb / 1000:.1f} GB ({items} items x "
                          f"{s['num_frames']} x {s['size_px']}^2 x 3 B) > frames.max_shard_gb = {limit}; "
                          "raise frames.shards / datasets.NAME.shards or lower items_per_shard")
    return {"mem_mb": own.get("mem_mb", int(1500 + 2 * threads * per_video)),
            "runtime": own.get("runtime", int(15 + math.ceil(1.5 * items * sec / threads / 60))),
            "out_mb": out_mb}


rule frames_extract_shard:
    input:
        jsonl="results/data/{dataset}/items.jsonl",
    output:
        frames="results/frames/{dataset}/shards/{shard}.npy",
        records="results/frames/{dataset}/shards/{shard}.jsonl",
        meta="results/frames/{dataset}/shards/{shard}.json",
    log:
        "results/logs/frames_extract/{dataset}/{shard}.log",
    benchmark:
        "results/benchmarks/frames_extract/{dataset}/{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    params:
        settings=lambda wc: frame_settings(frames_cfg(), wc.dataset),
        n_shards=lambda wc: frame_shards(wc.dataset),
    threads: frames_cfg().get("threads", 1)
    # A job killed by its time limit (or anything else) is resubmitted up to twice with a longer
    # limit; it resumes from the items it finished (extract_shard's done log), never from zero.
    retries: 2
    resources:
        cpus_per_task=frames_cfg().get("threads", 1),
        mem_mb=lambda wc: frames_shard_resources(wc.dataset)["mem_mb"],
        runtime=lambda wc, attempt: frames_shard_resources(wc.dataset)["runtime"] * attempt,
        out_mb=lambda wc: frames_shard_resources(wc.dataset)["out_mb"],  # size of the shard's array (not a Slurm option)
    script:
        "../scripts/frames_extract_shard.py"


rule frames_extract:
    input:
        shards=lambda wc: expand("results/frames/{dataset}/shards/{shard}.{ext}", dataset=wc.dataset,
                                 shard=range(frame_shards(wc.dataset)), ext=("npy", "jsonl", "json")),
    output:
        manifest="results/frames/{dataset}/manifest.jsonl",
        index="results/frames/{dataset}/index.json",
        stats="results/frames/{dataset}/stats.json",
        skipped="results/frames/{dataset}/skipped.json",
    log:
        "results/logs/frames_extract/{dataset}.log",
    params:
        n_shards=lambda wc: frame_shards(wc.dataset),
    resources:
        # the gather holds every record (about 2 KB of JSON, ~4 KB as Python objects, per item)
        mem_mb=lambda wc: 1000 + 4 * (dataset_items_hint(wc.dataset) or 0) // 1000,
        runtime=30,
    script:
        "../scripts/frames_extract.py"
