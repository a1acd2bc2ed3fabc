"""A service is not ready until the broker has acknowledged its subscriptions (SUBACK): the stack
starts the scenario once every /health is 200, and a QoS 1 message published before the SUBACK
is not yet queued for a first-time persistent subscriber — it would be lost. A broker that takes
the connection but holds the SUBACK back must leave /health at 503, saying why, until it comes."""

from __future__ import annotations

import os
import socket
import threading

from probes import http

from engine.services.stack import CODE_ROOT


class HeldSubackBroker:
    """Just enough MQTT 3.1.1 on loopback: CONNACK to CONNECT, PUBACK to QoS 1 PUBLISH,
    PINGRESP to PINGREQ, and the SUBACKs held until ``release()``."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.subscribed = threading.Event()
        self._held: list[bytes] = []
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._released = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        self._conn = conn
        try:
            while True:
                kind = self._read(conn, 1)[0]
                length, shift = 0, 0
                while True:
                    byte = self._read(conn, 1)[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = self._read(conn, length)
                self._answer(conn, kind, body)
        except (ConnectionError, OSError):
            return

    def _answer(self, conn: socket.socket, kind: int, body: bytes) -> None:
        packet = kind >> 4
        if packet == 1:  # CONNECT
            conn.sendall(b"\x20\x02\x00\x00")
        elif packet == 3 and (kind >> 1) & 3 == 1:  # PUBLISH, QoS 1
            topic_len = int.from_bytes(body[:2], "big")
            conn.sendall(b"\x40\x02" + body[2 + topic_len : 4 + topic_len])
        elif packet == 8:  # SUBSCRIBE: hold the SUBACK
            filters, at = 0, 2
            while at < len(body):
                at += 2 + int.from_bytes(body[at : at + 2], "big") + 1
                filters += 1
            suback = bytes([0x90, 2 + filters]) + body[:2] + b"\x01" * filters
            with self._lock:
                if not self._released:
                    self._held.append(suback)
                    self.subscribed.set()
                    return
            conn.sendall(suback)
        elif packet == 12:  # PINGREQ
            conn.sendall(b"\xd0\x00")

    def release(self) -> None:
        with self._lock:
            held, self._held, self._released = self._held, [], True
        assert self._conn is not None
        for suback in held:
            self._conn.sendall(suback)

    def close(self) -> None:
        self.server.close()
        if self._conn is not None:
            self._conn.close()


def test_health_stays_503_until_the_broker_acknowledges_the_subscriptions(
    tmp_path, wait_for, serve_process
):
    broker = HeldSubackBroker()
    env = {
        **os.environ,
        "PYTHONPATH": CODE_ROOT,
        "CONTROLROOM_VAR": str(tmp_path / "var"),
        "CONTROLROOM_ENV_FILE": str(tmp_path / "none.env"),
        "CONTROLROOM_BROKER": f"mqtt://127.0.0.1:{broker.port}",
    }
    proc, url = serve_process(["monitor"], env)
    try:
        wait_for(broker.subscribed.is_set, timeout=30, what="the service's SUBSCRIBE")
        r = http.get(url + "/health", timeout=5)
        assert r.status_code == 503, r.text
        assert "subscriptions not yet acknowledged" in r.text
        broker.release()
        wait_for(
            lambda: http.get(url + "/health", timeout=5).status_code == 200,
            timeout=30,
            what="/health 200 once the SUBACK came",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        broker.close()
