"""The openai backend against a real HTTP server on loopback (http.server in a thread).

The stub answers one choice whatever ``n`` asks for (as ``transformers serve`` does), fails the
first request with a 500 whose body echoes the Authorization header, stalls the second past the
client timeout, and rejects a wrong key with 401.
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

from rmsd.errors import ConfigError, TeacherError
from rmsd.io import read_jsonl, write_jsonl
from rmsd.tasks import build_prompt
from rmsd.teachers import SamplingParams, TeacherSpec, sample_pool
from rmsd.teachers.base import derive_seed

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
        {"item_id": it["id"], "row": i, "indices": list(range(F)), "stored_size_px": [S, S],
         "video_sha256": f"v{i}"} for i, it in enumerate(ITEMS)])
    write_jsonl(root / "items.jsonl", ITEMS)
    return root / "items.jsonl", fdir, frames


class Stub:
    """A chat-completions server; ``mode`` picks the failure schedule."""

    def __init__(self, key: str, mode: str = "flaky", stall_s: float = 1.0):
        self.key, self.mode, self.stall_s = key, mode, stall_s
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.bodies.append(body)
                    n = len(stub.bodies)
                auth = self.headers.get("Authorization", "")
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": self.path})
                if auth != f"Bearer {stub.key}":
                    return self._send(401, {"error": "bad key"})
                if stub.mode == "down" or (stub.mode == "flaky" and n == 1):
                    return self._send(503 if stub.mode == "down" else 500,
                                      {"error": f"overloaded; you sent {auth}"})
                if stub.mode == "flaky" and n == 2:
                    time.sleep(stub.stall_s)  # the client has given up by now
                text = f"<answer>r{n}</answer>"
                self._send(200, {"id": f"c{n}", "object": "chat.completion", "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 100, "completion_tokens": 7,
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
           "max_retries": 2, "timeout_s": 0.4, "backoff_s": 0.01, "concurrency": 2, **kw}
    return TeacherSpec.from_config("served", cfg)


def test_openai_retries_asks_again_and_never_leaks_the_key(tmp_path, key, logs, capsys):
    items_path, fdir, frames = make_dataset(tmp_path)
    with Stub(key) as stub:
        st = sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url), K=3,
                         cache_dir=tmp_path / "cache")
    # 6 samples at one choice per request, plus the 500 and the timed-out request
    assert len(stub.bodies) == 8
    assert (st["n_requests"], st["n_retries"], st["n_generated"]) == (8, 2, 6)
    recs = read_jsonl(tmp_path / "pool.jsonl")
    assert [(r["item_id"], r["k"]) for r in recs] == [(i, k) for i in ("q0", "q1") for k in range(3)]
    assert all(r["finish_reason"] == "stop" and r["n_tokens"] == 7 and r["text"].startswith("<answer>r")
               for r in recs)
    assert len({r["text"] for r in recs}) == 6
    assert {r["revision"] for r in recs} == {"openai:stub-model:png"}

    # requests: model, sampling fields, n = what is still missing, a fresh seed per round
    call_seed = derive_seed(5, "q0", 0)
    for i, it in enumerate(ITEMS):
        mine = [b for b in stub.bodies if b["messages"][0]["content"][-1]["text"] == build_prompt(it, "answer_only")]
        ok = {json.dumps(b, sort_keys=True): b for b in mine}.values()  # retried bodies are identical
        assert sorted(b["n"] for b in ok) == [1, 2, 3]
        assert sorted(b["seed"] for b in ok) == sorted(derive_seed(call_seed, it["id"], r) for r in range(3))
        b = mine[0]
        assert {k: b[k] for k in ("model", "temperature", "top_p", "top_k", "max_tokens")} == {
            "model": "stub-model", "temperature": 0.7, "top_p": 0.8, "top_k": 20, "max_tokens": 32}
        content = b["messages"][0]["content"]
        assert [c["type"] for c in content] == ["image_url"] * F + ["text"]
        url = content[3]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        np.testing.assert_array_equal(np.asarray(png), frames[i][3])  # PNG: exact frames

    # the key: only in the Authorization header
    assert any("overloaded" in m for m in logs) and any("timeout" in m for m in logs)
    texts = [*logs, capsys.readouterr().err, json.dumps(st), (tmp_path / "pool.jsonl").read_text(),
             *(p.read_text() for p in (tmp_path / "cache").iterdir())]
    assert all(key not in t for t in texts)
    assert any("***" in m for m in logs)  # the echoed header was scrubbed


def test_openai_gives_up_naming_teacher_and_item(tmp_path, key, logs):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub(key, mode="down") as stub:
        with pytest.raises(TeacherError) as err:
            sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url, concurrency=1), K=2,
                        cache_dir=tmp_path / "cache", chunk_items=1)
    msg = str(err.value)
    assert "teacher 'served', item 'q0'" in msg and "3 attempt(s)" in msg and "HTTP 503" in msg
    assert key not in msg and all(key not in m for m in logs)
    assert len(stub.bodies) == 3  # 1 + max_retries, then stop


def test_openai_wrong_key_fails_at_once(tmp_path, key, monkeypatch):
    items_path, fdir, _ = make_dataset(tmp_path)
    with Stub("the-right-key") as stub:
        with pytest.raises(TeacherError, match=r"teacher 'served', item 'q0'.*HTTP 401") as err:
            sample_pool(items_path, fdir, tmp_path / "pool.jsonl", spec(stub.url, concurrency=1), K=2,
                        cache_dir=tmp_path / "cache")
    assert len(stub.bodies) == 1 and key not in str(err.value)


def test_openai_connection_refused_is_retried(tmp_path, key):
    items_path, fdir, _ = make_dataset(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = spec(f"http://127.0.0.1:{port}/v1", concurrency=1).build()
    with pytest.raises(TeacherError, match=r"item 'q0'.*3 attempt\(s\).*connection error"):
        backend.generate(ITEMS[:1], [np.zeros((2, S, S, 3), np.uint8)], 2, spec("http://x").params, 0)
    assert (backend.n_requests, backend.n_retries) == (3, 2)


def test_openai_config_errors(monkeypatch):
    monkeypatch.delenv("RMSD_TEST_TEACHER_KEY", raising=False)
    with pytest.raises(ConfigError, match="RMSD_TEST_TEACHER_KEY.*not set"):
        spec("http://127.0.0.1:1/v1").build()
    with pytest.raises(ConfigError, match="image_format"):
        TeacherSpec.from_config("x", {"backend": "openai", "endpoint": "http://h/v1", "model": "m",
                                      "image_format": "gif"}).build()


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
    body = b.request_body(item, ["data:image/png;base64,AA"], 3,
                          SamplingParams(top_k=0), 11)
    assert body == {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
        {"type": "text", "text": build_prompt(item, "answer_only")}]}],
        "temperature": 0.7, "top_p": 0.8, "max_tokens": 1024, "seed": 11, "n": 3}
    assert "RMSD" not in repr(b) and b.url == "http://h/v1/chat/completions"
