"""``hcasim crypto``: the crypto officer's commands for the lab's mlx5 crypto devices.

Every command goes through the device's access registers (CRYPTO_OPERATIONAL 0xC002,
IMPORT_KEK_HANDLE 0xC004, CREDENTIAL_HANDLE 0xC005) over the daemon's ``mlx5_reg`` operation,
as an officer tool on the host would. Secrets come only from files, never from the command
line (which other users can read in ``ps``), and are never printed.

Secret files are hex text: hexadecimal digits (either case), with any ASCII white space
(spaces, tabs, newlines) anywhere ignored, and nothing else (no ``0x``, no comments). A
credential file holds 40 bytes (80 digits); a KEK file 16 bytes (128-bit KEK) or 32 bytes
(256-bit KEK). A file of the wrong size or content is refused before anything is sent.

The officer's own login, needed to add, delete or list credentials and KEKs, is
``--officer-credential-file`` (its plaintext credential), ``--officer-kek-file`` (the import
KEK it logs in with) and their ids ``--officer-credential-id`` / ``--officer-kek-id`` (default
0, the pair written by ``commission``); the command wraps the credential under that KEK itself.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import re
import string
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hcasim.api.client import ControlClient, LabError, LabUnavailable, b64
from hcasim.lab.home import LabHome

if TYPE_CHECKING:
    from hcasim.api.officer import CryptoOfficer
    from hcasim.devices.mlx5.register_access import RegisterReply

__all__ = ["CryptoCliError", "add_parser", "read_hex_file", "status_lines"]

#: Bytes of a plaintext credential (CRYPTO_OPERATIONAL.credential, docs/sources.md §18).
CREDENTIAL_BYTES = 40
#: Bytes of a 128-bit and of a 256-bit import KEK.
KEK_BYTES = (16, 32)
#: Largest secret file read (hex digits and white space; a secret is at most 80 digits).
MAX_SECRET_FILE = 64 * 1024
_ROLES = {"officer": 0, "user": 1}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}


class CryptoCliError(Exception):
    """A crypto command failed; the message is printed after ``hcasim:``."""


# --- secret files -----------------------------------------------------------------------------


def read_hex_file(path: str, what: str, sizes: tuple[int, ...]) -> bytes:
    """Read a hex secret file (format in the module docstring); the error never shows content."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SECRET_FILE + 1)  # never more: /dev/zero is a file too
    except OSError as exc:
        raise CryptoCliError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SECRET_FILE:
        raise CryptoCliError(f"{path}: larger than {MAX_SECRET_FILE} bytes: not {what} file")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise CryptoCliError(f"{path}: not a hex text file") from None
    for line_no, line in enumerate(text.splitlines(), 1):
        for col, char in enumerate(line, 1):
            if char not in string.hexdigits and not char.isspace():
                raise CryptoCliError(
                    f"{path}: line {line_no}, column {col}: not a hex digit "
                    "(the file holds only hex digits and white space)"
                )
    digits = "".join(text.split())
    if len(digits) % 2:
        raise CryptoCliError(f"{path}: odd number of hex digits ({len(digits)})")
    data = bytes.fromhex(digits)
    if len(data) not in sizes:
        wanted = " or ".join(f"{n} bytes ({2 * n} hex digits)" for n in sizes)
        raise CryptoCliError(f"{path}: {what} must be {wanted}; this file holds {len(data)} bytes")
    return data


def _credential(path: str) -> bytes:
    return read_hex_file(path, "a credential", (CREDENTIAL_BYTES,))


def _kek(path: str) -> bytes:
    return read_hex_file(path, "an import KEK", KEK_BYTES)


# --- talking to the daemon --------------------------------------------------------------------


def _connect(home: LabHome, host: str) -> ControlClient:
    try:
        client = ControlClient(str(home.socket))
    except LabUnavailable:
        raise CryptoCliError(
            f"no lab is running at {home.path} (start it with 'hcasim up')"
        ) from None
    try:
        client.call("hello", host=host)
    except LabError as exc:
        client.close()
        if exc.errno != errno.ENOENT:  # refused: a process of another host, say
            raise CryptoCliError(exc.message) from None
        raise CryptoCliError(f"unknown host {host!r}") from None
    return client


def _register_access(
    client: ControlClient, host: str, device: str
) -> Callable[[int, int, bytes], RegisterReply]:
    from hcasim.devices.mlx5.register_access import RegisterReply, RegStatus

    def access(register_id: int, method: int, data: bytes) -> RegisterReply:
        try:
            reply = client.call(
                "mlx5_reg",
                device=device,
                register_id=int(register_id),
                method=int(method),
                data=b64(data),
            )
        except LabError as exc:
            raise CryptoCliError(f"{host}: {exc.message}") from None
        return RegisterReply(
            RegStatus(int(reply["status"])),
            base64.b64decode(str(reply["data"])),
            str(reply.get("message", "")),
        )

    return access


def _officer(args: argparse.Namespace, client: ControlClient, *, login: bool) -> CryptoOfficer:
    """A CryptoOfficer on the device, logged in from the officer files when ``login``."""
    from hcasim.api.officer import CryptoOfficer, OfficerIdentity
    from hcasim.devices.mlx5.keywrap import Secret

    identity = None
    if login:
        identity = OfficerIdentity(
            args.officer_credential_id,
            args.officer_kek_id,
            Secret(_credential(args.officer_credential_file)),
            Secret(_kek(args.officer_kek_file)),
        )
    return CryptoOfficer(_register_access(client, args.host, args.device), identity)


def _refused(register: str, exc: Exception) -> CryptoCliError:
    status = getattr(exc, "status", None)
    reply = getattr(exc, "reply", None)
    name = getattr(status, "name", "?")
    message = getattr(reply, "message", "") or "refused"
    return CryptoCliError(f"{register} refused ({name}): {message}")


def _device_status(client: ControlClient, host: str, device: str) -> dict[str, Any]:
    # host_status, not status: a process of the host itself may ask it (of its own host)
    try:
        hosts = client.call("host_status", host=host)["hosts"]
    except LabError as exc:
        raise CryptoCliError(exc.message) from None
    for h in hosts:
        if h["name"] != host:
            continue
        for dev in h["devices"]:
            crypto = dev.get("crypto")
            if dev.get("verbs_device") != device or not isinstance(crypto, dict):
                continue
            if crypto.get("mode") == "failed":
                raise CryptoCliError(f"{host}: the device failed: {crypto.get('reason')}")
            return dict(dev)
    raise CryptoCliError(f"{host} has no crypto device {device}")


def _run(
    fn: Callable[[argparse.Namespace, LabHome], int],
) -> Callable[[argparse.Namespace, LabHome], int]:
    """Print a CryptoCliError as ``hcasim: message`` and exit 1."""

    def run(args: argparse.Namespace, home: LabHome) -> int:
        try:
            return fn(args, home)
        except CryptoCliError as exc:
            print(f"hcasim: {exc}", file=sys.stderr)
            return 1

    run.__doc__ = fn.__doc__
    return run


# --- commands ---------------------------------------------------------------------------------


def cmd_commission(args: argparse.Namespace, home: LabHome) -> int:
    """Write CRYPTO_OPERATIONAL: credential 0 (officer role) and import KEK 0; operational."""
    from hcasim.api.officer import OfficerError

    credential = _credential(args.credential_file)
    kek = _kek(args.kek_file)
    with _connect(home, args.host) as client:
        officer = _officer(args, client, login=False)
        try:
            officer.commission(credential, kek)
        except OfficerError as exc:
            raise _refused("CRYPTO_OPERATIONAL", exc) from None
    print(
        f"hcasim: {args.device} on {args.host} is operational: credential 0 (officer) and "
        f"import KEK 0 ({8 * len(kek)}-bit) written"
    )
    return 0


def cmd_going_to_commissioning(args: argparse.Namespace, home: LabHome) -> int:
    """Set (or with --cancel clear) wrapped_crypto_going_to_commissioning."""
    from hcasim.api.officer import OfficerError

    with _connect(home, args.host) as client:
        try:
            _officer(args, client, login=False).set_going_to_commissioning(not args.cancel)
        except OfficerError as exc:
            raise _refused("CRYPTO_OPERATIONAL", exc) from None
    if args.cancel:
        print(f"hcasim: {args.device} on {args.host} stays operational at the next reset")
    else:
        print(
            f"hcasim: {args.device} on {args.host} returns to commissioning mode at the next "
            f"firmware reset ('hcasim host reboot {args.host}'); all its credentials and "
            "import KEKs are then erased"
        )
    return 0


def cmd_credential_add(args: argparse.Namespace, home: LabHome) -> int:
    """CREDENTIAL_HANDLE ADD: a new credential (officer or user role)."""
    from hcasim.api.officer import OfficerError
    from hcasim.devices.mlx5.constants import CredentialRole

    credential = _credential(args.credential_file)
    with _connect(home, args.host) as client:
        officer = _officer(args, client, login=True)
        try:
            new_id = officer.add_credential(credential, CredentialRole(_ROLES[args.role]))
        except OfficerError as exc:
            raise _refused("CREDENTIAL_HANDLE", exc) from None
    print(f"hcasim: credential {new_id} ({args.role}) added to {args.device} on {args.host}")
    return 0


def cmd_credential_delete(args: argparse.Namespace, home: LabHome) -> int:
    """CREDENTIAL_HANDLE DELETE: logins that use the credential turn INVALID."""
    from hcasim.api.officer import OfficerError

    with _connect(home, args.host) as client:
        officer = _officer(args, client, login=True)
        try:
            officer.delete_credential(args.id)
        except OfficerError as exc:
            raise _refused("CREDENTIAL_HANDLE", exc) from None
    print(f"hcasim: credential {args.id} deleted from {args.device} on {args.host}")
    return 0


def cmd_kek_add(args: argparse.Namespace, home: LabHome) -> int:
    """IMPORT_KEK_HANDLE ADD: a new 128- or 256-bit import KEK."""
    from hcasim.api.officer import OfficerError

    kek = _kek(args.kek_file)
    with _connect(home, args.host) as client:
        officer = _officer(args, client, login=True)
        try:
            new_id = officer.add_import_kek(kek)
        except OfficerError as exc:
            raise _refused("IMPORT_KEK_HANDLE", exc) from None
    print(
        f"hcasim: import KEK {new_id} ({8 * len(kek)}-bit) added to {args.device} on {args.host}"
    )
    return 0


def cmd_kek_delete(args: argparse.Namespace, home: LabHome) -> int:
    """IMPORT_KEK_HANDLE DELETE: logins that use the KEK turn INVALID."""
    from hcasim.api.officer import OfficerError

    with _connect(home, args.host) as client:
        officer = _officer(args, client, login=True)
        try:
            officer.delete_import_kek(args.id)
        except OfficerError as exc:
            raise _refused("IMPORT_KEK_HANDLE", exc) from None
    print(f"hcasim: import KEK {args.id} deleted from {args.device} on {args.host}")
    return 0


def _list(
    args: argparse.Namespace,
    home: LabHome,
    capacity_key: str,
    query: Callable[[CryptoOfficer, int], int],
) -> list[tuple[int, int]]:
    """Query every possible id through a handle register; return (id, value) of the stored.

    Ids are at most the table's capacity (the device hands out the lowest free id >= 1), so
    the scan is bounded. The officer's login is checked first, so that a wrong login is an
    error and not an empty list.
    """
    from hcasim.api.officer import OfficerError

    with _connect(home, args.host) as client:
        capacity = int(_device_status(client, args.host, args.device)["crypto"][capacity_key])
        officer = _officer(args, client, login=True)
        try:
            officer.query_credential(args.officer_credential_id)
        except OfficerError as exc:
            raise _refused("CREDENTIAL_HANDLE", exc) from None
        found = []
        for ident in range(capacity + 1):
            try:
                found.append((ident, query(officer, ident)))
            except OfficerError:
                continue
    return found


def cmd_credential_list(args: argparse.Namespace, home: LabHome) -> int:
    """Every stored credential's id and role (CREDENTIAL_HANDLE queries; never a secret)."""
    rows = _list(args, home, "max_credentials", lambda o, i: o.query_credential(i))
    _print_table([("ID", "ROLE")] + [(str(i), _ROLE_NAMES.get(r, str(r))) for i, r in rows])
    return 0


def cmd_kek_list(args: argparse.Namespace, home: LabHome) -> int:
    """Every stored import KEK's id and size (IMPORT_KEK_HANDLE queries; never a key)."""
    rows = _list(args, home, "max_import_keks", lambda o, i: o.query_import_kek(i))
    _print_table([("ID", "SIZE")] + [(str(i), "256-bit" if s else "128-bit") for i, s in rows])
    return 0


def cmd_status(args: argparse.Namespace, home: LabHome) -> int:
    """Mode, credential and KEK counts, contexts, sessions and DEKs of each crypto device."""
    with _connect_any(home) as client:
        try:
            if args.host is not None:
                status = client.call("host_status", host=args.host)
            else:
                try:
                    status = client.call("status")
                except LabError as exc:
                    if exc.errno != errno.EPERM:
                        raise
                    # inside a host: the lab's status is the operator's; the host's own
                    # devices are its root's to see
                    status = client.call("host_status")
        except LabError as exc:
            if exc.errno == errno.ENOENT:
                raise CryptoCliError(f"unknown host {args.host!r}") from None
            raise CryptoCliError(exc.message) from None
    if args.json:
        devices = [
            {"host": h["name"], **d} for h in status["hosts"] for d in h["devices"] if "crypto" in d
        ]
        print(json.dumps(devices, indent=2))
        return 0
    lines = status_lines(status)
    print("\n".join(lines) if lines else "hcasim: no crypto device")
    return 0


def cmd_wrap_credential(args: argparse.Namespace, home: LabHome) -> int:
    """Write a credential wrapped under a KEK (48 bytes as hex: DPDK's ``wcs_file``)."""
    from hcasim.devices.mlx5.keywrap import wrap_credential

    wrapped = wrap_credential(_kek(args.kek_file), _credential(args.credential_file))
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CryptoCliError(f"{args.output}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as out:
        out.write(wrapped.hex() + "\n")
    print(f"hcasim: wrote {args.output} (48-byte wrapped credential, hex)")
    return 0


def _connect_any(home: LabHome) -> ControlClient:
    try:
        return ControlClient(str(home.socket))
    except LabUnavailable:
        raise CryptoCliError(
            f"no lab is running at {home.path} (start it with 'hcasim up')"
        ) from None


# --- output -----------------------------------------------------------------------------------


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def status_lines(status: dict[str, Any]) -> list[str]:
    """The crypto table of ``hcasim status`` (empty when the lab has no crypto device)."""
    rows = [
        ("HOST", "VERBS", "CRYPTO", "CREDENTIALS", "IMPORT KEKS", "CONTEXTS", "SESSIONS", "DEKS")
    ]
    for host in status["hosts"]:
        for dev in host["devices"]:
            crypto = dev.get("crypto")
            if not isinstance(crypto, dict):
                continue
            if crypto.get("mode") == "failed":
                rows.append((host["name"], dev["verbs_device"], "failed", "-", "-", "-", "-", "-"))
                continue
            mode = str(crypto["mode"])
            if crypto.get("going_to_commissioning"):
                mode += " (to commissioning at next reset)"
            invalid = crypto["sessions_invalid"]
            sessions = str(crypto["sessions_valid"] + invalid)
            if invalid:
                sessions += f" ({invalid} invalid)"
            rows.append(
                (
                    host["name"],
                    dev["verbs_device"],
                    mode,
                    f"{crypto['credentials']}/{crypto['max_credentials']}",
                    f"{crypto['import_keks']}/{crypto['max_import_keks']}",
                    str(crypto["contexts"]),
                    sessions,
                    str(crypto["deks"]),
                )
            )
    if len(rows) == 1:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for host in status["hosts"]:
        for dev in host["devices"]:
            crypto = dev.get("crypto")
            if isinstance(crypto, dict) and crypto.get("mode") == "failed":
                lines.append(f"{host['name']} {dev['verbs_device']}: {crypto.get('reason')}")
    return lines


# --- the parser -------------------------------------------------------------------------------


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", required=True, help="the host of the crypto device")
    p.add_argument("--device", default="mlx5_0", help="its verbs name (default mlx5_0)")


def _officer_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("--officer-credential-file", required=True, metavar="FILE",
                   help="the officer's 40-byte plaintext credential (hex)")
    p.add_argument("--officer-kek-file", required=True, metavar="FILE",
                   help="the import KEK the officer logs in with (hex, 16 or 32 bytes)")
    p.add_argument("--officer-credential-id", type=_id, default=0, metavar="ID")
    p.add_argument("--officer-kek-id", type=_id, default=0, metavar="ID")


def _id(text: str) -> int:
    if not re.fullmatch(r"0[xX][0-9a-fA-F]{1,6}|[0-9]{1,8}", text):  # ASCII, as strtoul
        raise ValueError(text)
    value = int(text, 0)
    if not 0 <= value < 1 << 24:
        raise ValueError(text)
    return value


_id.__name__ = "24-bit id"  # argparse says "invalid 24-bit id value: ..."


def add_parser(sub: Any) -> None:
    """Add ``hcasim crypto ...`` to hcasim's subcommands."""
    crypto = sub.add_parser("crypto", help="crypto officer: commissioning, credentials, KEKs")
    actions = crypto.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("commission", help="CRYPTO_OPERATIONAL: first credential and KEK")
    _target(p)
    p.add_argument("--credential-file", required=True, metavar="FILE",
                   help="40-byte plaintext credential (hex); becomes officer credential 0")
    p.add_argument("--kek-file", required=True, metavar="FILE",
                   help="16- or 32-byte import KEK (hex); becomes import KEK 0")
    p.set_defaults(func=_run(cmd_commission))

    p = actions.add_parser(
        "going-to-commissioning", help="back to commissioning mode at the next firmware reset"
    )
    _target(p)
    p.add_argument("--cancel", action="store_true", help="stay operational after all")
    p.set_defaults(func=_run(cmd_going_to_commissioning))

    p = actions.add_parser("status", help="mode, counts, contexts and sessions (no secret)")
    p.add_argument("--host")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(cmd_status))

    p = actions.add_parser("wrap-credential", help="wrap a credential under a KEK (hex file)")
    p.add_argument("--credential-file", required=True, metavar="FILE")
    p.add_argument("--kek-file", required=True, metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.set_defaults(func=_run(cmd_wrap_credential))

    cred = actions.add_parser("credential", help="add, delete or list credentials")
    cred_sub = cred.add_subparsers(dest="what", required=True, metavar="ACTION")
    p = cred_sub.add_parser("add", help="CREDENTIAL_HANDLE ADD")
    _target(p)
    _officer_login(p)
    p.add_argument("--credential-file", required=True, metavar="FILE",
                   help="the new 40-byte plaintext credential (hex)")
    p.add_argument("--role", choices=sorted(_ROLES), default="user")
    p.set_defaults(func=_run(cmd_credential_add))
    p = cred_sub.add_parser("delete", help="CREDENTIAL_HANDLE DELETE")
    _target(p)
    _officer_login(p)
    p.add_argument("id", type=_id)
    p.set_defaults(func=_run(cmd_credential_delete))
    p = cred_sub.add_parser("list", help="ids and roles")
    _target(p)
    _officer_login(p)
    p.set_defaults(func=_run(cmd_credential_list))

    kek = actions.add_parser("kek", help="add, delete or list import KEKs")
    kek_sub = kek.add_subparsers(dest="what", required=True, metavar="ACTION")
    p = kek_sub.add_parser("add", help="IMPORT_KEK_HANDLE ADD")
    _target(p)
    _officer_login(p)
    p.add_argument("--kek-file", required=True, metavar="FILE",
                   help="the new 16- or 32-byte import KEK (hex)")
    p.set_defaults(func=_run(cmd_kek_add))
    p = kek_sub.add_parser("delete", help="IMPORT_KEK_HANDLE DELETE")
    _target(p)
    _officer_login(p)
    p.add_argument("id", type=_id)
    p.set_defaults(func=_run(cmd_kek_delete))
    p = kek_sub.add_parser("list", help="ids and sizes")
    _target(p)
    _officer_login(p)
    p.set_defaults(func=_run(cmd_kek_list))
