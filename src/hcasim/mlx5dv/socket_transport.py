"""The mlx5dv crypto API over the lab daemon's control socket.

:class:`SocketCryptoTransport` implements :class:`hcasim.mlx5dv.CryptoTransport`; how each
engine operation's arguments and result travel is :data:`hcasim.lab.crypto_protocol.OPERATIONS`.
Each device context is its own connection to the daemon, the analogue of a uverbs file:
closing the context, or the process dying, closes the connection and the daemon ends the
context's login session and destroys its DEKs and MKeys. ``Mlx5Context("mlx5_0")`` uses it
by default inside ``hcasim exec --host H``, which names the daemon (``HCASIM_SOCKET``) and the
host (``HCASIM_HOST``).

Errors come back as the crypto engine's exception classes (rebuilt from errno, firmware
status and completion status), so callers see what the in-process transport gives. A daemon
that went away makes every later call fail with EIO (:class:`CryptoStaleContext`), as a
disassociated device file does.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from typing import Any, TypeVar

from hcasim.api.client import ControlClient, LabError, LabUnavailable, socket_path_from_env
from hcasim.devices.mlx5.constants import LoginState
from hcasim.devices.mlx5.crypto_engine import (
    CryptoAttrRequest,
    CryptoCaps,
    DekAttributes,
    DekInitRequest,
    Direction,
)
from hcasim.devices.mlx5.errors import CryptoStaleContext, error_from_code
from hcasim.devices.mlx5.keywrap import Secret
from hcasim.lab.crypto_protocol import (
    CRYPTO_LOGIN,
    CRYPTO_LOGIN_CREATE,
    CRYPTO_LOGIN_DESTROY,
    CRYPTO_LOGIN_QUERY,
    CRYPTO_LOGIN_QUERY_STATE,
    CRYPTO_LOGOUT,
    DEK_CREATE,
    DEK_DESTROY,
    DEK_QUERY,
    MKEY_CONFIGURE,
    MKEY_CREATE,
    MKEY_DESTROY,
    MKEY_TRANSFER,
    OP_PREFIX,
    QUERY_DEVICE,
    Operation,
    decode_caps,
    decode_error,
)
from hcasim.mlx5dv.errors import PyverbsRDMAError
from hcasim.mlx5dv.transport import ContextHandle, OpenedContext

R = TypeVar("R")

__all__ = ["SocketCryptoTransport", "environment_transport"]


class _Connection:
    """One context's connection; a lock keeps one request in flight per connection."""

    def __init__(self, client: ControlClient) -> None:
        self.client = client
        self.lock = threading.Lock()


class SocketCryptoTransport:
    """A :class:`~hcasim.mlx5dv.transport.CryptoTransport` to the lab daemon, one connection
    per context.

    ``socket_path`` and ``host`` default to the environment ``hcasim exec`` sets, read when a
    context is opened.
    """

    def __init__(self, socket_path: str | None = None, host: str | None = None) -> None:
        """Remember where the daemon is (or read it from the environment later)."""
        self._socket_path = socket_path
        self._host = host
        self._handles = itertools.count(1)
        self._open: dict[ContextHandle, _Connection] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SocketCryptoTransport({len(self._open)} contexts)"

    # -- plumbing -------------------------------------------------------------------------

    def _connection(self, handle: ContextHandle) -> _Connection:
        conn = self._open.get(handle)
        if conn is None:
            raise CryptoStaleContext(f"context handle {handle} is not open")
        return conn

    def _run(self, handle: ContextHandle, op: Operation[R], *args: Any) -> R:
        """Run one engine operation on the context's connection, its arguments and result
        carried as ``op`` declares; raise the engine's error."""
        request = op.encode_request(args)
        return op.decode_reply(self._call(handle, op.control_op, request))

    def _call(
        self, handle: ContextHandle, control_op: str, request: dict[str, Any]
    ) -> dict[str, Any]:
        """Send one request on the context's connection; raise the engine's error."""
        conn = self._connection(handle)
        with conn.lock:
            try:
                reply = conn.client.call(control_op, **request)
            except LabUnavailable:
                raise CryptoStaleContext("the lab daemon is gone: the context is dead") from None
            except LabError as exc:
                raise error_from_code(exc.errno, exc.message) from None
        fault = reply.get("crypto_error")
        if isinstance(fault, dict):
            raise decode_error(fault)
        return reply

    # -- contexts -------------------------------------------------------------------------

    def open_context(self, device_name: str) -> OpenedContext:
        """Connect to the daemon as this process's host and open ``device_name`` there.

        An unknown device (or no lab in the environment) fails as pyverbs' ``Context`` does
        when ``ibv_get_device_list`` does not list the name: ``PyverbsRDMAError("Failed to
        find device NAME")`` without an errno. A device that exists but cannot be opened gives
        ``"Failed to open device NAME"`` with the errno.
        """
        host = self._host or os.environ.get("HCASIM_HOST")
        path = self._socket_path or socket_path_from_env()
        if not host or not path:
            raise PyverbsRDMAError(f"Failed to find device {device_name}")
        try:
            client = ControlClient(path, host=host)
        except (LabUnavailable, LabError):
            raise PyverbsRDMAError(f"Failed to find device {device_name}") from None
        try:
            reply = client.call(OP_PREFIX + "open", device=device_name)
        except LabError as exc:
            client.close()
            if exc.errno in (errno.ENODEV, errno.EINVAL):
                raise PyverbsRDMAError(f"Failed to find device {device_name}") from None
            raise PyverbsRDMAError(f"Failed to open device {device_name}", exc.errno) from None
        except LabUnavailable:
            client.close()
            raise PyverbsRDMAError(f"Failed to open device {device_name}", errno.EIO) from None
        with self._lock:
            handle = next(self._handles)
            self._open[handle] = _Connection(client)
        return OpenedContext(handle, decode_caps(reply["caps"]))

    def close_context(self, handle: ContextHandle) -> None:
        """Close the context's connection (the daemon ends its session and DEKs)."""
        with self._lock:
            conn = self._open.pop(handle, None)
        if conn is not None:
            with conn.lock:
                conn.client.close()

    def query_device(self, handle: ContextHandle) -> CryptoCaps:
        """The caps the context cached when it opened."""
        return self._run(handle, QUERY_DEVICE)

    # -- login ----------------------------------------------------------------------------

    def crypto_login(
        self,
        handle: ContextHandle,
        credential_id: int,
        import_kek_id: int,
        credential: Secret,
        comp_mask: int,
    ) -> None:
        """``mlx5dv_crypto_login``."""
        self._run(handle, CRYPTO_LOGIN, credential_id, import_kek_id, credential, comp_mask)

    def crypto_login_query_state(self, handle: ContextHandle) -> LoginState:
        """``mlx5dv_crypto_login_query_state``."""
        return self._run(handle, CRYPTO_LOGIN_QUERY_STATE)

    def crypto_logout(self, handle: ContextHandle) -> None:
        """``mlx5dv_crypto_logout``."""
        self._run(handle, CRYPTO_LOGOUT)

    def crypto_login_create(
        self,
        handle: ContextHandle,
        credential_id: int,
        import_kek_id: int,
        credential: Secret,
        comp_mask: int,
    ) -> int:
        """``mlx5dv_crypto_login_create``; the login object id."""
        return self._run(
            handle, CRYPTO_LOGIN_CREATE, credential_id, import_kek_id, credential, comp_mask
        )

    def crypto_login_query(
        self, handle: ContextHandle, login_id: int, comp_mask: int
    ) -> LoginState:
        """``mlx5dv_crypto_login_query``."""
        return self._run(handle, CRYPTO_LOGIN_QUERY, login_id, comp_mask)

    def crypto_login_destroy(self, handle: ContextHandle, login_id: int) -> None:
        """``mlx5dv_crypto_login_destroy``."""
        self._run(handle, CRYPTO_LOGIN_DESTROY, login_id)

    # -- DEKs -----------------------------------------------------------------------------

    def dek_create(self, handle: ContextHandle, attr: DekInitRequest) -> int:
        """``mlx5dv_dek_create``; the DEK id."""
        return self._run(handle, DEK_CREATE, attr)

    def dek_query(self, handle: ContextHandle, dek_id: int, comp_mask: int) -> DekAttributes:
        """``mlx5dv_dek_query``."""
        return self._run(handle, DEK_QUERY, dek_id, comp_mask)

    def dek_destroy(self, handle: ContextHandle, dek_id: int) -> None:
        """``mlx5dv_dek_destroy``."""
        self._run(handle, DEK_DESTROY, dek_id)

    # -- crypto MKeys ---------------------------------------------------------------------

    def mkey_create(self, handle: ContextHandle, create_flags: int, max_entries: int) -> int:
        """``mlx5dv_create_mkey``; the MKey id."""
        return self._run(handle, MKEY_CREATE, create_flags, max_entries)

    def mkey_configure(
        self,
        handle: ContextHandle,
        mkey_id: int,
        length: int,
        crypto: CryptoAttrRequest | None,
    ) -> None:
        """A completed UMR setting the MKey's length and crypto properties."""
        self._run(handle, MKEY_CONFIGURE, mkey_id, length, crypto)

    def mkey_destroy(self, handle: ContextHandle, mkey_id: int) -> None:
        """``mlx5dv_destroy_mkey``."""
        self._run(handle, MKEY_DESTROY, mkey_id)

    def mkey_transfer(
        self,
        handle: ContextHandle,
        mkey_id: int,
        direction: Direction,
        data: bytes | bytearray | memoryview,
        offset: int,
    ) -> memoryview:
        """Data through a crypto MKey.

        One request carries at most 16 MiB (the control protocol's message limit); a bigger
        buffer is refused with EINVAL before anything is sent: split it at data-unit bounds.
        """
        return self._run(handle, MKEY_TRANSFER, mkey_id, direction, data, offset)


_environment_transport: SocketCryptoTransport | None = None
_environment_lock = threading.Lock()


def environment_transport() -> SocketCryptoTransport:
    """The process-wide transport to the daemon named by the environment (``hcasim exec``)."""
    global _environment_transport
    with _environment_lock:
        if _environment_transport is None:
            _environment_transport = SocketCryptoTransport()
        return _environment_transport
