"""hcasim: start, stop and drive a lab (hosts, drivers, firmware images).

Every subcommand resolves the lab home the same way (``--home``, ``$HCASIM_HOME``,
``./.hcasim``). Errors go to stderr prefixed ``hcasim:``, with exit status 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from hcasim.api.client import ControlClient, LabError, LabUnavailable
from hcasim.cli import crypto as crypto_cli
from hcasim.cli.guard import run_guarded
from hcasim.lab.home import LabHome, LabHomeError, pci_preload, verbs_preload
from hcasim.lab.pci_sysfs import write_pci_sysfs

START_TIMEOUT = 60.0
#: Characters of a PSID (PSID_LEN, mstflint mlxfwops_com.h).
PSID_LEN = 16
STOP_TIMEOUT = 15.0


class CliError(Exception):
    """A command failed; the message is printed after ``hcasim:``."""


def connect(home: LabHome, timeout: float = 60.0) -> ControlClient:
    """Connect to the home's running daemon or fail with a clear message."""
    try:
        return ControlClient(str(home.socket), timeout=timeout)
    except LabUnavailable:
        raise CliError(f"no lab is running at {home.path} (start it with 'hcasim up')") from None


def lab_call(home: LabHome, op: str, **args: Any) -> dict[str, Any]:
    """One request to the home's daemon; a refusal becomes a CliError with its message."""
    with connect(home) as client:
        try:
            return client.call(op, **args)
        except LabError as exc:
            raise CliError(exc.message) from None


def daemon_pid(home: LabHome) -> int | None:
    """The pid recorded by the daemon holding the home, if it is alive."""
    try:
        pid = int(home.lock.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def is_up(home: LabHome) -> bool:
    """Whether a daemon answers on the home's socket."""
    try:
        with ControlClient(str(home.socket), timeout=5.0) as client:
            client.call("ping")
        return True
    except (LabUnavailable, LabError):
        return False


def cmd_up(args: argparse.Namespace, home: LabHome) -> int:
    """Start the lab daemon and wait until it serves; do nothing if it already does."""
    if args.lab and not args.topology:
        raise CliError("--lab needs --topology (the lab file describes the hosts of a net file)")
    if is_up(home):
        if args.topology:
            raise CliError(f"a lab is already running at {home.path}; 'hcasim down' first")
        print(f"hcasim: lab already up at {home.path} (pid {daemon_pid(home)})")
        return 0
    if args.topology:
        from hcasim.lab.spec import SpecError, lab_from_files

        try:
            lab_from_files(Path(args.topology), Path(args.lab) if args.lab else None)
        except SpecError as exc:
            raise CliError(str(exc)) from None
    for change in home.ensure():
        print(f"hcasim: {change}", file=sys.stderr)
    os.umask(0o077)  # the daemon and what it starts create nothing others may read
    cmd = [sys.executable, "-m", "hcasim.lab.daemon", "--home", str(home.path)]
    if args.topology:
        cmd += ["--topology", str(Path(args.topology).absolute())]
    if args.lab:
        cmd += ["--lab", str(Path(args.lab).absolute())]
    with open(home.log, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CliError(_last_error(home) or f"lab daemon exited with status {proc.returncode}")
        if is_up(home):
            print(f"hcasim: lab up at {home.path} (pid {proc.pid})")
            return 0
        time.sleep(0.05)
    proc.terminate()
    raise CliError(f"lab daemon did not become ready in {START_TIMEOUT:.0f} s; see {home.log}")


def _last_error(home: LabHome) -> str | None:
    try:
        lines = home.log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("hcasim: "):
            return line.removeprefix("hcasim: ")
    return None


def cmd_down(args: argparse.Namespace, home: LabHome) -> int:
    """Stop the lab daemon cleanly (non-volatile state stays in the home)."""
    pid = daemon_pid(home)
    if not is_up(home):
        print(f"hcasim: no lab running at {home.path}")
        return 0
    lab_call(home, "shutdown")
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid is not None and time.monotonic() < deadline and _lock_held(home):
        time.sleep(0.02)
    print("hcasim: lab down")
    return 0


def _lock_held(home: LabHome) -> bool:
    """Whether a daemon still holds the home's lock (it releases it as it exits)."""
    import fcntl

    try:
        fd = os.open(home.lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _key_state(dev: dict[str, Any]) -> str:
    if "secure_host_capable" not in dev:  # not a ConnectX-3 (the crypto device: see below)
        return "-"
    if not dev["secure_host_capable"]:
        return "unsupported"
    if dev["key_active"]:
        return "active" if dev["key_on_flash"] else "active (cleared on flash)"
    return "set (inactive)" if dev["key_on_flash"] else "not set"


def cmd_status(args: argparse.Namespace, home: LabHome) -> int:
    """Print hosts, devices and their secure-host state (never a key)."""
    with connect(home) as client:
        status = client.call("status")
    if args.json:
        status.pop("ok", None)
        print(json.dumps(status, indent=2))
        return 0
    print(f"lab: {home.path} (pid {daemon_pid(home)})")
    rows = [("HOST", "DEVICE", "MODEL", "FW", "KEY", "CR-SPACE", "SMP FIREWALL")]
    for host in status["hosts"]:
        for dev in host["devices"]:
            rows.append(
                (
                    host["name"],
                    dev["device"],
                    dev["model"],
                    dev["fw_version"],
                    _key_state(dev),
                    {True: "locked", False: "unlocked"}.get(dev.get("cr_space_locked"), "-"),
                    {True: "on", False: "off"}.get(dev.get("smp_firewall"), "-"),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    crypto = crypto_cli.status_lines(status)
    if crypto:
        print("\n" + "\n".join(crypto))
    return 0


def host_environment(home: LabHome, host: str) -> dict[str, str]:
    """The environment a program needs to run as if on ``host`` of this lab."""
    env = dict(os.environ)
    env["HCASIM_HOME"] = str(home.path)
    env["HCASIM_SOCKET"] = str(home.socket)
    env["HCASIM_HOST"] = host
    scripts = sysconfig.get_path("scripts")
    env["PATH"] = scripts + os.pathsep + env.get("PATH", "")
    env = home.fabric_environment(env, host)
    verbs = verbs_preload()
    if verbs is not None:  # libibverbs / libmlx5 programs see the host's verbs devices
        preload = [p for p in env["LD_PRELOAD"].split() if p != verbs]
        env["LD_PRELOAD"] = " ".join([*preload, verbs])
        # beside it, the host's `rdma` (hcasim.cli.rdma), run by this Python
        env["PATH"] = str(Path(verbs).parent / "bin") + os.pathsep + env["PATH"]
        env["HCASIM_PYTHON"] = sys.executable
    pci = pci_preload()
    if pci is not None:  # mstflint / mstmcra by PCI address reach the host's own devices
        preload = [p for p in env["LD_PRELOAD"].split() if p != pci]
        env["LD_PRELOAD"] = " ".join([*preload, pci])
        env["HCASIM_PCI_ROOT"] = str(home.pci_root(host))
    return env


def cmd_exec(args: argparse.Namespace, home: LabHome) -> int:
    """Run a command as a program on one of the lab's hosts."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("exec needs a command after '--'")
    with connect(home) as client:
        # This process (the kernel tells the daemon its pid) and all it starts become the
        # host: the command replaces this process below, keeping its pid.
        try:
            registered = client.call("exec_register", host=args.host)
        except LabError as exc:
            if exc.errno != errno.ENOENT:
                raise CliError(exc.message) from None
            try:
                hosts = [h["name"] for h in client.call("status")["hosts"]]
            except LabError:  # inside a host: the lab's other hosts are not its business
                raise CliError(exc.message) from None
            raise CliError(f"unknown host {args.host!r} (hosts: {', '.join(hosts)})") from None
        # the host's PCI functions as its sysfs lists them, for the PCI preload
        try:
            hello = client.call("hello", host=args.host)
        except LabError as exc:
            raise CliError(exc.message) from None
    write_pci_sysfs(home.pci_root(args.host), hello.get("pci", []))
    env = host_environment(home, args.host)
    if not registered.get("nested"):  # inside its host already, a process stays there
        from hcasim.lab import sandbox

        reason = sandbox.unavailable_reason()
        if reason is None:
            command = sandbox.command(home, args.host, command)
        else:
            print(f"hcasim: {reason}: running unconfined on host {args.host}",
                  file=sys.stderr)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise CliError(f"{command[0]}: {exc.strerror}") from None


def cmd_host(args: argparse.Namespace, home: LabHome) -> int:
    """Host events: ``reboot``."""
    lab_call(home, "host_reboot", host=args.host)
    print(f"hcasim: host {args.host} rebooted")
    return 0


def cmd_driver(args: argparse.Namespace, home: LabHome) -> int:
    """Driver events: ``restart``."""
    lab_call(home, "driver_restart", host=args.host)
    print(f"hcasim: driver restarted on {args.host}")
    return 0


def cmd_driver_show(args: argparse.Namespace, home: LabHome) -> int:
    """Show what a host's mlx4 driver knows: secure-host mode, its port, events, log."""
    reply = lab_call(home, "driver_show", host=args.host)
    if args.json:
        reply.pop("ok", None)
        print(json.dumps(reply, indent=2))
        return 0
    if not reply["devices"]:
        print(f"{reply['host']}: no ConnectX-3 (mlx4) device")
    for dev in reply["devices"]:
        port = dev["port"]
        mode = "on (SMP firewall activated)" if dev["secure_host"] else "off"
        print(f"{reply['host']}: {dev['ibdev']} ({dev['model']}, {dev['mst']})")
        print(f"  secure-host mode: {mode}")
        print(f"  port {port['number']}: state {port['state']}, LID {port['lid']}, "
              f"SM LID {port['sm_lid']}, SM SL {port['sm_sl']}, GID prefix {port['gid_prefix']}")
        print("  events (oldest first):" if dev["events"] else "  events: none")
        for line in dev["events"]:
            print(f"    {line}")
        print("  driver log:" if dev["log"] else "  driver log: empty")
        for line in dev["log"]:
            print(f"    {line}")
    return 0


def cmd_sm(args: argparse.Namespace, home: LabHome) -> int:
    """Start, stop or show the lab's subnet manager (the real OpenSM)."""
    options = list(args.sm_options)
    with connect(home, timeout=args.timeout + 30) as client:
        try:
            if args.action == "start":
                reply = client.call(
                    "sm_start", host=args.host, options=options, timeout=args.timeout
                )
                print(
                    f"hcasim: opensm on {reply['host']} (pid {reply['pid']}): SUBNET UP after "
                    f"{reply['seconds']:.2f} s; log {reply['log']}"
                )
            elif args.action == "stop":
                reply = client.call("sm_stop")
                print("hcasim: opensm stopped" if reply["stopped"] else "hcasim: no SM running")
            else:
                reply = client.call("sm_status")
                if reply["running"]:
                    print(f"opensm on {reply['host']} (pid {reply['pid']}); log {reply['log']}")
                else:
                    print("no SM running")
        except LabError as exc:
            raise CliError(exc.message) from None
    return 0


def _percent(text: str) -> int:
    """A rate in percent, 0 to 100 (argparse type)."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a rate is 0 to 100 percent, not {value}")
    return value


def cmd_fault(args: argparse.Namespace, home: LabHome) -> int:
    """Inject faults into the lab's fabric (docs/fabric.md §7.2)."""
    with connect(home) as client:
        try:
            if args.action == "link":
                reply = client.call("fault_link", node=args.node, port=args.port,
                                    state=args.state)
                print(f"hcasim: {reply['node']} port {reply['port']}: link "
                      f"{'up' if reply['link_up'] else 'down'}")
            elif args.action == "port":
                reply = client.call("fault_port", node=args.node, port=args.port,
                                    symbol=args.symbol, rcv_errors=args.rcv_errors,
                                    drop=args.drop)
                print(f"hcasim: {reply['node']} port {reply['port']}: symbol errors "
                      f"{reply['symbol']}%, receive errors {reply['rcv_errors']}%, drops "
                      f"{reply['drop']}%")
            elif args.action == "node":
                reply = client.call("fault_node", node=args.node,
                                    answering=args.state == "answering")
                print(f"hcasim: {reply['node']}: "
                      f"{'answering' if reply['answering'] else 'not answering'}")
            else:
                reply = client.call("fault_show")
                for p in reply["ports"]:
                    print(f"{p['node']} port {p['port']}: symbol errors {p['symbol']}%, "
                          f"receive errors {p['rcv_errors']}%, drops {p['drop']}%")
                for link in reply["failed_links"]:
                    print(f"{link['node']} port {link['port']}: link failed")
                for node in reply["silent_nodes"]:
                    print(f"{node}: not answering")
                if not (reply["ports"] or reply["silent_nodes"] or reply["failed_links"]):
                    print("no faults")
        except LabError as exc:
            raise CliError(exc.message) from None
    return 0


def cmd_web(args: argparse.Namespace, home: LabHome) -> int:
    """Serve the lab's web view on loopback (or stop it) and print its address."""
    with connect(home) as client:
        try:
            if args.stop:
                reply = client.call("web_stop")
                print("hcasim: web view stopped" if reply["stopped"] else "hcasim: no web view")
                return 0
            reply = client.call("web_start", port=args.port)
        except LabError as exc:
            raise CliError(exc.message) from None
    print(reply["url"])
    return 0


def cmd_show(args: argparse.Namespace, home: LabHome) -> int:
    """Write the web view's picture of the lab as SVG (or PNG, through rsvg-convert)."""
    from hcasim.lab.view import render_svg  # only this command draws

    with connect(home) as client:
        snap = client.call("web_snapshot")
    svg = render_svg(snap, title=f"hcasim lab {home.path.name}")
    out = Path(args.svg)
    if out.suffix.lower() != ".png":
        out.write_text(svg)
        return 0
    # PNG where a renderer is installed (Debian librsvg2-bin); nothing is downloaded
    converter = shutil.which("rsvg-convert")
    if converter is None:
        raise CliError("PNG needs rsvg-convert (Debian package librsvg2-bin); write .svg instead")
    result = subprocess.run([converter, "-f", "png", "-o", str(out)], input=svg.encode(),
                            capture_output=True)
    if result.returncode != 0:
        raise CliError(f"rsvg-convert failed: {result.stderr.decode(errors='replace').strip()}")
    return 0


def cmd_fw_build(args: argparse.Namespace, home: LabHome) -> int:
    """Build an FS2 firmware image from an mlxburn-style ini."""
    from hcasim.devices import fs2
    from hcasim.devices.cx3 import KINDS
    from hcasim.devices.firmware_ini import IniError, parse_ini
    from hcasim.lab.spec import DEFAULT_PSID, DEFAULT_RELEASE_DATE, SpecError, read_text

    try:
        text = read_text(Path(args.ini))
    except SpecError as exc:
        raise CliError(str(exc)) from None
    try:
        ini = parse_ini(text, args.ini)
    except IniError as exc:
        raise CliError(str(exc)) from None
    version = _parse_version(args.fw_version)
    kind = KINDS[args.device]
    image = fs2.build_image(
        device_id=kind.device_id,
        fw_version=version,
        psid=args.psid or DEFAULT_PSID[args.device],
        release_date=DEFAULT_RELEASE_DATE,
        guid_base=args.guid,
        cr_protection_en=ini.cr_protection_en,
    )
    Path(args.output).write_bytes(image)
    print(
        f"hcasim: wrote {args.output} ({len(image)} bytes, {kind.description}, "
        f"FW {'.'.join(map(str, version))}, cr_protection_en={int(ini.cr_protection_en)})"
    )
    return 0


def _parse_version(text: str) -> tuple[int, int, int]:
    # ASCII digits only, as strtoul reads them: Python's int() would also take blanks, a
    # sign, '_' and the digits of every script.
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise CliError(f"bad --fw-version {text!r}: expected MAJOR.MINOR.SUBMINOR")
    digits = [p.lstrip("0") or "0" for p in parts]  # int() refuses over 4300 digits
    if any(len(d) > 5 or int(d) > 0xFFFF for d in digits):
        raise CliError(f"bad --fw-version {text!r}: each part must be 0..65535")
    major, minor, sub = (int(d) for d in digits)
    return major, minor, sub


_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,16}")

#: The longest wait for SUBNET UP the daemon accepts (``sm_start``'s ``timeout``).
MAX_SM_TIMEOUT = 3600.0


def _seconds(text: str) -> float:
    """A finite number of seconds in (0, MAX_SM_TIMEOUT]: not nan, inf, zero or negative."""
    value = float(text)
    if not 0 < value <= MAX_SM_TIMEOUT:  # False for nan as well
        raise ValueError(text)
    return value


_seconds.__name__ = "seconds"  # argparse says "invalid seconds value: 'nan'"


def _psid(text: str) -> str:
    """A PSID as the FS2 image holds it: 1 to 16 printable ASCII characters."""
    if not 1 <= len(text) <= PSID_LEN or not (text.isascii() and text.isprintable()):
        raise ValueError(text)
    return text


_psid.__name__ = "PSID"  # argparse says "invalid PSID value: ..."


def _guid(text: str) -> int:
    if not _HEX.fullmatch(text):  # int(text, 16) would take blanks, '_' and other scripts
        raise ValueError(text)
    value = int(text, 16)
    if not 0 <= value < 1 << 64:
        raise ValueError(text)
    return value


_guid.__name__ = "GUID"


def build_parser() -> argparse.ArgumentParser:
    """The hcasim command line."""
    p = argparse.ArgumentParser(prog="hcasim", description="A virtual InfiniBand lab.")
    p.add_argument("--home", help="lab home (default $HCASIM_HOME or ./.hcasim)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start the lab daemon")
    up.add_argument("--topology", help="ibsim/ibnetdiscover net file")
    up.add_argument("--lab", help="TOML lab file naming each host's device and firmware ini")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the lab daemon").set_defaults(func=cmd_down)
    st = sub.add_parser("status", help="hosts, devices, secure-host and crypto state")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    ex = sub.add_parser("exec", help="run a command on a host: exec --host H -- CMD...")
    ex.add_argument("--host", required=True)
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)

    host = sub.add_parser("host", help="host events")
    host_sub = host.add_subparsers(dest="action", required=True)
    reboot = host_sub.add_parser("reboot", help="reboot a host (its HCAs cold-boot)")
    reboot.add_argument("host")
    reboot.set_defaults(func=cmd_host)

    drv = sub.add_parser("driver", help="driver events")
    drv_sub = drv.add_subparsers(dest="action", required=True)
    restart = drv_sub.add_parser("restart", help="restart the HCA driver on a host")
    restart.add_argument("host")
    restart.set_defaults(func=cmd_driver)
    show = drv_sub.add_parser("show", help="what a host's driver learnt (mode, port, events)")
    show.add_argument("host")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_driver_show)

    sm = sub.add_parser("sm", help="the subnet manager (real OpenSM) on a lab host")
    sm.add_argument("action", choices=("start", "stop", "status"))
    sm.add_argument("--host", default="sm", help="host OpenSM runs on (default: sm)")
    sm.add_argument("--timeout", type=_seconds, default=120.0,
                    help=f"seconds to wait for SUBNET UP (at most {MAX_SM_TIMEOUT:.0f})")
    sm.set_defaults(func=cmd_sm)

    fault = sub.add_parser("fault", help="inject faults into the fabric (links, ports, nodes)")
    fault_sub = fault.add_subparsers(dest="action", required=True)
    f_link = fault_sub.add_parser("link", help="take a link down as a failure would, or up")
    f_link.add_argument("node", help="node id as in the net file (a host's name for its HCA)")
    f_link.add_argument("port", type=int)
    f_link.add_argument("state", choices=("down", "up"))
    f_port = fault_sub.add_parser("port", help="error rates of a port, in percent of MADs "
                                  "entering it (all 0: healthy)")
    f_port.add_argument("node")
    f_port.add_argument("port", type=int)
    f_port.add_argument("--symbol", type=_percent, default=0,
                        help="symbol errors (counted, MAD delivered)")
    f_port.add_argument("--rcv-errors", type=_percent, default=0,
                        help="receive errors (counted, MAD discarded)")
    f_port.add_argument("--drop", type=_percent, default=0, help="MADs lost without a trace")
    f_node = fault_sub.add_parser("node", help="make a node's agents stop answering, or answer")
    f_node.add_argument("node")
    f_node.add_argument("state", choices=("silent", "answering"))
    fault_sub.add_parser("show", help="the faults in place")
    fault.set_defaults(func=cmd_fault)

    web = sub.add_parser("web", help="serve the lab's live web view on 127.0.0.1")
    web.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    web.add_argument("--stop", action="store_true", help="stop serving the page")
    web.set_defaults(func=cmd_web)
    show_cmd = sub.add_parser("show", help="the web view's picture of the lab, as a file")
    show_cmd.add_argument("--svg", required=True, metavar="FILE",
                          help="write SVG (PNG if FILE ends in .png and rsvg-convert exists)")
    show_cmd.set_defaults(func=cmd_show)

    fw = sub.add_parser("fw", help="firmware images")
    fw_sub = fw.add_subparsers(dest="action", required=True)
    build = fw_sub.add_parser("build", help="build an FS2 image from an mlxburn-style ini")
    build.add_argument("--ini", required=True)
    build.add_argument("--fw-version", default="2.42.5000")
    build.add_argument("--psid", type=_psid, help="1 to 16 printable ASCII characters")
    build.add_argument("--device", choices=("mt4099", "mt4103"), default="mt4099")
    build.add_argument("--guid", type=_guid, default=0x0002C90300000000, help="base GUID (hex)")
    build.add_argument("-o", "--output", required=True)
    build.set_defaults(func=cmd_fw_build)
    crypto_cli.add_parser(sub)
    return p


def _subcommand_index(argv: list[str]) -> int | None:
    """Where the subcommand stands in argv, past the global options."""
    i = 0
    while i < len(argv):
        if argv[i] == "--home":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def main(argv: list[str] | None = None) -> int:
    """Run hcasim; return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # `hcasim sm start [--host H] -- OPENSM OPTIONS`: what follows -- belongs to opensm.
    sm_options: list[str] = []
    at = _subcommand_index(argv)
    if at is not None and argv[at] == "sm" and "--" in argv[at:]:
        cut = argv.index("--", at)
        argv, sm_options = argv[:cut], argv[cut + 1 :]
    return run_guarded(lambda: _run(argv, sm_options), _report)


def _report(message: str) -> None:
    print(f"hcasim: {message}", file=sys.stderr)


def _run(argv: list[str], sm_options: list[str]) -> int:
    """Parse the command line and run the subcommand; its refusals become one line."""
    args = build_parser().parse_args(argv)
    args.sm_options = sm_options
    try:
        home = LabHome.resolve(args.home)
        return int(args.func(args, home))
    except (CliError, LabUnavailable, LabHomeError) as exc:
        _report(str(exc))
        return 1
    except LabError as exc:  # a refusal no subcommand words itself (EPERM from a host)
        _report(exc.message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
