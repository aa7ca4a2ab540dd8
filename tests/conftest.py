"""Test-suite setup: helper modules shared by several test folders are importable by name.

pytest runs with ``--import-mode=importlib`` (so same-named ``conftest.py`` files in
different folders never clash), which does not put test folders on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent
for sub in ("", "report", "reference"):
    p = str(_TESTS / sub) if sub else str(_TESTS)
    if p not in sys.path:
        sys.path.insert(0, p)

