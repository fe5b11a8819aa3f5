"""Parser and writer for the ibsim / ibnetdiscover net-file grammar.

The grammar and its rules are those of ibsim 0.10 ``ibsim/sim_net.c`` (summarised in
docs/sources.md §3.1-§3.2); GUIDs are assigned exactly as ibsim does
(``new_node``, ``sim_net.c:293-357``; ``init_ports``, ``:598-648``):

* without a GUID base, switches start at 0x200000 and take +1 each; CAs start at 0x100000
  and take +(NumPorts+1) each; routers start at 0 (``sim_net.c:200-201``);
* ``switchguid=``/``caguid=``/``hcaguids=``/``rtguid=`` set an absolute base, ``...+n``
  is relative to the last absolute base of that kind (``parse_guidbase``, ``:918-943``);
* a CA or router port GUID is node GUID + port number; every switch port uses the node
  GUID;
* ``vendid=`` and ``sysimgguid=`` apply to the next node only, ``devid=`` to all later
  nodes (``:353-354``).

Documented differences from ibsim (each makes a malformed file fail with a clear
``file:line`` message instead of being silently misread):

* a node record ends at the first line that is neither a port line (``[``, ``@``) nor a
  ``#`` comment, and that line is parsed again as a top-level line; ibsim stops after
  NumPorts port lines and drops the terminating line of a partly cabled record;
* port options ``w=``/``s=``/``e=`` are read only before the ``#`` comment (ibsim scans
  the whole line, so a description containing ``w=`` would change a width);
* the number of ports must come before the quoted node id, a port may be described only
  once, and every port GUID must be unique (ibsim checks node GUIDs only; duplicates are
  allowed with ``allow_duplicate_guids``, like ``ibsim -I``);
* ``include "file"`` is resolved relative to the including file (ibsim: relative to the
  working directory); aliases may be used before they are defined;
* ``do <command>`` lines are collected in :attr:`Topology.commands`, not executed.

Errors raise :class:`NetFileError` with the message ``"{filename}:{line}: {reason}"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from hcasim.fabric.topology import (
    DEFAULT_EXT_SPEED_ENABLED,
    DEFAULT_SPEED_ENABLED,
    DEFAULT_WIDTH_ENABLED,
    WIDTH_1X,
    WIDTH_2X,
    WIDTH_4X,
    WIDTH_8X,
    WIDTH_12X,
    Node,
    NodeKind,
    Port,
    PortRef,
    Topology,
)

__all__ = [
    "NetFileError",
    "Node",
    "NodeKind",
    "Port",
    "PortRef",
    "Topology",
    "format_netfile",
    "parse_netfile",
    "parse_netfile_text",
]

_U64 = (1 << 64) - 1
# Initial GUID bases (ibsim ``sim_net.c:200-201``: ``{~0, 0x100000, 0x200000}`` indexed by
# node type, so routers start at 0).
# Indexed by NodeKind value (a list, not an enum-keyed dict: IntEnum hashing is slow).
_GUID_START = [0, 0x100000, 0x200000, 0]
_SWITCH = NodeKind.SWITCH
_CA = NodeKind.CA
_ROUTER = NodeKind.ROUTER
_DIGIT = re.compile(r"[0-9]")
# The usual port line, fully matched in one step: "[p](guid) "remote"[rp](guid) # pre
# "desc" tail" with no '=' (so no options), where tail holds the "lid <L> <W>x<SPEED>" tag.
_FAST_PORT = re.compile(
    r'\[([1-9][0-9]*)\](?:\([0-9a-fA-F]*\))?[ \t]*"([^"#@=]+)"\[([1-9][0-9]*)\]'
    r'(?:\([0-9a-fA-F]*\))?[ \t]*#([^"=]*)"[^"=]*"([^"=]*)$')
# First characters of the top-level keywords: Switch, Hca/Ca, Rt, switchguid, hcaguids/
# caguid, rtguid, vendid, devid, sysimgguid, width, speed, extspeed, module, include,
# pdebug, do.
_KEYWORD_START = frozenset("SHCRshcrvdwemip")
# Include depth (ibsim ``MAX_INCLUDE``, ``sim_net.c:60``).
MAX_INCLUDE_DEPTH = 9
#: Largest net file (or included file) read, in bytes: a 20,000-host fabric is a few MiB;
#: the bound keeps /dev/zero or a runaway file from being read into memory.
MAX_NETFILE_BYTES = 64 * 1024 * 1024
# NumPorts is an 8-bit NodeInfo field (IBTA 14.2.5.3); 255 is not a valid port number.
MAX_PORTS = 254
# Module prefix length (ibsim ``NODEPREFIX``, ``sim.h:107``); node id length (``NODEIDLEN``
# - 1, ``sim.h:108``).
MAX_PREFIX_LEN = 20
MAX_ID_LEN = 64

# Width tag in "lid <L> <W>x<SPEED>" -> LinkWidthEnabled (``sim_net.c:475-486``).
_TAG_WIDTH = {1: WIDTH_1X, 2: WIDTH_2X, 4: WIDTH_1X | WIDTH_4X, 8: WIDTH_8X,
              12: WIDTH_1X | WIDTH_4X | WIDTH_12X}
# Speed tag -> (LinkSpeedEnabled, LinkSpeedExtEnabled or None = unchanged), tested in this
# order as "tag is a prefix of name" (``sim_net.c:489-512``).  FDR10 (a Mellanox extension,
# MlnxExtPortInfo) is not modelled beyond its LinkSpeedEnabled.
_TAG_SPEEDS: tuple[tuple[str, int, int | None], ...] = (
    ("SDR", 0x1, None), ("DDR", 0x3, None), ("QDR", 0x7, None), ("FDR", 0x7, 0x1),
    ("EDR", 0x7, 0x3), ("HDR", 0x7, 0x7), ("FDR10", 0x7, None),
)
_WRITE_WIDTH_TAG = {v: str(k) for k, v in _TAG_WIDTH.items()}
_WRITE_SPEED_TAG = {0x1: "SDR", 0x3: "DDR", 0x7: "QDR"}
_WRITE_EXT_TAG = {0x1: "FDR", 0x3: "EDR", 0x7: "HDR"}

# C strtoul(s, NULL, 0): leading white space, optional '+', then hex/octal/decimal.
_NUMBER = re.compile(r"[ \t\v\f\r\n]*\+?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
# C atoi: leading white space, optional sign, decimal digits.
_ATOI = re.compile(r"[ \t\v\f\r\n]*([+-]?[0-9]+)")
# Head of a port line: "[<p>" ... first quoted string (``parse_port``, ``sim_net.c:751-800``).
_PORT_HEAD = re.compile(r'\[[ \t]*\+?([0-9]+)[^"]*"([^"]*)"(?:\[[ \t]*([+-]?[0-9]+))?')
# sscanf("lid %d %dx%9s") (``sim_net.c:467``).
_TAG = re.compile(r"lid\s*[+-]?\d+\s*([+-]?\d+)x\s*(\S{1,9})")


class NetFileError(ValueError):
    """A malformed net file; the message is ``"{filename}:{line}: {reason}"``."""

    def __init__(self, filename: str, line: int, reason: str) -> None:
        super().__init__(f"{filename}:{line}: {reason}")
        self.filename = filename
        self.line = line
        self.reason = reason


def _c_number(text: str, pos: int = 0) -> int | None:
    """Parse an unsigned C ``strtoul(…, 0)`` number at ``pos``; ``None`` if there is none."""
    m = _NUMBER.match(text, pos)
    if m is None:
        return None
    token = m.group(1)
    if token[:2] in ("0x", "0X"):
        return int(token, 16)
    if token[0] == "0":
        return int(token, 8)
    return int(token)


def _c_atoi(text: str, pos: int = 0) -> int | None:
    """Parse a C ``atoi`` number at ``pos``; ``None`` if there are no digits."""
    m = _ATOI.match(text, pos)
    return int(m.group(1)) if m else None


_ErrFactory = Callable[[str], NetFileError]


# A port line awaiting link resolution: where it was written, the far end it names
# (node id and port; for an alias, filled in when aliases are resolved) and the full alias
# name when the far end was given as an alias.
_Cable = tuple[str, int, str, int, str | None]


class _Parser:
    """One parse: the running state of ibsim's parser globals plus our checks."""

    def __init__(self, allow_duplicate_guids: bool) -> None:
        self.topo = Topology()
        self.allow_duplicate_guids = allow_duplicate_guids
        self.abs_guid = list(_GUID_START)
        self.next_guid = list(_GUID_START)
        self.prefix = ""
        self.vendid = 0
        self.devid = 0
        self.sysimgguid = 0
        self.width = DEFAULT_WIDTH_ENABLED
        self.speed = DEFAULT_SPEED_ENABLED
        self.ext_speed = DEFAULT_EXT_SPEED_ENABLED
        self.depth = 0
        self.guid_owner: dict[int, str] = {}
        self.cables: dict[tuple[str, int], _Cable] = {}
        self.alias_where: dict[str, tuple[str, int]] = {}
        self.tag_cache: dict[str, tuple[int | None, int | None, int | None]] = {}
        self.lid_lmc_cache: dict[str, tuple[int, int]] = {}
        self.fast = True  # use _FAST_PORT; tests turn it off to compare both paths

    # -- files and lines ----------------------------------------------------------------

    def parse_file(self, path: str, where: tuple[str, int] | None) -> None:
        """Parse ``path`` (an include when ``where`` names the including line)."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_NETFILE_BYTES + 1)
        except (OSError, ValueError) as e:  # ValueError: a NUL in the name
            if where is None:
                raise
            reason = e.strerror if isinstance(e, OSError) else "embedded NUL byte"
            shown = path.replace("\0", "\\0")
            raise NetFileError(where[0], where[1],
                               f'cannot open included file "{shown}": {reason}') from None
        if len(data) > MAX_NETFILE_BYTES:
            raise NetFileError(*(where or (path, 0)),
                               f'"{path}" is larger than {MAX_NETFILE_BYTES} bytes')
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            # Names become host names, file names and JSON: text, never undecodable bytes.
            raise NetFileError(*(where or (path, 0)),
                               f'"{path}" is not UTF-8 text (byte {data[e.start]:#04x} at '
                               f"offset {e.start})") from None
        self.parse_text(text, path, os.path.dirname(path), where)

    def parse_text(self, text: str, filename: str, base_dir: str,
                   where: tuple[str, int] | None = None) -> None:
        """Parse one file's text; ``base_dir`` resolves its includes."""
        if self.depth >= MAX_INCLUDE_DEPTH:
            assert where is not None
            raise NetFileError(where[0], where[1],
                               f"includes nested deeper than {MAX_INCLUDE_DEPTH} files")
        self.depth += 1
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        i, n = 0, len(lines)
        parse_node = self.parse_node
        # Keywords are case-sensitive prefixes at column 0, tested in ibsim's order
        # (``sim_net.c:1110-1142``); the first character picks the candidates.
        while i < n:
            line = lines[i]
            c = line[:1]
            if c not in _KEYWORD_START:
                i += 1  # blank, comment or ignored line
            elif c == "S" and line.startswith("Switch"):
                i = parse_node(lines, i, filename, _SWITCH, 6)
            elif (c == "H" and line.startswith("Hca")) or (c == "C" and line.startswith("Ca")):
                i = parse_node(lines, i, filename, _CA, 3)
            elif c == "R" and line.startswith("Rt"):
                i = parse_node(lines, i, filename, _ROUTER, 3)
            else:
                self.parse_keyword(line, filename, i + 1, base_dir)
                i += 1
        self.depth -= 1

    def parse_keyword(self, line: str, filename: str, lineno: int, base_dir: str) -> None:
        """A top-level line other than a node header (``sim_net.c:1117-1142``)."""

        def err(reason: str) -> NetFileError:
            return NetFileError(filename, lineno, reason)

        def assigned(signs: str = "=") -> tuple[int, str]:
            for sign in signs:
                pos = line.find(sign)
                if pos >= 0:
                    value = _c_number(line, pos + 1)
                    if value is None:
                        raise err("bad number in assignment")
                    return value, sign
            raise err(f"bad assignment: missing {'|'.join(signs)!r} sign")

        if line.startswith("switchguid"):
            self.set_guid_base(NodeKind.SWITCH, *assigned("=+"), err)
        elif line.startswith(("hcaguids", "caguid")):
            self.set_guid_base(NodeKind.CA, *assigned("=+"), err)
        elif line.startswith("rtguid"):
            self.set_guid_base(NodeKind.ROUTER, *assigned("=+"), err)
        elif line.startswith("vendid"):
            value = assigned()[0]
            if value > 0xFFFFFF:  # NodeInfo.VendorID is 24 bits (libibmad VendorId 296/24)
                raise err(f"vendor id {value:#x} does not fit in 24 bits")
            self.vendid = value
        elif line.startswith("devid"):
            value = assigned()[0]
            if value > 0xFFFF:  # NodeInfo.DeviceID is 16 bits (libibmad DevId 240/16)
                raise err(f"device id {value:#x} does not fit in 16 bits")
            self.devid = value
        elif line.startswith("sysimgguid"):
            value = assigned()[0]
            if value > _U64:
                raise err(f"GUID {value:#x} does not fit in 64 bits")
            self.sysimgguid = value
        elif line.startswith("width"):
            self.width = self.checked_mask(assigned()[0], 1, 31, "enabled link width", err)
        elif line.startswith("speed"):
            self.speed = self.checked_mask(assigned()[0], 1, 7, "enabled link speed", err)
        elif line.startswith("extspeed"):
            self.ext_speed = self.checked_mask(assigned()[0], 0, 7,
                                               "enabled extended link speed", err)
        elif line.startswith("module"):
            pos = line.find("=")
            if pos < 0:
                raise err("bad assignment: missing '=' sign")
            prefix = _quoted(line, pos + 1)
            if prefix is None:
                raise err("module prefix must be a quoted string")
            if len(prefix[0]) > MAX_PREFIX_LEN:
                raise err(f'module prefix "{prefix[0]}" longer than {MAX_PREFIX_LEN}')
            if "#" in prefix[0] or "@" in prefix[0]:
                raise err(f"bad module prefix \"{prefix[0]}\": '#' and '@' are reserved")
            self.prefix = prefix[0]
        elif line.startswith("include"):
            name = _quoted(line, 7)
            if name is None:
                raise err("bad include file name")
            path = name[0] if os.path.isabs(name[0]) else os.path.join(base_dir, name[0])
            self.parse_file(path, (filename, lineno))
        elif line.startswith("pdebug"):
            pass  # parser debug level (``sim_net.c:1139``), meaningless here
        elif line.startswith("do"):
            self.topo.commands.append(line[2:].strip())
        # any other line (comments, blank lines, ibnetdiscover headers) is ignored

    @staticmethod
    def checked_mask(value: int, low: int, high: int, what: str,
                     err: _ErrFactory) -> int:
        """Range-check a width/speed mask (``is_linkwidth_valid`` etc., ``:403-432``)."""
        if not low <= value <= high:
            raise err(f"bad {what} {value}: should be between {low} and {high}")
        return value

    def set_guid_base(self, kind: NodeKind, value: int, sign: str, err: _ErrFactory) -> None:
        """``xxxguid=base`` (absolute) or ``xxxguid+n`` (relative to the last base)."""
        if value > _U64:
            raise err(f"GUID {value:#x} does not fit in 64 bits")
        if sign == "=":
            self.abs_guid[kind] = value
            value = 0
        self.next_guid[kind] = (self.abs_guid[kind] + value) & _U64

    # -- node records -------------------------------------------------------------------

    def parse_node(self, lines: list[str], i: int, filename: str, kind: NodeKind,
                   skip: int) -> int:
        """Parse a node header and its port lines; return the index of the next line."""
        header = lines[i]
        lineno = i + 1

        def err(reason: str) -> NetFileError:
            return NetFileError(filename, lineno, reason)

        q1 = header.find('"')
        q2 = header.find('"', q1 + 1) if q1 >= 0 else -1
        if q2 < 0:
            raise err("missing quoted node id")
        m = _DIGIT.search(header, skip, q1)
        if m is None:
            raise err("missing number of ports before the node id")
        num_ports = _c_number(header, m.start())
        assert num_ports is not None
        if not 1 <= num_ports <= MAX_PORTS:
            raise err(f"bad number of ports {num_ports}: should be 1..{MAX_PORTS}")
        local_id = header[q1 + 1:q2]
        if not local_id:
            raise err("empty node id")
        if "#" in local_id or "@" in local_id:
            raise err(f"bad node id \"{local_id}\": '#' and '@' are reserved")
        node_id = f"{self.prefix}#{local_id}" if self.prefix else local_id
        if len(node_id) > MAX_ID_LEN:
            raise err(f'node id "{node_id}" longer than {MAX_ID_LEN} characters')
        desc, rest = _node_description(header[q2 + 1:])
        if node_id in self.topo:
            raise err(f'duplicate node id "{node_id}"')

        guid = self.next_guid[kind]
        if kind is _SWITCH:
            self.next_guid[kind] = (guid + 1) & _U64
            port_guids = [guid] * (num_ports + 1)
        else:
            self.next_guid[kind] = (guid + num_ports + 1) & _U64
            port_guids = [(guid + p) & _U64 for p in range(1, num_ports + 1)]
        if not self.allow_duplicate_guids:
            for g in (guid, *port_guids):
                owner = self.guid_owner.get(g)
                if owner is not None:
                    raise err(f'duplicate GUID {g:#018x}: already used by node "{owner}"')
            for g in port_guids:
                self.guid_owner[g] = node_id
            self.guid_owner[guid] = node_id
        first = 0 if kind is _SWITCH else 1
        width, speed, ext = self.width, self.speed, self.ext_speed
        node = Node(
            kind=kind, id=node_id, description=desc or node_id, guid=guid,
            num_ports=num_ports, system_image_guid=self.sysimgguid or guid,
            vendor_id=self.vendid, device_id=self.devid,
            ports=[Port(first + k, g, width, speed, ext) for k, g in enumerate(port_guids)],
        )
        self.vendid = 0
        self.sysimgguid = 0
        if kind is _SWITCH and rest is not None:
            if "enhanced port 0" in rest:
                node.enhanced_port0 = True
            elif "base port 0" in rest:
                node.enhanced_port0 = False
            lid, lmc = _lid_lmc(rest, err)
            node.ports[0].lid, node.ports[0].lmc = lid, lmc
        self.topo.add_node(node)

        j = i + 1
        n = len(lines)
        parse_port = self.parse_port
        while j < n:
            line = lines[j]
            c = line[:1]
            if c == "[" or c == "@":
                parse_port(line, node, filename, j + 1)
            elif c != "#":
                break
            j += 1
        return j

    def parse_port(self, line: str, node: Node, filename: str, lineno: int) -> None:
        """One port line: ``[p] "remote"[rp] opts # tag`` or ``@[p] "alias"``."""
        if line[0] == "@":
            self.parse_alias(line, node, filename, lineno)
            return
        fast = _FAST_PORT.match(line) if self.fast else None
        m = fast or _PORT_HEAD.match(line)
        if m is None:
            self.bad_port_line(line, line, node, filename, lineno)
        assert m is not None
        number = int(m.group(1))
        kind = node.kind
        if number == 0 or number > node.num_ports:
            self.bad_port_line(line, line, node, filename, lineno)
        port = node.ports[number if kind is _SWITCH else number - 1]
        name = m.group(2)
        rp_text = m.group(3)
        key = (node.id, number)
        cables = self.cables
        if key in cables:
            first = cables[key]
            raise NetFileError(filename, lineno, f"port {number} already described at "
                               f"{first[0]}:{first[1]}")
        prefix = self.prefix
        if "@" in name:
            cables[key] = (filename, lineno, "", 0, f"{prefix}{name}" if name[0] == "@" else name)
        else:
            if not name:
                raise NetFileError(filename, lineno, "empty remote node id")
            remote_id = f"{prefix}#{name}" if prefix and "#" not in name else name
            remote_port = 1  # default when "[rp]" is missing (``sim_net.c:794-796``)
            if rp_text is not None or line[m.end():m.end() + 1] == "[":
                rp = None if rp_text is None else int(rp_text)
                if rp == 0:
                    raise NetFileError(filename, lineno, "remote port 0 cannot be cabled "
                                       "(switch port 0 is the management port)")
                if rp is None or rp < 0:
                    raise NetFileError(filename, lineno, "bad remote port number")
                remote_port = rp
            cables[key] = (filename, lineno, remote_id, remote_port, None)
        if fast is None:
            self.port_details(line[m.end():], port, kind, filename, lineno)
            return
        # Fast path: no options (no '='), a comment whose last quoted string is followed by
        # the tag; the same result as port_details() on the rest of the line.
        if kind is _ROUTER:
            return
        tail = fast.group(5)
        start = tail.find("lid")
        if start < 0:
            return
        if kind is _CA:
            pre = fast.group(4)
            if "lid " in pre and "lmc " in pre:
                lid_lmc = self.lid_lmc_cache.get(pre)
                if lid_lmc is None:
                    lid_lmc = _lid_lmc(pre, lambda reason: NetFileError(filename, lineno, reason))
                    self.lid_lmc_cache[pre] = lid_lmc
                port.lid, port.lmc = lid_lmc
            else:
                port.lid, port.lmc = _lid_lmc(line[m.end(3):], lambda reason: NetFileError(
                    filename, lineno, reason))
        self.apply_tag(tail[start:], port)

    def parse_alias(self, line: str, node: Node, filename: str, lineno: int) -> None:
        """``@[p] "alias"``: name port p ``"<module>@alias"`` (``new_alias``, ``:691-708``)."""
        body = line[1:]
        m = _PORT_HEAD.match(body)
        if m is None:
            self.bad_port_line(line, body, node, filename, lineno)
        assert m is not None
        number = int(m.group(1))
        if number == 0 or number > node.num_ports:
            self.bad_port_line(line, body, node, filename, lineno)
        port = node.port(number)
        name = m.group(2)
        if not name or "#" in name or "@" in name:
            raise NetFileError(filename, lineno,
                               f"bad alias \"{name}\": '#' and '@' are reserved")
        alias = f"{self.prefix}@{name}"
        if alias in self.topo.aliases:
            where = self.alias_where[alias]
            raise NetFileError(filename, lineno, f'alias "{alias}" already defined at '
                               f"{where[0]}:{where[1]}")
        if port.alias is not None:
            raise NetFileError(filename, lineno,
                               f'port {number} already has alias "{port.alias}"')
        port.alias = alias
        self.topo.aliases[alias] = PortRef(node.id, number)
        self.alias_where[alias] = (filename, lineno)
        self.port_details(body[m.end(2) + 1:], port, node.kind, filename, lineno)

    def port_details(self, rest: str, port: Port, kind: NodeKind, filename: str,
                     lineno: int) -> None:
        """Options before ``#`` and the trailing ``lid <L> <W>x<SPEED>`` tag of a port line.

        The tag starts at the first ``lid`` with no quote after it (``sim_net.c:524``) and
        is read on switches and CAs only.  On a CA port the first ``lid N``/``lmc M`` of
        the line also preset the port's LID and LMC (``sim_net.c:444-458,552-553``).  An
        unparsable tag is ignored, as ibsim only warns.
        """
        hash_pos = rest.find("#")
        options = rest if hash_pos < 0 else rest[:hash_pos]
        if "=" in options:
            self.parse_options(options, port, filename, lineno)
        if kind is _ROUTER:
            return
        start = rest.find("lid", rest.rfind('"') + 1)
        if start < 0:
            return
        if kind is _CA:
            port.lid, port.lmc = _lid_lmc(
                rest, lambda reason: NetFileError(filename, lineno, reason))
        self.apply_tag(rest[start:], port)

    def apply_tag(self, tail: str, port: Port) -> None:
        """Apply a ``lid <L> <W>x<SPEED>`` tag to the port's enabled masks."""
        parsed = self.tag_cache.get(tail)
        if parsed is None:
            parsed = _parse_tag(tail)
            self.tag_cache[tail] = parsed
        width, speed, ext = parsed
        if width is not None:
            port.width_enabled = width
        if speed is not None:
            port.speed_enabled = speed
        if ext is not None:
            port.ext_speed_enabled = ext

    @staticmethod
    def bad_port_line(line: str, body: str, node: Node, filename: str, lineno: int) -> None:
        """Raise the error that explains why a port line's head did not parse."""
        if body[:1] != "[":
            raise NetFileError(filename, lineno, "bad port line")
        number = _c_atoi(body, 1)
        if number is None:
            raise NetFileError(filename, lineno, "bad port number")
        if number == 0:
            raise NetFileError(filename, lineno, "port 0 cannot be cabled (switch port 0 is "
                               "the management port)")
        if not 1 <= number <= node.num_ports:
            raise NetFileError(filename, lineno, f"port number {number} out of range: node "
                               f'"{node.id}" has {node.num_ports} ports')
        raise NetFileError(filename, lineno, "missing quoted remote node id")

    def parse_options(self, text: str, port: Port, filename: str, lineno: int) -> None:
        """``w=``/``s=``/``e=`` enabled-mask options (``parse_port_opt``, ``:560-596``)."""

        def err(reason: str) -> NetFileError:
            return NetFileError(filename, lineno, reason)

        pos = text.find("=")
        while pos >= 0:
            k = pos - 1
            while k >= 0 and not text[k].isalpha():
                k -= 1
            key = text[k] if k >= 0 else ""
            if key in ("w", "s", "e"):
                value = _c_number(text, pos + 1)
                if value is None:
                    raise err(f"bad number in port option {key}=")
                if key == "w":
                    port.width_enabled = self.checked_mask(value, 1, 31, "port option w=", err)
                elif key == "s":
                    port.speed_enabled = self.checked_mask(value, 1, 7, "port option s=", err)
                else:
                    port.ext_speed_enabled = self.checked_mask(value, 0, 7, "port option e=",
                                                               err)
            pos = text.find("=", pos + 1)

    # -- cables -------------------------------------------------------------------------

    def connect_all(self) -> None:
        """Check and make every cable, in port order (ibsim ``connect_ports``, ``:1354``)."""
        topo = self.topo
        cables = self.cables
        for key, cable in cables.items():
            if cable[4] is not None:
                target = topo.aliases.get(cable[4])
                if target is None:
                    raise NetFileError(cable[0], cable[1], f'unknown alias "{cable[4]}"')
                cables[key] = (cable[0], cable[1], target.node, target.port, cable[4])
        for node in topo.nodes:
            node_id = node.id
            for port in node.ports:
                if port.peer is None:
                    pending = cables.get((node_id, port.number))
                    if pending is not None:
                        self.connect_one(node, port, pending)

    def connect_one(self, node: Node, port: Port, cable: _Cable) -> None:
        """Validate one cable from ``port`` to the far end ``cable`` names, and make it."""
        filename, lineno, far_id, far_number, alias = cable
        far_node = self.topo.get(far_id)
        if far_node is None:
            raise NetFileError(filename, lineno, f'unknown remote node "{far_id}" connected '
                               f'to node "{node.id}" port {port.number}')
        if far_number > far_node.num_ports:
            raise NetFileError(filename, lineno, f"bad remote port {far_number}: node "
                               f'"{far_id}" has {far_node.num_ports} ports')
        if far_node is node and far_number == port.number:
            raise NetFileError(filename, lineno, f"port {port.number} of node "
                               f'"{node.id}" is cabled to itself')
        far_port = far_node.ports[far_number if far_node.kind is _SWITCH else far_number - 1]
        far_cable = self.cables.get((far_id, far_number))
        if alias is not None:
            # The far port was named by its alias: it must not describe a cable of its own
            # (``sim_net.c:1396-1402``).
            if far_cable is not None or far_port.peer is not None:
                raise NetFileError(filename, lineno, f'remote alias "{alias}" (node '
                                   f'"{far_id}" port {far_number}) already has a cable')
        elif far_cable is None or far_cable[2] != node.id or far_cable[3] != port.number:
            raise NetFileError(filename, lineno, f"remote port {far_number} in node "
                               f'"{far_id}" is not connected to node "{node.id}" port '
                               f"{port.number}")
        if port.width_enabled & far_port.width_enabled == 0:
            raise NetFileError(filename, lineno, "mismatched enabled width between "
                               f'"{node.id}"[{port.number}] (w={port.width_enabled}) and '
                               f'"{far_id}"[{far_number}] (w={far_port.width_enabled})')
        if port.speed_enabled & far_port.speed_enabled == 0:
            raise NetFileError(filename, lineno, "mismatched enabled speed between "
                               f'"{node.id}"[{port.number}] (s={port.speed_enabled}) and '
                               f'"{far_id}"[{far_number}] (s={far_port.speed_enabled})')
        assert far_port.peer is None
        here = PortRef(node.id, port.number)
        there = PortRef(far_id, far_number)
        port.peer, far_port.peer = there, here
        self.topo.links.append((here, there))


def _parse_tag(tail: str) -> tuple[int | None, int | None, int | None]:
    """Decode ``lid <L> <W>x<SPEED>`` into (width, speed, ext speed) masks, ``None`` = keep."""
    m = _TAG.match(tail)
    if m is None:
        return None, None, None
    width = _TAG_WIDTH.get(int(m.group(1)))
    token = m.group(2)
    for name, speed, ext in _TAG_SPEEDS:
        if name.startswith(token):
            return width, speed, ext
    return width, None, None


def _quoted(text: str, start: int) -> tuple[str, int] | None:
    """The first double-quoted string at or after ``start``, and the index after it."""
    q1 = text.find('"', start)
    if q1 < 0:
        return None
    q2 = text.find('"', q1 + 1)
    if q2 < 0:
        return None
    return text[q1 + 1:q2], q2 + 1


def _node_description(rest: str) -> tuple[str | None, str | None]:
    """Split the text after a header's id into (description, remainder).

    Same rules as ibsim ``parse_node_desc`` (``sim_net.c:380-401``): the description
    follows ``#``, quoted, or unquoted up to `` enhanced port ``, `` base port ``,
    `` lid `` or `` lmc ``.  Without ``#`` the whole text is the remainder.
    """
    h = rest.find("#")
    if h < 0:
        return None, rest
    s = rest[h + 1:].lstrip()
    if s.startswith('"'):
        e = s.find('"', 1)
        if e < 0:
            return s[1:], None
        return s[1:e], s[e + 1:]
    for keyword in (" enhanced port ", " base port ", " lid ", " lmc "):
        e = s.find(keyword)
        if e >= 0:
            return s[:e], s[e + 1:]
    return s, None


def _lid_lmc(text: str, err: _ErrFactory) -> tuple[int, int]:
    """Preset LID and LMC from the first ``lid N`` / ``lmc M`` (``sim_net.c:444-458``)."""
    lid = lmc = 0
    pos = text.find("lid ")
    if pos >= 0:
        lid = _c_number(text, pos + 4) or 0
        if lid > 0xFFFF:  # PortInfo.LID is 16 bits (libibmad Lid 128/16)
            raise err(f"bad lid {lid}")
    pos = text.find("lmc ")
    if pos >= 0:
        lmc = _c_number(text, pos + 4) or 0
        if lmc > 7:  # PortInfo.LMC is 3 bits (libibmad LMC 277/3)
            raise err(f"bad lmc {lmc}")
    return lid, lmc


def parse_netfile(path: str | os.PathLike[str], *,
                  allow_duplicate_guids: bool = False) -> Topology:
    """Parse the net file at ``path`` (and its includes) into a :class:`Topology`.

    Raises :class:`NetFileError` for a malformed file and ``OSError`` if ``path`` cannot
    be read.
    """
    parser = _Parser(allow_duplicate_guids)
    parser.parse_file(os.fspath(path), None)
    parser.connect_all()
    return parser.topo


def parse_netfile_text(text: str, filename: str = "<netfile>", *,
                       include_dir: str | os.PathLike[str] | None = None,
                       allow_duplicate_guids: bool = False) -> Topology:
    """Parse net-file ``text``; ``filename`` names it in errors.

    ``include`` lines are resolved relative to ``include_dir`` (default: the current
    directory).
    """
    parser = _Parser(allow_duplicate_guids)
    parser.parse_text(text, filename, os.fspath(include_dir) if include_dir else "")
    parser.connect_all()
    return parser.topo


# -- writer -------------------------------------------------------------------------------

_KIND_WORD = {NodeKind.SWITCH: "Switch", NodeKind.CA: "Ca", NodeKind.ROUTER: "Rt"}
_GUID_WORD = {NodeKind.SWITCH: "switchguid", NodeKind.CA: "caguid", NodeKind.ROUTER: "rtguid"}


def _check_text(value: str, what: str) -> None:
    if '"' in value or "\n" in value or "\r" in value:
        raise ValueError(f"{what} {value!r} cannot be written: contains a quote or newline")


def _local_name(node_id: str, prefix: str, current: str) -> str:
    """How to name ``node_id`` (of module ``prefix``) inside module ``current``."""
    if prefix == current:
        return node_id.partition("#")[2] if prefix else node_id
    if prefix:
        return node_id  # "pfx#id" is taken verbatim in any module (``expand_name``)
    raise ValueError(f'node "{node_id}" has no module prefix and cannot be named from '
                     f'inside module "{current}"')


def _link_spec(port: Port, defaults: tuple[int, int, int],
               allow_tag: bool) -> tuple[list[str], str | None]:
    """Options and/or a ``<W>x<SPEED>`` tag that reproduce the port's enabled masks."""
    w, s, e = port.width_enabled, port.speed_enabled, port.ext_speed_enabled
    if not (1 <= w <= 31 and 1 <= s <= 7 and 0 <= e <= 7):
        raise ValueError(f"port {port.number}: enabled masks w={w} s={s} e={e} out of range")
    opts: list[str] = []
    width_tag = _WRITE_WIDTH_TAG.get(w) if allow_tag else None
    if width_tag is not None:
        if s == 0x7 and e in _WRITE_EXT_TAG:
            return opts, f"{width_tag}x{_WRITE_EXT_TAG[e]}"
        if s in _WRITE_SPEED_TAG:
            if e != defaults[2]:
                opts.append(f"e={e}")
            return opts, f"{width_tag}x{_WRITE_SPEED_TAG[s]}"
    for key, value, default in (("w", w, defaults[0]), ("s", s, defaults[1]),
                                ("e", e, defaults[2])):
        if value != default:
            opts.append(f"{key}={value}")
    return opts, None


def format_netfile(topology: Topology) -> str:
    """Write ``topology`` in the net-file grammar, so that parsing the text gives it back.

    Every node gets an explicit GUID base line; links are written on both ends with
    ibnetdiscover-style ``lid <L> <W>x<SPEED>`` tags where a tag can express the enabled
    masks, ``w=``/``s=``/``e=`` options otherwise.  Raises ``ValueError`` for what the
    grammar cannot express (GUIDs not following the ibsim rules, quotes in names, a node
    outside any module cabled to a node inside one).
    """
    out: list[str] = [f"# hcasim net file: {len(topology.nodes)} nodes, "
                      f"{len(topology.links)} links", ""]
    w = out.append
    prefix = ""
    devid = 0
    defaults = (DEFAULT_WIDTH_ENABLED, DEFAULT_SPEED_ENABLED, DEFAULT_EXT_SPEED_ENABLED)
    for node in topology.nodes:
        module = node.module
        local = _local_name(node.id, module, module)
        _check_text(node.id, "node id")
        _check_text(node.description, "description")
        if not local or "#" in local or "@" in local or len(module) > MAX_PREFIX_LEN:
            raise ValueError(f'node id "{node.id}" cannot be written')
        if node.kind is NodeKind.SWITCH:
            bad = [p.number for p in node.ports if p.guid != node.guid]
        else:
            bad = [p.number for p in node.ports if p.guid != (node.guid + p.number) & _U64]
        if bad:
            raise ValueError(f'node "{node.id}": port GUIDs of ports {bad} do not follow '
                             "the net-file rule")
        if module != prefix:
            w(f'module="{module}"')
            prefix = module
        for port in node.ports:
            if (port.lid or port.lmc) and (
                    port.number != 0 if node.kind is NodeKind.SWITCH
                    else port.peer is None or node.kind is NodeKind.ROUTER):
                raise ValueError(f'node "{node.id}" port {port.number}: a preset LID can '
                                 "only be written for switch port 0 or a cabled CA port")
        free = [p for p in node.ports if p.peer is None]
        if free:
            masks = (free[0].width_enabled, free[0].speed_enabled, free[0].ext_speed_enabled)
            if any((p.width_enabled, p.speed_enabled, p.ext_speed_enabled) != masks
                   for p in free):
                raise ValueError(f'node "{node.id}": unconnected ports with different '
                                 "enabled masks cannot be written")
            for word, value, old in zip(("width", "speed", "extspeed"), masks, defaults,
                                        strict=True):
                if value != old:
                    w(f"{word}={value}")
            defaults = masks
        if node.vendor_id:
            w(f"vendid={node.vendor_id:#x}")
        if node.device_id != devid:
            w(f"devid={node.device_id:#x}")
            devid = node.device_id
        if node.system_image_guid != node.guid:
            if node.system_image_guid == 0:
                raise ValueError(f'node "{node.id}": system image GUID 0 cannot be written')
            w(f"sysimgguid={node.system_image_guid:#018x}")
        w(f"{_GUID_WORD[node.kind]}={node.guid:#018x}")
        header = f'{_KIND_WORD[node.kind]}\t{node.num_ports} "{local}"\t# "{node.description}"'
        if node.kind is NodeKind.SWITCH:
            if node.enhanced_port0 is not None:
                header += " enhanced port 0" if node.enhanced_port0 else " base port 0"
            header += f" lid {node.ports[0].lid} lmc {node.ports[0].lmc}"
        w(header)
        for port in node.ports:
            if port.alias is not None:
                alias_prefix, _, alias_name = port.alias.partition("@")
                if alias_prefix != module:
                    raise ValueError(f'alias "{port.alias}" is not in module "{module}"')
                w(f'@[{port.number}]\t"{alias_name}"')
            peer = port.peer
            if peer is None:
                continue
            far = topology.node(peer.node)
            far_lid = far.ports[0].lid if far.kind is NodeKind.SWITCH else far.port(
                peer.port).lid
            opts, tag = _link_spec(port, defaults, node.kind is not NodeKind.ROUTER)
            line = f'[{port.number}]\t"{_local_name(far.id, far.module, module)}"[{peer.port}]'
            if opts:
                line += "\t" + " ".join(opts)
            tail = f"lid {far_lid}" + (f" {tag}" if tag else "")
            if node.kind is NodeKind.CA:
                line += f'\t# lid {port.lid} lmc {port.lmc} "{far.description}" {tail}'
            else:
                line += f'\t# "{far.description}" {tail}'
            w(line)
        w("")
    for command in topology.commands:
        w(f"do {command}")
    return "\n".join(out) + "\n"
