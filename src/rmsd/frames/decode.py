"""Video decoding with an ordered list of decoders and recorded provenance.

decord is the primary decoder (random access: only the wanted frames are decoded, so an hour-long
video costs F seeks, never a decode to the end); PyAV is the fallback (sequential decode, keeping
the wanted indices). decord's result is accepted only if a sample of its frames agrees with PyAV:

* its frame timestamps (from the container index, no decoding) must increase: a stream whose
  timestamps restart or go back (e.g. concatenated mkv) makes index-based seeking ambiguous, so it
  is flagged (``pts_discontinuous``) and decoded sequentially by PyAV;
* :data:`VERIFY_FRAMES` of the sampled frames (the first and the last: the last one
  catches files truncated after their header, whose tail frames do not exist) are decoded by PyAV
  seeking to the frame's timestamp; each must match decord's frame (mean absolute difference at
  most :data:`FRAME_MATCH_TOLERANCE` grey levels). decord's seeking returns wrong frames on some
  files (MPEG program streams: every sparse index gave frame 0) and on corrupt data.

Otherwise the next decoder is tried, and the reason is recorded. Every failure is raised as
:class:`rmsd.errors.VideoDecodeError` naming the file and the reason; no decoder exception of
another type escapes :func:`decode_video`.

Only the first video stream that is not an attached picture (cover art of an audio file) is read;
a file without one ("audio only") fails with "no video stream".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rmsd.errors import ConfigError, MissingArtifactError, VideoDecodeError
from rmsd.frames.select import select_indices

DEFAULT_DECODERS: tuple[str, ...] = ("decord", "pyav")
FRAME_MATCH_TOLERANCE: float = 6.0
"""Largest mean absolute difference (0-255 levels, per frame) between decord's frame and PyAV's
frame at the same index for decord's result to be accepted. Both decode with FFmpeg; their RGB
conversions differ by about one level, while a wrong frame differs by tens of levels."""
VERIFY_FRAMES: int = 2
"""Sampled frames of decord's result re-decoded by PyAV (by seeking) to check it: the first and the
last (each check decodes up to one keyframe interval, so a middle one would add a third of the
cost; the last one catches truncated files and the broken sparse seeking seen)."""
VFR_RATIO: float = 1.25
"""A video is flagged variable-frame-rate when its longest frame interval exceeds its shortest one
by more than this factor (timestamp rounding of a constant rate stays far below it)."""


@dataclass
class DecodedVideo:
    """Frames sampled from one video and where they came from.

    Attributes:
        frames: (F, H, W, 3) uint8 RGB at the source resolution.
        indices: the F frame indices sampled (see :func:`rmsd.frames.select.select_indices`).
        fps: average frame rate reported by the decoder (0.0 when unknown).
        num_video_frames: number of frames in the video.
        source_size_px: (w, h) of the source frames in pixels.
        decoder: name of the decoder that produced the frames.
        decoder_version: its version string.
        fallback_reasons: decoder name -> why it was not used, for decoders tried before.
        pts_s: presentation time in seconds of each sampled frame, relative to the first decoded
            frame, from the stream's timestamps (None when the stream has none).
        vfr: True when the frame intervals vary (variable frame rate): ``pts_s`` then differs
            from the nominal ``index / fps``.
        decode_errors, first_decode_error: packets dropped by a sequential PyAV pass because they
            did not decode (corrupt or truncated data), and the first such error (0 / None on
            the decord path, which decodes only the sampled frames).
        num_video_frames_declared: frame count the container header declares (None when it
            declares none); ``truncated`` is True when fewer frames decode than declared.
        pts_discontinuous: the stream's timestamps go back or restart (first such frame index in
            ``first_discontinuity``); such videos are decoded sequentially and indexed by decode
            order, and ``pts_s`` is None.
    """

    frames: np.ndarray
    indices: list[int]
    fps: float
    num_video_frames: int
    source_size_px: tuple[int, int]
    decoder: str
    decoder_version: str
    fallback_reasons: dict[str, str] = field(default_factory=dict)
    pts_s: list[float] | None = None
    vfr: bool = False
    decode_errors: int = 0
    first_decode_error: str | None = None
    num_video_frames_declared: int | None = None
    truncated: bool = False
    pts_discontinuous: bool = False
    first_discontinuity: int | None = None


def check_video_file(path: str | os.PathLike) -> Path:
    """Fail early and clearly on a missing, unusable or empty video file.

    Raises:
        MissingArtifactError: the file does not exist.
        VideoDecodeError: the path is invalid (e.g. a NUL byte, too long), not a regular file
            (a directory, a device such as /dev/zero, a FIFO) or empty (0 bytes).
    """
    try:
        path = Path(path)
        if "\0" in str(path):
            raise ValueError("embedded NUL byte")
        exists = path.exists()
        is_file = path.is_file()
        size = path.stat().st_size if is_file else 0
    except (TypeError, ValueError, OSError) as e:
        raise VideoDecodeError(
            f"{str(path)!r}: invalid video path ({type(e).__name__}: {e})"
        ) from None
    if not exists:
        raise MissingArtifactError(f"{path}: video file does not exist")
    if not is_file:
        raise VideoDecodeError(f"{path}: not a regular file")
    if size == 0:
        raise VideoDecodeError(f"{path}: video file is empty (0 bytes)")
    return path


class _Scan(NamedTuple):
    """One sequential PyAV pass over a video."""

    n: int
    """Frames decoded."""
    keep: dict[int, np.ndarray]
    """RGB frames at the wanted indices that exist."""
    fps: float
    pts_s: dict[int, float]
    """Presentation time (s, relative to the first frame) of each kept frame that has one."""
    vfr: bool
    decode_errors: int
    """Packets that failed to decode and were dropped (corrupt or truncated data)."""
    first_error: str | None
    declared: int | None = None
    """Frames the container header declares (None when it declares none)."""
    discontinuity: int | None = None
    """Index of the first frame whose timestamp is not after the previous one's (None: none)."""


def _video_stream(container, path):
    """The first video stream that is not an attached picture (cover art)."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise VideoDecodeError(f"{path}: no video stream")


def _wrap_pyav_error(path, e: BaseException) -> VideoDecodeError:
    """Any exception of a PyAV pass as a VideoDecodeError naming the file and the reason."""
    import av

    if isinstance(e, VideoDecodeError):
        return e
    if isinstance(e, av.FFmpegError):
        return VideoDecodeError(f"{path}: PyAV cannot decode ({e})")
    # PyAV also raises e.g. UnicodeDecodeError on garbled metadata, ValueError, IndexError.
    return VideoDecodeError(f"{path}: PyAV failed ({type(e).__name__}: {e})")


def _pyav_scan(path, wanted: Sequence[int]) -> _Scan:
    """Decode every frame of the video stream; convert only the ``wanted`` ones to RGB.

    Like the ffmpeg command line, a packet that fails to decode (corrupt or truncated data) is
    dropped and counted, and decoding goes on; a demuxing error ends the stream. Frame indices
    count the frames actually decoded.

    Raises:
        VideoDecodeError: the file cannot be opened, has no video stream, or no frame decodes
            (names the file and the first error).
    """
    import av

    want, keep, pts, n = set(wanted), {}, {}, 0
    first = prev = jump = None
    d_min, d_max = float("inf"), 0.0
    n_err, first_err = 0, None

    def take(frame) -> None:
        nonlocal n, first, prev, d_min, d_max, jump
        t = frame.time
        if t is not None:
            if first is None:
                first = t
            if prev is not None and t > prev:
                d_min, d_max = min(d_min, t - prev), max(d_max, t - prev)
            elif prev is not None and jump is None:
                jump = n
            prev = t
        if n in want:
            keep[n] = frame.to_ndarray(format="rgb24")
            if t is not None:
                pts[n] = round(t - first, 6)
        n += 1

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            declared = int(stream.frames or 0) or None
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as e:  # unreadable rest of the file: end of stream
                    n_err += 1
                    first_err = first_err or f"demux: {e}"
                    break
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:  # a corrupt packet: drop it, keep decoding
                    n_err += 1
                    first_err = first_err or f"decode: {e}"
                    continue
                for frame in frames:
                    take(frame)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - PyAV raises many types on bad input; all are reasons
        raise _wrap_pyav_error(path, e) from None
    if n == 0 and first_err is not None:
        raise VideoDecodeError(f"{path}: PyAV decoded no frames ({first_err})")
    vfr = d_max > 0 and d_max > VFR_RATIO * d_min
    return _Scan(n, keep, float(rate) if rate else 0.0, pts, bool(vfr), n_err, first_err,
                 declared, jump)


def count_decodable_frames(path: str | os.PathLike) -> int:
    """Number of frames of the video stream that PyAV decodes (full sequential decode).

    Raises:
        VideoDecodeError: PyAV cannot open or decode the file, or it has no video stream.
    """
    return _pyav_scan(path, ()).n


def _pts_list(scan: _Scan, indices: Sequence[int]) -> list[float] | None:
    if scan.discontinuity is None and all(i in scan.pts_s for i in indices):
        return [scan.pts_s[i] for i in indices]
    return None


def decode_decord(
    path: str | os.PathLike, num_frames: int, policy: str = "uniform"
) -> DecodedVideo:
    """Sample frames with decord; a sample of them is checked against PyAV (seeking, no full decode).

    Cost: opening (decord reads the container index), ``num_frames`` random-access decodes, and
    :data:`VERIFY_FRAMES` PyAV seeks, each decoding from the preceding keyframe.

    Raises:
        VideoDecodeError: decord fails, its timestamps go back or restart, a checked frame cannot
            be decoded by PyAV (e.g. the file is truncated after its header) or differs from
            PyAV's frame at that timestamp.
        ImportError: decord is not installed.
    """
    import decord

    try:
        vr = decord.VideoReader(str(path), num_threads=1)
        n_claimed = len(vr)
        fps = float(vr.get_avg_fps())
    except Exception as e:  # noqa: BLE001 - decord raises DECORDError, a bare Exception subclass
        raise VideoDecodeError(f"{path}: decord cannot open ({_decord_error(e)})") from None
    if n_claimed <= 0:
        raise VideoDecodeError(f"{path}: decord reports {n_claimed} frames")
    indices = select_indices(n_claimed, num_frames, policy)
    try:
        times = np.asarray(vr.get_frame_timestamp(np.arange(n_claimed)), dtype=np.float64)[:, 0]
        frames = vr.get_batch(indices).asnumpy()
    except Exception as e:  # noqa: BLE001 - as above
        raise VideoDecodeError(f"{path}: decord get_batch failed ({_decord_error(e)})") from None
    finally:
        del vr
    steps = np.diff(times)
    if (steps <= 0).any():
        first = int(np.argmax(steps <= 0)) + 1
        raise VideoDecodeError(
            f"{path}: timestamps go back or restart at frame {first} "
            f"({times[first - 1]:.3f} s -> {times[first]:.3f} s); seeking by index is ambiguous"
        )
    _check_frames(path, frames, len(indices), "decord")
    check = sorted({indices[0], indices[-1]})
    half = 0.5 * float(steps.min()) if len(steps) else 0.5
    try:
        reference = _pyav_frames_at(path, {i: float(times[i]) for i in check}, half)
    except VideoDecodeError as e:
        raise VideoDecodeError(
            f"{path}: cannot verify decord's frames ({_strip_path(str(e), Path(path))})"
        ) from None
    missing = [i for i in check if i not in reference]
    if missing:
        raise VideoDecodeError(
            f"{path}: decord reports {n_claimed} frames but frame {missing[0]} "
            f"(at {times[missing[0]]:.3f} s) is not decodable by PyAV (truncated file?)"
        )
    pos = {i: p for p, i in enumerate(indices)}
    _check_same_frames(path, frames[[pos[i] for i in check]], check, reference)
    rel = times - times[0]
    vfr = len(steps) > 1 and float(steps.max()) > VFR_RATIO * float(steps.min())
    return DecodedVideo(
        frames=frames,
        indices=indices,
        fps=fps,
        num_video_frames=n_claimed,
        source_size_px=(int(frames.shape[2]), int(frames.shape[1])),
        decoder="decord",
        decoder_version=str(decord.__version__),
        pts_s=[round(float(rel[i]), 6) for i in indices],
        vfr=bool(vfr),
        num_video_frames_declared=n_claimed,
    )


def _pyav_frames_at(path, times: dict[int, float], tol: float) -> dict[int, np.ndarray]:
    """RGB frames at the given timestamps (s, stream time), found by seeking with PyAV.

    For each wanted time, seeks to the keyframe at or before it and decodes forward to the first
    frame at or after ``time - tol``; it is kept when within ``tol`` of the wanted time. Indices
    whose frame is not reached (end of the decodable data) are absent from the result.

    Raises:
        VideoDecodeError: the file cannot be opened or has no video stream.
    """
    import av

    out: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"
            tb = stream.time_base
            for idx, t in sorted(times.items(), key=lambda kv: kv[1]):
                try:
                    container.seek(int(t / tb) if tb else 0, stream=stream, backward=True,
                                   any_frame=False)
                    for frame in container.decode(stream):
                        ft = frame.time
                        if ft is None or ft < t - tol:
                            continue
                        if abs(ft - t) <= tol:
                            out[idx] = frame.to_ndarray(format="rgb24")
                        break
                except av.FFmpegError:
                    continue  # undecodable here: reported as missing
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - see _pyav_scan
        raise _wrap_pyav_error(path, e) from None
    return out


def decode_pyav(path: str | os.PathLike, num_frames: int, policy: str = "uniform") -> DecodedVideo:
    """Sample frames with PyAV: sequential decode keeping the wanted indices.

    The container's frame count is used as a hint for the indices; if the decoded count differs,
    the video is decoded a second time with indices chosen from the true count.

    Raises:
        VideoDecodeError: PyAV cannot open or decode the file, it has no video stream or no frames.
    """
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            hint = int(_video_stream(container, path).frames or 0)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - see _pyav_scan
        raise _wrap_pyav_error(path, e) from None
    wanted = select_indices(hint, num_frames, policy) if hint > 0 else []
    scan = _pyav_scan(path, wanted)
    if scan.n == 0:
        raise VideoDecodeError(f"{path}: PyAV decoded no frames")
    if scan.n != hint:  # the container's count was missing or wrong: resample from the true count
        wanted = select_indices(scan.n, num_frames, policy)
        scan = _pyav_scan(path, wanted)
    missing = sorted(set(wanted) - set(scan.keep))
    if missing:  # the second pass decoded fewer frames than the first
        raise VideoDecodeError(f"{path}: PyAV decode is not repeatable, frames {missing} missing")
    frames = np.stack([scan.keep[i] for i in wanted])
    _check_frames(path, frames, len(wanted), "pyav")
    return DecodedVideo(
        frames=frames,
        indices=list(wanted),
        fps=scan.fps,
        num_video_frames=scan.n,
        source_size_px=(int(frames.shape[2]), int(frames.shape[1])),
        decoder="pyav",
        decoder_version=str(av.__version__),
        pts_s=_pts_list(scan, wanted),
        vfr=scan.vfr,
        decode_errors=scan.decode_errors,
        first_decode_error=scan.first_error,
        num_video_frames_declared=hint or None,
        truncated=bool(hint) and scan.n < hint,
        pts_discontinuous=scan.discontinuity is not None,
        first_discontinuity=scan.discontinuity,
    )


DECODERS: dict[str, Callable[[str | os.PathLike, int, str], DecodedVideo]] = {
    "decord": decode_decord,
    "pyav": decode_pyav,
}


def check_decoders(decoders: Sequence[str]) -> tuple[str, ...]:
    """Validate a decoder list.

    Raises:
        ConfigError: empty list or unknown decoder name.
    """
    decoders = tuple(decoders)
    if not decoders:
        raise ConfigError("decoders must name at least one decoder")
    bad = [d for d in decoders if d not in DECODERS]
    if bad:
        raise ConfigError(f"unknown decoder(s) {bad}; valid: {list(DECODERS)}")
    return decoders


def decode_video(
    path: str | os.PathLike,
    num_frames: int,
    policy: str = "uniform",
    decoders: Sequence[str] = DEFAULT_DECODERS,
) -> DecodedVideo:
    """Sample ``num_frames`` frames of a video, trying ``decoders`` in order.

    Args:
        path: the video file.
        num_frames: frames to sample F.
        policy: frame selection policy (see :func:`rmsd.frames.select.select_indices`).
        decoders: decoder names in order of preference, from :data:`DECODERS`.

    Returns:
        The first decoder's successful result, with ``fallback_reasons`` of those that failed.

    Raises:
        MissingArtifactError: the file does not exist.
        VideoDecodeError: the file is empty, or every decoder failed; names the file and each
            decoder's reason.
        ConfigError: unknown decoder or policy.
    """
    decoders = check_decoders(decoders)
    select_indices(1, num_frames, policy)  # validates num_frames and policy up front
    path = check_video_file(path)
    reasons: dict[str, str] = {}
    for name in decoders:
        try:
            result = DECODERS[name](path, num_frames, policy)
        except ImportError as e:
            reasons[name] = f"not installed ({e})"
        except (VideoDecodeError, ValueError, RuntimeError, OSError) as e:
            reasons[name] = _strip_path(str(e), path)
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder failure is a reason, never a crash
            reasons[name] = f"{type(e).__name__}: {_strip_path(str(e), path)}"
        else:
            result.fallback_reasons = reasons
            return result
    detail = "; ".join(f"{name}: {why}" for name, why in reasons.items())
    raise VideoDecodeError(f"{path}: no decoder could decode the video ({detail})")


def _check_frames(path, frames: np.ndarray, n: int, decoder: str) -> None:
    if (
        frames.ndim != 4
        or frames.shape[0] != n
        or frames.shape[-1] != 3
        or frames.dtype != np.uint8
    ):
        raise VideoDecodeError(
            f"{path}: {decoder} returned frames of shape {frames.shape} {frames.dtype}, "
            f"expected ({n}, H, W, 3) uint8"
        )


def _check_same_frames(
    path, frames: np.ndarray, indices: Sequence[int], reference: dict[int, np.ndarray]
) -> None:
    """decord's frames must match PyAV's sequentially decoded frames at the same indices."""
    for pos, i in enumerate(indices):
        ref = reference.get(i)
        if ref is None or ref.shape != frames[pos].shape:
            got = None if ref is None else ref.shape
            raise VideoDecodeError(
                f"{path}: decord frame {i} has shape {frames[pos].shape}, PyAV's {got}"
            )
        diff = float(np.abs(frames[pos].astype(np.int16) - ref.astype(np.int16)).mean())
        if diff > FRAME_MATCH_TOLERANCE:
            raise VideoDecodeError(
                f"{path}: decord frame {i} differs from the sequential decode (mean absolute "
                f"difference {diff:.1f} > {FRAME_MATCH_TOLERANCE} levels: broken seeking or "
                "corrupt data)"
            )


_DECORD_CLOCK_RE = re.compile(r"\[\d{2}:\d{2}:\d{2}\] ")


def _decord_error(e: BaseException) -> str:
    """decord's message without its wall-clock stamp ("[23:42:45] "), so manifests that record
    the reason are reproducible."""
    return f"{type(e).__name__}: {_DECORD_CLOCK_RE.sub('', str(e)).strip()}"


def _strip_path(message: str, path: Path) -> str:
    """Drop a leading ``"<path>: "`` so the combined error names the file once."""
    prefix = f"{path}: "
    return message.removeprefix(prefix)
