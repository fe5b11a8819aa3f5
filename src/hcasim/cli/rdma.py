"""``rdma``: iproute2's RDMA tool, as far as programs on a lab host ask it.

The real ``rdma`` talks NETLINK_RDMA to the kernel, which a lab host does not have; inside
``hcasim exec`` this stand-in answers ``rdma link show`` (text, or JSON with ``-j``) for the
host's verbs devices, as the daemon lists them (``mlx5_devices``): one InfiniBand port each,
ACTIVE / LINK_UP, no netdev. rdma-core's pyverbs tests run ``rdma link show -j`` to find a
port's netdev (docs/crypto.md §11). Anything else exits 1 with iproute2's message shape.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from hcasim.api.client import ControlClient, LabError, LabUnavailable, socket_path_from_env


def host_links() -> list[dict[str, Any]]:
    """One entry per port of the host's verbs devices (empty outside a lab host)."""
    host = os.environ.get("HCASIM_HOST")
    path = socket_path_from_env()
    if not host or not path:
        return []
    with ControlClient(path, host=host) as client:
        devices = client.call("mlx5_devices")["devices"]
    return [
        {
            "ifindex": index,
            "ifname": device["name"],
            "port": 1,
            "state": "ACTIVE",
            "physical_state": "LINK_UP",
        }
        for index, device in enumerate(devices)
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``rdma [-j] link [show] [DEV[/PORT]]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = any(a in ("-j", "-json", "--json") for a in args)
    words = [a for a in args if not a.startswith("-")]
    if not words or words[0] != "link" or (len(words) > 1 and words[1] not in ("show", "list")):
        print(f"rdma: this lab host answers only 'rdma link show' (got {' '.join(args)!r})",
              file=sys.stderr)
        return 1
    try:
        links = host_links()
    except (LabUnavailable, LabError) as exc:
        print(f"rdma: {exc}", file=sys.stderr)
        return 1
    if len(words) > 2:
        name, _, port = words[2].partition("/")
        links = [x for x in links if x["ifname"] == name and (not port or str(x["port"]) == port)]
        if not links:
            print(f'Wrong device name "{words[2]}"', file=sys.stderr)
            return 1
    if as_json:
        print(json.dumps(links))
        return 0
    for link in links:
        print(f"link {link['ifname']}/{link['port']} state {link['state']} "
              f"physical_state {link['physical_state']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
