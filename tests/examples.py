"""How many examples a property test tries: all of them in the full suite, fewer in the quick tier."""

from __future__ import annotations

import os

QUICK_ENV = "TRESEN_TESTS_QUICK"
"""Set by `--quick` (tests/conftest.py) before the test modules are imported."""


def examples(full: int) -> int:
    """`full` examples in the full suite (CI); a fifth, at least 10, under `scripts/test --quick`."""
    return max(10, full // 5) if os.environ.get(QUICK_ENV) == "1" else full
