"""hcasim's tests, a package: test modules import shared code from :mod:`tests.support`,
never from each other or from ``conftest`` (``test_test_layout`` checks it)."""
