"""Seeded procedural videos with exact ground truth for the six task types (paper section 3.3).

The world is a mid-grey background (pixel values about 110-140, with per-pixel noise: on a dark,
flat background the tiny vision tower collapses) with small coloured shapes. Every item is
rendered in memory by the pure :func:`render_item`, whose answers are computed from the drawn
geometry, and :func:`generate_split` encodes the frames as H.264 mp4 files and writes the items
file.

Shapes are drawn as boolean pixel masks inside a square of side ``s`` pixels (``size_px/5 <= s <=
size_px/3``), so boxes are exact: a spatial answer is the tight box of the drawn mask on the 0-1000
scale (floor for the top-left, ceil for the bottom-right corner, so it always contains the shape).

Conventions of the answers are those of :mod:`rmsd.tasks`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from rmsd.errors import ConfigError
from rmsd.io import atomic_path, remove_stale_temp_files, write_jsonl
from rmsd.tasks import OPTION_LETTERS, TASK_TYPES

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 170, 55),
    "blue": (35, 75, 215),
    "yellow": (235, 215, 35),
}
SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "cross")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
WORDS: tuple[str, ...] = (
    "CAT",
    "DOG",
    "SUN",
    "BOX",
    "CUP",
    "HAT",
    "PEN",
    "BUS",
    "KEY",
    "FOX",
    "MAP",
    "JAR",
)
MCQ_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "direction": DIRECTIONS,
}
MCQ_QUESTIONS: dict[str, str] = {
    "colour": "What colour is the moving shape?",
    "shape": "What shape is moving?",
    "direction": "In which direction does the shape move?",
}

BACKGROUND_LEVEL: int = 125
"""Mean grey level of the background (0-255)."""
NOISE_AMPLITUDE: int = 8
"""Uniform per-pixel, per-frame noise in [-NOISE_AMPLITUDE, NOISE_AMPLITUDE] on every pixel."""
TEXT_RGB: tuple[int, int, int] = (20, 20, 20)
"""OCR words are drawn near-black: the largest luma contrast against mid-grey."""
SPATIAL_TIMESTAMPS: int = 3
"""Number of annotated timestamps of a spatial answer (first, middle and last frame)."""
CRF: int = 18
X264_PRESET: str = "veryfast"


# --------------------------------------------------------------------------------------------------
# Geometry (pure)
# --------------------------------------------------------------------------------------------------


def shape_mask(shape: str, x0: int, y0: int, side_px: int, size_px: int) -> np.ndarray:
    """Boolean mask of a shape drawn in the square ``[x0, x0+side_px) x [y0, y0+side_px)``.

    Pixel ``(row, col)`` belongs to the shape when its centre ``(col+0.5, row+0.5)`` is inside it.

    Args:
        shape: one of :data:`SHAPES`.
        x0, y0: top-left corner of the bounding square in pixels (may lie partly outside the frame).
        side_px: side of the bounding square in pixels (>= 3).
        size_px: frame side S in pixels.

    Returns:
        Mask of shape (H, W) = (S, S), dtype bool.

    Raises:
        ValueError: unknown shape or side_px < 3.
    """
    if side_px < 3:
        raise ValueError(f"side_px must be >= 3, got {side_px}")
    c = np.arange(size_px) + 0.5
    xx = c[None, :] - x0  # (1, W) position inside the bounding square
    yy = c[:, None] - y0  # (H, 1)
    s = float(side_px)
    inside = (xx >= 0) & (xx < s) & (yy >= 0) & (yy < s)
    if shape == "square":
        return inside
    if shape == "circle":
        r = s / 2
        return inside & ((xx - r) ** 2 + (yy - r) ** 2 <= r * r)
    if shape == "triangle":  # apex at the top centre, base at the bottom
        return inside & (np.abs(xx - s / 2) <= yy / 2)
    if shape == "cross":  # plus sign, bars one third of the side thick
        lo, hi = s / 3, 2 * s / 3
        return inside & (((xx >= lo) & (xx < hi)) | ((yy >= lo) & (yy < hi)))
    raise ValueError(f"unknown shape {shape!r}; valid: {list(SHAPES)}")


def mask_box_1000(mask: np.ndarray) -> list[int]:
    """Tight box of a non-empty mask on the 0-1000 scale: ``[x1, y1, x2, y2]``.

    Pixel edges are used (column ``c`` spans ``[c, c+1)``); x1, y1 are floored and x2, y2 ceiled,
    so the box contains every mask pixel.

    Args:
        mask: (H, W) bool.

    Raises:
        ValueError: the mask is empty.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty mask has no box")
    h, w = mask.shape
    return [
        (int(cols[0]) * 1000) // w,
        (int(rows[0]) * 1000) // h,
        -((-(int(cols[-1]) + 1) * 1000) // w),
        -((-(int(rows[-1]) + 1) * 1000) // h),
    ]


def trajectory(
    direction: str, n_frames: int, side_px: int, size_px: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Top-left corners (x0, y0) of a square of side ``side_px`` crossing the frame.

    The square stays fully inside the frame; it travels linearly from one margin to the other in
    ``direction`` (left, right, up, down); its other coordinate is drawn from ``rng``.

    Returns:
        One (x0, y0) in pixels per frame, length F = n_frames.
    """
    lo, hi = 1, size_px - side_px - 1
    other = int(rng.integers(lo, hi + 1))
    if direction in ("right", "down"):
        start, end = lo, hi
    elif direction in ("left", "up"):
        start, end = hi, lo
    else:
        raise ValueError(f"unknown direction {direction!r}; valid: {list(DIRECTIONS)}")
    steps = np.linspace(start, end, n_frames) if n_frames > 1 else np.array([start])
    pos = [round(float(p)) for p in steps]
    if direction in ("left", "right"):
        return [(p, other) for p in pos]
    return [(other, p) for p in pos]


@functools.lru_cache(maxsize=64)
def text_alpha(word: str, size_px: int) -> np.ndarray:
    """Coverage (0-1) of ``word`` drawn with PIL's default font, scaled to ~80 % of the frame width.

    The word is rendered large (64 px font, bold stroke), cropped to its ink and resized with
    Lanczos, so the letters stay legible at small ``size_px`` (checked by eye down to 32 px). If
    the installed Pillow has no FreeType, the bitmap default font is rendered and scaled up.

    Returns:
        (h, w) float32 array in [0, 1], with w <= 0.8 * size_px and h <= 0.6 * size_px.
    """
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=64)
    except TypeError:  # Pillow < 10.1 or no FreeType
        font = ImageFont.load_default()
    stroke = (
        2 if isinstance(font, ImageFont.FreeTypeFont) else 0
    )  # bolder strokes survive downscaling
    l, t, r, b = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), word, font=font, stroke_width=stroke
    )
    img = Image.new("L", (r - l + 4, b - t + 4), 0)
    ImageDraw.Draw(img).text(
        (2 - l, 2 - t), word, fill=255, font=font, stroke_width=stroke, stroke_fill=255
    )
    img = img.crop(img.getbbox())
    scale = min(0.8 * size_px / img.width, 0.6 * size_px / img.height)
    out_w, out_h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    img = img.resize((out_w, out_h), Image.LANCZOS)
    alpha = np.asarray(img, dtype=np.float32) / 255.0
    alpha.setflags(write=False)  # shared through the cache
    return alpha


# --------------------------------------------------------------------------------------------------
# Rendering (pure)
# --------------------------------------------------------------------------------------------------


def _background(n_frames: int, size_px: int) -> np.ndarray:
    """Mid-grey canvas (F, H, W, 3) int16; noise is added by :func:`_finish`."""
    return np.full((n_frames, size_px, size_px, 3), BACKGROUND_LEVEL, dtype=np.int16)


def _finish(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """Add per-pixel noise and clip to uint8 (F, H, W, 3)."""
    noise = rng.integers(-NOISE_AMPLITUDE, NOISE_AMPLITUDE + 1, size=canvas.shape, dtype=np.int16)
    return np.clip(canvas + noise, 0, 255).astype(np.uint8)


def _side(rng: np.random.Generator, size_px: int) -> int:
    """Random shape side in [S/5, S/3] pixels."""
    return int(rng.integers(max(3, size_px // 5), max(3, size_px // 3) + 1))


def _pick(rng: np.random.Generator, values: Sequence[str]) -> str:
    return values[int(rng.integers(len(values)))]


def _paint(canvas_frame: np.ndarray, mask: np.ndarray, colour: str) -> None:
    canvas_frame[mask] = COLOURS[colour]


def _render_moving(rng, n_frames, size_px, visible: tuple[int, int] | None = None):
    """One shape crossing the frame; drawn only on frames visible[0]..visible[1] (inclusive)."""
    colour, shape, direction = (
        _pick(rng, tuple(COLOURS)),
        _pick(rng, SHAPES),
        _pick(rng, DIRECTIONS),
    )
    side = _side(rng, size_px)
    path = trajectory(direction, n_frames, side, size_px, rng)
    canvas = _background(n_frames, size_px)
    a, b = visible if visible is not None else (0, n_frames - 1)
    for f in range(a, b + 1):
        x0, y0 = path[f]
        _paint(canvas[f], shape_mask(shape, x0, y0, side, size_px), colour)
    meta = {
        "colour": colour,
        "shape": shape,
        "direction": direction,
        "side_px": side,
        "start_xy_px": list(path[0]),
        "end_xy_px": list(path[-1]),
    }
    return canvas, meta


def render_item(
    rng: np.random.Generator,
    task_type: str,
    size_px: int = 56,
    n_frames: int = 16,
    fps: float = 4.0,
    mcq_attributes: Sequence[str] = ("colour",),
    mcq_shuffle_options: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one item's video in memory and its question and exact answer.

    Args:
        rng: the item's random generator (all randomness is drawn from it).
        task_type: one of :data:`rmsd.tasks.TASK_TYPES`.
        size_px: frame side S in pixels (even, >= 16: H.264 yuv420p needs even sides).
        n_frames: number of frames F (>= 3).
        fps: frame rate; timestamps in answers are ``frame_index / fps`` seconds.
        mcq_attributes: attributes an MCQ may ask about (subset of colour, shape, direction);
            one is drawn per item.
        mcq_shuffle_options: shuffle MCQ options with ``rng`` instead of the fixed order.

    Returns:
        ``(frames, fields)``: frames of shape (F, H, W, 3) = (n_frames, S, S, 3) uint8 RGB, and
        a dict with ``task_type``, ``question``, ``options`` (list or None), ``answer``,
        ``duration_s`` and ``meta`` (the latent attributes).

    Raises:
        ConfigError: unknown task type or MCQ attribute, bad size or frame count.
    """
    check_render_args(task_type, size_px, n_frames, fps, mcq_attributes)
    options: list[str] | None = None

    if task_type in ("mcq", "open"):
        canvas, meta = _render_moving(rng, n_frames, size_px)
        if task_type == "open":
            question = "Describe the video."
            answer: Any = f"a {meta['colour']} {meta['shape']} moves {meta['direction']}"
        else:
            attr = _pick(rng, tuple(mcq_attributes))
            options = list(MCQ_ATTRIBUTES[attr])
            if mcq_shuffle_options:
                options = [options[i] for i in rng.permutation(len(options))]
            question = MCQ_QUESTIONS[attr]
            answer = OPTION_LETTERS[options.index(meta[attr])]
            meta["asked"] = attr

    elif task_type == "numeric":
        count = int(rng.integers(1, 5))
        quadrants = sorted(int(q) for q in rng.choice(4, size=count, replace=False))
        canvas = _background(n_frames, size_px)
        half = size_px // 2
        shapes = []
        for q in quadrants:
            colour, shape, side = (
                _pick(rng, tuple(COLOURS)),
                _pick(rng, SHAPES),
                _side(rng, size_px),
            )
            qx, qy = (q % 2) * half, (q // 2) * half
            room = max(0, half - side - 2)  # keep a 1-px gap to the quadrant borders
            x0 = qx + 1 + int(rng.integers(0, room + 1))
            y0 = qy + 1 + int(rng.integers(0, room + 1))
            mask = shape_mask(shape, x0, y0, side, size_px)
            canvas[:, mask] = COLOURS[colour]
            shapes.append(
                {
                    "quadrant": q,
                    "colour": colour,
                    "shape": shape,
                    "side_px": side,
                    "box": mask_box_1000(mask),
                }
            )
        question = "How many shapes are there?"
        answer = count
        meta = {"count": count, "shapes": shapes}

    elif task_type == "ocr":
        word = _pick(rng, WORDS)
        alpha = text_alpha(word, size_px)
        h, w = alpha.shape
        x0 = int(rng.integers(0, size_px - w + 1))
        y0 = int(rng.integers(0, size_px - h + 1))
        canvas = _background(n_frames, size_px).astype(np.float32)
        region = canvas[:, y0 : y0 + h, x0 : x0 + w, :]
        a = alpha[None, :, :, None]
        canvas[:, y0 : y0 + h, x0 : x0 + w, :] = (
            region * (1 - a) + np.asarray(TEXT_RGB, np.float32) * a
        )
        canvas = np.rint(canvas).astype(np.int16)
        question = "What word is shown?"
        answer = word
        meta = {"word": word, "text_box_px": [x0, y0, x0 + w, y0 + h]}

    elif task_type == "temporal":
        length = int(rng.integers(2, n_frames))  # 2 .. F-1 frames: hidden on at least one frame
        a = int(rng.integers(0, n_frames - length + 1))
        b = a + length - 1
        canvas, meta = _render_moving(rng, n_frames, size_px, visible=(a, b))
        question = f"When is the {meta['colour']} {meta['shape']} visible?"
        answer = [a / fps, (b + 1) / fps]
        meta["interval_frames"] = [a, b]

    elif task_type == "spatial":
        colour, shape, side = _pick(rng, tuple(COLOURS)), _pick(rng, SHAPES), _side(rng, size_px)
        x0 = int(rng.integers(1, size_px - side))
        y0 = int(rng.integers(1, size_px - side))
        mask = shape_mask(shape, x0, y0, side, size_px)
        canvas = _background(n_frames, size_px)
        canvas[:, mask] = COLOURS[colour]
        box = mask_box_1000(mask)
        frames_t = sorted({0, n_frames // 2, n_frames - 1})[:SPATIAL_TIMESTAMPS]
        question = f"Where is the {colour} {shape}?"
        answer = [{"t": f / fps, "box": list(box)} for f in frames_t]
        meta = {
            "colour": colour,
            "shape": shape,
            "side_px": side,
            "top_left_px": [x0, y0],
            "box_frames": frames_t,
        }
    else:  # pragma: no cover - check_render_args rejects it
        raise ConfigError(f"unknown task_type {task_type!r}")

    frames = _finish(rng, canvas)
    meta.update({"size_px": size_px, "n_frames": n_frames, "fps": fps})
    fields = {
        "task_type": task_type,
        "question": question,
        "options": options,
        "answer": answer,
        "duration_s": n_frames / fps,
        "meta": meta,
    }
    return frames, fields


def check_render_args(
    task_type: str,
    size_px: int,
    n_frames: int,
    fps: float,
    mcq_attributes: Sequence[str] = ("colour",),
) -> None:
    """Validate render parameters.

    Raises:
        ConfigError: naming the bad value.
    """
    if task_type not in TASK_TYPES:
        raise ConfigError(f"unknown task_type {task_type!r}; valid: {list(TASK_TYPES)}")
    if not isinstance(size_px, (int, np.integer)) or size_px < 16 or size_px % 2:
        raise ConfigError(f"size_px must be an even integer >= 16 (H.264 yuv420p), got {size_px!r}")
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 3:
        raise ConfigError(f"n_frames must be an integer >= 3, got {n_frames!r}")
    if not fps > 0:
        raise ConfigError(f"fps must be > 0, got {fps!r}")
    bad = [a for a in mcq_attributes if a not in MCQ_ATTRIBUTES]
    if bad or not mcq_attributes:
        raise ConfigError(
            f"mcq_attributes {list(mcq_attributes)!r} invalid; choose from {list(MCQ_ATTRIBUTES)}"
        )


# --------------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------------


def encode_mp4(
    frames: np.ndarray,
    path: str | os.PathLike,
    fps: float,
    crf: int = CRF,
    preset: str = X264_PRESET,
) -> None:
    """Encode RGB frames as an H.264 (libx264, yuv420p) mp4, atomically.

    Single-threaded and without x264's macroblock-tree rate control, so the output bytes are
    reproducible (with mbtree on, repeated encodes of the same frames in one process differed).

    Args:
        frames: (F, H, W, 3) uint8 RGB; H and W even.
        path: destination .mp4 file.
        fps: frame rate.
        crf: x264 constant rate factor (lower = better quality).
        preset: x264 speed preset.

    Raises:
        ValueError: frames of the wrong shape or dtype.
    """
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"{path}: frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}"
        )
    _, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    with (
        atomic_path(path, suffix=".mp4") as tmp,
        av.open(str(tmp), mode="w", format="mp4") as container,
    ):
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        # mbtree=0: x264's macroblock-tree rate control made the output bytes vary from call
        # to call within one process on these tiny frames (seen with libx264 in av 18.1.0).
        stream.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1) / rate  # frame i at i / fps seconds
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def split_seed_sequence(seed: int, split: str) -> np.random.SeedSequence:
    """Root seed sequence of a split: a stable function of (seed, split), distinct per split."""
    split_key = int.from_bytes(hashlib.sha256(split.encode()).digest()[:8], "little")
    return np.random.SeedSequence([int(seed), split_key])


def item_rng(seed: int, split: str, task_type: str, index: int) -> np.random.Generator:
    """The generator of one item: independent of the other items and of generation order."""
    task_idx = TASK_TYPES.index(task_type)
    root = split_seed_sequence(seed, split)
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(task_idx, index)))


def generate_split(
    out_dir: str | os.PathLike,
    split: str,
    tasks: Sequence[str],
    n_per_task: int | Mapping[str, int],
    seed: int,
    size_px: int = 56,
    fps: float = 4.0,
    duration_s: float = 4.0,
    videos_dir: str | os.PathLike | None = None,
    mcq_attributes: Sequence[str] = ("colour",),
    mcq_shuffle_options: bool = False,
) -> Path:
    """Generate a split of synthetic items: one H.264 mp4 per item and ``out_dir/items.jsonl``.

    Item ids are ``synth-<split>-<task_type>-<index:05d>``, dataset ``synth-<split>``. The items
    file is a deterministic function of the arguments (bit-for-bit); every item draws from its own
    generator derived from (seed, split, task_type, index).

    Args:
        out_dir: output directory (created).
        split: split name, e.g. ``train`` / ``test``; also enters the seed.
        tasks: task types to generate, from :data:`rmsd.tasks.TASK_TYPES`.
        n_per_task: items per task type, or a mapping task_type -> count.
        seed: base seed.
        size_px: frame side S in pixels (even, >= 16).
        fps: frame rate.
        duration_s: video duration; the number of frames is ``round(duration_s * fps)``.
        videos_dir: where the mp4 files go (default ``out_dir/videos``). Item ``video`` fields are
            the paths as given (relative if ``videos_dir``/``out_dir`` is relative).
        mcq_attributes: attributes MCQ items may ask about (colour, shape, direction).
        mcq_shuffle_options: shuffle MCQ option order (seeded) instead of the fixed order.

    Returns:
        Path of the items file ``out_dir/items.jsonl``.

    Raises:
        ConfigError: unknown task type, negative counts, bad size, fps or duration.
    """
    out_dir = Path(out_dir)
    videos_dir = Path(videos_dir) if videos_dir is not None else out_dir / "videos"
    if not split or any(ch in split for ch in "/\\ "):
        raise ConfigError(
            f"split must be a non-empty name without slashes or spaces, got {split!r}"
        )
    n_frames = round(duration_s * fps)
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"tasks must not repeat a task type, got {list(tasks)}")
    if isinstance(n_per_task, Mapping):
        counts = {t: n_per_task.get(t, 0) for t in tasks}
    else:
        counts = {t: n_per_task for t in tasks}
    for t, n in counts.items():
        if t not in TASK_TYPES:
            raise ConfigError(f"unknown task_type {t!r} in tasks; valid: {list(TASK_TYPES)}")
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n_per_task for {t!r} must be a non-negative integer, got {n!r}")
        check_render_args(t, size_px, n_frames, fps, mcq_attributes)

    videos_dir.mkdir(parents=True, exist_ok=True)
    dataset = f"synth-{split}"
    items_path = out_dir / "items.jsonl"
    # A killed earlier run: its items file must not describe this run's videos, and its
    # temporary files (SIGKILL skips their clean-up) are removed.
    items_path.unlink(missing_ok=True)
    remove_stale_temp_files(out_dir, ["items.jsonl"])
    remove_stale_temp_files(
        videos_dir,
        [f"{dataset}-{t}-{i:05d}.mp4" for t in tasks for i in range(int(counts[t]))],
    )
    records = []
    for task_type in tasks:
        for i in range(int(counts[task_type])):
            item_id = f"{dataset}-{task_type}-{i:05d}"
            rng = item_rng(seed, split, task_type, i)
            frames, fields = render_item(
                rng,
                task_type,
                size_px,
                n_frames,
                fps,
                mcq_attributes=mcq_attributes,
                mcq_shuffle_options=mcq_shuffle_options,
            )
            video = videos_dir / f"{item_id}.mp4"
            encode_mp4(frames, video, fps)
            records.append(
                {
                    "id": item_id,
                    "dataset": dataset,
                    "split": split,
                    "video": str(video),
                    "duration_s": fields["duration_s"],
                    "task_type": task_type,
                    "question": fields["question"],
                    "options": fields["options"],
                    "answer": fields["answer"],
                    "meta": fields["meta"],
                }
            )
    write_jsonl(items_path, records)  # last: the split is complete when its items file exists
    return items_path
