"""``outlast demo`` end to end, in its short mode, as CI runs it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx


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


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _default_sigint() -> None:
    # A shell without job control starts background commands with SIGINT ignored, and a child
    # inherits that; give the demo Python's usual Ctrl-C handling, as a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_everything_and_prints_the_summary_so_far() -> None:
    from outlast.serving import free_port

    sim_port, gateway_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "outlast.cli", "demo", "--duration", "120", "--no-ui",
         "--sim-port", str(sim_port), "--gateway-port", str(gateway_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # wait until traffic flows through the gateway to the simulator
        sent = 0
        with httpx.Client(timeout=2) as http:
            for _ in range(300):
                if process.poll() is not None:
                    break
                try:
                    sent = http.get(f"http://127.0.0.1:{sim_port}/_sim/state").json()["requests"]
                except httpx.HTTPError:
                    sent = 0
                if sent >= 10:
                    break
                time.sleep(0.1)
        assert sent >= 10, "the demo did not start sending traffic"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)  # far less than the 120 s it was asked to run
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "Traceback" not in out + err
    # where to look was printed at the start, even without the live view
    assert f"dashboard:  http://127.0.0.1:{gateway_port}/ui/" in out
    assert f"status:     http://127.0.0.1:{gateway_port}/status" in out
    assert "stopped; everything the demo started has been shut down" in out
    assert "(stopped by Ctrl-C)" in out
    match = re.search(r"requests sent:\s+(\d+)", out)
    assert match and int(match.group(1)) >= 1, out
    assert re.search(r"served by:\s+\S+", out), out
    # nothing left listening
    assert _port_is_free(sim_port) and _port_is_free(gateway_port)


def test_the_summary_times_detection_from_the_first_failed_request() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from outlast.demo import Tally, summary_lines
    from outlast.health.incidents import Incident

    start = datetime(2026, 6, 2, 5, 50, tzinfo=UTC)
    opened = datetime(2026, 6, 2, 6, 5, 36, tzinfo=UTC).timestamp()
    incident = Incident("i", "anthropic", "Overloaded on anthropic/claude-opus-4-6", "investigating", "overloaded",
                        "partial_outage", started_at=opened - 3600, opened_at=opened)  # the detector's own guess
    tally = Tally(sent=10, ok=10, scenario_start=start, first_failure_seconds=14 * 60 + 10,  # 06:04:10
                  vendor_ack=datetime(2026, 6, 2, 6, 39, tzinfo=UTC),
                  health=SimpleNamespace(detector=SimpleNamespace(incidents=[incident])))
    lines = "\n".join(summary_lines(tally))
    assert "outlast detected the outage:   06:05:36 UTC (simulated), 1 min 26 s after the first failed " \
           "request (06:04:10)" in lines
    assert "outlast knew 33 simulated minutes before the vendor said so" in lines
