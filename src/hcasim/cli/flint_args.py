"""flint's command line, split and parsed the way mstflint 4.21 does it.

mstflint (Mellanox/mstflint tag v4.21.0-1) parses in three steps, and each step has its
own error texts, so flint follows the same steps rather than a generic parser:

1. ``Flint::parseCmdLine`` (flint/cmd_line_parser.cpp:1402-1543) looks for the command
   word scanning from the end: the leftmost word that names an mstflint command wins, and a
   command with an option-like word after it is refused. Without a command it decides
   between "No options found." and "Invalid command: X" by the argument count of the last
   option (``FlagMetaData``, :158-240).
2. Runs of non-option words before the command are joined with commas, so
   ``-i a b q`` opens the image ``a,b``.
3. The option section goes through ``tools_getopt_long_only`` (cmdparser/my_getopt.c,
   an old GNU getopt: abbreviations, ``-long`` spelling, backquoted messages on stderr
   naming argv[0]) and ``Flint::HandleOption`` (cmd_line_parser.cpp:941-1400).

The option table below is mstflint's (its names, short letters, value names and which
ones the synopsis hides), so that the synopsis printed with usage errors is the one
mstflint builds from it (cmdparser/cmdparser.cpp:177-262, generated here the same way).
"""

from __future__ import annotations

import os
import sys

from hcasim.cli.flint_common import FLINT_FAILED, FLINT_SUCCESS, Options, out


class UsageExit(Exception):
    """Argument parsing ended the run with a status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


#: Every command word mstflint 4.21 (an EXTERNAL build, as Debian's) knows, short and long
#: (``SubCmdMetaData``, cmd_line_parser.cpp:82-124). Commands with no short name register
#: the empty string as one, so an empty argument is a command too (``swreset``: the first).
MSTFLINT_COMMANDS: dict[str, str] = {
    "b": "burn", "burn": "burn", "q": "query", "query": "query", "v": "verify",
    "verify": "verify", "": "swreset", "swreset": "swreset", "reset_cfg": "reset_cfg",
    "brom": "brom", "drom": "drom", "rrom": "rrom", "qrom": "qrom", "bb": "bb", "sg": "sg",
    "sv": "sv", "ri": "ri", "dc": "dc", "dh": "dh", "set_key": "set_key",
    "hw_access": "hw_access", "hw": "hw", "e": "erase", "erase": "erase", "rw": "rw",
    "ww": "ww", "wwne": "wwne", "wbne": "wbne", "wb": "wb", "rb": "rb",
    "clear_semaphore": "clear_semaphore", "fi": "fi", "cs": "checksum",
    "checksum": "checksum", "ts": "timestamp", "timestamp": "timestamp",
    "ci": "cache_image", "cache_image": "cache_image", "sign": "sign",
    "sign_with_hmac": "sign_with_hmac", "extract_fw_data": "extract_fw_data",
    "set_public_keys": "set_public_keys", "set_forbidden_versions": "set_forbidden_versions",
    "ir": "image_reactivation", "image_reactivation": "image_reactivation",
    "bc": "binary_compare", "binary_compare": "binary_compare", "rsa_sign": "rsa_sign",
    "import_hsm_key": "import_hsm_key", "export_public_key": "export_public_key",
}

# mstflint's options in its declaration order (initCmdParser, cmd_line_parser.cpp:542-938):
# long name, short letter (" " for none), value name ("" for a flag), then flags: "h" hidden
# from the synopsis, "i" indented one level in it.
_OPTION_TABLE = (
    ("device", "d", "<device>", ""), ("image", "i", "<image>", ""), ("latest_fw", " ", "", ""),
    ("ir", " ", "", ""), ("help", "h", "", ""), ("hh", " ", "", ""), ("yes", "y", "", ""),
    ("no", " ", "", ""), ("guid", " ", "<GUID>", ""), ("guids", " ", "<GUIDS...>", ""),
    ("mac", " ", "<MAC>", ""), ("macs", " ", "<MACs...>", ""), ("uid", " ", "<UID>", ""),
    ("blank_guids", " ", "", ""), ("clear_semaphore", " ", "", ""), ("qq", " ", "", ""),
    ("low_cpu", " ", "", ""), ("next_boot_fw_ver", " ", "", "h"),
    ("flashed_version", " ", "", ""), ("nofs", " ", "", ""), ("allow_psid_change", " ", "", "h"),
    ("allow_rom_change", " ", "", ""), ("override_cache_replacement", " ", "", ""),
    ("no_flash_verify", " ", "", ""), ("use_fw", " ", "", ""), ("silent", "s", "", ""),
    ("vsd", " ", "<string>", ""), ("use_image_ps", " ", "", ""), ("use_image_guids", " ", "", ""),
    ("use_image_rom", " ", "", ""), ("use_dev_rom", " ", "", ""), ("ignore_dev_data", " ", "", ""),
    ("no_fw_ctrl", " ", "", ""), ("use_dev_img_info", " ", "", "h"),
    ("ignore_crc_check", " ", "", "h"), ("hexdump_format", " ", "", "h"),
    ("dual_image", " ", "", ""), ("striped_image", " ", "", ""), ("banks", " ", "<bank>", ""),
    ("log", " ", "<log_file>", ""),
    ("flash_params", " ", "<type, log2size, num_of_flashes>", ""), ("version", "v", "", ""),
    ("no_devid_check", " ", "", "h"), ("skip_ci_req", " ", "", "h"), ("ocr", " ", "", "h"),
    ("hsm", " ", "", "h"), ("private_key", " ", "<key_file>", ""),
    ("public_key", " ", "<key_file>", ""), ("key_uuid", " ", "<uuid_file>", ""),
    ("private_key2", " ", "<key_file>", ""), ("hmac_key", " ", "<hmac_key>", ""),
    ("key_uuid2", " ", "<uuid_file>", ""), ("psid", " ", "<PSID>", ""),
    ("cc", " ", "<Congestion_Control>", ""), ("linkx", " ", "", ""),
    ("downstream_device_id_start_index", " ", "<downstream_device_id_start_index>", "i"),
    ("num_of_downstream_devices", " ", "<num_of_downstream_devices>", "i"),
    ("linkx_auto_update", " ", "", "i"), ("activate", " ", "", "i"),
    ("activate_delay_sec", " ", "<timeout in seconds>", "i"),
    ("download_transfer", " ", "", "i"), ("downstream_device_ids", " ", "<list of ports>", "i"),
    ("public_key_label", " ", "<string>", ""), ("private_key_label", " ", "<string>", ""),
    ("openssl_engine", " ", "<string>", ""), ("openssl_key_id", " ", "<string>", ""),
    ("output_file", " ", "<string>", ""), ("user_password", " ", "<string>", ""),
    ("cert_chain_index", " ", "<index>", ""),
)

#: How many comma-separated values each option takes (``FlagMetaData``, which lists every
#: option of the table; flash_params counts as one there and as three when its value is
#: checked, cmd_line_parser.cpp:356-360).
_ARG_COUNTS: dict[str, int] = {
    name: 4 if name == "guids" else 2 if name == "macs" else 1 if value else 0
    for name, _short, value, _flags in _OPTION_TABLE
}
#: Options whose value count is not checked (cmd_line_parser.cpp:331-348).
_UNCOUNTED = frozenset({"device", "image", "vsd", "output_file"})

_SHORT = {short: name for name, short, _value, _flags in _OPTION_TABLE if short != " "}
#: getopt's option string: mstflint appends every option's short letter, " " included.
_OPTSTRING = "".join(short + (":" if value else "") for _n, short, value, _f in _OPTION_TABLE)

_SYNOPSIS_WIDTH = 90  # LEFT_STR_MAX_LEN + RIGHT_STR_MAX_LEN (cmdparser.cpp:47-48)
_PREFIX = " " * 8  # PREFIX_SPACE_SIZE


def synopsis() -> str:
    """The NAME and SYNOPSIS sections mstflint prints with a usage error, laid out by the
    rules of ``GetUsageSynopsis`` (greedy lines under 90 columns, spaces between items
    not counted: that is how mstflint counts them)."""
    text = _PREFIX
    line_len = len(_PREFIX)
    for name, short, value, flags in _OPTION_TABLE:
        if "h" in flags:
            continue
        item = "[" + ("    " if "i" in flags else "")
        item += (f"-{short}|" if short != " " else "") + f"--{name}"
        item += (f" {value}" if value else "") + "]"
        if len(item) + line_len < _SYNOPSIS_WIDTH:
            text += (" " if line_len > len(_PREFIX) else "") + item
        else:
            text += "\n" + _PREFIX + item
            line_len = len(_PREFIX)
        line_len += len(item)
    return ("NAME\n    MstFlint - Flash Interface\n\nSYNOPSIS\n"
            "    MstFlint [OPTIONS] <command> [Parameters]\n" + text + "\n\n")


def help_text() -> str:
    """What ``-h`` and ``--hh`` print: the synopsis, then hcasim's own summary of the
    commands it models (mstflint's long descriptions are its own text: docs/flint.md)."""
    return synopsis() + """DESCRIPTION
    hcasim's flint: mstflint 4.21's command line for the simulated ConnectX-3 devices of an
    hcasim lab (run it on a lab host: hcasim exec --host H -- flint ...).

COMMANDS SUMMARY
    q[uery]  [full]                  Query firmware and image information.
    v[erify]                         Verify the whole image or flash.
    b[urn]                           Burn an image (-i) onto a device (-d).
    set_key  [key]                   Set the HW access key (active after a driver restart).
    hw_access <enable|disable> [key] Enable or disable access to the HW.

    Devices are the mst device files of the lab host, e.g. /dev/mst/mt4099_pci_cr0.
"""


def program_name() -> str:
    """argv[0] as the shell gave it, as mstflint's getopt messages print it.

    A script started through a PATH search is handed its full path, which the shell did
    not type: then its base name is what the user typed. Run as ``python -m``, "flint".
    """
    path = sys.argv[0] if sys.argv and sys.argv[0] else "flint"
    if path.endswith(".py") or path == "-m":
        return "flint"
    directory, base = os.path.split(path)
    if directory and directory in os.environ.get("PATH", "").split(os.pathsep):
        return base
    return path


def _is_flag(word: str) -> bool:
    # IS_NUM test of parseCmdLine: "-5" is a value, "-" alone is an option word.
    return word.startswith("-") and not (len(word) > 1 and word[1] in "0123456789")


def _strip_flag(word: str) -> str:
    return word[2:] if word.startswith("--") else word[1:]


def _usage_error(prefix: str, desc: str = "") -> UsageExit:
    """PARSE_ERROR_SHOW_USAGE: ``prefix``, the synopsis, then ``-E- desc`` if any."""
    out(prefix + synopsis() + (f"-E- {desc}\n" if desc else ""))
    return UsageExit(FLINT_FAILED)


def parse_args(argv: list[str], prog: str = "flint") -> Options:
    """Parse flint's command line as mstflint's ``parseCmdLine`` does (module docstring);
    print its error and raise :class:`UsageExit` where it stops."""
    args = [prog, *argv]
    cmd_at = 0
    saw_flag = False
    for k in range(len(args) - 1, 0, -1):
        if args[k] in MSTFLINT_COMMANDS:
            if saw_flag:
                raise _usage_error("Specifying options flags after command is not allowed.\n\n")
            cmd_at = k
        elif _is_flag(args[k]):
            saw_flag = True
    section = args[1:cmd_at] if cmd_at else args[1:]
    joined: list[str] = []
    run: list[str] | None = None
    for word in section:
        if _is_flag(word):
            joined.append(word)
            run = None
        elif run is None:
            run = [word]
            joined.append(word)
        else:
            run.append(word)
            joined[-1] = ",".join(run)
    opts = Options()
    if cmd_at:
        opts.command = MSTFLINT_COMMANDS[args[cmd_at]]
        opts.params = args[cmd_at + 1:]
    else:
        last = max((k for k in range(1, len(args)) if _is_flag(args[k])), default=0)
        if last == 0:
            out("No options found. \n")
            raise UsageExit(FLINT_FAILED)
        stripped = _strip_flag(args[last])
        # FlagMetaData matches short names too, and most options have "" as theirs: "-"
        # and "--" find the first of those, guid, which takes one value.
        count = 1 if stripped == "" else _ARG_COUNTS.get(_SHORT.get(stripped, stripped), -1)
        if len(args) - 1 - last > count:
            raise _usage_error(f"Invalid command: {args[-1]}\n")
    _getopt(joined, prog, opts)
    if opts.command is None:
        out("No command found.\n")
        raise UsageExit(FLINT_FAILED)
    return opts


def _getopt(words: list[str], prog: str, opts: Options) -> None:
    """The option section through getopt_long_only and HandleOption, in order."""
    names = [name for name, _s, _v, _f in _OPTION_TABLE]
    takes_value = {name: bool(value) for name, _s, value, _f in _OPTION_TABLE}
    nonopts: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            nonopts += words[i:]
            break
        if not word.startswith("-") or word == "-":
            nonopts.append(word)  # permuted to the end, reported after the options
            continue
        long_form = word.startswith("--")
        rest = word[2:] if long_form else word[1:]
        # getopt_long_only tries the long options first for any word longer than "-X"
        # (or whose letter is no short option), and again for what follows each short
        # option of a cluster: "-yy" is -y --yes, and "-ya" is -y then "a", the start of
        # four long options, hence ambiguous (my_getopt.c:650-790).
        try_long = long_form or len(rest) > 1 or rest[0] not in _OPTSTRING
        while rest:
            if try_long:
                key, eq, inline = rest.partition("=")
                matches = [n for n in names if n.startswith(key)]
                exact = key in names
                if len(matches) > 1 and not exact:
                    sys.stderr.write(f"{prog}: option `{word}' is ambiguous\n")
                    raise _usage_error("", "Bad input parameter")
                if matches:
                    name = key if exact else matches[0]
                    if eq:
                        if not takes_value[name]:
                            dash = "--" if long_form else "-"
                            sys.stderr.write(f"{prog}: option `{dash}{name}' doesn't allow "
                                             "an argument\n")
                            raise _usage_error("", "Bad input parameter")
                        value = inline
                    elif takes_value[name]:
                        if i >= len(words):
                            sys.stderr.write(f"{prog}: option `{word}' requires an "
                                             "argument\n")
                            raise _usage_error("", "Bad input parameter")
                        value = words[i]
                        i += 1
                    else:
                        value = ""
                    _handle(name, value, opts)
                    break
                if long_form or rest[0] not in _OPTSTRING:
                    dash = "--" if long_form else "-"
                    sys.stderr.write(f"{prog}: unrecognized option `{dash}{rest}'\n")
                    raise _usage_error("", "Bad input parameter")
            # One short option; a value is the rest of the word or the next word.
            c, rest = rest[0], rest[1:]
            if c not in _SHORT:
                sys.stderr.write(f"{prog}: invalid option -- {c}\n")
                raise _usage_error("", "Bad input parameter")
            name = _SHORT[c]
            if not takes_value[name]:
                _handle(name, "", opts)
                continue
            if rest:
                value, rest = rest, ""
            elif i < len(words):
                value = words[i]
                i += 1
            else:
                sys.stderr.write(f"{prog}: option requires an argument -- {c}\n")
                raise _usage_error("", "Bad input parameter")
            _handle(name, value, opts)
    if nonopts:
        out("-E- Found some non-option ARGV-elements " + "".join(w + " " for w in nonopts)
            + "\n")
        raise UsageExit(FLINT_FAILED)


_GUID_OPTIONS = frozenset({"guid", "guids", "mac", "macs", "uid"})
_HEX = "0123456789abcdefABCDEF"


def _guid_syntax_error(text: str) -> str | None:
    """What ``getGUIDFromStr`` (cmd_line_parser.cpp:416-436) prints for a GUID, MAC or UID
    it refuses (strtoull base 16: trailing characters, or past 64 bits, when it adds
    strerror(ERANGE)); None for one it takes."""
    from hcasim.devices.hw_key import parse_key  # the same strtoull rules, for keys

    if parse_key(text) is not None:
        return None
    digits = text.lstrip(" \t\n\v\f\r").lstrip("+-")
    if digits[:2] in ("0x", "0X") and digits[2:3] and digits[2] in _HEX:
        digits = digits[2:]
    run = digits[:len(digits) - len(digits.lstrip(_HEX))]
    overflow = bool(run) and int(run, 16) >> 64 != 0
    return (f"-E- Invalid Guid/Mac/Uid syntax ({text}) "
            f"{'Numerical result out of range' if overflow else ''} \n")


def _strtoul_takes_all(text: str) -> bool:
    """Whether strtoul(text, &end, 0) ends on the string's end (``strToNum``,
    cmd_line_parser.cpp:401-413): an optional sign, then 0x hex, 0 octal or decimal; the
    empty string converts nothing and ends there."""
    if text == "":
        return True
    body = text.lstrip(" \t\n\v\f\r")
    body = body[1:] if body[:1] in ("+", "-") else body
    if body[:2] in ("0x", "0X") and body[2:3] and body[2] in _HEX:
        digits, body = _HEX, body[2:]
    elif body[:1] == "0":
        digits = "01234567"
    else:
        digits = "0123456789"
    return body != "" and body.lstrip(digits) == ""


def _handle(name: str, value: str, opts: Options) -> None:
    """``Flint::HandleOption`` for one option (cmd_line_parser.cpp:941-1400)."""
    if name not in _UNCOUNTED:
        expected = 3 if name == "flash_params" else _ARG_COUNTS[name]
        actual = value.count(",") + 1 if value else 0
        if actual != expected and not (name == "downstream_device_ids" and actual >= 1):
            more = "many" if actual > expected else "few"
            if name == "downstream_device_ids":
                out(f"Too few arguments. Expected at least: 1 , Received: {actual}\n")
            else:
                out(f"Too {more} arguments. Expected: {expected} , Received: {actual}\n")
            out(f"-E- Failed to handle option {name}\n")
            raise UsageExit(FLINT_FAILED)
    if name in _GUID_OPTIONS:
        for one in value.split(",") if name in ("guids", "macs") else [value]:
            problem = _guid_syntax_error(one)
            if problem is not None:
                out(problem)
                out(f"-E- Failed to handle option {name}\n")
                raise UsageExit(FLINT_FAILED)
    if name == "banks" and not _strtoul_takes_all(value):
        out("-E- Failed to handle option banks\n")
        raise UsageExit(FLINT_FAILED)
    if name in ("help", "hh"):
        out(help_text())
        raise UsageExit(FLINT_SUCCESS)
    if name == "version":
        # print_version_string(FLINT_NAME, "") of a Debian build (tools_version.h).
        out("mstflint, mstflint 4.21.0, Git SHA Hash: N/A\n")
        raise UsageExit(FLINT_SUCCESS)
    if name == "device":
        opts.device = value
    elif name == "image":
        opts.image = value
    elif name == "qq":
        opts.quick = True
    elif name in ("yes", "no", "allow_psid_change", "silent", "nofs"):
        setattr(opts, name, True)
    else:
        # Burn and signing options hcasim does not model: taken, with no effect
        # (docs/flint.md).
        opts.other[name] = value
