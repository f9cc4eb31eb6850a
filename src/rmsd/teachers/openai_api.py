"""OpenAI-compatible ``/v1/chat/completions`` backend (``vllm serve``, ``transformers serve``, hosted).

Standard library only (urllib). Per item, one user message carries the frames as base64
``image_url`` items followed by the prompt text (:func:`rmsd.tasks.build_prompt`). The request asks
for ``n = k`` samples; endpoints that return fewer (``transformers serve`` returns one) are asked
again for the rest, each round with its own seed. Server errors (5xx, 408, 429), timeouts and
connection errors are retried with exponential backoff; then :class:`TeacherError` names the
teacher and the item. The API key is read from the environment variable named by
``api_key_env`` and only ever sent in the ``Authorization`` header: it is never logged, never
written, and scrubbed from error messages.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rmsd.errors import ConfigError, TeacherError
from rmsd.tasks import build_prompt
from rmsd.teachers.base import SamplingParams, derive_seed, register_backend
from rmsd.utils import get_logger

log = get_logger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429})
"""HTTP statuses retried besides every 5xx."""
IMAGE_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}


def encode_frames(frames: np.ndarray, image_format: str = "png", jpeg_quality: int = 90) -> list[str]:
    """Frames (F, H, W, 3) uint8 as ``data:`` URLs (PNG is lossless, JPEG smaller)."""
    from PIL import Image

    fmt, mime = IMAGE_FORMATS[image_format]
    urls = []
    for frame in frames:
        buf = io.BytesIO()
        kw = {"quality": int(jpeg_quality)} if fmt == "JPEG" else {}
        Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format=fmt, **kw)
        urls.append(f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}")
    return urls


class _Retryable(Exception):
    """A failed attempt worth retrying; ``retry_after`` in seconds when the server said so."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@register_backend("openai")
class OpenAITeacher:
    """A model behind an OpenAI-compatible chat endpoint.

    Args:
        endpoint: base URL, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended
            unless already there).
        model: model name sent in every request (also the cache revision).
        template: response template named in the prompt.
        api_key_env: name of the environment variable holding the API key (None: no key).
        max_retries: retries per request after the first attempt.
        timeout_s: socket timeout per request, seconds.
        backoff_s: first retry delay; doubles per retry, capped at ``max_backoff_s``.
        max_backoff_s: longest retry delay, seconds.
        concurrency: items in flight at once (threads).
        image_format: ``png`` (lossless) or ``jpeg``.
        jpeg_quality: JPEG quality when ``image_format`` is ``jpeg``.
        send_n: send ``n`` (some endpoints reject n > 1; then each sample is its own request).
        request_logprobs: ask for token logprobs, which gives exact per-sample ``n_tokens`` when a
            response carries several choices (otherwise only single-choice responses have it).
        extra_body: further request fields (e.g. ``{"repetition_penalty": 1.05}``).
        teacher: the teacher's name, for messages.
    """

    def __init__(self, endpoint: str, model: str, template: str = "answer_only",
                 api_key_env: str | None = None, max_retries: int = 5, timeout_s: float = 120.0,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0, concurrency: int = 4,
                 image_format: str = "png", jpeg_quality: int = 90, send_n: bool = True,
                 request_logprobs: bool = False, extra_body: dict | None = None,
                 teacher: str = "openai"):
        if image_format not in IMAGE_FORMATS:
            raise ConfigError(f"teacher {teacher!r}: image_format {image_format!r}; "
                              f"valid: {sorted(IMAGE_FORMATS)}")
        if not str(endpoint).startswith(("http://", "https://")):
            raise ConfigError(f"teacher {teacher!r}: endpoint must be an http(s) URL, got {endpoint!r}")
        self.url = str(endpoint).rstrip("/")
        if not self.url.endswith("/chat/completions"):
            self.url += "/chat/completions"
        self.safe_url = _scrub_url(self.url)
        self.model, self.template, self.teacher = model, template, teacher
        self._key = None
        if api_key_env:
            self._key = os.environ.get(api_key_env)
            if not self._key:
                raise ConfigError(f"teacher {teacher!r}: environment variable {api_key_env} "
                                  "(api_key_env) is not set or empty")
        self.max_retries, self.timeout_s = int(max_retries), float(timeout_s)
        self.backoff_s, self.max_backoff_s = float(backoff_s), float(max_backoff_s)
        self.concurrency = max(1, int(concurrency))
        self.image_format, self.jpeg_quality = image_format, jpeg_quality
        self.send_n, self.request_logprobs = bool(send_n), bool(request_logprobs)
        self.extra_body = dict(extra_body or {})
        self._lock = threading.Lock()
        self.n_requests = 0
        """HTTP requests sent (attempts, retries included)."""
        self.n_retries = 0
        """Attempts that failed and were retried."""
        self._warned_tokens = False

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAITeacher(teacher={self.teacher!r}, url={self.safe_url!r}, model={self.model!r})"

    @staticmethod
    def revision_of(model: str, image_format: str = "png", **_) -> str:
        """The served model's name (plus how frames are encoded, which changes the input)."""
        return f"openai:{model}:{image_format}"

    # ------------------------------------------------------------------------------ generation

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int) -> list[list[dict]]:
        jobs = list(zip(items, frames))
        if self.concurrency == 1 or len(jobs) == 1:
            return [self._sample_item(it, fr, k, params, seed) for it, fr in jobs]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs)))
        try:
            futures = [pool.submit(self._sample_item, it, fr, k, params, seed) for it, fr in jobs]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def request_body(self, item: dict, image_urls: list[str], n: int, params: SamplingParams,
                     seed: int) -> dict:
        """The JSON body of one chat-completions request for ``item``."""
        content = [{"type": "image_url", "image_url": {"url": u}} for u in image_urls]
        content.append({"type": "text", "text": build_prompt(item, self.template)})
        body = {"model": self.model, "messages": [{"role": "user", "content": content}],
                "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_new_tokens, "seed": seed}
        if self.send_n:
            body["n"] = n
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if self.request_logprobs:
            body["logprobs"] = True
        body.update(self.extra_body)
        return body

    def _sample_item(self, item: dict, frames: np.ndarray, k: int, params: SamplingParams,
                     seed: int) -> list[dict]:
        urls = encode_frames(frames, self.image_format, self.jpeg_quality)
        out: list[dict] = []
        rnd = 0
        while len(out) < k:
            need = k - len(out) if self.send_n else 1
            body = self.request_body(item, urls, need, params, derive_seed(seed, item["id"], rnd))
            data = self._post(body, item)
            samples = self._parse(data, item)
            if not samples:
                raise TeacherError(f"teacher {self.teacher!r}, item {item['id']!r}: endpoint "
                                   f"{self.safe_url} returned no choices")
            out += samples[:k - len(out)]
            rnd += 1
        return out

    def _parse(self, data: dict, item: dict) -> list[dict]:
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise TeacherError(f"teacher {self.teacher!r}, item {item['id']!r}: response from "
                               f"{self.safe_url} has no `choices` list")
        usage = (data.get("usage") or {}).get("completion_tokens")
        out = []
        for ch in choices:
            if not isinstance(ch, dict):
                raise TeacherError(f"teacher {self.teacher!r}, item {item['id']!r}: a choice from "
                                   f"{self.safe_url} is not a JSON object")
            msg = ch.get("message") or {}
            text = _content_text(msg.get("content"))
            lp = (ch.get("logprobs") or {}).get("content")
            if isinstance(lp, list):
                n_tok = len(lp)
            elif len(choices) == 1 and isinstance(usage, int):
                n_tok = usage
            else:
                n_tok = None
                if not self._warned_tokens:
                    self._warned_tokens = True
                    log.warning("teacher %s: the endpoint returns several choices without per-choice "
                                "token counts; n_tokens is null (set request_logprobs: true)",
                                self.teacher)
            out.append({"text": text, "finish_reason": ch.get("finish_reason"), "n_tokens": n_tok})
        return out

    # ------------------------------------------------------------------------------ transport

    def _scrub(self, s: str) -> str:
        return s.replace(self._key, "***") if self._key else s

    def _post(self, body: dict, item: dict) -> dict:
        """POST with retries; the parsed JSON response."""
        payload = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            with self._lock:
                self.n_requests += 1
            try:
                return self._attempt(payload, headers)
            except _Retryable as e:
                last = self._scrub(str(e))
                if attempt == self.max_retries:
                    break
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
                if e.retry_after is not None:
                    delay = min(self.max_backoff_s, max(delay, e.retry_after))
                delay *= 1 + 0.1 * random.random()
                with self._lock:
                    self.n_retries += 1
                log.warning("teacher %s, item %s: %s; retry %d/%d in %.2fs", self.teacher,
                            item["id"], last, attempt + 1, self.max_retries, delay)
                time.sleep(delay)
            except TeacherError as e:
                raise TeacherError(f"teacher {self.teacher!r}, item {item['id']!r}: "
                                   f"{self._scrub(str(e))}") from None
        raise TeacherError(f"teacher {self.teacher!r}, item {item['id']!r}: {self.safe_url} failed after "
                           f"{self.max_retries + 1} attempt(s); last error: {last}")

    def _attempt(self, payload: bytes, headers: dict) -> dict:
        req = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = _body_excerpt(e)
            if e.code >= 500 or e.code in RETRY_STATUS:
                raise _Retryable(f"HTTP {e.code} {detail}", _retry_after(e)) from None
            raise TeacherError(f"{self.safe_url} answered HTTP {e.code} {detail}") from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", None) or e
            kind = "timeout" if isinstance(reason, TimeoutError) else "connection error"
            raise _Retryable(f"{kind} ({type(reason).__name__}: {reason})") from None
        try:
            data = json.loads(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retryable(f"response is not JSON ({len(raw)} bytes)") from None
        if not isinstance(data, dict):
            raise _Retryable("response is not a JSON object")
        return data


def _body_excerpt(e: urllib.error.HTTPError, limit: int = 300) -> str:
    try:
        text = e.read().decode("utf-8", errors="replace").strip()
    except Exception:  # noqa: BLE001  (best effort: the status alone is informative)
        return ""
    return f"({text[:limit]})" if text else ""


def _retry_after(e: urllib.error.HTTPError) -> float | None:
    try:
        return float(e.headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None


def _scrub_url(url: str) -> str:
    """``url`` without credentials (``user:pass@``) or a query string, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _content_text(content) -> str:
    """The text of a chat message's ``content``: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)
