"""Every service's /health against its documented model (engine/http_schemas.py,
HEALTH_MODELS): no undocumented key, no missing one, counters of things that exist."""

from __future__ import annotations

import uuid

from probes import http

from engine.http_schemas import HEALTH_MODELS, Health, parse_health
from engine.services.stack import Stack
from engine.settings import process_environ


def test_every_service_health_matches_its_documented_model(tmp_path):
    with Stack(
        environ=process_environ(),
        broker_url="embedded",
        ports="auto",
        var=tmp_path / "var",
        client_prefix=f"h{uuid.uuid4().hex[:6]}",
    ) as stack:
        for name in stack.services:
            r = http.get(stack.urls[name] + "/health", timeout=5)
            assert r.status_code == 200, r.text
            body = r.json()
            model = HEALTH_MODELS[name]
            assert set(body) == set(model.model_fields), name  # the documented keys, exactly
            health = parse_health(body)
            assert type(health) is model and health.status == "ok" and health.reasons == []
            assert health.broker.identity == name, "each service connects as its own identity"
            assert health.restarts == 0 and health.retrying is None
            assert Health.model_validate(body).service == name  # what a lenient client reads
        diagnosis = http.get(stack.urls["diagnosis"] + "/health", timeout=5).json()
        assert "diagnoses_published" in diagnosis and "diagnosiss_published" not in diagnosis
        monitor = http.get(stack.urls["monitor"] + "/health", timeout=5).json()
        assert monitor["alerts_published"] == 0 and monitor["asset_bounds"]["tracked"] == 0


def test_latency_percentiles_are_the_projects_one_percentile() -> None:
    """Issue 11 (percentiles computed several ways): /health's p50 / p99 are the linear
    percentile the reports use. They were nearest-rank: the upper of the two middle values."""
    from engine.evaluation.scoring import percentile
    from engine.services.agent_service import LatencyWindow

    w = LatencyWindow()
    assert w.summary() == {"n": 0, "p50_ms": None, "p99_ms": None}
    for ms in (4.0, 1.0, 3.0, 2.0):
        w.add(ms)
    p99 = percentile([1.0, 2.0, 3.0, 4.0], 99)
    assert p99 is not None
    assert w.summary() == {"n": 4, "p50_ms": 2.5, "p99_ms": round(p99, 3)}
