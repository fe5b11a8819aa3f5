"""Every flow of the Secure Host seed, end to end: real daemon, flint as a subprocess."""

from __future__ import annotations

from tests.support.flint import (
    CX3,
    CX3_CONF,
    CX3PRO,
    ENABLED,
    KEY,
    SET_KEY_OUTPUT,
    WRONG_KEY,
    locked_access_error,
    locked_query_error,
    rendered,
)


def state(lab, host="node1"):  # type: ignore[no-untyped-def]
    s = lab.device_state(host)
    return (s["key_on_flash"], s["key_active"], s["cr_space_locked"], s["smp_firewall"])


def activate(lab, host="node1", key=KEY):  # type: ignore[no-untyped-def]
    r = lab.flint(host, "-d", CX3, "set_key", key)
    assert (r.returncode, r.stdout) == (0, SET_KEY_OUTPUT)
    lab.restart_driver(host)


def test_set_key_needs_cr_protection_en(lab):  # type: ignore[no-untyped-def]
    for host, dev in (("sm", CX3), ("node3", CX3PRO)):
        r = lab.flint(host, "-d", dev, "set_key", KEY)
        assert r.returncode == 1
        assert r.stdout == (
            "-E- Failed to set the HW access key: The image does not support this operation.\n"
        )
        assert r.stderr == ""
        assert state(lab, host) == (False, False, False, False)


def test_key_activates_on_driver_restart_and_locks(lab):  # type: ignore[no-untyped-def]
    r = lab.flint("node1", "-d", CX3, "set_key", KEY)
    assert (r.returncode, r.stdout, r.stderr) == (0, SET_KEY_OUTPUT, "")
    assert rendered(r.stdout).startswith("Setting the HW Key   - OK  \nRestoring signature  - OK\n")
    # Not active yet: the device still answers.
    assert state(lab) == (True, False, False, False)
    assert lab.flint("node1", "-d", CX3, "-qq", "q").returncode == 0
    lab.restart_driver("node1")
    assert state(lab) == (True, True, True, True)
    for dev in (CX3, CX3_CONF):
        r = lab.flint("node1", "-d", dev, "-qq", "q")
        assert (r.returncode, r.stdout) == (1, locked_query_error(dev))
    r = lab.flint("node1", "-d", CX3, "set_key", "1234")
    assert (r.returncode, r.stdout) == (1, locked_access_error(CX3))
    # The other secure node is untouched.
    assert state(lab, "node2") == (False, False, False, False)


def test_host_reboot_comes_back_secure(lab):  # type: ignore[no-untyped-def]
    activate(lab)
    lab.reboot("node1")
    assert state(lab) == (True, True, True, True)
    assert lab.flint("node1", "-d", CX3, "-qq", "q").stdout == locked_query_error(CX3)


def test_temporary_enable_survives_driver_restart_and_reboot_relocks(lab):  # type: ignore[no-untyped-def]
    activate(lab)
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY)
    assert (r.returncode, r.stdout) == (0, ENABLED)
    # The temporary enable does not affect the SMP firewall.
    assert state(lab) == (True, True, False, True)
    q = lab.flint("node1", "-d", CX3, "-qq", "q")
    assert q.returncode == 0 and "HW Access Key:         Enabled\n" in q.stdout
    # "the driver restart will NOT do so": still unlocked, firewall still on.
    lab.restart_driver("node1")
    assert state(lab) == (True, True, False, True)
    # "A host reboot will restore hardware access (with SMP firewall active)."
    lab.reboot("node1")
    assert state(lab) == (True, True, True, True)


def test_enable_interactive_prompt_and_disable(lab):  # type: ignore[no-untyped-def]
    activate(lab)
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", input=KEY + "\n")
    assert (r.returncode, r.stdout) == (0, "Enter Key : " + "*" * 16 + "\n" + ENABLED)
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable")
    assert (r.returncode, r.stdout) == (0, "-I- HW access already enabled\n")
    r = lab.flint("node1", "-d", CX3, "hw_access", "disable")
    assert (r.returncode, r.stdout) == (0, "")
    assert state(lab) == (True, True, True, True)
    r = lab.flint("node1", "-d", CX3, "hw_access", "disable")
    assert (r.returncode, r.stdout) == (0, "-I- HW access already disabled\n")


def test_wrong_and_malformed_keys_change_nothing(lab):  # type: ignore[no-untyped-def]
    activate(lab)
    before = state(lab)
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", "1a1a1a1a2b2b2b2c")
    assert (r.returncode, r.stdout) == (1, WRONG_KEY)
    for bad in ("10000000000000000", "12g4", "0x"):
        r = lab.flint("node1", "-d", CX3, "hw_access", "enable", bad)
        assert (r.returncode, r.stdout) == (
            1,
            "-E- Invalid Key syntax, it should contain only hexa numbers and of appropriate "
            "length.\n",
        )
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", input="\n")
    assert (r.returncode, r.stdout) == (1, "Enter Key : \n-E- Invalid Password.\n")
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", input="")
    assert (r.returncode, r.stdout) == (1, "Enter Key : \n-E- Invalid Password.\n")
    assert state(lab) == before
    # Accepted strtoull spellings of the same key unlock.
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", "0X" + KEY.upper())
    assert (r.returncode, r.stdout) == (0, ENABLED)


def test_set_key_interactive(lab):  # type: ignore[no-untyped-def]
    r = lab.flint("node1", "-d", CX3, "set_key", input="abcd\nabce\n")
    assert r.returncode == 1
    assert r.stdout == (
        "Enter Key : ****\nVerify Key : ****\n"
        "-E- Failed to set the HW access key: The keys you entered did not match.\n"
    )
    r = lab.flint("node1", "-d", CX3, "set_key", input="\n")
    assert (r.returncode, r.stdout) == (1, "Enter Key : \n-E- Invalid Password.\n")
    assert state(lab) == (False, False, False, False)
    r = lab.flint("node1", "-d", CX3, "set_key", input="ab\x7fcd\nacd\n")
    assert r.returncode == 0
    assert r.stdout == "Enter Key : **\b \b**\nVerify Key : ***\n" + SET_KEY_OUTPUT
    lab.restart_driver("node1")
    r = lab.flint("node1", "-d", CX3, "hw_access", "enable", "acd")
    assert (r.returncode, r.stdout) == (0, ENABLED)


def test_disable_without_key(lab):  # type: ignore[no-untyped-def]
    r = lab.flint("node1", "-d", CX3, "hw_access", "disable")
    assert (r.returncode, r.stdout) == (
        1,
        "Failed to execute command hw_access. Disable HW access failed: No key was set\n",
    )
    # A key on flash that is not active yet is not "set" for the firmware either.
    lab.flint("node1", "-d", CX3, "set_key", KEY)
    r = lab.flint("node1", "-d", CX3, "hw_access", "disable")
    assert r.returncode == 1
    assert state(lab) == (True, False, False, False)


def test_permanent_disable(lab):  # type: ignore[no-untyped-def]
    activate(lab)
    assert lab.flint("node1", "-d", CX3, "hw_access", "enable", KEY).returncode == 0
    r = lab.flint("node1", "-d", CX3, "set_key", "0")
    assert (r.returncode, r.stdout) == (0, SET_KEY_OUTPUT)
    lab.reboot("node1")
    assert state(lab) == (False, False, False, False)
    q = lab.flint("node1", "-d", CX3, "-qq", "q")
    assert q.returncode == 0 and "HW Access Key:         Disabled\n" in q.stdout
    for _ in range(2):  # always insecure after, even from host reboot
        lab.reboot("node1")
        lab.restart_driver("node1")
        assert state(lab) == (False, False, False, False)
    # "To restore security, simply set a non-zero pass-key again."
    activate(lab, key="5eed")
    assert state(lab) == (True, True, True, True)


def test_status_never_prints_a_key(lab):  # type: ignore[no-untyped-def]
    activate(lab)
    out = lab.hcasim("status").stdout + lab.hcasim("status", "--json").stdout
    assert KEY not in out.lower() and str(int(KEY, 16)) not in out
    assert "node1" in out and "locked" in out


def test_key_is_not_stored_in_the_clear(lab):  # type: ignore[no-untyped-def]
    activate(lab)
    raw = bytes.fromhex(KEY)
    blobs = b"".join(p.read_bytes() for p in lab.home.iterdir() if p.is_file())
    assert raw not in blobs and KEY.encode() not in blobs
