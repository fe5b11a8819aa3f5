"""Command-line entry points: thin layers that parse arguments, call down, and print.

``hcasim`` (:mod:`~hcasim.cli.hcasim`, with the officer's commands in
:mod:`~hcasim.cli.crypto`), ``flint`` (:mod:`~hcasim.cli.flint`, what its commands share in
:mod:`~hcasim.cli.flint_common`, its burn in
:mod:`~hcasim.cli.flint_burn` and its mstflint-exact text in :mod:`~hcasim.cli.flint_format`),
the seed walkthrough ``python -m hcasim.cli.demo`` and the compiled-path build
``python -m hcasim.cli.native``.
"""
