"""Video decoding with an ordered list of decoders and recorded provenance.

decord is the primary decoder (random access: only the wanted frames are decoded); PyAV is the
fallback (sequential decode, keeping the wanted indices). decord's result is accepted only if its
frame count agrees with the number of frames PyAV can actually decode (decord's count comes from
the container index and is known to be wrong on some files); otherwise the next decoder is tried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rmsd.errors import ConfigError, MissingArtifactError, VideoDecodeError
from rmsd.frames.select import select_indices

DEFAULT_DECODERS: tuple[str, ...] = ("decord", "pyav")


@dataclass
class DecodedVideo:
    """Frames sampled from one video and where they came from.

    Attributes:
        frames: (F, H, W, 3) uint8 RGB at the source resolution.
        indices: the F frame indices sampled (see :func:`rmsd.frames.select.select_indices`).
        fps: average frame rate reported by the decoder.
        num_video_frames: number of frames in the video.
        source_size_px: (w, h) of the source frames in pixels.
        decoder: name of the decoder that produced the frames.
        decoder_version: its version string.
        fallback_reasons: decoder name -> why it was not used, for decoders tried before.
    """

    frames: np.ndarray
    indices: list[int]
    fps: float
    num_video_frames: int
    source_size_px: tuple[int, int]
    decoder: str
    decoder_version: str
    fallback_reasons: dict[str, str] = field(default_factory=dict)


def check_video_file(path: str | os.PathLike) -> Path:
    """Fail early and clearly on a missing or empty video file.

    Raises:
        MissingArtifactError: the file does not exist.
        VideoDecodeError: the path is not a regular file or is empty (0 bytes).
    """
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(f"{path}: video file does not exist")
    if not path.is_file():
        raise VideoDecodeError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: video file is empty (0 bytes)")
    return path


def count_decodable_frames(path: str | os.PathLike) -> int:
    """Number of frames of the first video stream that PyAV decodes (full sequential decode).

    Raises:
        VideoDecodeError: PyAV cannot open or decode the file; names it.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            return sum(1 for _ in container.decode(stream))
    except av.FFmpegError as e:
        raise VideoDecodeError(f"{path}: PyAV cannot decode ({e})") from None


def decode_decord(
    path: str | os.PathLike, num_frames: int, policy: str = "uniform"
) -> DecodedVideo:
    """Sample frames with decord, after checking its frame count against PyAV's decodable count.

    Raises:
        VideoDecodeError: decord fails, or its frame count disagrees with the decodable frames.
        ImportError: decord is not installed.
    """
    import decord

    try:
        vr = decord.VideoReader(str(path), num_threads=1)
        n_claimed = len(vr)
        fps = float(vr.get_avg_fps())
    except Exception as e:  # noqa: BLE001 - decord raises DECORDError, a bare Exception subclass
        raise VideoDecodeError(f"{path}: decord cannot open ({type(e).__name__}: {e})") from None
    try:
        n_decodable = count_decodable_frames(path)
    except VideoDecodeError as e:
        raise VideoDecodeError(
            f"{path}: cannot verify decord's frame count ({_strip_path(str(e), Path(path))})"
        ) from None
    if n_claimed != n_decodable:
        raise VideoDecodeError(
            f"{path}: decord reports {n_claimed} frames but {n_decodable} are decodable"
        )
    indices = select_indices(n_claimed, num_frames, policy)
    try:
        frames = vr.get_batch(indices).asnumpy()
    except Exception as e:  # noqa: BLE001 - as above
        raise VideoDecodeError(
            f"{path}: decord get_batch failed ({type(e).__name__}: {e})"
        ) from None
    _check_frames(path, frames, len(indices), "decord")
    return DecodedVideo(
        frames=frames,
        indices=indices,
        fps=fps,
        num_video_frames=n_claimed,
        source_size_px=(int(frames.shape[2]), int(frames.shape[1])),
        decoder="decord",
        decoder_version=str(decord.__version__),
    )


def decode_pyav(path: str | os.PathLike, num_frames: int, policy: str = "uniform") -> DecodedVideo:
    """Sample frames with PyAV: sequential decode keeping the wanted indices.

    The container's frame count is used as a hint for the indices; if the decoded count differs,
    the video is decoded a second time with indices chosen from the true count.

    Raises:
        VideoDecodeError: PyAV cannot open or decode the file, or it has no frames.
    """
    import av

    def one_pass(wanted: Sequence[int]) -> tuple[int, dict[int, np.ndarray], float]:
        """Decode every frame; convert only the ``wanted`` ones. Returns (count, frames, fps)."""
        want, keep, n = set(wanted), {}, 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            for frame in container.decode(stream):
                if n in want:
                    keep[n] = frame.to_ndarray(format="rgb24")
                n += 1
        return n, keep, float(rate) if rate else 0.0

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            hint = int(container.streams.video[0].frames or 0)
        wanted = select_indices(hint, num_frames, policy) if hint > 0 else []
        n, keep, fps = one_pass(wanted)
        if n == 0:
            raise VideoDecodeError(f"{path}: PyAV decoded no frames")
        if n != hint:  # the container's count was missing or wrong: resample from the true count
            wanted = select_indices(n, num_frames, policy)
            n, keep, fps = one_pass(wanted)
    except av.FFmpegError as e:
        raise VideoDecodeError(f"{path}: PyAV cannot decode ({e})") from None
    missing = sorted(set(wanted) - set(keep))
    if missing:  # the second pass decoded fewer frames than the first
        raise VideoDecodeError(f"{path}: PyAV decode is not repeatable, frames {missing} missing")
    frames = np.stack([keep[i] for i in wanted])
    _check_frames(path, frames, len(wanted), "pyav")
    return DecodedVideo(
        frames=frames,
        indices=wanted,
        fps=fps,
        num_video_frames=n,
        source_size_px=(int(frames.shape[2]), int(frames.shape[1])),
        decoder="pyav",
        decoder_version=str(av.__version__),
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


def _strip_path(message: str, path: Path) -> str:
    """Drop a leading ``"<path>: "`` so the combined error names the file once."""
    prefix = f"{path}: "
    return message.removeprefix(prefix)
