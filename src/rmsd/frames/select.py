"""Which frames of a video to keep (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

from rmsd.errors import ConfigError

POLICIES: tuple[str, ...] = ("uniform", "head")


def select_indices(n_video_frames: int, num_frames: int, policy: str = "uniform") -> list[int]:
    """Indices of the ``num_frames`` frames to sample from a video of ``n_video_frames`` frames.

    Policies:
        ``uniform``: the centre frame of each of ``num_frames`` equal segments,
            ``idx_i = floor((i + 0.5) * n_video_frames / num_frames)`` (computed in exact integer
            arithmetic). When ``n_video_frames < num_frames`` indices repeat (each frame is
            sampled about ``num_frames / n_video_frames`` times), so the output always has
            ``num_frames`` entries, non-decreasing.
        ``head``: the first ``num_frames`` frames; when the video is shorter its last frame is
            repeated.

    >>> select_indices(16, 8)
    [1, 3, 5, 7, 9, 11, 13, 15]
    >>> select_indices(10, 4)
    [1, 3, 6, 8]
    >>> select_indices(2, 4)
    [0, 0, 1, 1]
    >>> select_indices(3, 5, "head")
    [0, 1, 2, 2, 2]

    Raises:
        ValueError: ``n_video_frames <= 0`` or ``num_frames <= 0``.
        ConfigError: unknown policy.
    """
    if policy not in POLICIES:
        raise ConfigError(f"unknown frame selection policy {policy!r}; valid: {list(POLICIES)}")
    if int(n_video_frames) <= 0:
        raise ValueError(f"video has no frames (n_video_frames={n_video_frames})")
    if int(num_frames) <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    n, f = int(n_video_frames), int(num_frames)
    if policy == "uniform":
        return [((2 * i + 1) * n) // (2 * f) for i in range(f)]
    return [min(i, n - 1) for i in range(f)]


def timestamps_s(indices: Sequence[int], fps: float) -> list[float]:
    """Presentation time in seconds of each frame index: ``index / fps``.

    >>> timestamps_s([1, 3, 6], 4.0)
    [0.25, 0.75, 1.5]

    Raises:
        ValueError: ``fps`` is not positive.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return [int(i) / float(fps) for i in indices]
