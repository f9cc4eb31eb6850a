"""Teacher backends behind one interface and resumable, cached, sharded multi-sample pools."""

from rmsd.teachers.base import (
    BUILTIN_BACKENDS, TEACHER_BACKENDS, SamplingParams, TeacherBackend, TeacherSpec, backend_names,
    derive_seed, get_backend, get_backend_class, model_dir_revision, register_backend,
)
from rmsd.teachers.pool import SampleCache, gather_pool, sample_key, sample_pool, shard_bounds

__all__ = [
    "BUILTIN_BACKENDS", "SampleCache", "SamplingParams", "TEACHER_BACKENDS", "TeacherBackend",
    "TeacherSpec", "backend_names", "derive_seed", "gather_pool", "get_backend",
    "get_backend_class", "model_dir_revision", "register_backend", "sample_key", "sample_pool",
    "shard_bounds",
]  # fmt: skip
