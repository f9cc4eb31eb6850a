"""The project's exception hierarchy: every error names the file or key it is about."""


class RmsdError(Exception):
    """Base class of every error raised by rmsd."""


class ConfigError(RmsdError, ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


class DataError(RmsdError, ValueError):
    """An input file (items, annotations, manifest, pool) is malformed; the message names file and line."""


class VideoDecodeError(RmsdError):
    """A video file cannot be decoded by any configured decoder; the message names the file and reason."""


class MissingArtifactError(RmsdError, FileNotFoundError):
    """An expected input file does not exist; the message names the expected path."""


class TeacherError(RmsdError):
    """A teacher backend failed for an item after its retries; names teacher and item."""


class TrainingError(RmsdError):
    """Training hit an unrecoverable state (NaN loss, empty data) under the configured policy."""


def check_known_keys(cls, d: dict, section: str, exclude: frozenset = frozenset()) -> None:
    """Raise :class:`ConfigError` naming the keys of ``d`` that are not fields of dataclass ``cls``.

    ``section`` names the config block in the message ("SFT", "RL", ...); ``exclude`` lists fields
    that may not be set from config.
    """
    from dataclasses import fields

    known = {f.name for f in fields(cls)} - set(exclude)
    if unknown := sorted(set(d) - known):
        raise ConfigError(f"unknown {section} key(s) {unknown}; valid: {sorted(known)}")
