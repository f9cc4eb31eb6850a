"""The openai backend (the ``openai`` client) against a real HTTP server on loopback.

The stub (http.server in a thread) answers one choice whatever ``n`` asks for (as ``transformers
serve`` does) unless told otherwise; modes: ``flaky`` fails the first request with a 500 whose body
echoes the Authorization header, ``down`` answers 503, ``empty`` answers an empty message, ``same``
answers the same text to every request; a wrong key gets 401.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rmsd.errors import DataError, ConfigError, TeacherError
from rmsd.io import read_jsonl, write_jsonl
from rmsd.tasks import build_prompt
from rmsd.teachers import SamplingParams, TeacherSpec, sample_pool
from rmsd.teachers.openai_api import encode_frames
from rmsd.teachers.pool import is_valid_sample

F, S = 8, 56
ITEMS = [
    {"id": "q0", "task_type": "mcq", "question": "What colour is the moving shape?",
     "options": ["red", "green", "blue", "yellow"], "answer": "B"},
    {"id": "q1", "task_type": "open", "question": "Describe the video.", "options": None, "answer": "a"},
]


def make_dataset(root: Path):
    frames = np.random.default_rng(1).integers(0, 256, (len(ITEMS), F, S, S, 3), dtype=np.uint8)
    fdir = root / "frames"
    fdir.mkdir(parents=True)
    np.save(fdir / "frames.npy", frames)
    write_jsonl(fdir / "manifest.jsonl", [
        {"item_id": it["id"], "row": i, "indices": list(range(0, 2 * F, 2)), "stored_size_px": [S, S],
         "fps": 4.0, "num_video_frames": 2 * F, "timestamps_s": [0.5 * j for j in range(F)],
         "video_sha256": f"v{i}"} for i, it in enumerate(ITEMS)])
    write_jsonl(root / "items.jsonl", ITEMS)
    return root / "items.jsonl", fdir, frames


class Stub:
    """A chat-completions server; ``mode`` picks the answers (see the module docstring)."""

    def __init__(self, key: str, mode: str = "ok", delay_s: float = 0.0, choices: int = 1):
        self.key, self.mode, self.delay_s, self.choices = key, mode, delay_s, choices
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.bodies.append(body)
                    n = len(stub.bodies)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    time.sleep(stub.delay_s)
                    self._answer(body, n)
                finally:
                    with stub.lock:
                        stub.in_flight -= 1

            def _answer(self, body, n):
                auth = self.headers.get("Authorization", "")
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": self.path})
                if auth != f"Bearer {stub.key}":
                    return self._send(401, {"error": "bad key"})
                if stub.mode == "garbage":  # 200, JSON content type, a body that is not JSON
                    raw = b"{not json at all"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    return self.wfile.write(raw)
                if stub.mode == "down" or (stub.mode == "flaky" and n == 1):
                    return self._send(503 if stub.mode == "down" else 500,
                                      {"error": f"overloaded; you sent {auth}"})
                texts = [("" if stub.mode == "empty" else
                          "<answer>A</answer>" if stub.mode == "same" else f"<answer>r{n}.{c}</answer>")
                         for c in range(min(stub.choices, body.get("n", 1)))]
                self._send(200, {"id": f"c{n}", "object": "chat.completion", "created": 0,
                                 "model": body["model"],
                                 "choices": [{"index": c, "finish_reason": "stop", "logprobs": None,
                                              "message": {"role": "assistant", "content": t}}
                                             for c, t in enumerate(texts)],
                                 "usage": {"prompt_tokens": 100,
                                           "completion_tokens": 0 if stub.mode == "empty" else 7,
                                           "total_tokens": 107}})

            def _send(self, code, obj):
                raw = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key(monkeypatch):
    k = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("RMSD_TEST_TEACHER_KEY", k)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return k


@pytest.fixture
def logs():
    """Every message of the rmsd loggers, formatted."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: lines.append(rec.getMessage())
    root = logging.getLogger("rmsd")
    root.addHandler(handler)
    yield lines
    root.removeHandler(handler)


def spec(url, **kw):
    cfg = {"backend": "openai", "endpoint": url, "model": "stub-model", "api_key_env": "RMSD_TEST_TEACHER_KEY",
           "temperature": 0.7, "top_p": 0.8, "top_k": 20, "max_new_tokens": 32, "seed": 5,
           "max_retries": 2, "timeout_s": 5, "max_concurrency": 4, **kw}
    return TeacherSpec.from_config("served", cfg)


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_video_mode_sends_one_video_with_manifest_timing(tmp_path, key):
    items_path, fdir, frames = make_dataset(tmp_path)
    with Stub(key, choices=8) as stub:
        st = sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url), K=3,
                         cache_dir=tmp_path / "cache")
    assert len(stub.bodies) == 2 and st["n_generated"] == 6  # one request per item, n = 3
    for b in stub.bodies:
        it = next(i for i in ITEMS if b["messages"][0]["content"][-1]["text"] == build_prompt(i, "answer_only"))
        row = ITEMS.index(it)
        content = b["messages"][0]["content"]
        assert [c["type"] for c in content] == ["video_url", "text"]
        url = content[0]["video_url"]["url"]
        assert url.startswith("data:video/jpeg;base64,")
        parts = url.split(",")[1:]
        assert len(parts) == F
        assert parts == encode_frames(frames[row], "jpeg", 90)  # each frame, in order
        assert [decode(p).shape for p in parts] == [(S, S, 3)] * F
        assert b["media_io_kwargs"] == {"video": {"num_frames": -1, "fps": 4.0,
                                                  "frames_indices": list(range(0, 16, 2)),
                                                  "total_num_frames": 16, "duration": 4.0}}
        assert b["mm_processor_kwargs"] == {"do_sample_frames": False}
        assert {k: b[k] for k in ("model", "temperature", "top_p", "top_k", "max_tokens", "n")} == {
            "model": "stub-model", "temperature": 0.7, "top_p": 0.8, "top_k": 20, "max_tokens": 32, "n": 3}
    recs = read_jsonl(tmp_path / "pool.jsonl")
    assert [r["n_distinct"] for r in recs] == [3] * 6


def test_frames_mode_puts_timestamps_before_each_frame(tmp_path, key):
    items_path, fdir, frames = make_dataset(tmp_path)
    b = spec("http://h/v1", video_mode="frames").build()
    rec = read_jsonl(fdir / "manifest.jsonl")[0]
    body = b.request_body(ITEMS[0], ["AAA", "BBB"], 2, SamplingParams(top_k=0), 3,
                          {**rec, "indices": [0, 2], "timestamps_s": [0.0, 2.07]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "<0.0 seconds>"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
        {"type": "text", "text": "<2.1 seconds>"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,BBB"}},
        {"type": "text", "text": build_prompt(ITEMS[0], "answer_only")}]
    assert "media_io_kwargs" not in body
    plain = spec("http://h/v1", video_mode="images").build().request_body(
        ITEMS[0], ["AAA"], 1, SamplingParams(top_k=0), 3, rec)
    assert [c["type"] for c in plain["messages"][0]["content"]] == ["image_url", "text"]
    with Stub(key) as stub:  # frames mode with PNG: the exact pixels arrive
        sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url, video_mode="frames"),
                    K=1, cache_dir=tmp_path / "cache")
    content = stub.bodies[0]["messages"][0]["content"]
    row = ITEMS.index(next(i for i in ITEMS if content[-1]["text"] == build_prompt(i, "answer_only")))
    np.testing.assert_array_equal(decode(content[3]["image_url"]["url"].split(",", 1)[1]), frames[row][1])
    assert content[2] == {"type": "text", "text": "<0.5 seconds>"}


def test_requests_run_concurrently_and_short_answers_are_topped_up(tmp_path, key):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub(key, delay_s=0.3) as stub:  # one choice per request, whatever n asks
        t0 = time.perf_counter()
        st = sample_pool(items_path, fdir, tmp_path / "pool.jsonl",
                         spec(stub.url, send_n=False, max_concurrency=8), K=4,
                         cache_dir=tmp_path / "cache")
        secs = time.perf_counter() - t0
    assert st["n_generated"] == 8 and len(stub.bodies) == 8
    assert stub.max_in_flight == 8 and secs < 8 * 0.3  # all eight in flight together
    assert all("n" not in b for b in stub.bodies)
    assert len({b["seed"] for b in stub.bodies}) == 8
    with Stub(key) as stub:  # send_n: asks n = 3, gets 1, asks again for the rest
        sample_pool(items_path, fdir, tmp_path / "pool2.jsonl", spec(stub.url), K=3,
                    cache_dir=tmp_path / "cache2")
    assert sorted(b["n"] for b in stub.bodies) == [1, 1, 2, 2, 3, 3]
    assert len({(b["messages"][0]["content"][-1]["text"], b["seed"]) for b in stub.bodies}) == 6


def test_retries_then_succeeds_and_never_leaks_the_key(tmp_path, key, logs, capsys):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub(key, mode="flaky", choices=8) as stub:
        st = sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url, max_concurrency=1),
                         K=2, cache_dir=tmp_path / "cache")
    assert (st["n_requests"], st["n_retries"], st["n_generated"]) == (3, 1, 4)
    assert any("HTTP 500" in m for m in logs)
    texts = [*logs, capsys.readouterr().err, json.dumps(st), (tmp_path / "pool.jsonl").read_text(),
             *(p.read_text() for p in (tmp_path / "cache").iterdir())]
    assert all(key not in t for t in texts)


def test_server_down_fails_naming_teacher_item_and_attempts(tmp_path, key, logs):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub(key, mode="down") as stub:
        with pytest.raises(TeacherError) as err:
            sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url, max_concurrency=1),
                        K=2, cache_dir=tmp_path / "cache", chunk_items=1)
    msg = str(err.value)
    assert "teacher 'served', item 'q0'" in msg and "HTTP 503 after 3 attempt(s)" in msg
    assert "overloaded" in msg and key not in msg and "***" in msg  # the echoed header scrubbed
    assert len(stub.bodies) == 3  # 1 + max_retries, then stop
    assert not (tmp_path / "pool.jsonl").exists()
    assert all(p.read_text() == "" for p in (tmp_path / "cache").glob("*.jsonl"))


def test_wrong_key_fails_at_once(tmp_path, key):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub("the-right-key") as stub:
        with pytest.raises(TeacherError, match=r"teacher 'served', item 'q.'.*HTTP 401 \(") as err:
            sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url, max_concurrency=1),
                        K=2, cache_dir=tmp_path / "cache")
    assert len(stub.bodies) <= len(ITEMS) and key not in str(err.value)  # never retried


def test_unreachable_endpoint_is_a_clear_error(key):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = spec(f"http://127.0.0.1:{port}/v1", max_retries=1).build()
    with pytest.raises(TeacherError, match=r"item 'q0'.*unreachable after 2 attempt\(s\).*server running"):
        backend.generate(ITEMS[:1], [np.zeros((2, S, S, 3), np.uint8)], 2, spec("http://x").params, 0,
                         metadata=[{"item_id": "q0", "indices": [0, 1], "fps": 1.0, "num_video_frames": 2}])
    assert (backend.n_requests, backend.n_retries) == (2, 1)


def test_video_request_without_a_manifest_record_is_an_error(key):
    """No silent 1-fps timing: a video request needs the item's frame-manifest record."""
    backend = spec("http://127.0.0.1:9/v1").build()
    with pytest.raises(DataError, match="no frame-manifest record"):
        backend.request_body(ITEMS[0], ["AAA", "BBB"], 2, SamplingParams(top_k=0), 3, None)


def test_is_valid_sample():
    assert is_valid_sample({"text": "<answer>A</answer>", "finish_reason": "stop", "n_tokens": None})
    assert is_valid_sample({"text": "<answer>A", "finish_reason": "length", "n_tokens": 12})
    assert is_valid_sample({"text": "", "finish_reason": "stop", "n_tokens": 1})  # EOS first: a real answer
    assert not is_valid_sample({"text": "", "finish_reason": "stop", "n_tokens": 0})
    assert not is_valid_sample({"text": " ", "finish_reason": "stop", "n_tokens": None})
    assert not is_valid_sample({"text": "partial", "finish_reason": "abort", "n_tokens": 3})
    assert not is_valid_sample({"text": "partial", "finish_reason": None, "n_tokens": 3})


def test_empty_answers_are_never_cached(tmp_path, key):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub(key, mode="empty", choices=8) as stub:
        with pytest.raises(TeacherError, match=r"4 of 4 sample\(s\) were empty \(no token generated\).*not cached"):
            sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url, send_n=False), K=2,
                        cache_dir=tmp_path / "cache")
    assert not (tmp_path / "pool.jsonl").exists()
    with Stub(key, choices=8) as stub:  # the server fixed: everything is asked again
        st = sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url), K=2,
                         cache_dir=tmp_path / "cache")
    assert (st["n_cached"], st["n_generated"]) == (0, 4)


@pytest.mark.parametrize("change", [{"endpoint": True}, {"extra_body": {"do_sample": True}},
                                    {"video_mode": "frames"}, {"jpeg_quality": 80}, {"model": "other"},
                                    {"template": "think_answer"}, {"top_p": 0.9}])
def test_every_request_shaping_value_is_in_the_cache_key(tmp_path, key, change):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub(key, choices=8) as stub, Stub(key, choices=8) as other:
        url = stub.url
        first = sample_pool(items_path, fdir, tmp_path / "p.jsonl", spec(url), K=2, cache_dir=tmp_path / "c")
        again = sample_pool(items_path, fdir, tmp_path / "p.jsonl", spec(url), K=2, cache_dir=tmp_path / "c")
        cfg = {**change}
        url = other.url if cfg.pop("endpoint", None) else url  # another server, same model name
        changed = sample_pool(items_path, fdir, tmp_path / "p.jsonl", spec(url, **cfg), K=2,
                              cache_dir=tmp_path / "c")
    assert (first["n_generated"], again["n_generated"], again["n_cached"]) == (4, 0, 4)
    assert (changed["n_generated"], changed["n_cached"]) == (4, 0)


def test_identical_samples_at_temperature_fail_or_warn(tmp_path, key, logs):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub(key, mode="same", choices=8) as stub:
        with pytest.raises(TeacherError) as err:
            sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url), K=3,
                        cache_dir=tmp_path / "cache")
        msg = str(err.value)
        assert "teacher 'served'" in msg and "2 of 2 items have K=3 identical samples" in msg
        assert "transformers serve" in msg and "vllm serve" in msg and "do_sample" in msg
        assert not (tmp_path / "pool.jsonl").exists()
        st = sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url), K=3,
                         cache_dir=tmp_path / "cache", on_identical="warn")
        assert (st["n_items_all_identical"], st["share_all_identical"], st["n_generated"]) == (2, 1.0, 0)
        assert [r["n_distinct"] for r in read_jsonl(tmp_path / "pool.jsonl")] == [1] * 6
        assert any("identical samples" in m for m in logs)
        greedy = sample_pool(items_path, fdir, tmp_path / "g.jsonl", spec(stub.url, temperature=0), K=3,
                             cache_dir=tmp_path / "cache")  # greedy: identical is expected
        assert greedy["n_items_all_identical"] == 2


def test_openai_config_errors(monkeypatch):
    monkeypatch.delenv("RMSD_TEST_TEACHER_KEY", raising=False)
    with pytest.raises(ConfigError, match="RMSD_TEST_TEACHER_KEY.*not set"):
        spec("http://127.0.0.1:1/v1").build()
    with pytest.raises(ConfigError, match=r"sampling.teachers.x.image_format: 'gif'; valid"):
        TeacherSpec.from_config("x", {"backend": "openai", "endpoint": "http://h/v1", "model": "m",
                                      "image_format": "gif"}).build()
    with pytest.raises(ConfigError, match=r"sampling.teachers.x.video_mode: 'clip'; valid: \['video', 'frames', 'images'\]"):
        TeacherSpec.from_config("x", {"backend": "openai", "endpoint": "http://h/v1", "model": "m",
                                      "video_mode": "clip"}).build()


def test_openai_parse_counts_tokens(key):
    b = TeacherSpec.from_config("x", {"backend": "openai", "endpoint": "http://h/v1", "model": "m"}).build()
    item = ITEMS[0]
    one = {"choices": [{"message": {"content": "a"}, "finish_reason": "length"}], "usage": {"completion_tokens": 9}}
    assert b._parse(one, item) == [{"text": "a", "finish_reason": "length", "n_tokens": 9}]
    two = {"choices": [{"message": {"content": "a"}, "finish_reason": "stop",
                        "logprobs": {"content": [{}, {}]}},
                       {"message": {"content": None}, "finish_reason": "stop"}],
           "usage": {"completion_tokens": 5}}
    assert b._parse(two, item) == [{"text": "a", "finish_reason": "stop", "n_tokens": 2},
                                   {"text": "", "finish_reason": "stop", "n_tokens": None}]
    assert "RMSD" not in repr(b) and b.safe_url == "http://h/v1/chat/completions"


def test_a_body_that_is_not_json_is_a_teacher_error(key):
    with Stub(key, mode="garbage") as stub:
        backend = spec(stub.url, max_retries=0).build()
        with pytest.raises(TeacherError, match=r"teacher 'served', item 'q0': http://127\.0\.0\.1:\d+/v1"
                                               r".*not a chat-completions JSON object \(JSONDecodeError"):
            backend.generate(ITEMS[:1], [np.zeros((2, S, S, 3), np.uint8)], 1, spec("http://x").params, 0,
                             metadata=[{"item_id": "q0", "indices": [0, 1], "fps": 1.0, "num_video_frames": 2}])
