"""The agent services as processes: replicas split assets, tuning is picked up while running."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

from probes import health

from engine.agent_files import save_tuning
from engine.bus.client import BusClient
from engine.paths import var_dir
from engine.schemas import Feedback, Telemetry, Tuning, utc_now
from engine.services.settings import Shard
from engine.services.stack import CODE_ROOT

PREFIX = f"agents{uuid.uuid4().hex[:6]}"


def _serve(serve_process, tmp_path, broker, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        "CONTROLROOM_CLIENT_PREFIX": PREFIX,
        **os.environ,
        "PYTHONPATH": CODE_ROOT,
        "CONTROLROOM_VAR": str(tmp_path / "var"),
        "CONTROLROOM_ENV_FILE": str(tmp_path / "none.env"),
        "CONTROLROOM_BROKER": broker.url,
    }
    return serve_process(args, env)  # binds a free port itself: no port race


def test_monitor_replicas_own_disjoint_assets_and_reload_tuning(
    tmp_path, broker, wait_for, serve_process
):
    replicas = [
        _serve(serve_process, tmp_path, broker, "monitor", "--shard", f"{i}/2") for i in (1, 2)
    ]
    try:
        urls = [url for _, url in replicas]
        for url in urls:
            wait_for(lambda url=url: health(url), timeout=30, what=f"{url} healthy")
        assert [health(u)["instance"] for u in urls] == ["monitor-1of2", "monitor-2of2"]

        pub = BusClient(
            broker.url, f"rep-{uuid.uuid4().hex[:6]}", "rep-pub", var=var_dir(os.environ)
        ).start(wait=10)
        assets = [f"press{n}" for n in range(8)]
        for seq in range(5):
            for a in assets:
                pub.publish(Telemetry(msg_id=f"{a}-{seq}", asset=a, seq=seq, ts=float(seq),
                                      signals={"temp": 20.0 + seq % 2}))  # fmt: skip

        def split() -> list[set[str]] | None:
            """Both replicas' assets once all telemetry is received *and handled*: the bus
            counts a sample when it takes it from its inbox, the handler that admits its
            asset runs after (a whole burst may be counted before any of it is handled)."""
            hs = [health(u) for u in urls]
            if any(h is None or h["queue_depth"] for h in hs) or sum(
                h["counters"]["received_by_kind"].get("telemetry", 0)  # type: ignore[index]
                for h in hs
            ) < 5 * len(assets):
                return None
            return [set(h["assets"]) for h in hs]  # type: ignore[index]

        owned = wait_for(split, timeout=20, what="both replicas saw all telemetry")
        assert owned[0] | owned[1] == set(assets) and not owned[0] & owned[1]
        assert owned[0] == {a for a in assets if Shard(1, 2).owns(a)}
        # Routed by the broker: each replica received its own assets' telemetry only.
        for url, mine in zip(urls, owned, strict=True):
            counters = health(url)["counters"]
            assert counters["not_mine"] == 0
            assert counters["received_by_kind"]["telemetry"] == 5 * len(mine)

        # The review service saves tuning, then publishes the feedback: both replicas apply it
        # (the owner of the feedback's asset at once, the other on its periodic check).
        tuning = Tuning(thresholds={"press1/temp": 1.5})
        save_tuning(tuning, tmp_path / "var" / "tuning.json")
        pub.publish(Feedback(feedback_id=f"f-{uuid.uuid4().hex[:6]}", ticket_id="T-1",
                             asset="press1", action="close", who="op", at=utc_now(),
                             reason="false_positive"))  # fmt: skip
        for url in urls:
            wait_for(
                lambda url=url: (
                    (health(url)["tuning"]["in_effect"] or {}).get("thresholds")
                    == {"press1/temp": 1.5}
                ),
                timeout=10,
                what=f"tuning applied by {url}",
            )
        pub.stop()
    finally:
        for proc, _ in replicas:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in replicas:
            proc.wait(15)
