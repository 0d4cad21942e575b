"""The fuzz suite's case count, printed at the end of the session (issue 25 §3 asks for it)."""
from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    try:
        from hypothesis import settings

        from tests.reliability.fuzz import CASES
    except ImportError:
        return
    if CASES:
        per = ", ".join(f"{name} {n}" for name, n in sorted(CASES.items()))
        terminalreporter.write_line(f"fuzz: {sum(CASES.values())} cases over {len(CASES)} readers "
                                    f"(hypothesis profile {settings.get_current_profile_name()}): {per}")
