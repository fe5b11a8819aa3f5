"""Code the test modules share: tool locations and expected outputs, reference
computations, clients and drivers of a running lab. Fixtures stay in ``conftest.py``."""
