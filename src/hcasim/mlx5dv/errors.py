"""The errors pyverbs raises (``pyverbs.pyverbs_error``), and the one place where an engine
refusal becomes one of them.

The pyverbs-shaped classes run every transport call inside :func:`pyverbs_errors`; the
C-shaped functions do not raise, they return the refusal's errno.
"""

from __future__ import annotations

import os
from types import TracebackType

from hcasim.devices.mlx5.errors import CryptoCompletionError, CryptoError, WcStatus

__all__ = [
    "Mlx5CompletionError",
    "PyverbsError",
    "PyverbsRDMAError",
    "PyverbsUserError",
    "as_pyverbs_error",
    "pyverbs_errors",
]


class PyverbsError(Exception):
    """Base of the pyverbs-style errors."""


class PyverbsUserError(PyverbsError):
    """The caller passed something the C struct cannot hold (e.g. a 47-byte credential)."""


class PyverbsRDMAError(PyverbsError):
    """A verbs call failed; ``error_code`` is the errno the C call returned or set, or -1
    when there is none (pyverbs' default, e.g. "Failed to find device")."""

    def __init__(self, message: str, error_code: int = -1) -> None:
        if error_code != -1:
            message = f"{message}. Errno: {error_code}, {os.strerror(error_code)}"
        super().__init__(message)
        self.error_code = error_code


class Mlx5CompletionError(PyverbsRDMAError):
    """A transfer through a crypto MKey completed in error; ``wc_status`` is ibv_wc_status."""

    def __init__(self, message: str, error_code: int, wc_status: WcStatus) -> None:
        super().__init__(message, error_code)
        self.wc_status = wc_status


def as_pyverbs_error(message: str, exc: CryptoError) -> PyverbsRDMAError:
    """What pyverbs raises when the call described by ``message`` meets ``exc``: a
    :class:`Mlx5CompletionError` for a completion in error, else a :class:`PyverbsRDMAError`
    with the refusal's errno."""
    if isinstance(exc, CryptoCompletionError):
        return Mlx5CompletionError(
            f"{message}: completion status {exc.wc_status.name}", exc.errno, exc.wc_status
        )
    return PyverbsRDMAError(f"{message}: {exc.message}", exc.errno)


def pyverbs_errors(message: str) -> _PyverbsErrors:
    """A block of verbs calls that raises pyverbs' errors: an engine refusal
    (:class:`~hcasim.devices.mlx5.errors.CryptoError`) leaves it as :func:`as_pyverbs_error`
    of ``message`` (which names the call, "Failed to create DEK"); anything else passes
    through unchanged."""
    return _PyverbsErrors(message)


class _PyverbsErrors:
    """The context manager :func:`pyverbs_errors` returns."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, CryptoError):
            raise as_pyverbs_error(self.message, exc) from exc
