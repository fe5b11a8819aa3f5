"""hcasim's flint against the installed mstflint 4.21, over generated cases: stdout, stderr
and exit status byte for byte.

Four groups, generated from one seed so that every run checks the same cases:

* command lines: random runs of options (known, abbreviated, unknown, with and without
  values, ``--``), command words and parameters, on an image or a device that is absent;
* images: built images of several versions, PSIDs and devices, then mutated (bytes
  flipped, header dwords overwritten, truncated, padded) and files that are no image at
  all, each queried and verified;
* a device: node1's ConnectX-3 in each secure-host state (no key, a key on flash, locked,
  enabled), queried, verified, keyed, locked and unlocked (keys given and typed at the
  prompt), and burnt with images that ask every burn question, in every state; its
  flash holding PSIDs and VSDs that are no text, or mutated images; device names mtcr
  parses or refuses. Both tools run locally on node1 with the same ``-d 01:00.0`` (the
  real mstflint through the PCI preload), so their output is compared as it is.
* the device by other names: hcasim's flint by its mst device file against the real tool
  by PCI address and in-band from node2 (``-d lid-N``); only there is the name each echoes
  put in place of the other's.

The real tool runs with argv[0] "flint" for the command lines and images (getopt's
messages name it). Differences that remain are the ones docs/flint.md lists.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcasim.devices import fs2
from hcasim.testing import LabHandle, running_lab
from tests.support.flint import CX3, KEY, MSTFLINT, Cx3State, run_as_flint, run_our_flint
from tests.support.verbs_clients import build_preload

SEED = 11
MISSING = "99:00.0"

pytestmark = pytest.mark.skipif(
    not os.path.exists(MSTFLINT), reason="the mstflint package is not installed"
)


def build(version: tuple[int, int, int] = (2, 42, 5000), *, psid: str = "MT_1090120019",
          device_id: int = 4099, secure: bool = True) -> bytes:
    return fs2.build_image(device_id=device_id, fw_version=version, psid=psid,
                           release_date=(5, 9, 2017), guid_base=0x0002C90300A1B220,
                           cr_protection_en=secure)


# ------------------------------------------------------------------ command lines
_OPTION_WORDS = [
    ["-i", "IMG"], ["--image", "IMG"], ["--image=IMG"], ["-image", "IMG"], ["-iIMG"],
    ["-d", MISSING], ["--device", MISSING], ["-device", MISSING], ["--dev", MISSING],
    ["--device=" + MISSING], ["-d", "x"], ["--device", "01:00"], ["-d", "0:99:0.0"],
    ["-y"], ["--yes"], ["--no"], ["-qq"], ["--qq"], ["-q"], ["-s"], ["--silent"],
    ["--low_cpu"], ["--use_fw"], ["--nofs"], ["-nofs"], ["--flashed_version"],
    ["--striped_image"], ["--allow_psid_change"], ["--log", "LOG"], ["--vsd", "v s d"],
    ["--banks", "1"], ["--banks", "zz"], ["--guids", "1", "2"], ["--guid", "zz"],
    ["--guid", "1ffffffffffffffff"], ["--macs", "1", "x"], ["--uid", "0x12"], ["-v"],
    ["--ocr"], ["--override_cache_replacement"], ["--activate"], ["--use_image_guids"],
    ["--blank_guids"], ["--ignore_dev_data"], ["--guid", "1"], ["--use_dev_rom"],
    ["-yy"], ["-ya"], ["-sy"], ["-ys"], ["-yqq"], ["-yi", "IMG"], ["-yiIMG"], ["-si"],
    ["--version"], ["-h"], ["--hh"], ["--foo"], ["-z"], ["--d", MISSING], ["-n"],
    ["--yes=1"], ["--ima"], ["--image"], ["-i"], ["--"], ["-"], ["-5"], ["--psid="],
]
_COMMAND_WORDS = [["q"], ["query"], ["v"], ["verify"], ["b"], ["burn"], ["set_key"],
                  ["hw_access"], ["Q"], ["foo"], ["q", "full"], ["v", "showitoc"],
                  ["hw_access", "enable"], ["hw_access", "disable", "1"], ["set_key", "zz"],
                  ["set_key", "1234"], ["b", "extra"]]
_PARAM_WORDS = [["full"], ["extra"], ["-y"], ["-5"], ["1234"], ["x"], ["--no"]]


def command_lines(rng: random.Random, count: int) -> list[list[str]]:
    """Random command lines: options, then maybe a command, then maybe more words."""
    cases: list[list[str]] = [[], ["q"], ["-i", "IMG"], ["IMG"], ["--"], ["-i", "IMG", "x"],
                              ["-d"], ["-i", "IMG", "-d"], ["q", "-d"],
                              ["-s", "-d", MISSING, "q"], ["-s", "-d", MISSING, "v"]]
    while len(cases) < count:
        words: list[str] = []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            words += rng.choice(_OPTION_WORDS)
        if rng.random() < 0.85:
            words += rng.choice(_COMMAND_WORDS)
        if rng.random() < 0.25:
            words += rng.choice(_PARAM_WORDS)
        if rng.random() < 0.15 and words:
            # A stray option word anywhere; after a device option it becomes the device's
            # name, which mtcr parses or refuses (docs/flint.md, section 1).
            stray = rng.choice([w[0] for w in _OPTION_WORDS])
            words.insert(rng.randrange(len(words) + 1), stray)
        cases.append(words)
    return cases


def help_synopsis(stdout: bytes) -> bytes:
    # NAME and SYNOPSIS: everything up to the first blank line after SYNOPSIS.
    head, _, rest = stdout.partition(b"SYNOPSIS\n")
    return head + b"SYNOPSIS\n" + rest.split(b"\n\n", 1)[0]


def assert_same(real: tuple[int, bytes, bytes], ours: tuple[int, bytes, bytes],
                what: object) -> None:
    if real[0] == 0 and real[1].startswith(b"NAME\n"):
        # -h / --hh: the synopsis is mstflint's, the help after it hcasim's own
        # (docs/flint.md, "Help text").
        assert (ours[0], ours[2], help_synopsis(ours[1])) == \
            (real[0], real[2], help_synopsis(real[1])), what
        return
    assert ours == real, what


def test_command_lines(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(build())
    rng = random.Random(SEED)
    failures = []
    for words in command_lines(rng, 160):
        argv = [str(image) if w == "IMG" else w for w in words]
        real = run_as_flint(argv, cwd=str(tmp_path))
        ours = run_our_flint(argv, cwd=str(tmp_path), env=_no_lab_env())
        try:
            assert_same(real, ours, argv)
        except AssertionError:
            failures.append((argv, real, ours))
    assert not failures, failures[:3]


#: mstflint's commands that hcasim does not model, by the words that name them. Both tools
#: check their arguments and targets the same way before running one (docs/flint.md).
OTHER_COMMANDS = ["", "swreset", "reset_cfg", "brom", "drom", "rrom", "qrom", "bb", "sg",
                  "sv", "ri", "dc", "dh", "hw", "e", "erase", "rw", "ww", "wwne", "wbne",
                  "wb", "rb", "clear_semaphore", "fi", "cs", "ts", "ci", "sign",
                  "sign_with_hmac", "extract_fw_data", "set_public_keys",
                  "set_forbidden_versions", "ir", "bc", "rsa_sign", "import_hsm_key"]


def test_other_commands_checked_as_mstflint_checks_them(tmp_path: Path) -> None:
    failures = []
    for word in OTHER_COMMANDS:
        shapes = [[word], [word, "a", "b", "c", "d"], ["-i", "IMG", word, "a", "b", "c", "d"]]
        if word != "wbne":  # takes any number of words: it would go on to open the device
            shapes.append(["-d", MISSING, word, "a", "b", "c", "d"])
        if word not in ("bb", "bc"):  # these two go on to run with both given
            shapes.append(["-i", "IMG", "-d", MISSING, word])
        for words in shapes:
            argv = [str(tmp_path / "x.bin") if w == "IMG" else w for w in words]
            real = run_as_flint(argv, cwd=str(tmp_path))
            ours = run_our_flint(argv, cwd=str(tmp_path), env=_no_lab_env())
            if ours != real:
                failures.append((argv, real, ours))
    assert not failures, failures[:3]


def _no_lab_env() -> dict[str, str]:
    # Outside any lab host: no device can open, as for the real tool on this machine.
    return {k: v for k, v in os.environ.items()
            if k not in ("HCASIM_HOST", "HCASIM_SOCKET", "HCASIM_HOME")}


# ------------------------------------------------------------------ images
_INTERESTING = (0, 1, 0xFFFFFFFF, 0x80000001, 0xFF00000A, 0x40000000, 0x7FFFFFFF, 13, 0x10000,
                0x00000006, 0x0000000A, 0xFFFF)


def images(rng: random.Random, count: int) -> Iterator[tuple[str, bytes]]:
    """Built images, their mutations, and files that are no image."""
    bases = [
        build(), build((2, 40, 7000), secure=False), build((2, 42, 5100), device_id=4103),
        build((3, 1, 200)), build((0, 0, 0)), build((2, 100, 9)),
        fs2.with_image_info_tag(build(), fs2.TAG_PSID, b"MT\xe9\xff_X".ljust(16, b"\0")),
        fs2.with_image_info_tag(build(), fs2.TAG_VSD, b"v\x80\xc3\xa9sd".ljust(208, b"\0")),
        fs2.with_image_info_tag(build(), fs2.TAG_PSID, bytes(16)),
    ]
    for n, base in enumerate(bases):
        yield f"base{n}", base
    for name, data in (("empty", b""), ("four", b"\0\0\0\0"), ("short", bytes(0x24)),
                       ("odd", b"abc"), ("text", b"hello world, not an image\n\0\0"),
                       ("random", rng.randbytes(256))):
        yield name, data
    n = 0
    while n < count:
        data = bytearray(rng.choice(bases))
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            at = rng.randrange(0, len(data) - 4, 4)
            data[at:at + 4] = rng.choice(_INTERESTING).to_bytes(4, "big")
        elif kind == 2:
            del data[rng.randrange(len(data)):]
        else:
            data += rng.randbytes(rng.choice((4, 8, 64, 3)))
        n += 1
        yield f"mut{n}", bytes(data)


def test_images(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    failures = []
    for name, data in images(rng, 60):
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        commands = [["q"], ["v"]] if name.startswith("mut") else [["q"], ["-qq", "q"], ["v"],
                                                                 ["q", "full"]]
        if not name.startswith("mut") or int(name[3:]) <= 20:
            commands.append(["-d", MISSING, "-y", "b"])  # the image is queried first
        for command in commands:
            argv = ["-i", str(path), *command]
            real = run_as_flint(argv)
            ours = run_our_flint(argv, env=_no_lab_env())
            if ours != real:
                failures.append((argv, real, ours))
    for special in ("/dev/null", "/dev/zero", str(tmp_path)):
        argv = ["-i", special, "q"]
        real, ours = run_as_flint(argv), run_our_flint(argv, env=_no_lab_env())
        if ours != real:
            failures.append((argv, real, ours))
    assert not failures, failures[:3]


# ------------------------------------------------------------------ a device
#: node1's ConnectX-3 by PCI address: the name both tools are given on the local path
#: (hcasim's flint takes every name mstflint's mtcr parses, docs/flint.md section 1).
PCI = "01:00.0"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabHandle, int]]:
    if shutil.which("opensm") is None:
        pytest.fail("opensm is not installed (make install-debs)")
    build_preload()  # libhcapci.so: the real mstflint's local path (preload/hcapci.c)
    with running_lab(tmp_path_factory.mktemp("flint-diff") / "home") as handle:
        assert handle.hcasim("sm", "start").returncode == 0  # for the in-band cases
        shown = json.loads(handle.hcasim("driver", "show", "node1", "--json").stdout)
        yield handle, int(shown["devices"][0]["port"]["lid"])


#: (state, command words, typed input) run by both tools from the same device state.
_STATES = ("clean", "keyed", "locked", "enabled")
DEVICE_CASES: list[tuple[str, list[str], str]] = [
    (state, words, "")
    for state in _STATES
    for words in (["q"], ["-qq", "q"], ["v"], ["q", "full"], ["hw_access", "disable"],
                  ["hw_access", "enable", KEY], ["hw_access", "enable", "1234"],
                  ["set_key", "1234"])
] + [
    # keys typed at the prompt: good, bad, mismatched, edited, in every state
    ("clean", ["set_key"], "zz\n1234\n"), ("clean", ["set_key"], "1234\n1235\n"),
    ("clean", ["set_key"], "\n"), ("clean", ["set_key"], "12\x7f3\n13\n"),
    ("keyed", ["set_key"], f"{KEY}\n{KEY}\n"), ("locked", ["set_key"], f"{KEY}\n{KEY}\n"),
    ("enabled", ["set_key"], "0\n0\n"), ("enabled", ["set_key"], KEY + "ff\n"),
    ("locked", ["hw_access", "enable"], KEY + "\n"), ("locked", ["hw_access", "enable"], "\n"),
    ("locked", ["hw_access", "enable"], "nothex\n"),
    ("locked", ["hw_access", "enable"], KEY.upper() + "\n"),
    ("locked", ["hw_access", "enable"], "0x" + KEY + "\n"),
    ("clean", ["hw_access", "enable"], KEY + "\n"),
    ("enabled", ["hw_access", "enable"], "2b2b2b2b1a1a1a1a\n"),
    # keys given on the command line: malformed, out of range; missing and bad words
    ("locked", ["hw_access", "enable", "zz"], ""),
    ("locked", ["hw_access", "enable", KEY + "2b"], ""), ("clean", ["set_key", "0x12"], ""),
    ("clean", ["set_key", KEY + "2"], ""), ("locked", ["hw_access"], ""),
    ("locked", ["hw_access", "foo"], ""),
    # silent, and a word q does not take
    ("locked", ["-s", "q"], ""), ("clean", ["-s", "set_key", "12"], ""),
    ("locked", ["q", "x"], ""),
]


def burn_image(name: str) -> bytes:
    new = build((2, 42, 5100))
    if name == "corrupt":
        data = bytearray(new)
        data[len(data) // 2] ^= 0xFF
        return bytes(data)
    return {
        "old": lambda: build((2, 40, 7000)), "new": lambda: new, "same": lambda: build(),
        "zero": lambda: build((0, 0, 0)), "newer-format": lambda: build((2, 100, 1)),
        "psid": lambda: build(psid="MT_0000000001"),
        "pro": lambda: build(device_id=4103, psid="MT_1090111023"),
        "pro-same-psid": lambda: build((2, 42, 5100), device_id=4103),
        "no-psid": lambda: fs2.with_image_info_tag(new, fs2.TAG_PSID, bytes(16)),
        "connect-ib": lambda: fs2.with_image_info_tag(new, fs2.TAG_DEVICE_TYPE,
                                                      (4113).to_bytes(4, "big")),
        "unknown-device": lambda: fs2.with_image_info_tag(new, fs2.TAG_DEVICE_TYPE,
                                                          (4200).to_bytes(4, "big")),
        "short": lambda: new[:0x40],
        "insecure": lambda: build((2, 42, 5100), secure=False),
    }[name]()


#: (device state, image, flags, typed input): every burn question, and burns on a device
#: that is keyed, locked (refused) and enabled (the seed's burn while secure).
BURNS: list[tuple[str, str, list[str], str]] = [
    ("clean", image, flags, typed) for image, flags, typed in (
        ("old", ["--no"], ""), ("old", [], "n\n"), ("old", [], "y\ny\n"),
        ("new", ["-y"], ""), ("new", ["--no"], ""), ("same", [], "yes\nn\n"),
        ("zero", ["-y"], ""), ("newer-format", ["-y"], ""), ("psid", ["-y"], ""),
        ("pro", ["-y", "--allow_psid_change"], ""), ("no-psid", ["-y"], ""),
        ("connect-ib", ["-y"], ""), ("unknown-device", ["-y"], ""), ("corrupt", ["-y"], ""),
        ("short", ["-y"], ""), ("new", ["-y", "--nofs"], ""), ("old", ["-s", "--no"], ""))
] + [
    ("locked", "new", ["-y"], ""), ("locked", "new", ["-s", "-y"], ""),
    ("enabled", "new", ["-y"], ""), ("enabled", "insecure", [], "y\n"),
    ("keyed", "new", ["-y"], ""), ("keyed", "psid", ["-y"], ""),
]


def flash_contents(count: int) -> Iterator[tuple[str, bytes]]:
    """What the device's flash may hold that a burn of a checked image would not leave,
    written over the flash of the running device: PSID and VSD bytes that are no text, no
    PSID, and ``count`` mutants of a good image (dwords overwritten, bits flipped,
    truncated, padded)."""
    base = build()
    yield "psid-bytes", fs2.with_image_info_tag(base, fs2.TAG_PSID,
                                                b"MT\xe9\xff_X".ljust(16, b"\0"))
    yield "vsd-bytes", fs2.with_image_info_tag(base, fs2.TAG_VSD,
                                               b"v\x80\xc3\xa9sd".ljust(208, b"\0"))
    yield "no-psid", fs2.with_image_info_tag(base, fs2.TAG_PSID, bytes(16))
    rng = random.Random(SEED + 2)
    for n in range(count):
        data = bytearray(base)
        if n % 4 == 1:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif n % 4 == 2:
            del data[rng.randrange(len(data)):]
        elif n % 4 == 3:
            data += rng.randbytes(rng.choice((4, 8, 64, 3)))
        else:
            at = rng.randrange(0, len(data) - 4, 4)
            data[at:at + 4] = rng.choice(_INTERESTING).to_bytes(4, "big")
        yield f"mut{n}", bytes(data)


#: The commands that may change the device (and hw_access enable is one).
_CHANGING = frozenset({"set_key", "hw_access", "b", "burn"})


def run_both(lab: LabHandle, state: Cx3State, name: str, words: list[str], typed: str, *,
             ours_dev: str = PCI, theirs_dev: str = PCI, host: str = "node1",
             flash: bytes | None = None, enter: bool = True) -> \
        tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Put the device into state ``name`` (and ``flash`` on its flash; not with ``enter``
    false: it is there already), run the real mstflint on ``host`` with ``theirs_dev``;
    again, and hcasim's flint on node1."""
    if enter:
        state.enter(name, flash)
    real = lab.run(host, MSTFLINT, "-d", theirs_dev, *words, input=typed)
    if any(w in _CHANGING for w in words):
        state.enter(name, flash)  # q and v change nothing: no need to reset for those
    ours = lab.flint("node1", "-d", ours_dev, *words, input=typed)
    return real, ours


def compare_on_device(lab: LabHandle, state: Cx3State, name: str, words: list[str],
                      typed: str, *, flash: bytes | None = None) -> None:
    """Both tools locally on node1, both given the PCI address: no name to put in place."""
    real, ours = run_both(lab, state, name, words, typed, flash=flash)
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (real.returncode, real.stdout, real.stderr), (name, words, typed)


@pytest.fixture
def state(lab: tuple[LabHandle, int]) -> Cx3State:
    return Cx3State(str(lab[0].home / "hcasim.sock"), build())


@pytest.mark.parametrize(("name", "words", "typed"), DEVICE_CASES,
                         ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_device(lab, state, name, words, typed):  # type: ignore[no-untyped-def]
    compare_on_device(lab[0], state, name, words, typed)


@pytest.mark.parametrize(("name", "image", "flags", "typed"), BURNS,
                         ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_burn(lab, state, tmp_path, name, image, flags, typed):  # type: ignore[no-untyped-def]
    path = tmp_path / f"{image}.bin"
    path.write_bytes(burn_image(image))
    compare_on_device(lab[0], state, name, ["-i", str(path), *flags, "b"], typed)


def test_flash_contents(lab, state, tmp_path):  # type: ignore[no-untyped-def]
    """The device's flash holding what no burn would write: q and v read it as it is."""
    new = tmp_path / "new.bin"
    new.write_bytes(burn_image("new"))
    failures = []
    for name, data in flash_contents(8):
        burns: list[tuple[list[str], str]] = [(["-y"], "")]
        if name in ("mut1", "mut2", "mut6"):  # a flash q cannot read: --nofs asks for GUIDs
            burns.append((["--nofs", "-y"], ""))
        elif not name.startswith("mut"):
            burns += [([], "y\n"), (["--use_image_ps", "-y"], "")]
        cases = [(["q"], ""), (["v"], "")] + \
            [(["-i", str(new), *flags, "b"], typed) for flags, typed in burns]
        for n, (words, typed) in enumerate(cases):
            # q and v change nothing: the two share one reset
            real, ours = run_both(lab[0], state, "clean", words, typed, flash=data,
                                  enter=n != 1)
            if (ours.returncode, ours.stdout, ours.stderr) != \
                    (real.returncode, real.stdout, real.stderr):
                failures.append((name, words, real, ours))
    assert not failures, failures[:2]


#: Names mstflint's mtcr parses (or refuses), on node1 (docs/flint.md, "Device names").
DEVICE_NAMES = ["0000:01:00.0", "0:1:0.0", " 01:00.0x", "01:00.1", "x", "/dev/null"]


def test_device_names(lab, state, tmp_path):  # type: ignore[no-untyped-def]
    """Each name with commands that fail on the locked device and so change nothing: the
    device is locked once, and checked still locked at the end."""
    handle = lab[0]
    new = tmp_path / "new.bin"
    new.write_bytes(burn_image("new"))
    state.enter("locked")
    failures = []
    for dev in DEVICE_NAMES:
        for words in (["-s", "v"], ["set_key", "1234"], ["-i", str(new), "-y", "b"])[
                :3 if dev in ("x", "0:1:0.0") else 2]:
            real = handle.run("node1", MSTFLINT, "-d", dev, *words)
            ours = handle.flint("node1", "-d", dev, *words)
            if (ours.returncode, ours.stdout, ours.stderr) != \
                    (real.returncode, real.stdout, real.stderr):
                failures.append((dev, words, real, ours))
    assert not failures, failures[:2]
    assert handle.device_state("node1")["cr_space_locked"] is True


#: Cases where each tool is given its own name for the device: hcasim's flint its mst
#: device file, which this mstflint cannot parse; the real one the PCI address in-band's
#: ``lid-N``. Each is run again by the other name.
NAMED_CASES: list[tuple[str, list[str], str]] = [
    ("clean", ["q"], ""), ("locked", ["-qq", "q"], ""), ("locked", ["set_key", "1234"], ""),
    ("locked", ["hw_access", "enable"], "1234\n"),
]


@pytest.mark.parametrize(("name", "words", "typed"), NAMED_CASES,
                         ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_device_by_other_names(lab, state, name, words, typed):  # type: ignore[no-untyped-def]
    """mstflint locally by PCI address and in-band from node2 by ``lid-N``, against flint by
    its mst device file: each prints the name it was given where it echoes the device, so
    the test compares with that name put in place of the other's, and nothing else."""
    handle, lid = lab
    for host, theirs in (("node1", PCI), ("node2", f"lid-{lid}")):
        real, ours = run_both(handle, state, name, words, typed, ours_dev=CX3,
                              theirs_dev=theirs, host=host)
        expected = (real.returncode, real.stdout.replace(theirs, CX3),
                    real.stderr.replace(theirs, CX3))
        assert (ours.returncode, ours.stdout, ours.stderr) == expected, (host, words, typed)
