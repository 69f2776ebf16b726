"""cpipc's exceptions: one class per kind of failure a caller can act on.

They match the CLI's exit statuses (README.md, "Commands") and carry the
message the CLI prints after ``cpipc: error:``.
"""

__all__ = ["Error", "BadInput", "NotFound", "ProducerGone", "Cancelled", "TimedOut", "OutOfMemory", "Overloaded"]


class Error(Exception):
    """Any cpipc failure (also: a name already taken, an OS call that failed)."""

    exit_status = 1


class BadInput(Error, ValueError):
    """Bad name, shape, dtype or array; a corrupt segment or one that is not ours."""

    exit_status = 2


class NotFound(Error, LookupError):
    """No segment of that name."""

    exit_status = 3


class ProducerGone(Error):
    """The segment's producer ended or was killed."""

    exit_status = 4


class Cancelled(Error):
    """The request was cancelled."""

    exit_status = 4


class TimedOut(Error, TimeoutError):
    """A wait ran out of time (also a producer stuck mid-write)."""

    exit_status = 4


class OutOfMemory(Error, MemoryError):
    """The work does not fit in (device) memory."""

    exit_status = 5


class Overloaded(Error):
    """The producer refused more work (the service protocol's overloaded)."""

    exit_status = 1
