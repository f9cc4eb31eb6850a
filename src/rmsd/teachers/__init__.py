"""Teacher backends behind one interface and resumable multi-sample pool generation."""

from rmsd.teachers.base import TEACHER_BACKENDS, SamplingParams, TeacherBackend, get_backend, register_backend
from rmsd.teachers.pool import sample_pool

__all__ = ["TEACHER_BACKENDS", "SamplingParams", "TeacherBackend", "get_backend", "register_backend",
           "sample_pool"]
