"""Frame extraction: sample F frames per item, resize to S x S, store one array and a manifest.

Public API:
    select_indices, timestamps_s: pure frame selection.
    decode_video: decoder list with fallback (decord, then PyAV) and provenance.
    extract_frames: items file -> frames.npy (N, F, S, S, 3) uint8 + manifest.jsonl.
    load_frames: manifest keyed by item id and the memory-mapped frames array.
    FrameStore, open_frames: read one item's frames and manifest record lazily, by id.
    load_items_with_frames: items joined with their frames (the manifest reader of later stages).
"""

from rmsd.frames.decode import DECODERS, DEFAULT_DECODERS, DecodedVideo, decode_video
from rmsd.frames.extract import extract_frames, load_frames, resize_frames
from rmsd.frames.select import POLICIES, select_indices, timestamps_s
from rmsd.frames.store import FrameStore, open_frames
from rmsd.frames.items import load_items_with_frames

__all__ = [
    "DECODERS",
    "DEFAULT_DECODERS",
    "POLICIES",
    "DecodedVideo",
    "FrameStore",
    "decode_video",
    "extract_frames",
    "load_frames",
    "load_items_with_frames",
    "open_frames",
    "resize_frames",
    "select_indices",
    "timestamps_s",
]
