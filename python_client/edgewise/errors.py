"""Exceptions raised by the Edgewise client, one class per protocol error code (SPEC §6).

Example:
    >>> from edgewise.errors import error_for_code, BadTensor
    >>> err = error_for_code("bad_tensor", "Cannot read tensor 'proj': expected shape [2, 2]")
    >>> isinstance(err, BadTensor), err.code
    (True, 'bad_tensor')
"""

from __future__ import annotations

from typing import Any


class EdgewiseError(Exception):
    """Base class of every error the Edgewise client raises on purpose."""


class ProtocolError(EdgewiseError):
    """An error with a protocol code (SPEC §6); ``details`` is the message's ``details`` map."""

    code: str = "internal"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class MalformedMessage(ProtocolError):
    """Not MessagePack, not a map, or a missing/mistyped field."""

    code = "malformed"


class UnknownType(ProtocolError):
    """The message ``type`` is not in SPEC §3."""

    code = "unknown_type"


class VersionMismatch(ProtocolError):
    """The peers share no protocol version; ``details["supported"]`` lists the sidecar's."""

    code = "version_mismatch"


class BadTensor(ProtocolError):
    """Unknown dtype, byte length not matching the shape, or a shape the op did not expect."""

    code = "bad_tensor"


class NonFinite(ProtocolError):
    """NaN or Inf where finite numbers are required."""

    code = "non_finite"


class TooLarge(ProtocolError):
    """A message over the soft size limit (``limits.max_message_bytes``)."""

    code = "too_large"


class UnknownSession(ProtocolError):
    """The sidecar does not hold the session (restarted or idle timeout): say hello again."""

    code = "unknown_session"


class BadState(ProtocolError):
    """A message out of order, e.g. a result with the wrong ``seq`` or a round while one runs."""

    code = "bad_state"


class BadRequest(ProtocolError):
    """A value out of range or over a documented cap (SPEC §3 "Caps"); the message says which."""

    code = "bad_request"


class Overloaded(ProtocolError):
    """The sidecar holds as many sessions as it allows, or opened too many this minute: retry later."""

    code = "overloaded"


class OracleFailed(ProtocolError):
    """The client could not execute an op; the round was abandoned."""

    code = "oracle_failed"


class SidecarTimeout(ProtocolError):
    """The sidecar did not answer in time (dead, restarted, hung, or the connection dropped)."""

    code = "timeout"


class SidecarDied(SidecarTimeout):
    """The spawned sidecar process exited (noticed at once, not after a timeout)."""


class SidecarInternalError(ProtocolError):
    """A bug in the sidecar; the message says what."""

    code = "internal"


_BY_CODE: dict[str, type[ProtocolError]] = {
    cls.code: cls
    for cls in (
        MalformedMessage,
        UnknownType,
        VersionMismatch,
        BadTensor,
        NonFinite,
        TooLarge,
        UnknownSession,
        BadState,
        BadRequest,
        Overloaded,
        OracleFailed,
        SidecarTimeout,
        SidecarInternalError,
    )
}

#: Every SPEC §6 code, in the spec's order.
ERROR_CODES: tuple[str, ...] = tuple(_BY_CODE)


def error_for_code(code: str, message: str, details: dict[str, Any] | None = None) -> ProtocolError:
    """Builds the exception for a protocol error code.

    Args:
        code: a SPEC §6 code; an unknown code gives :class:`SidecarInternalError` noting it.
        message: the error message from the peer.
        details: the optional ``details`` map.

    Returns:
        The exception instance (not raised).
    """
    cls = _BY_CODE.get(code)
    if cls is None:
        return SidecarInternalError(f"unknown error code {code!r}: {message}", details)
    return cls(message, details)


class SidecarStartError(EdgewiseError):
    """A local sidecar process could not be started (not a protocol code: nothing was said)."""
