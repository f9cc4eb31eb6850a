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
