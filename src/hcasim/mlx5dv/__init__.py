"""The mlx5dv crypto API of hcasim's simulated HCAs, shaped like rdma-core's and pyverbs'.

Two flavours over one transport:

* C-shaped functions that return ``0`` or an errno value, as the man pages say:
  :func:`mlx5dv_crypto_login`, :func:`mlx5dv_crypto_login_query_state` (the state comes back
  in a :class:`Ref`), :func:`mlx5dv_crypto_logout`;
* pyverbs-shaped classes that raise :class:`PyverbsRDMAError` (``error_code`` = errno):
  :class:`Mlx5Context` (``crypto_login``/``query_login_state``/``crypto_logout`` static methods,
  ``query_mlx5_device``), :class:`Mlx5CryptoLoginAttr`, :class:`Mlx5CryptoExtLoginAttr`,
  :class:`Mlx5CryptoLogin`, :class:`Mlx5DEKInitAttr`, :class:`Mlx5DEK`, :class:`Mlx5CryptoAttr`
  and :class:`Mlx5Mkey`, a crypto MKey that encrypts and decrypts buffers.

Every call goes through a :class:`CryptoTransport`: one method per engine operation, with the
request and result types of :mod:`hcasim.devices.mlx5.crypto_engine`. :class:`InProcessTransport`
calls engines directly (tests, benchmarks); :class:`SocketCryptoTransport` reaches the lab
daemon, and is what ``Mlx5Context(name)`` uses inside ``hcasim exec --host H``.

Import everything from this package; its modules are, from the bottom up:

* :mod:`~hcasim.mlx5dv.constants` - the ``MLX5DV_*`` constants (rdma-core's ``mlx5dv.h``,
  docs/sources.md §13.3);
* :mod:`~hcasim.mlx5dv.errors` - pyverbs' error classes, and :func:`~hcasim.mlx5dv.errors.
  pyverbs_errors`, the one place an engine refusal becomes one;
* :mod:`~hcasim.mlx5dv.transport` - :class:`CryptoTransport`, :class:`OpenedContext`;
* :mod:`~hcasim.mlx5dv.in_process` - :class:`InProcessTransport`;
* :mod:`~hcasim.mlx5dv.socket_transport` - :class:`SocketCryptoTransport`, driven by the
  operation declarations of :mod:`hcasim.lab.crypto_protocol`;
* :mod:`~hcasim.mlx5dv.default` - the transport of a context opened without one
  (:func:`set_default_transport`);
* :mod:`~hcasim.mlx5dv.functions` - the C-shaped functions, :class:`Mlx5CryptoLoginAttr`,
  :class:`Ref`;
* :mod:`~hcasim.mlx5dv.pyverbs` - the pyverbs-shaped classes.
"""

from hcasim.mlx5dv import constants as _constants
from hcasim.mlx5dv.constants import *  # noqa: F403  (the C names: constants.__all__)
from hcasim.mlx5dv.default import set_default_transport
from hcasim.mlx5dv.errors import (
    Mlx5CompletionError,
    PyverbsError,
    PyverbsRDMAError,
    PyverbsUserError,
)
from hcasim.mlx5dv.functions import (
    Mlx5CryptoLoginAttr,
    Ref,
    mlx5dv_crypto_login,
    mlx5dv_crypto_login_query_state,
    mlx5dv_crypto_logout,
)
from hcasim.mlx5dv.in_process import InProcessTransport
from hcasim.mlx5dv.pyverbs import (
    PD,
    Mlx5Context,
    Mlx5CryptoAttr,
    Mlx5CryptoExtLoginAttr,
    Mlx5CryptoLogin,
    Mlx5DEK,
    Mlx5DEKAttr,
    Mlx5DEKInitAttr,
    Mlx5DVContext,
    Mlx5Mkey,
    data_unit_bytes,
)
from hcasim.mlx5dv.socket_transport import SocketCryptoTransport
from hcasim.mlx5dv.transport import ContextHandle, CryptoTransport, OpenedContext

__all__ = [
    "PD",
    "ContextHandle",
    "CryptoTransport",
    "InProcessTransport",
    "Mlx5CompletionError",
    "Mlx5Context",
    "Mlx5CryptoAttr",
    "Mlx5CryptoExtLoginAttr",
    "Mlx5CryptoLogin",
    "Mlx5CryptoLoginAttr",
    "Mlx5DEK",
    "Mlx5DEKAttr",
    "Mlx5DEKInitAttr",
    "Mlx5DVContext",
    "Mlx5Mkey",
    "OpenedContext",
    "PyverbsError",
    "PyverbsRDMAError",
    "PyverbsUserError",
    "Ref",
    "SocketCryptoTransport",
    "data_unit_bytes",
    "mlx5dv_crypto_login",
    "mlx5dv_crypto_login_query_state",
    "mlx5dv_crypto_logout",
    "set_default_transport",
]
__all__ += _constants.__all__
