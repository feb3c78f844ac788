"""Exceptions: one class per ``bhs_status`` code of ``include/bhsync.h``.

Every failing C call becomes an instance of the class of its status, carrying the status
number and the thread's ``bhs_last_error()`` message. The classes also derive from the
built-in exception a Python programmer would catch for that situation (``ValueError`` for
an invalid argument, ``TimeoutError`` for a timeout, …), so both ``except
bhsync.InvalidArgumentError`` and ``except ValueError`` work. A status this package does
not know (from a newer library) raises the base class :class:`BhsyncError`.
"""

from __future__ import annotations

from typing import Dict, Type


class BhsyncError(Exception):
    """A bhsync call failed: ``status`` is the ``bhs_status`` code, ``message`` the detail."""

    status: int = -1

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:  # KeyError would otherwise print the repr of its argument
        return self.message


class InvalidArgumentError(BhsyncError, ValueError):
    """BHS_INVALID_ARGUMENT: a bad pointer, length, name, setting or encoding; nothing changed."""

    status = 1


class NotFoundError(BhsyncError, KeyError):
    """BHS_NOT_FOUND: the key, category or peer does not exist."""

    status = 2


class ProofInvalidError(BhsyncError):
    """BHS_PROOF_INVALID: a proof decoded but leads to another root."""

    status = 3


class InternalError(BhsyncError):
    """BHS_INTERNAL: a bug caught at the boundary; the handle must only be closed."""

    status = 4


class TimedOutError(BhsyncError, TimeoutError):
    """BHS_TIMEOUT: a sync did not finish in time (no event is not an error: ``None``)."""

    status = 64


class ClosedError(BhsyncError, ValueError):
    """BHS_CLOSED, or the node was closed here: like I/O on a closed file, a ``ValueError``."""

    status = 65


class BusyError(BhsyncError):
    """BHS_BUSY: the node's command queue is full; retry shortly."""

    status = 66


class IoError(BhsyncError, OSError):
    """BHS_IO: a socket, file or thread could not be set up (the message says which)."""

    status = 67


class WrongMergeRuleError(BhsyncError, ValueError):
    """BHS_WRONG_MERGE_RULE: the category's merge rule does not allow the call
    (a counter in a last-writer-wins category, for example)."""

    status = 68


class NotLeaderError(BhsyncError):
    """BHS_NOT_LEADER: a strong category and this node is not its leader (the message
    names the leader when known); nothing was written."""

    status = 69


class ReadOnlyError(BhsyncError):
    """BHS_READ_ONLY: a strong category and no quorum is reachable from here."""

    status = 70


class IndeterminateError(BhsyncError):
    """BHS_INDETERMINATE: a strong write whose outcome is unknown (leader lost, timeout)."""

    status = 71


class WrongModeError(BhsyncError, ValueError):
    """BHS_WRONG_MODE: the call does not apply to the category's mode."""

    status = 72


_BY_STATUS: Dict[int, Type[BhsyncError]] = {}


def _register(*classes: Type[BhsyncError]) -> None:
    for cls in classes:
        _BY_STATUS[cls.status] = cls


_register(
    InvalidArgumentError,
    NotFoundError,
    ProofInvalidError,
    InternalError,
    TimedOutError,
    ClosedError,
    BusyError,
    IoError,
    WrongMergeRuleError,
    NotLeaderError,
    ReadOnlyError,
    IndeterminateError,
    WrongModeError,
)


def error_class(status: int) -> Type[BhsyncError]:
    """The exception class of ``status`` (:class:`BhsyncError` for an unknown code)."""
    return _BY_STATUS.get(status, BhsyncError)


def error_for(status: int, message: str) -> BhsyncError:
    """The exception to raise for a failed call."""
    return error_class(status)(message or f"bhsync status {status}", status)


def known_statuses() -> Dict[int, Type[BhsyncError]]:
    """Every status this package maps to its own class (tests compare it with the header)."""
    return dict(_BY_STATUS)
