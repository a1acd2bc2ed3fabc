import time, json
import pytest
from service_procs import ServiceProc, service_env
from test_services import stream, Watcher, wait_subscribed
from engine.tickets.store import TicketStore

@pytest.mark.parametrize("n", range(6))
def test_dbg(make_broker, bus_client, tmp_path, wait_for, n):
    var = tmp_path / "var"
    b = make_broker()
    svc = ServiceProc("ticket", service_env(var, b.url)).start()
    watcher = Watcher(bus_client(b.url, "watch"))
    pub = bus_client(b.url, "pub")
    store = TicketStore(var / "controlroom.db")
    wait_subscribed(svc, watcher, pub, wait_for)
    msgs = stream()
    for m in msgs[:12]:
        pub.publish(m)
    pub.flush(10)
    b.stop(kill=True)
    for m in msgs[12:]:
        pub.publish(m)
    b.start()
    ok = False
    for i in range(40):
        time.sleep(0.25)
        c = store.counts()
        if c["diagnoses"] == 24 and c["outbox_pending"] == 0:
            ok = True; break
    if not ok:
        h = svc.health()
        got = {d for t in store.list() for d in t.diagnosis_ids}
        print("COUNTS", store.counts(), "svc", h["counters"], "pub", pub.counters.snapshot())
        print("MISSING", [m.diagnosis_id for m in msgs if m.diagnosis_id not in got])
        for line in (var/"logs"/"ticket.jsonl").read_text().splitlines():
            d = json.loads(line)
            if d["event"].startswith(("bus", "service")): print(d)
        print((b.workdir / "mosquitto.log").read_text()[-3000:])
    svc.stop()
    assert ok
