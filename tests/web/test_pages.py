"""The dashboard's incident pages say when the vendor acknowledged, against outlast's onset, either way round."""

from __future__ import annotations

from outlast.health.incidents import Incident
from outlast.web.pages import _ack, incident_page

ONSET = 1_780_380_240.0  # 2026-06-02 06:04:00 UTC


def incident(ack_after: float | None) -> Incident:
    return Incident("inc-1", "anthropic", "Overloaded on anthropic/claude-opus-4-6", "investigating", "overloaded",
                    "partial_outage", started_at=ONSET, opened_at=ONSET + 26,
                    vendor_ack_at=None if ack_after is None else ONSET + ack_after,
                    vendor_incident={"name": "Elevated errors on Claude Opus 4.6"})


def test_a_vendor_that_acknowledged_later_reads_after_onset() -> None:
    page = incident_page(incident(35 * 60))
    assert "35m 00s after onset" in page
    assert "26s after onset" in page  # outlast's own detection
    assert _ack(incident(35 * 60)) == "35m 00s after onset"


def test_a_vendor_that_posted_first_reads_before_onset_never_negative() -> None:
    page = incident_page(incident(-120))
    assert "2m 00s before onset" in page
    assert "-2m" not in page
    assert _ack(incident(None)) == "-"
    assert "not yet" in incident_page(incident(None))
