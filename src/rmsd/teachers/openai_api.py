"""OpenAI-compatible ``/v1/chat/completions`` backend (``vllm serve``, ``transformers serve``, hosted).

Requests go through the ``openai`` client package (its retries, timeouts and connection pooling);
up to ``max_concurrency`` requests are in flight at once (a thread pool over (item, request)
pairs), so a ``vllm serve`` endpoint with continuous batching is kept busy.

How the frames are sent (``video_mode``) decides what the model sees:

* ``video`` (default): one ``video_url`` content part whose URL is
  ``data:video/jpeg;base64,<frame 0>,<frame 1>,...`` (JPEG frames joined by commas), the format
  ``vllm serve`` decodes into one video for Qwen2/2.5/3-VL. With ``video_metadata: true`` the
  request also carries ``media_io_kwargs.video`` (``fps``, ``frames_indices``,
  ``total_num_frames``, ``duration`` from the frame manifest) and
  ``mm_processor_kwargs.do_sample_frames: false``, so the server neither resamples the frames
  nor invents timestamps: the prompt is the one the local ``hf`` path builds (same
  :func:`rmsd.tasks.build_prompt` text after the video).
* ``frames``: each frame as an ``image_url`` preceded by a text part ``<t seconds>`` (its
  timestamp from the manifest), for endpoints that take images only.
* ``images``: the frames as plain images, no timestamps (a last resort; the model sees neither
  the order in time nor the video structure).

The request asks for ``n = k`` samples; endpoints that return fewer (``transformers serve``
returns one) are asked again for the rest, each round with its own seed. The API key is read from
the environment variable named by ``api_key_env``; it is only sent in the ``Authorization``
header, never logged or written, and scrubbed from error messages.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from rmsd.errors import ConfigError, TeacherError
from rmsd.tasks import build_prompt
from rmsd.teachers.base import SamplingParams, derive_seed, register_backend
from rmsd.utils import get_logger

log = get_logger(__name__)

IMAGE_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}
VIDEO_MODES = ("video", "frames", "images")
#: Request fields the ``openai`` client takes as named arguments; all others go in ``extra_body``.
STANDARD_FIELDS = frozenset({"model", "messages", "temperature", "top_p", "max_tokens", "seed", "n",
                             "logprobs"})


def encode_frames(frames: np.ndarray, image_format: str = "png", jpeg_quality: int = 90) -> list[str]:
    """Frames (F, H, W, 3) uint8 as base64 strings of PNG (lossless) or JPEG images."""
    from PIL import Image

    fmt = IMAGE_FORMATS[image_format][0]
    out = []
    for frame in frames:
        buf = io.BytesIO()
        kw = {"quality": int(jpeg_quality)} if fmt == "JPEG" else {}
        Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format=fmt, **kw)
        out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


def frame_times(record: dict | None, n_frames: int) -> dict:
    """Timing of an item's ``n_frames`` sampled frames from its frame-manifest ``record``.

    The same conversion as every other prompting path (:func:`rmsd.frames.metadata.video_metadata`,
    variable-frame-rate files included): ``fps`` (source frames per second), ``frames_indices``
    (per frame its position in source frames, ``frames_indices[i] / fps`` = its time),
    ``total_num_frames``, ``duration`` (s), plus ``timestamps_s`` (s, one per frame, from
    :func:`rmsd.frames.metadata.frame_times_s`).

    Raises:
        DataError: no manifest record (the served teacher would be told wrong times), or a record
            :func:`rmsd.frames.metadata.video_metadata` rejects; the message names the item.
    """
    from rmsd.errors import DataError
    from rmsd.frames.metadata import frame_times_s, video_metadata

    if record is None:
        raise DataError("openai teacher: no frame-manifest record for an item, so its frame times are "
                        "unknown; the pool passes each item's record (metadata=...)")
    meta = video_metadata(record, n_frames)
    return {"fps": meta["fps"], "frames_indices": list(meta["frames_indices"]),
            "total_num_frames": meta["total_num_frames"], "duration": meta["duration"],
            "timestamps_s": frame_times_s(record)}


@register_backend("openai")
class OpenAITeacher:
    """A model behind an OpenAI-compatible chat endpoint.

    Args:
        endpoint: base URL, e.g. ``http://127.0.0.1:8000/v1`` (a trailing ``/chat/completions``
            is removed: the client appends it).
        model: model name sent in every request.
        template: response template named in the prompt.
        api_key_env: name of the environment variable holding the API key (None: no key).
        max_retries: retries per request after the first attempt (the ``openai`` client retries
            connection errors, timeouts, 408, 409, 429 and 5xx with exponential backoff).
        timeout_s: timeout per request, seconds.
        max_concurrency: requests in flight at once.
        video_mode: ``video``, ``frames`` or ``images`` (see the module docstring).
        video_metadata: with ``video_mode: video``, send the frames' timing as
            ``media_io_kwargs`` / ``mm_processor_kwargs`` (vLLM); false for servers that reject
            unknown fields.
        image_format: ``png`` (lossless) or ``jpeg`` for ``frames`` / ``images``; ``video`` always
            sends JPEG (the ``video/jpeg`` data URL format).
        jpeg_quality: JPEG quality (1-100).
        send_n: send ``n`` (some endpoints reject n > 1; then each sample is its own request).
        request_logprobs: ask for token logprobs, which gives exact per-sample ``n_tokens`` when a
            response carries several choices.
        extra_body: further request fields (e.g. ``{"repetition_penalty": 1.05}``).
        teacher: the teacher's name, for messages.

    Raises:
        ConfigError: a bad ``video_mode`` / ``image_format`` / endpoint, or ``api_key_env`` unset.
    """

    def __init__(self, endpoint: str, model: str, template: str = "answer_only",
                 api_key_env: str | None = None, max_retries: int = 5, timeout_s: float = 120.0,
                 max_concurrency: int = 16, video_mode: str = "video", video_metadata: bool = True,
                 image_format: str = "png", jpeg_quality: int = 90, send_n: bool = True,
                 request_logprobs: bool = False, extra_body: dict | None = None,
                 teacher: str = "openai"):
        check_openai_args(teacher, endpoint=endpoint, video_mode=video_mode, image_format=image_format,
                          jpeg_quality=jpeg_quality, max_concurrency=max_concurrency)
        self.base_url = base_url(endpoint)
        self.safe_url = _scrub_url(self.base_url + "/chat/completions")
        self.model, self.template, self.teacher = model, template, teacher
        self._key = None
        if api_key_env:
            self._key = os.environ.get(api_key_env)
            if not self._key:
                raise ConfigError(f"teacher {teacher!r}: environment variable {api_key_env} "
                                  "(api_key_env) is not set or empty")
        self.max_retries, self.timeout_s = int(max_retries), float(timeout_s)
        self.max_concurrency = int(max_concurrency)
        self.video_mode, self.video_metadata = video_mode, bool(video_metadata)
        self.image_format, self.jpeg_quality = image_format, int(jpeg_quality)
        self.send_n, self.request_logprobs = bool(send_n), bool(request_logprobs)
        self.extra_body = dict(extra_body or {})
        self._lock = threading.Lock()
        self._tls = threading.local()  # attempts of the request this thread is sending
        self.n_requests = 0
        """HTTP requests sent (attempts, retries included)."""
        self.n_retries = 0
        """Attempts that failed and were retried."""
        self._warned_tokens = False
        self._client = self._make_client()

    def _make_client(self):
        import httpx2 as httpx  # the HTTP library of the openai client (openai>=3), not httpx 0.x
        import openai

        def on_request(_req: httpx.Request) -> None:
            with self._lock:
                self.n_requests += 1
            self._tls.attempts = getattr(self._tls, "attempts", 0) + 1

        def on_response(resp: httpx.Response) -> None:
            if resp.status_code >= 400:
                log.warning("teacher %s: HTTP %d from %s", self.teacher, resp.status_code, self.safe_url)

        limits = httpx.Limits(max_connections=self.max_concurrency,
                              max_keepalive_connections=self.max_concurrency)
        http = openai.DefaultHttpxClient(limits=limits, event_hooks={"request": [on_request], "response": [on_response]},
                            timeout=self.timeout_s, trust_env=True)
        return openai.OpenAI(base_url=self.base_url, api_key=self._key or "EMPTY",
                             max_retries=self.max_retries, timeout=self.timeout_s, http_client=http)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAITeacher(teacher={self.teacher!r}, url={self.safe_url!r}, model={self.model!r})"

    @staticmethod
    def revision_of(model: str, endpoint: str = "", video_mode: str = "video",
                    video_metadata: bool = True, image_format: str = "png", jpeg_quality: int = 90,
                    extra_body: dict | None = None, send_n: bool = True, **_) -> str:
        """Everything that shapes a request except the prompt and sampling parameters (which the
        sample cache keys on separately): endpoint, model, how frames are encoded and sent,
        ``extra_body``. Changing any of them resamples."""
        from rmsd.io import stable_hash

        shape = {"endpoint": _scrub_url(base_url(endpoint)) if endpoint else "", "model": model,
                 "video_mode": video_mode, "video_metadata": bool(video_metadata),
                 "image_format": "jpeg" if video_mode == "video" else image_format,
                 "jpeg_quality": int(jpeg_quality), "extra_body": extra_body or {},
                 "send_n": bool(send_n)}
        return f"openai:{model}:{stable_hash(shape, 16)}"

    # ------------------------------------------------------------------------------ requests

    def content(self, item: dict, frames_b64: list[str], record: dict | None) -> list[dict]:
        """The user message's content parts for ``item`` (frames as ``video_mode`` says, then the
        prompt text)."""
        text = {"type": "text", "text": build_prompt(item, self.template)}
        if self.video_mode == "video":
            url = "data:video/jpeg;base64," + ",".join(frames_b64)
            return [{"type": "video_url", "video_url": {"url": url}}, text]
        mime = IMAGE_FORMATS[self.image_format][1]
        parts: list[dict] = []
        times = (frame_times(record, len(frames_b64))["timestamps_s"] if self.video_mode == "frames"
                 else [None] * len(frames_b64))
        for t, b64 in zip(times, frames_b64):
            if self.video_mode == "frames":
                parts.append({"type": "text", "text": f"<{t:.1f} seconds>"})
            parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64}"}})
        return parts + [text]

    def request_body(self, item: dict, frames_b64: list[str], n: int, params: SamplingParams,
                     seed: int, record: dict | None = None) -> dict:
        """The JSON body of one chat-completions request for ``item`` (standard and extra fields
        together, as the server receives them)."""
        body = {"model": self.model,
                "messages": [{"role": "user", "content": self.content(item, frames_b64, record)}],
                "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_new_tokens, "seed": seed}
        if self.send_n:
            body["n"] = n
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if self.request_logprobs:
            body["logprobs"] = True
        if self.video_mode == "video" and self.video_metadata:
            t = frame_times(record, len(frames_b64))
            body["media_io_kwargs"] = {"video": {
                "num_frames": -1, "fps": t["fps"], "frames_indices": t["frames_indices"],
                "total_num_frames": t["total_num_frames"], "duration": t["duration"]}}
            body["mm_processor_kwargs"] = {"do_sample_frames": False}
        body.update(self.extra_body)
        return body

    # ------------------------------------------------------------------------------ generation

    def generate(self, items: list[dict], frames: list[np.ndarray], k: int, params: SamplingParams,
                 seed: int, metadata: list[dict | None] | None = None) -> list[list[dict]]:
        """K samples per item; ``metadata``: per item its frame-manifest record (timestamps).

        Raises:
            TeacherError: naming the teacher and the item, after the client's retries.
        """
        metadata = metadata if metadata is not None else [None] * len(items)
        fmt = "jpeg" if self.video_mode == "video" else self.image_format
        workers = max(1, min(self.max_concurrency, len(items) * (1 if self.send_n else k)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            encoded = list(pool.map(lambda f: encode_frames(f, fmt, self.jpeg_quality), frames))
            # one request per item asking n = k, or k requests of one sample each
            rounds = [(i, r, k if self.send_n else 1) for i in range(len(items))
                      for r in range(1 if self.send_n else k)]
            futures = [pool.submit(self._sample, items[i], encoded[i], metadata[i], n, params,
                                   derive_seed(seed, items[i]["id"], r), r) for i, r, n in rounds]
            try:
                results = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            out: list[list[dict]] = [[] for _ in items]
            for (i, _, _), samples in zip(rounds, results):
                out[i] += samples
            # endpoints that returned fewer choices than asked: ask again for the rest, each
            # round with its own seed, the short items' requests in flight together
            rnd = k
            while short := [i for i in range(len(items)) if len(out[i]) < k]:
                futures = {i: pool.submit(self._sample, items[i], encoded[i], metadata[i],
                                          k - len(out[i]) if self.send_n else 1, params,
                                          derive_seed(seed, items[i]["id"], rnd), rnd)
                           for i in short}
                for i, f in futures.items():
                    out[i] += f.result()
                rnd += 1
        return [group[:k] for group in out]

    def _sample(self, item: dict, frames_b64: list[str], record: dict | None, n: int,
                params: SamplingParams, seed: int, rnd: int) -> list[dict]:
        body = self.request_body(item, frames_b64, n, params, seed, record)
        resp = self._post(body, item)
        samples = self._parse(resp, item)
        if not samples:
            raise TeacherError(f"teacher {self.teacher!r}, item {item['id']!r}: endpoint "
                               f"{self.safe_url} returned no choices")
        return samples

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
        """Send ``body`` through the client (which retries); the response as a plain dict.

        Raises:
            TeacherError: the endpoint could not be reached, answered an error status after the
                retries, or a non-retryable one (401, 400, 404 ...); names teacher, item, URL.
        """
        import openai

        std = {k: v for k, v in body.items() if k in STANDARD_FIELDS}
        extra = {k: v for k, v in body.items() if k not in STANDARD_FIELDS}
        where = f"teacher {self.teacher!r}, item {item['id']!r}"
        attempts = f"{self.max_retries + 1} attempt(s)"
        self._tls.attempts = 0
        try:
            resp = self._client.chat.completions.create(**std, extra_body=extra or None)
        except openai.APITimeoutError:
            raise TeacherError(f"{where}: {self.safe_url} timed out ({self.timeout_s:g} s) after "
                               f"{attempts}") from None
        except openai.APIConnectionError as e:
            raise TeacherError(f"{where}: {self.safe_url} unreachable after {attempts} (connection "
                               f"error: {self._scrub(str(e.__cause__ or e))}); is the server "
                               "running and the endpoint right?") from None
        except (ValueError, openai.APIResponseValidationError) as e:  # json.JSONDecodeError is a ValueError
            raise TeacherError(f"{where}: {self.safe_url} answered with a body that is not a "
                               f"chat-completions JSON object ({type(e).__name__}: "
                               f"{self._scrub(str(e))[:200]})") from None
        except openai.APIStatusError as e:
            detail = self._scrub(_excerpt(e))
            retried = e.status_code >= 500 or e.status_code in (408, 409, 429)
            tail = f" after {attempts}" if retried else ""
            raise TeacherError(f"{where}: {self.safe_url} answered HTTP {e.status_code}{tail} "
                               f"({detail})") from None
        finally:
            with self._lock:
                self.n_retries += max(0, self._tls.attempts - 1)
        data = resp.model_dump() if hasattr(resp, "model_dump") else resp
        if not isinstance(data, dict):
            raise TeacherError(f"{where}: response from {self.safe_url} is not a JSON object")
        return data


def base_url(endpoint: str) -> str:
    """The client's base URL: ``endpoint`` without a trailing ``/`` or ``/chat/completions``."""
    url = str(endpoint).rstrip("/")
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    return url


def check_openai_args(teacher: str, endpoint: str | None = None, video_mode: str = "video",
                      image_format: str = "png", jpeg_quality: int = 90, max_concurrency: int = 1,
                      **_) -> None:
    """Check the ``openai`` backend's settings without building a client.

    Raises:
        ConfigError: naming ``sampling.teachers.<teacher>.<key>``, the value and the valid ones.
    """
    key = f"sampling.teachers.{teacher}"
    if endpoint is not None and not str(endpoint).startswith(("http://", "https://")):
        raise ConfigError(f"{key}.endpoint: must be an http(s) URL, got {endpoint!r}")
    if video_mode not in VIDEO_MODES:
        raise ConfigError(f"{key}.video_mode: {video_mode!r}; valid: {list(VIDEO_MODES)}")
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"{key}.image_format: {image_format!r}; valid: {sorted(IMAGE_FORMATS)}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ConfigError(f"{key}.jpeg_quality: {jpeg_quality}; valid: 1..100")
    if int(max_concurrency) < 1:
        raise ConfigError(f"{key}.max_concurrency: {max_concurrency}; valid: >= 1")


def _excerpt(e, limit: int = 300) -> str:
    try:
        text = e.response.text.strip()
    except Exception:  # noqa: BLE001  (best effort: the status alone is informative)
        text = str(e)
    return text[:limit]


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
