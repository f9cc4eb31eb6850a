"""One video-metadata function for every prompting path: the manifest record -> processor / vLLM
metadata (real fps and frame times, VFR-correct), identical Qwen3-VL prompts on the training,
hf-teacher, vllm-teacher and evaluation paths, and the engine's config errors."""

from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rmsd.errors import ConfigError, DataError
from rmsd.frames.metadata import frame_times_s, hf_video_metadata, prompt_timestamps_s, video_metadata
from rmsd.io import write_jsonl

sys.path.insert(0, str(Path(__file__).parent))
from test_teachers import FakeVLLM  # noqa: E402

ITEM = {"id": "v0", "task_type": "mcq", "question": "What colour is the square?",
        "options": ["red", "green", "blue", "yellow"], "answer": "B"}
# 8 of the 3,600 frames of a 120 s, 30 fps video, uniform centres (rmsd.frames.select)
CFR = {"item_id": "v0", "indices": [225, 675, 1125, 1575, 2025, 2475, 2925, 3375], "fps": 30.0,
       "num_video_frames": 3600, "timestamps_s": [7.5, 22.5, 37.5, 52.5, 67.5, 82.5, 97.5, 112.5],
       "vfr": False, "pts_s": [7.5, 22.5, 37.5, 52.5, 67.5, 82.5, 97.5, 112.5],
       "stored_size_px": [64, 64]}


def test_cfr_record_gives_integer_indices_and_real_fps():
    assert video_metadata(CFR) == {
        "fps": 30.0, "frames_indices": [225, 675, 1125, 1575, 2025, 2475, 2925, 3375],
        "total_num_frames": 3600, "duration": 120.0, "width": 64, "height": 64,
        "do_sample_frames": False}
    # per temporal patch of 2 frames: the mean of its two frame times (transformers' and vLLM's rule)
    assert prompt_timestamps_s(video_metadata(CFR)) == [15.0, 45.0, 75.0, 105.0]
    # a partial record (training's older callers): times from indices / fps
    part = {"fps": 4.0, "indices": [1, 3, 5], "num_video_frames": 8}
    assert video_metadata(part)["frames_indices"] == [1, 3, 5]
    assert frame_times_s(part) == [0.25, 0.75, 1.25]
    assert prompt_timestamps_s(video_metadata(part)) == [0.5, 1.25]  # last frame repeated


def test_vfr_record_uses_presentation_times():
    rec = {**CFR, "vfr": True, "pts_s": [2.07, 3.0, 9.5, 10.0, 18.25, 20.0, 27.0, 27.8]}
    md = video_metadata(rec)
    assert md["fps"] == 30.0
    assert [i / md["fps"] for i in md["frames_indices"]] == pytest.approx(rec["pts_s"], abs=1e-12)
    assert hf_video_metadata(md).timestamps == pytest.approx(rec["pts_s"], abs=1e-12)
    assert prompt_timestamps_s(md) == pytest.approx([2.535, 9.75, 19.125, 27.4], abs=1e-12)


@pytest.mark.parametrize("bad, match", [
    ({"fps": 0.0}, r"item 'v0'.*`fps` is 0.0"),
    ({"fps": None}, r"`fps` is None"),
    ({"indices": []}, r"no frame `indices`"),
    ({"timestamps_s": [1.0, 2.0]}, r"2 times in timestamps_s for 8 frame indices"),
    ({"timestamps_s": [9.0, 1.0, 2, 3, 4, 5, 6, 7]}, r"timestamps_s go backwards"),
])
def test_bad_records_name_the_item(bad, match):
    with pytest.raises(DataError, match=match):
        video_metadata({**CFR, **bad})


def test_stale_manifest_frame_count_is_an_error():
    with pytest.raises(DataError, match=r"lists 8 frame indices for 6 frames"):
        video_metadata(CFR, num_frames=6)


# ------------------------------------------------------------------------------ a real VFR file
def _write_vfr(path: Path, pts_ms: list[int]) -> Path:
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        s.time_base = Fraction(1, 1000)
        for i, t in enumerate(pts_ms):
            plane = np.full((72, 64), 128, np.uint8)
            plane[:48] = 16 + 17 * i
            vf = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_vfr_file_prompt_times_equal_the_manifest(tmp_path, qwen3_processor):
    """A variable-frame-rate file through the real frame stage: the metadata's frame times are the
    manifest's presentation times, and the Qwen3-VL prompt states their patch means (the nominal
    index / fps would put these frames at 0.04-0.44 s)."""
    from rmsd.frames import extract_frames, load_frames
    from rmsd.models.inputs import VideoPromptEncoder

    pts_ms = [0, 40, 80, 300, 310, 320, 330, 900, 1000, 1010, 1500, 1510]
    video = _write_vfr(tmp_path / "vfr.mkv", pts_ms)
    write_jsonl(tmp_path / "items.jsonl", [{**ITEM, "video": str(video)}])
    extract_frames(tmp_path / "items.jsonl", tmp_path / "frames", num_frames=4, size_px=32,
                   decoders=["pyav"])
    manifest, arr = load_frames(tmp_path / "frames")
    rec = manifest["v0"]
    assert rec["vfr"] is True and rec["indices"] == [1, 4, 7, 10]
    assert rec["pts_s"] == [0.04, 0.31, 0.9, 1.5]
    md = video_metadata(rec)
    assert [i / md["fps"] for i in md["frames_indices"]] == pytest.approx(rec["pts_s"], abs=1e-12)
    enc = VideoPromptEncoder(qwen3_processor, "answer_only")
    p = enc.encode([ITEM], [np.array(arr[rec["row"]])], metadata=[rec])[0]
    text = qwen3_processor.tokenizer.decode(p.prompt_ids)
    assert re.findall(r"<([0-9.]+) seconds>", text) == ["0.2", "1.2"]  # (0.04+0.31)/2, (0.9+1.5)/2


# ------------------------------------------------------------------ the four paths, one prompt
@pytest.fixture(scope="module")
def qwen3_processor():
    from rmsd.models.factory import build_processor
    from rmsd.models.tokenizer import build_tokenizer
    from rmsd.tasks import build_prompt

    tok = build_tokenizer([build_prompt(ITEM, "answer_only"), "seconds <answer>B</answer>"], 400)
    return build_processor(tok, 32 * 32, 8 * 64 * 64, family="qwen3_vl")


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory, qwen3_processor):
    from rmsd.models import TinyVLMConfig, build_model

    d = tmp_path_factory.mktemp("q3")
    arch = TinyVLMConfig(hidden=64, layers=1, heads=2, kv_heads=1, intermediate=128, vision_dim=32,
                         vision_depth=1, vision_heads=1)
    build_model(qwen3_processor.tokenizer, arch, seed=0, family="qwen3_vl").save_pretrained(d)
    qwen3_processor.save_pretrained(d)
    return d


def _decoded(proc, ids) -> str:
    return proc.tokenizer.decode(list(ids))


def _engine_side_prompt(proc, request) -> str:
    """What vLLM's Qwen3-VL processing makes of a request: the HF processor on the request's text
    and (frames, metadata), metadata minus do_sample_frames (vllm qwen3_vl._call_hf_processor)."""
    frames, meta = request["multi_modal_data"]["video"]
    enc = proc(text=[request["prompt"]], videos=[frames], return_tensors="pt",
               videos_kwargs={"video_metadata": [hf_video_metadata(meta)],
                              "do_sample_frames": meta["do_sample_frames"]})
    return _decoded(proc, enc["input_ids"][0])


def test_four_paths_give_identical_prompts(qwen3_dir, qwen3_processor, monkeypatch):
    import rmsd.evaluation.run as ev
    import rmsd.models.inputs as inputs
    import rmsd.teachers.hf as hf_mod
    from rmsd.evaluation.run import HFGenerator, VLLMGenerator
    from rmsd.models.inputs import VideoPromptEncoder
    from rmsd.teachers.base import SamplingParams
    from rmsd.teachers.hf import HFTeacher
    from rmsd.teachers.vllm_engine import VLLMEngine, VLLMTeacher

    frames = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    rec = {**CFR, "stored_size_px": [64, 64]}
    seen: list[str] = []

    def capture(model, encoder, prompts, **kw):
        seen.extend(_decoded(encoder.processor, p.prompt_ids) for p in prompts)
        return [[{"text": "", "n_tokens": 0, "finish_reason": "stop"}] * kw["n"] for _ in prompts]

    # 1. training
    train = _decoded(qwen3_processor, VideoPromptEncoder(qwen3_processor, "answer_only").encode(
        [ITEM], [frames], metadata=[rec])[0].prompt_ids)
    assert re.findall(r"<([0-9.]+) seconds>", train) == ["15.0", "45.0", "75.0", "105.0"]
    # 2. hf teacher
    monkeypatch.setattr(hf_mod, "generate", capture)
    HFTeacher(str(qwen3_dir)).generate([ITEM], [frames], 2, SamplingParams(), 0, metadata=[rec])
    # 3. evaluation, hf backend
    monkeypatch.setattr(inputs, "generate", capture)
    enc = VideoPromptEncoder(qwen3_processor, "answer_only")
    HFGenerator(None, enc)([ITEM], [frames], n=1, do_sample=False, max_new_tokens=4, metadata=[rec])
    assert seen == [train, train]
    # 4. vllm teacher and evaluation, vllm backend: the engine's view of the request
    monkeypatch.setitem(sys.modules, "vllm", FakeVLLM())
    teacher = VLLMTeacher(str(qwen3_dir))
    (req,), _ = teacher.build_requests([ITEM], [frames], 2, SamplingParams(), 0, metadata=[rec])
    assert _engine_side_prompt(qwen3_processor, req) == train
    gen = VLLMGenerator(VLLMEngine("m", llm=object()), enc)
    (req,), (sp,) = gen.requests([ITEM], [frames], 1, False, 4, metadata=[rec])
    assert _engine_side_prompt(qwen3_processor, req) == train
    assert sp.kw["temperature"] == 0.0 and sp.kw["n"] == 1
    assert ev  # imported for the monkeypatch target's module


def test_vllm_paths_need_the_manifest_record(qwen3_dir, monkeypatch):
    from rmsd.teachers.base import SamplingParams
    from rmsd.teachers.vllm_engine import VLLMTeacher

    monkeypatch.setitem(sys.modules, "vllm", FakeVLLM())
    t = VLLMTeacher(str(qwen3_dir))
    with pytest.raises(ConfigError, match=r"item\(s\) \['v0'\] have no frame-manifest record"):
        t.build_requests([ITEM], [np.zeros((8, 64, 64, 3), np.uint8)], 1, SamplingParams(), 0)


# --------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("cfg, match", [
    ({"tensor_paralel_size": 2}, r"unknown vllm engine key\(s\) \['tensor_paralel_size'\]"),
    ({"data_parallel_size": 2}, r"data_parallel_size = 2.*sampling.shards"),
    ({"gpu_memory_utilization": 1.5}, r"gpu_memory_utilization: must be in \(0, 1\]"),
    ({"max_model_len": 100}, r"max_model_len: must be an integer >= 256"),
    ({"limit_mm_per_prompt": {"video": 0}}, r"limit_mm_per_prompt.*video >= 1"),
    ({"tensor_parallel_size": 0}, r"tensor_parallel_size: must be an integer >= 1"),
])
def test_engine_config_errors(cfg, match):
    from rmsd.teachers.vllm_engine import check_engine_config

    with pytest.raises(ConfigError, match=match):
        check_engine_config(cfg, "evaluation.vllm")


def test_engine_config_accepts_profiling_options():
    from rmsd.teachers.vllm_engine import check_engine_config

    lim = {"image": 0, "video": {"count": 1, "num_frames": 64, "width": 448, "height": 448}}
    assert check_engine_config({"limit_mm_per_prompt": lim}, "x")["limit_mm_per_prompt"] == lim


def test_evaluation_engine_selection():
    from rmsd.evaluation.run import engine_for

    assert engine_for({}) == {"backend": "hf", "dtype": "float32"}
    assert engine_for({"backend": "hf", "dtype": "bfloat16"}) == {"backend": "hf", "dtype": "bfloat16"}
    e = engine_for({"backend": "vllm", "vllm": {"tensor_parallel_size": 2, "max_model_len": 16384}})
    assert (e["backend"], e["tensor_parallel_size"], e["max_model_len"], e["gpu_memory_utilization"]) == (
        "vllm", 2, 16384, 0.85)
    # a teacher evaluated as is runs on its own sampling backend: vLLM TP 8, never fp32 hf
    t = {"backend": "vllm", "tensor_parallel_size": 8, "temperature": 0.7, "max_new_tokens": 1024}
    e = engine_for({"backend": "hf"}, t)
    assert (e["backend"], e["tensor_parallel_size"]) == ("vllm", 8)
    assert engine_for({}, {"backend": "hf", "batch_size": 4}) == {"backend": "hf", "dtype": "auto"}
    with pytest.raises(ConfigError, match=r"evaluation.backend: 'sglang'; valid: \['hf', 'vllm'\]"):
        engine_for({"backend": "sglang"})
    with pytest.raises(ConfigError, match=r"evaluation.dtype: 'fp8'"):
        engine_for({"dtype": "fp8"})
    with pytest.raises(ConfigError, match=r"evaluation.vllm: unknown vllm engine key"):
        engine_for({"backend": "vllm", "vllm": {"tp": 8}})


def test_evaluate_through_the_vllm_engine(tmp_path, qwen3_dir, monkeypatch):
    """evaluate() with engine backend vllm: one engine for the job, greedy (temperature 0, n=1)
    and pass@k (n samples, seeded per item) requests carrying each item's manifest metadata;
    the engine's counters in metrics.json."""
    from rmsd.evaluation import evaluate

    fake = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    items = [{**ITEM, "id": f"v{i}", "dataset": "synth-test", "video": f"vid{i}.mp4"} for i in range(3)]
    write_jsonl(tmp_path / "items.jsonl", items)
    fdir = tmp_path / "frames"
    fdir.mkdir()
    np.save(fdir / "frames.npy", np.random.default_rng(1).integers(0, 256, (3, 8, 64, 64, 3), dtype=np.uint8))
    recs = [{**CFR, "item_id": it["id"], "row": i, "num_frames": 8, "policy": "uniform"}
            for i, it in enumerate(items)]
    write_jsonl(fdir / "manifest.jsonl", recs)
    m = evaluate(str(qwen3_dir), str(tmp_path / "items.jsonl"), str(fdir), str(tmp_path / "out"),
                 {"max_new_tokens": 5, "batch_size": 2, "pass_k_samples": 2, "bootstrap": 10},
                 {"template": "answer_only"}, "answer_only", seed=0,
                 engine={"backend": "vllm", "max_model_len": 4096, "enforce_eager": True})
    assert len(fake.engines) == 1 and fake.engines[0]["max_model_len"] == 4096
    assert fake.engines[0]["enforce_eager"] is True
    # two batches (2 + 1 items), each a greedy and a pass@k call
    assert [(len(p), s[0].kw["n"], s[0].kw["temperature"]) for p, s in fake.generated] == [
        (2, 1, 0.0), (2, 2, 1.0), (1, 1, 0.0), (1, 2, 1.0)]
    for prompts, _ in fake.generated:
        for p in prompts:
            assert p["multi_modal_data"]["video"][1] == video_metadata(CFR)
    assert m["n_items"] == 3 and m["engine"]["backend"] == "vllm"
    assert m["engine_stats"]["n_requests"] == 6
    assert m["engine_stats"]["n_generated_tokens"] == 3 * 2 + 3 * (2 + 3)  # fake: j + 2 tokens
