"""The fabric: topology, run-time subnet state, routing, and the management agents.

Pure state machines, no sockets:

* :mod:`hcasim.fabric.topology` / :mod:`hcasim.fabric.netfile` - the static description
  (``parse_netfile``, ``parse_netfile_text``, ``format_netfile``, ``NetFileError``);
* :mod:`hcasim.fabric.fattree` - fat-tree topologies of any size for tests and benchmarks;
* :mod:`hcasim.fabric.subnet` - run-time state of ports, links and switch tables, and
  ``NodeFirmware``, the hooks a device model overrides (they and the node state they see
  refer to each other, so they live together);
* :mod:`hcasim.fabric.routing` - directed-route and LID routing;
* :mod:`hcasim.fabric.sma` / :mod:`hcasim.fabric.pma` - subnet and performance
  management agents (M_Key enforcement, traps);
* :mod:`hcasim.fabric.engine` - ``MadEngine.process``: what happens to a client's MAD;
* :mod:`hcasim.fabric.quicksm` - configure a subnet directly, as an SM would leave it.
"""
