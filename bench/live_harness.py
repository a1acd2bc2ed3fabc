"""What the live benchmarks share (``bus_throughput.py``, ``fleet.py``): a private Mosquitto on a
free port (never the machine's :1883), services as real ``controlroom serve`` processes,
pre-serialised telemetry and a publisher process, and the one measurement that does not depend
on how fast a Python publisher can go: **draining a backlog**.

A consumer is frozen (SIGSTOP), the whole stream is published into the broker (which queues it:
``queue_qos0_messages``, no queue limit), the consumer is thawed (SIGCONT) and timed until it
has handled everything. Its rate is then its own capacity — the publisher, and whatever else
the machine was doing while it published, are out of the figure — and its CPU time over the
same window gives CPU µs per sample, the figure that compares across machines.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from engine.bus.broker import free_port, mosquitto_binary, parse_broker_url, wait_listening  # noqa: E402
from engine.schemas import Telemetry, batch_payloads, batch_topic, topic_for  # noqa: E402

WALL_MARK = b'"wall_time":null'
Item = tuple[str, bytes, int]
"""topic, payload template (``"wall_time":null`` replaced at publish), samples it carries."""

BENCH_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
# A frozen consumer's backlog is queued, not dropped: QoS 0 included, no count or byte limit.
queue_qos0_messages true
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 100
log_dest stderr
log_type error
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} CPUs"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) in MiB."""
    now = peak = float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return now, peak


# ------------------------------------------------------------------------------------ broker


class BenchBroker:
    """Mosquitto on a free loopback port with the bench's queueing (``BENCH_CONF``)."""

    def __init__(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise SystemExit("the live benches need mosquitto (apt-get install mosquitto)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="controlroom-bench-broker-"))
        conf = self.dir / "mosquitto.conf"
        conf.write_text(BENCH_CONF.format(port=self.port))
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "stderr.log").open("ab"),
            start_new_session=True,
        )
        wait_listening("127.0.0.1", self.port, 10, alive=lambda: self.proc.poll() is None)
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.version = subprocess.run(
            [binary, "-h"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------ data


def stream(prefix: str, assets: int, ticks: int, faults: bool = True, seed: int = 7) -> list[Any]:
    """Real simulator output, interleaved per tick (asset 0..N-1 at t=0, then t=1, …). With
    ``faults`` each asset gets a clogging step somewhere in the second half, staggered, so the
    monitor has episodes to alert on."""
    from engine.plant.scenario import FaultSpec, Scenario
    from engine.plant.simulator import Simulator

    per_asset = []
    width = len(str(assets - 1))
    for i in range(assets):
        onset = float(int(ticks * (0.45 + 0.4 * i / max(1, assets))))
        scn = Scenario(
            name="bench",
            asset=f"{prefix}{i:0{width}d}",
            duration_s=float(ticks),
            seed=seed + i,
            faults=[FaultSpec(type="clogging", onset_s=onset, severity=0.9, ramp_s=0.0)]
            if faults
            else [],
        )
        sim = Simulator(scn, seed=seed + i, rate_hz=1.0)
        per_asset.append([t for t in iter(sim.step, None)][:ticks])
    return [rows[k] for k in range(ticks) for rows in per_asset if k < len(rows)]


def items(samples: Sequence[Telemetry], batch: int = 0, source: str = "bench") -> list[Item]:
    """Single messages (``batch`` 0) or TelemetryBatch messages of up to ``batch`` samples: the
    stream cut into windows of consecutive ticks, packed per bucket within each window (as a
    gateway or the simulator sends a burst)."""
    blank = [
        t if t.wall_time is None else t.model_copy(update={"wall_time": None}) for t in samples
    ]
    if batch <= 0:
        return [(topic_for(t), t.to_bytes(), 1) for t in blank]
    assets = len({t.asset for t in blank[:5000]})
    window = max(1, batch * 64 // max(1, assets)) * assets
    out: list[Item] = []
    for start in range(0, len(blank), window):
        for bucket, payloads in batch_payloads(blank[start : start + window], batch).items():
            out += [(batch_topic(bucket, source), p, p.count(WALL_MARK)) for p in payloads]
    return out


# ------------------------------------------------------------------------------------ publisher


def _connect(url: str, client_id: str) -> mqtt.Client:
    a = parse_broker_url(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.max_queued_messages_set(0)
    c.connect(a.host, a.port, keepalive=120)
    return c


def _publish(url: str, work: list[Item], rate: float | None, conn: Any) -> None:
    """Publish ``work`` at ``rate`` samples/s (None: flat out); send back each publish time."""
    c = _connect(url, f"bench-pub-{os.getpid()}")
    c.loop_start()
    times = [0.0] * len(work)
    t0 = time.time()
    done = 0
    info = None
    for k, (topic, template, n) in enumerate(work):
        if rate:
            due = t0 + done / rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
        now = time.time()
        times[k] = now
        payload = template.replace(WALL_MARK, b'"wall_time":' + repr(now).encode())
        info = c.publish(topic, payload, qos=0)
        done += n
    if info is not None:
        info.wait_for_publish(120)
    t1 = time.time()
    c.disconnect()
    c.loop_stop()
    conn.send((times, t0, t1))
    conn.close()


def publish(
    url: str, work: list[Item], rate: float | None = None
) -> tuple[list[float], float, float]:
    """Run the publisher in its own process: (publish time of each item, start, end)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_publish, args=(url, work, rate, child))
    p.start()
    result = parent.recv()
    p.join()
    return result


# ------------------------------------------------------------------------------------ consumers


class Consumer:
    """Something that receives telemetry in its own process: a pid, and how many samples it
    has handled so far."""

    pid: int

    def handled(self) -> int:
        raise NotImplementedError

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


def _raw_subscriber(url: str, filters: list[str], ready: Any, count: Any) -> None:
    """The ceiling: a plain paho subscriber that only counts what arrives (samples per message
    from the payload's sample count, which costs a bytes.count, no parsing)."""
    n = 0

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        nonlocal n
        n += msg.payload.count(b'"msg_id"')
        count.value = n

    c = _connect(url, f"bench-raw-{os.getpid()}")
    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.subscribe([(f, 0) for f in filters])
    c.loop_forever()


class RawSubscriber(Consumer):
    def __init__(self, url: str, filters: list[str]) -> None:
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        self._count = ctx.Value("q", 0, lock=False)
        self._proc = ctx.Process(
            target=_raw_subscriber, args=(url, filters, ready, self._count), daemon=True
        )
        self._proc.start()
        if not ready.wait(20):
            raise SystemExit("raw subscriber did not subscribe")
        self.pid = self._proc.pid or 0

    def handled(self) -> int:
        return int(self._count.value)

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.join(10)


class ServiceProc(Consumer):
    """``controlroom serve NAME`` as a child process on a free port, healthy before use."""

    def __init__(
        self, name: str, url: str, var: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        port = free_port()
        full_env = {
            **os.environ,
            "CONTROLROOM_VAR": str(var),
            "CONTROLROOM_ENV_FILE": str(var / "none.env"),
            "CONTROLROOM_CLIENT_PREFIX": f"bench{uuid.uuid4().hex[:6]}",
            "CONTROLROOM_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
            # The whole backlog is the measurement: the consumer must take it all in, where a
            # service behind keeps only CONTROLROOM_INBOX_MAX_BYTES (16 MiB) and drops the rest.
            "CONTROLROOM_INBOX_MAX_BYTES": str(8 << 30),
            **(env or {}),
        }
        cmd = [sys.executable, "-m", "engine", "serve", name, "--port", str(port), "--broker", url]
        self.out = var / f"{name}-{port}.out"
        self.proc = subprocess.Popen(
            [*cmd, *args],
            env=full_env,
            stdout=self.out.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited: see {self.out}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{name} did not become healthy: see {self.out}")

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.base}/health", timeout=10).json())

    def handled(self) -> int:
        return int(self.health()["counters"].get("samples", 0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def shard_args(i: int, n: int) -> list[str]:
    """``--shard i/n`` for replica i of n (nothing for a lone instance)."""
    return ["--shard", f"{i}/{n}"] if n > 1 else []


def cpu_ns(pid: int) -> int | None:
    """CPU time of a process, all its threads, in ns (``/proc/PID/task/*/schedstat``: exact,
    where ``cpu_seconds`` counts 10 ms ticks). None when the kernel does not provide it."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return total


BUSY_NS = 1_000_000
"""A consumer whose CPU moved by more than this (1 ms) in a poll interval was still working: an
idle service uses ~2 ms per second (its tuning poll, keep-alives), a working one on a machine
at load 25 still gets several ms per 50 ms interval."""
QUIET_S = 0.5
"""How long every consumer must have been idle before their counts are asked for."""
ASK_EVERY_S = 2.0
"""Counts are asked for at least this often (a consumer that never goes idle, a stall)."""


def drain(
    url: str,
    consumers: Sequence[Consumer],
    work: list[Item],
    poll_s: float = 0.05,
    broker_pid: int | None = None,
) -> dict:
    """Freeze the consumers, publish ``work`` into the broker, thaw them, and time until each
    has handled its share (every sample for the whole group when they split the stream).
    Returns rate (samples/s), seconds, samples handled, CPU µs per sample (of the consumers;
    ``broker_cpu_us``: the broker's, taking the messages in and handing them out).

    While they drain, the consumers are watched from outside only: their CPU time in
    ``/proc``, which costs them nothing. Their counts (``handled``: a service's ``/health``)
    are asked for once all have been idle for ``QUIET_S``; the drain ended when the last of
    them stopped working, and their CPU is taken at that moment. (Asking ``/health`` every
    0.1 s, as this did before, cost each replica ~1-2 ms of CPU per request and the bench's
    own HTTP client more, on the same two cores — 10-20 % of a core with two replicas — so a
    second replica was charged for the bench's polling as well as doing its share.)"""
    expected = sum(n for _, _, n in work)
    start = [c.handled() for c in consumers]
    broker0 = cpu_seconds(broker_pid) if broker_pid else float("nan")
    for c in consumers:
        c.pause()
    try:
        publish(url, work)
        time.sleep(0.5)  # the broker has it all queued (the publisher waited for its socket)
    finally:
        cpu0 = [cpu_ns(c.pid) for c in consumers]
        cpu0_s = sum(cpu_seconds(c.pid) for c in consumers)
        t0 = time.time()
        for c in consumers:
            c.resume()
    precise = all(x is not None for x in cpu0)
    last_cpu = list(cpu0)
    busy_at = [t0] * len(consumers)  # when each was last seen working
    busy_cpu = list(cpu0)  # and its CPU then
    got, last_got, last_change = 0, -1, t0
    asked = t0
    while True:
        time.sleep(poll_s)
        now = time.time()
        if precise:
            for i, c in enumerate(consumers):
                used = cpu_ns(c.pid)
                if used is None:
                    continue
                if used - (last_cpu[i] or 0) > BUSY_NS:
                    busy_at[i], busy_cpu[i] = now, used
                last_cpu[i] = used
            if now - max(busy_at) < QUIET_S and now - asked < ASK_EVERY_S:
                continue
        got = sum(c.handled() - s for c, s in zip(consumers, start, strict=True))
        asked = now
        if got >= expected:
            break
        if precise:  # the question's own CPU is not work
            last_cpu = [cpu_ns(c.pid) for c in consumers]
        if got != last_got:
            last_got, last_change = got, now
        elif now - last_change > 5.0:
            break  # stalled: the rest was lost
    if precise:
        t1 = max(busy_at) - poll_s / 2
        cpu = sum((b or 0) - (a or 0) for a, b in zip(cpu0, busy_cpu, strict=True)) / 1e9
    else:
        t1 = now - poll_s / 2
        cpu = sum(cpu_seconds(c.pid) for c in consumers) - cpu0_s
    seconds = max(1e-9, t1 - t0)
    broker_cpu = cpu_seconds(broker_pid) - broker0 if broker_pid else float("nan")
    return {
        "broker_cpu_us": broker_cpu / max(1, got) * 1e6,
        "samples": got,
        "expected": expected,
        "lost": expected - got,
        "seconds": seconds,
        "rate": got / seconds,
        "cpu_us": cpu / max(1, got) * 1e6,
        "messages": len(work),
    }


class AlertWatch:
    """Alerts seen on the bus with their receive time (telemetry → alert latency)."""

    def __init__(self, url: str) -> None:
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.c = _connect(url, f"bench-watch-{os.getpid()}-{uuid.uuid4().hex[:4]}")
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.subscribe([("alerts/#", 1)])
        self.c.loop_start()
        ready.wait(10)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        import json

        now = time.time()
        with self._lock:
            self.alerts.append((now, json.loads(msg.payload)))

    def since(self, n: int) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return self.alerts[n:]

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def percentile(values: Sequence[float], p: float) -> float | None:
    """The project's one percentile (``engine.evaluation.scoring``), for the benches."""
    from engine.evaluation.scoring import percentile as linear

    return linear(list(values), p)
