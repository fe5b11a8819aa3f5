"""An application on a lab host that uses hcasim.mlx5dv, one step per stdin line.

The end-to-end tests run it as ``hcasim exec --host crypto1 -- python crypto_driver.py`` and
drive it line by line, so that steps of several processes (applications, the officer's CLI)
interleave in a known order. Each input line is a JSON object ``{"op": ..., ...}``; each output
line is the JSON result: ``rc``/``state`` for the C-shaped calls, values for the others, or
``{"error": class, "code": errno or -1, "wc_status": ..., "msg": ...}`` when a call raised.
Byte strings travel as hex. Objects (contexts, DEKs, login objects, MKeys) are named by the
caller.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hcasim import mlx5dv as dv

contexts: dict[str, dv.Mlx5Context] = {}
deks: dict[str, dv.Mlx5DEK] = {}
logins: dict[str, dv.Mlx5CryptoLogin] = {}
mkeys: dict[str, dv.Mlx5Mkey] = {}


def _ctx(a: dict[str, Any]) -> dv.Mlx5Context:
    return contexts[a.get("ctx", "a")]


def step(a: dict[str, Any]) -> dict[str, Any]:
    """Run one step and describe its outcome."""
    op = a["op"]
    if op == "open":
        contexts[a.get("ctx", "a")] = dv.Mlx5Context(a.get("device", "mlx5_0"))
        return {}
    if op == "close":
        contexts.pop(a.get("ctx", "a")).close()
        return {}
    if op == "caps":
        return _ctx(a).query_mlx5_device().crypto_caps
    if op == "login":
        attr = dv.Mlx5CryptoLoginAttr(
            credential=bytes.fromhex(a["cred"]),
            credential_id=a.get("cred_id", 0),
            import_kek_id=a.get("kek_id", 0),
            comp_mask=a.get("comp_mask", 0),
        )
        return {"rc": dv.mlx5dv_crypto_login(_ctx(a), attr)}
    if op == "state":
        rc, state = dv.mlx5dv_crypto_login_query_state(_ctx(a))
        return {"rc": rc, "state": state}
    if op == "logout":
        return {"rc": dv.mlx5dv_crypto_logout(_ctx(a))}
    if op == "login_create":
        cred = bytes.fromhex(a["cred"])
        ext = dv.Mlx5CryptoExtLoginAttr(
            cred, a.get("len", len(cred)), a.get("cred_id", 0), a.get("kek_id", 0),
            a.get("comp_mask", 0),
        )
        logins[a["name"]] = dv.Mlx5CryptoLogin(_ctx(a), ext)
        return {}
    if op == "login_query":
        return {"state": logins[a["name"]].query(a.get("comp_mask", 0))}
    if op == "login_destroy":
        logins.pop(a["name"]).close()
        return {}
    if op == "dek":
        ctx = _ctx(a)
        login = a.get("login")
        attr = dv.Mlx5DEKInitAttr(
            dv.PD(ctx),
            key_size=a.get("key_size", dv.MLX5DV_CRYPTO_KEY_SIZE_128),
            has_keytag=a.get("has_keytag", False),
            key_purpose=a.get("key_purpose", dv.MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS),
            opaque=a.get("opaque", "dek"),
            key=bytes.fromhex(a["key"]),
            comp_mask=a.get("comp_mask", 0),
            crypto_login=None if login is None else logins[login],
        )
        deks[a["name"]] = dv.Mlx5DEK(ctx, attr)
        return {}
    if op == "dek_query":
        attr = deks[a["name"]].query(a.get("comp_mask", 0))
        return {"state": attr.state, "opaque": attr.opaque.decode()}
    if op == "dek_destroy":
        deks.pop(a["name"]).close()
        return {}
    if op == "mkey":
        ctx = _ctx(a)
        flags = a.get(
            "flags", dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO | dv.MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT
        )
        mkey = dv.Mlx5Mkey(dv.PD(ctx), flags, 1)
        mkeys[a["name"]] = mkey
        crypto = dv.Mlx5CryptoAttr(
            encrypt_on_tx=a.get("encrypt_on_tx", True),
            signature_crypto_order=a.get("order", 0),
            data_unit_size=a.get("dus", dv.MLX5DV_BLOCK_SIZE_512),
            initial_tweak=bytes.fromhex(a.get("tweak", "")),
            dek=deks[a["dek"]],
            keytag=bytes.fromhex(a.get("keytag", "")),
        )
        mkey.configure(a["length"], crypto)
        return {"lkey": mkey.lkey}
    if op in ("encrypt", "decrypt", "send", "recv"):
        out = getattr(mkeys[a["mkey"]], op)(bytes.fromhex(a["data"]), a.get("offset", 0))
        return {"data": bytes(out).hex()}
    raise ValueError(f"unknown op {op!r}")


def main() -> None:
    """Answer each line of stdin with one line on stdout until ``exit`` or end of input."""
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "exit":
            break
        try:
            reply = step(request)
        except dv.PyverbsError as exc:
            reply = {
                "error": type(exc).__name__,
                "code": getattr(exc, "error_code", None),
                "wc_status": int(getattr(exc, "wc_status", -1)),
                "msg": str(exc),
            }
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
