"""A served teacher sees what the same checkpoint sees locally.

One tiny randomly initialised Qwen2-VL checkpoint is run two ways on the same items:

* locally through the ``hf`` backend (transformers ``generate``);
* served on loopback through the ``openai`` backend (``video_mode: video``): a minimal
  OpenAI-compatible server (http.server in a thread, standing in for ``vllm serve``, whose
  ``video/jpeg`` data URL it decodes the same way) that runs the project's own encoder and
  ``generate`` on the same model. ``transformers serve`` is installable here (``pip install -e
  .[serve]``) but takes a ``video_url`` only as a video file that it decodes and resamples itself
  (32 frames by default), not as the already-sampled frames, so it cannot show the local input.

Checked: the server rebuilds exactly the local prompt tokens (same text, same number of video
tokens) and nearly the same pixels (JPEG of flat frames), greedy answers are identical for all
but at most two of 12 items (near-tied logits of a random model), and the
format-violation rate and mean q of K sampled answers agree within two standard errors.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from rmsd.models.inputs import VideoPromptEncoder, generate
from rmsd.scoring.config import ScoringConfig
from rmsd.scoring.quality import score_response
from rmsd.teachers import SamplingParams, TeacherSpec
from rmsd.teachers.openai_api import frame_times

from trainworld import make_world

pytestmark = pytest.mark.slow
N_ITEMS, F, S = 12, 8, 56


class TextEncoder(VideoPromptEncoder):
    """The encoder a server has: the user text comes from the request, not from an item."""

    def prompt_text(self, item: dict) -> str:
        msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": item["text"]}]}]
        return self.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


class LoopbackServer:
    """``/v1/chat/completions`` over a loaded model: video_url (``data:video/jpeg;base64,...``)
    plus text in, ``n`` choices out; records what it decoded per request."""

    def __init__(self, model, processor, template: str):
        self.model, self.encoder = model, TextEncoder(processor, template)
        self.seen: list[dict] = []
        self.lock = threading.Lock()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                out = srv.complete(body)
                raw = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def complete(self, body: dict) -> dict:
        content = body["messages"][0]["content"]
        video = next(c for c in content if c["type"] == "video_url")["video_url"]["url"]
        head, data = video.split(",", 1)
        assert head == "data:video/jpeg;base64"
        frames = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(p))).convert("RGB"))
                           for p in data.split(",")])
        text = "".join(c["text"] for c in content if c["type"] == "text")
        meta = body.get("media_io_kwargs", {}).get("video", {})
        rec = {"fps": meta.get("fps"), "indices": meta.get("frames_indices"),
               "num_video_frames": meta.get("total_num_frames")}
        with self.lock:  # one generate at a time, like a single-GPU server
            prompt = self.encoder.encode([{"text": text}], [frames], metadata=[rec])[0]
            self.seen.append({"text": text, "prompt": prompt})
            torch.manual_seed(body["seed"])
            temp = body["temperature"]
            res = generate(self.model, self.encoder, [prompt], n=body.get("n", 1), do_sample=temp > 0,
                           max_new_tokens=body["max_tokens"], temperature=temp or 1.0,
                           top_p=body["top_p"], top_k=body.get("top_k", 0))[0]
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": i, "finish_reason": g["finish_reason"],
                             "message": {"role": "assistant", "content": g["text"]}}
                            for i, g in enumerate(res)],
                "usage": {"prompt_tokens": len(prompt.prompt_ids), "completion_tokens":
                          res[0]["n_tokens"], "total_tokens": 0}}

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("parity"), family="qwen2_vl", n_items=N_ITEMS)
    items = [json.loads(line) for line in world["items"].read_text().splitlines()]
    for it in items:  # one prompt text per item, so the server's records can be matched
        it["question"] = f"{it['question']} (clip {it['id']})"
    rng = np.random.default_rng(3)
    # flat frames: their JPEG round trip is (nearly) exact, so pixels are not what differs
    frames = [np.broadcast_to(rng.integers(0, 256, (F, 1, 1, 3), dtype=np.uint8), (F, S, S, 3)).copy()
              for _ in items]
    records = [{"indices": list(range(1, 16, 2)), "fps": 4.0, "num_video_frames": 16}] * len(items)
    local = TeacherSpec.from_config("t", {"backend": "hf", "device": "cpu", "batch_size": 4},
                                    model_path=str(world["student"])).build()
    return world, items, frames, records, local


def served(url):
    return TeacherSpec.from_config("t", {"backend": "openai", "endpoint": url, "model": "tiny",
                                         "max_concurrency": 4, "jpeg_quality": 95}).build()


def rates(items, groups):
    cfg = ScoringConfig()
    scores = [score_response(g["text"], it, cfg) for it, grp in zip(items, groups) for g in grp]
    viol = [0.0 if s["valid"] else 1.0 for s in scores]
    q = [float(s["q"]) for s in scores]
    return np.mean(viol), np.mean(q), len(scores)


def test_served_prompt_is_the_local_prompt_and_greedy_answers_match(setup):
    world, items, frames, records, local = setup
    greedy = SamplingParams(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=12)
    want = local.generate(items, frames, 1, greedy, seed=0)
    with LoopbackServer(local.model, local.encoder.processor, "answer_only") as srv:
        got = served(srv.url).generate(items, frames, 1, greedy, 0, metadata=records)
    local_prompts = local.encoder.encode(items, frames)
    by_text = {s["text"]: s["prompt"] for s in srv.seen}
    from rmsd.tasks import build_prompt

    for it, lp in zip(items, local_prompts):
        sp = by_text[build_prompt(it, "answer_only")]
        assert torch.equal(sp.prompt_ids, lp.prompt_ids)  # same text, same video token count
        assert torch.equal(sp.grid_thw, lp.grid_thw)
        assert (sp.pixel_values - lp.pixel_values).abs().max().item() < 0.05
    same = sum(g[0]["text"] == w[0]["text"] for g, w in zip(got, want))
    # a random model's near-tied logits may flip on JPEG rounding or batch padding late in an answer
    assert same >= N_ITEMS - 2, [(g[0]["text"], w[0]["text"]) for g, w in zip(got, want)]
    assert frame_times(records[0], F)["timestamps_s"] == [i / 4.0 for i in range(1, 16, 2)]


def test_served_and_local_sampling_agree_within_noise(setup):
    world, items, frames, records, local = setup
    params = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12)
    K = 4
    loc = local.generate(items, frames, K, params, seed=1)
    with LoopbackServer(local.model, local.encoder.processor, "answer_only") as srv:
        srv_groups = served(srv.url).generate(items, frames, K, params, 2, metadata=records)
    v_loc, q_loc, n = rates(items, loc)
    v_srv, q_srv, _ = rates(items, srv_groups)
    print(f"parity n={n}: violations local {v_loc:.3f} served {v_srv:.3f}; mean q local {q_loc:.3f} served {q_srv:.3f}")
    se_v = math.sqrt(max(v_loc * (1 - v_loc), 0.25 / n) * 2 / n)
    se_q = math.sqrt(max(q_loc * (1 - q_loc), 0.25 / n) * 2 / n)
    assert abs(v_loc - v_srv) <= 2 * se_v, (v_loc, v_srv)
    assert abs(q_loc - q_srv) <= 2 * se_q, (q_loc, q_srv)
    assert all(len(g) == K for g in srv_groups)
