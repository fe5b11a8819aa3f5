"""The C-shaped crypto login functions: they return ``0`` or an errno value, as the man pages
say, and never raise for a device's refusal.

:func:`mlx5dv_crypto_login`, :func:`mlx5dv_crypto_login_query_state` (the state comes back in a
:class:`Ref`, C's out-parameter) and :func:`mlx5dv_crypto_logout`, with the struct they take,
:class:`Mlx5CryptoLoginAttr`. The pyverbs-shaped ``Mlx5Context`` static methods call them.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar, overload

from hcasim.devices.mlx5.errors import CryptoError
from hcasim.devices.mlx5.keywrap import WRAPPED_CREDENTIAL_LEN, Secret
from hcasim.mlx5dv.errors import PyverbsUserError
from hcasim.mlx5dv.transport import ContextHandle, CryptoTransport

__all__ = [
    "DeviceContext",
    "Mlx5CryptoLoginAttr",
    "Ref",
    "mlx5dv_crypto_login",
    "mlx5dv_crypto_login_query_state",
    "mlx5dv_crypto_logout",
]


class DeviceContext(Protocol):
    """What these functions need of a device context: an open
    :class:`~hcasim.mlx5dv.pyverbs.Mlx5Context` is one."""

    @property
    def transport(self) -> CryptoTransport:
        """The transport the context was opened through."""
        ...

    def _handle(self) -> ContextHandle:
        """The transport's handle of the context; PyverbsUserError once it is closed."""
        ...


T = TypeVar("T")


class Ref(Generic[T]):
    """An out-parameter for the C-shaped functions (``enum mlx5dv_crypto_login_state *``)."""

    def __init__(self, value: T) -> None:
        """Hold ``value`` until the call overwrites it."""
        self.value = value

    def __repr__(self) -> str:
        return f"Ref({self.value!r})"


class Mlx5CryptoLoginAttr:
    """``struct mlx5dv_crypto_login_attr``: ids and the 48-byte wrapped credential."""

    def __init__(
        self,
        credential: bytes | bytearray,
        credential_id: int = 0,
        import_kek_id: int = 0,
        comp_mask: int = 0,
    ) -> None:
        """The credential must be the 48 bytes of AES-KW(import KEK, 40-byte credential)."""
        if len(credential) != WRAPPED_CREDENTIAL_LEN:
            raise PyverbsUserError(
                f"credential[{WRAPPED_CREDENTIAL_LEN}] cannot hold {len(credential)} bytes"
            )
        self._credential = Secret(credential)
        self.credential_id = credential_id
        self.import_kek_id = import_kek_id
        self.comp_mask = comp_mask

    @property
    def credential(self) -> Secret:
        """The wrapped credential (a Secret: it does not print)."""
        return self._credential

    def __repr__(self) -> str:
        return (
            f"Mlx5CryptoLoginAttr(credential_id={self.credential_id}, "
            f"import_kek_id={self.import_kek_id}, credential=<hidden>, "
            f"comp_mask={self.comp_mask})"
        )


def mlx5dv_crypto_login(context: DeviceContext, login_attr: Mlx5CryptoLoginAttr) -> int:
    """Create the context's crypto login session; 0 or an errno value (EINVAL, EEXIST,
    EOPNOTSUPP), as man mlx5dv_crypto_login(3) says."""
    try:
        context.transport.crypto_login(
            context._handle(),
            login_attr.credential_id,
            login_attr.import_kek_id,
            login_attr.credential,
            login_attr.comp_mask,
        )
    except CryptoError as exc:
        return exc.errno
    return 0


@overload
def mlx5dv_crypto_login_query_state(context: DeviceContext) -> tuple[int, int | None]: ...


@overload
def mlx5dv_crypto_login_query_state(context: DeviceContext, state: Ref[int]) -> int: ...


def mlx5dv_crypto_login_query_state(
    context: DeviceContext, state: Ref[int] | None = None
) -> int | tuple[int, int | None]:
    """The session state: VALID 0, NO_LOGIN 1, INVALID 2.

    C-shaped, with an out-parameter: put it in ``state.value`` and return 0 or an errno value.
    Without ``state``: return ``(rc, state)``, ``state`` None when rc is not 0 (C leaves the
    variable untouched then)."""
    try:
        value = int(context.transport.crypto_login_query_state(context._handle()))
    except CryptoError as exc:
        return exc.errno if state is not None else (exc.errno, None)
    if state is None:
        return 0, value
    state.value = value
    return 0


def mlx5dv_crypto_logout(context: DeviceContext) -> int:
    """Log out of the context's session (VALID or INVALID); 0, or ENOENT without one."""
    try:
        context.transport.crypto_logout(context._handle())
    except CryptoError as exc:
        return exc.errno
    return 0
