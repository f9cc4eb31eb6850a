"""Video metadata of stored frames: one function, used by every path that prompts a model.

Qwen3-VL writes a timestamp per temporal patch into its prompt (``<4.0 seconds>``), computed from
the video's metadata as ``frames_indices[i] / fps`` averaged over the two frames of a patch
(transformers ``Qwen3VLProcessor._calculate_timestamps``; vLLM ``Qwen3VLProcessingInfo.
_get_video_second_idx`` uses the same formula). Qwen2.5-VL's temporal position ids use
``sampled_fps = len(frames_indices) / total_num_frames * fps``. Frames that were already sampled
and stored by the frame stage must therefore travel with metadata that describes them, not with the
processor's default (consecutive frames at 24 or 2 fps), or prompts say ``<0.5 s>`` for a frame at
20 s.

:func:`video_metadata` builds that metadata from a frame-manifest record, and it is the only place
that does: training (:class:`rmsd.models.inputs.VideoPromptEncoder`), the ``hf`` teacher, the
``vllm`` teacher and evaluation all call it, so one item gets the same prompt on every path.

Variable frame rate: a VFR video (manifest ``vfr: true``) has no single fps; the real time of a
stored frame is its presentation time ``pts_s``. The metadata keeps the video's average ``fps`` and
gives each frame the fractional position ``frames_indices[i] = t_i * fps``, so that the processors'
``frames_indices[i] / fps`` is exactly ``t_i``. For constant-rate videos the positions are the
integer frame indices.
"""

from __future__ import annotations

from collections.abc import Mapping

from rmsd.errors import DataError

#: Keys of transformers' ``VideoMetadata`` (vLLM builds one from these) plus vLLM's
#: ``do_sample_frames``, which :func:`video_metadata` returns.
METADATA_KEYS = ("fps", "frames_indices", "total_num_frames", "duration", "width", "height",
                 "do_sample_frames")


def _where(record: Mapping) -> str:
    rid = record.get("item_id") or record.get("id")
    return f"frame manifest record of item {rid!r}" if rid is not None else "frame manifest record"


def frame_times_s(record: Mapping) -> list[float]:
    """Time of each stored frame in seconds from the start of the video.

    Sources, in order: ``pts_s`` when the record is flagged ``vfr`` (the stream's presentation
    times; the nominal ``index / fps`` is wrong there), else ``timestamps_s``, else
    ``indices[i] / fps``.

    Args:
        record: a frame-manifest record (:func:`rmsd.frames.extract.manifest_record`): ``indices``,
            ``fps``, optional ``timestamps_s``, ``pts_s``, ``vfr``.

    Returns:
        F floats, one per stored frame, non-decreasing.

    Raises:
        DataError: no usable times (no ``fps`` > 0 and no timestamps), a length that differs from
            ``indices``, or times that go backwards; the message names the item.
    """
    where = _where(record)
    indices = record.get("indices")
    if not indices:
        raise DataError(f"{where}: no frame `indices`")
    if record.get("vfr") and record.get("pts_s") is not None:
        times, src = [float(t) for t in record["pts_s"]], "pts_s"
    elif record.get("timestamps_s") is not None:
        times, src = [float(t) for t in record["timestamps_s"]], "timestamps_s"
    else:
        fps = float(record.get("fps") or 0.0)
        if not fps > 0:
            raise DataError(f"{where}: no `timestamps_s` and no positive `fps`; the frame times "
                            "are unknown (re-extract the frames)")
        times, src = [int(i) / fps for i in indices], "indices / fps"
    if len(times) != len(indices):
        raise DataError(f"{where}: {len(times)} times in {src} for {len(indices)} frame indices")
    if any(b < a for a, b in zip(times, times[1:])):
        raise DataError(f"{where}: {src} go backwards ({times[:6]}...)")
    return times


def video_metadata(record: Mapping, num_frames: int | None = None) -> dict:
    """The processor's / engine's metadata of one item's stored frames.

    Args:
        record: the item's frame-manifest record (``indices``, ``fps``, ``num_video_frames``,
            ``timestamps_s``, ``pts_s``, ``vfr``, ``stored_size_px``). Partial records with only
            ``fps``, ``indices`` and ``num_video_frames`` are accepted (constant frame rate).
        num_frames: the number of frames actually passed to the model; a count other than
            ``len(indices)`` is an error (a stale manifest). None skips the check.

    Returns:
        ``{"fps": float (the source's average frame rate), "frames_indices": list (F positions,
        ``frames_indices[i] / fps`` = frame i's time in s; ints for constant frame rate),
        "total_num_frames": int (frames in the source video), "duration": float (s),
        "width"/"height": int (stored pixels, when the record has them), "do_sample_frames":
        False}``: the keys of transformers' ``VideoMetadata`` plus ``do_sample_frames``, which
        tells the processor (and vLLM) that the frames are already sampled.

    Raises:
        DataError: missing or non-positive ``fps``, unusable frame times (:func:`frame_times_s`),
            or ``num_frames`` not matching the record; the message names the item.
    """
    where = _where(record)
    fps = float(record.get("fps") or 0.0)
    if not fps > 0:
        raise DataError(f"{where}: `fps` is {record.get('fps')!r}; the frame times need the "
                        "source frame rate (re-extract the frames)")
    indices = [int(i) for i in record.get("indices") or []]
    if num_frames is not None and len(indices) != int(num_frames):
        raise DataError(f"{where}: lists {len(indices)} frame indices for {num_frames} frames "
                        "(stale manifest?)")
    times = frame_times_s(record)
    nominal = [i / fps for i in indices]
    if all(abs(t - n) <= 1e-6 * max(1.0, abs(n)) for t, n in zip(times, nominal)):
        positions: list = indices
    else:
        positions = [t * fps for t in times]
    total = int(record.get("num_video_frames") or (max(indices) + 1))
    duration = max(total / fps, times[-1])
    out = {"fps": fps, "frames_indices": positions, "total_num_frames": total,
           "duration": float(duration)}
    size = record.get("stored_size_px")
    if size:
        out["width"], out["height"] = int(size[0]), int(size[1])
    out["do_sample_frames"] = False
    return out


def hf_video_metadata(meta: Mapping):
    """transformers' ``VideoMetadata`` of a :func:`video_metadata` dict (what the HF processors
    take as ``videos_kwargs["video_metadata"]``; ``do_sample_frames`` goes to the call)."""
    from transformers.video_utils import VideoMetadata

    return VideoMetadata(**{k: v for k, v in meta.items() if k != "do_sample_frames"})


def prompt_timestamps_s(meta: Mapping, merge_size: int = 2) -> list[float]:
    """The times Qwen3-VL writes into the prompt for ``meta``: per temporal patch of
    ``merge_size`` frames, the mean of its first and last frame's ``frames_indices / fps`` (the
    last frame repeated to fill the final patch), as transformers and vLLM compute them."""
    idx = list(meta["frames_indices"])
    if len(idx) % merge_size:
        idx += [idx[-1]] * (merge_size - len(idx) % merge_size)
    t = [i / meta["fps"] for i in idx]
    return [(t[i] + t[i + merge_size - 1]) / 2 for i in range(0, len(t), merge_size)]
