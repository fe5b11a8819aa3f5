"""Errors of the mlx5 crypto model, each carrying what a real client sees.

Every exception has the ``errno`` value rdma-core's mlx5 provider hands to the application
(returned directly by ``mlx5dv_crypto_login`` and friends, or put in ``errno`` by the calls
that return a pointer). Errors that the *firmware* raises also carry the mlx5 command
``status`` whose errno mapping rdma-core applies (``mlx5_get_cmd_status_err``,
docs/sources.md §14.10); errors from checks that the provider does in userspace have
``status is None``. A socket transport can rebuild the exact class with :func:`error_from_code`.
"""

from __future__ import annotations

import errno as _errno
from enum import IntEnum
from typing import ClassVar, Final

__all__ = [
    "CmdStatus",
    "CryptoAlreadyExists",
    "CryptoCompletionError",
    "CryptoError",
    "CryptoIOError",
    "CryptoInvalidArgument",
    "CryptoNoResources",
    "CryptoNoSession",
    "CryptoNotSupported",
    "CryptoStaleContext",
    "WcStatus",
    "cmd_status_errno",
    "error_from_code",
]


class CmdStatus(IntEnum):
    """mlx5 command status codes (rdma-core ``providers/mlx5/mlx5_ifc.h:145-160``)."""

    OK = 0x0
    INT_ERR = 0x1
    BAD_OP = 0x2
    BAD_PARAM = 0x3
    BAD_SYS_STATE = 0x4
    BAD_RES = 0x5
    RES_BUSY = 0x6
    LIM = 0x8
    BAD_RES_STATE = 0x9
    IX = 0xA
    NO_RES = 0xF
    BAD_QP_STATE = 0x10
    BAD_PKT = 0x30
    BAD_SIZE_OUTS_CQES = 0x40
    BAD_INP_LEN = 0x50
    BAD_OUTP_LEN = 0x51


#: rdma-core ``providers/mlx5/mlx5.c:237-265`` (``mlx5_get_cmd_status_err``); unlisted -> EIO.
_STATUS_ERRNO: Final[dict[CmdStatus, int]] = {
    CmdStatus.OK: 0,
    CmdStatus.INT_ERR: _errno.EIO,
    CmdStatus.BAD_OP: _errno.EINVAL,
    CmdStatus.BAD_PARAM: _errno.EINVAL,
    CmdStatus.BAD_SYS_STATE: _errno.EIO,
    CmdStatus.BAD_RES: _errno.EINVAL,
    CmdStatus.RES_BUSY: _errno.EBUSY,
    CmdStatus.LIM: _errno.ENOMEM,
    CmdStatus.BAD_RES_STATE: _errno.EINVAL,
    CmdStatus.IX: _errno.EINVAL,
    CmdStatus.NO_RES: _errno.EAGAIN,
    CmdStatus.BAD_INP_LEN: _errno.EIO,
    CmdStatus.BAD_OUTP_LEN: _errno.EIO,
    CmdStatus.BAD_QP_STATE: _errno.EINVAL,
    CmdStatus.BAD_PKT: _errno.EINVAL,
    CmdStatus.BAD_SIZE_OUTS_CQES: _errno.EINVAL,
}


def cmd_status_errno(status: CmdStatus) -> int:
    """The errno rdma-core reports for a firmware command that failed with ``status``."""
    return _STATUS_ERRNO.get(status, _errno.EIO)


class WcStatus(IntEnum):
    """The ``ibv_wc_status`` values the model's error completions use (``verbs.h``)."""

    SUCCESS = 0
    LOC_LEN_ERR = 1
    LOC_PROT_ERR = 4
    GENERAL_ERR = 21


class CryptoError(Exception):
    """Base class: a crypto operation failed with ``errno`` (and firmware ``status``)."""

    errno: ClassVar[int] = _errno.EIO

    def __init__(self, message: str, *, status: CmdStatus | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if status is not None and cmd_status_errno(status) != self.errno:
            raise ValueError(f"{type(self).__name__} cannot carry firmware status {status!r}")

    def __repr__(self) -> str:
        status = "" if self.status is None else f", status={self.status.name}"
        return f"{type(self).__name__}({self.message!r}, errno={self.errno}{status})"


class CryptoInvalidArgument(CryptoError):
    """EINVAL: bad attributes, unknown ids, a credential or key that does not verify."""

    errno = _errno.EINVAL


class CryptoAlreadyExists(CryptoError):
    """EEXIST: the context already holds a crypto login session (rdma-core verbs.c:7734-7768)."""

    errno = _errno.EEXIST


class CryptoNotSupported(CryptoError):
    """EOPNOTSUPP: the device or the context's cached capabilities lack the feature."""

    errno = _errno.EOPNOTSUPP


class CryptoNoSession(CryptoError):
    """ENOENT: no crypto login session exists on the context (logout)."""

    errno = _errno.ENOENT


class CryptoNoResources(CryptoError):
    """ENOMEM: a firmware table is full (status LIM)."""

    errno = _errno.ENOMEM


class CryptoIOError(CryptoError):
    """EIO: internal firmware error or wrong system state (INT_ERR, BAD_SYS_STATE)."""

    errno = _errno.EIO


class CryptoStaleContext(CryptoError):
    """EIO: the context is unknown or died in a firmware reset (a disassociated uverbs file)."""

    errno = _errno.EIO


class CryptoCompletionError(CryptoError):
    """A data transfer through a crypto MKey completed in error (an error CQE).

    ``wc_status`` is the ``ibv_wc_status`` of the completion.
    """

    errno = _errno.EIO

    def __init__(self, message: str, *, wc_status: WcStatus) -> None:
        super().__init__(message)
        self.wc_status = wc_status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, wc_status={self.wc_status.name})"


_BY_ERRNO: Final[dict[int, type[CryptoError]]] = {
    _errno.EINVAL: CryptoInvalidArgument,
    _errno.EEXIST: CryptoAlreadyExists,
    _errno.EOPNOTSUPP: CryptoNotSupported,
    _errno.ENOENT: CryptoNoSession,
    _errno.ENOMEM: CryptoNoResources,
}


def error_from_code(
    code: int,
    message: str,
    *,
    status: int | None = None,
    wc_status: int | None = None,
    stale_context: bool = False,
) -> CryptoError:
    """Rebuild the exception a remote engine raised from its wire form.

    A socket transport sends ``(errno, status, wc_status, message)`` and calls this on the
    client side so that callers see the same classes as with the in-process transport.
    """
    if wc_status is not None:
        return CryptoCompletionError(message, wc_status=WcStatus(wc_status))
    if stale_context:
        return CryptoStaleContext(message)
    fw_status = None if status is None else CmdStatus(status)
    cls = _BY_ERRNO.get(code, CryptoIOError)
    if fw_status is not None and cmd_status_errno(fw_status) != cls.errno:
        fw_status = None
    return cls(message, status=fw_status)
