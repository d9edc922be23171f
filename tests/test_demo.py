"""``outlast demo`` end to end, in its short mode, as CI runs it."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_the_outage_and_summarises_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "outlast.cli", "demo", "--duration", "20", "--no-ui"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Traceback" not in out + result.stderr

    def number(label: str) -> int:
        match = re.search(rf"{label}:\s+(\d+)", out)
        assert match, out
        return int(match.group(1))

    sent = number("requests sent")
    failed_over = number("answered after a failover")
    assert sent > 50
    # The flagship model fails for most of the scenario: most answers come from the fallback.
    assert failed_over > sent // 4
    assert "openai/gpt-5.1" in out
    # Failures clients see can only come from streams cut after their first words
    # (continuing those on the fallback is the failover engine's job); never from 529s or 500s.
    assert number("failed, as clients saw them") < sent // 10
    assert "vendor status page said so:    06:39:00 UTC" in out
    first = re.search(r"outlast (?:detected the outage|saw the first failure):\s+(\d\d):(\d\d):\d\d UTC", out)
    assert first, out
    assert (int(first.group(1)), int(first.group(2))) < (6, 39)
    assert re.search(r"outlast knew \d+ simulated minutes before the vendor said so", out)
    # Every answer clients got is in the demo's own store (the data directory the tests set).
    assert number("exchanges stored") >= sent - number("failed, as clients saw them")
