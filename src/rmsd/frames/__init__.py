"""Frame extraction: sample F frames per item, resize to S x S, store one array and a manifest.

Public API:
    select_indices, timestamps_s: pure frame selection.
    decode_video: decoder list with fallback (decord, then PyAV) and provenance.
    extract_frames: items file -> frames.npy (N, F, S, S, 3) uint8 + manifest.jsonl.
    load_frames: manifest keyed by item id and the memory-mapped frames array (single array).
    FrameStore, open_frames: the reader every stage uses (sharded or single array), by item id.
    extract_shard, gather_shards, frame_settings: the pipeline's sharded, resumable extraction.
    load_items_with_frames: items joined with their frames (small in-memory sets: evaluation, tests).
"""

from rmsd.frames.decode import DECODERS, DEFAULT_DECODERS, DecodedVideo, decode_video
from rmsd.frames.extract import extract_frames, load_frames, resize_frames
from rmsd.frames.select import POLICIES, select_indices, timestamps_s
from rmsd.frames.shards import extract_shard, frame_settings, gather_shards
from rmsd.frames.store import FrameStore, NoFramesError, open_frames
from rmsd.frames.items import load_items_with_frames

__all__ = [
    "DECODERS",
    "DEFAULT_DECODERS",
    "POLICIES",
    "DecodedVideo",
    "FrameStore",
    "decode_video",
    "extract_frames",
    "extract_shard",
    "frame_settings",
    "gather_shards",
    "load_items_with_frames",
    "NoFramesError",
    "load_frames",
    "open_frames",
    "resize_frames",
    "select_indices",
    "timestamps_s",
]
