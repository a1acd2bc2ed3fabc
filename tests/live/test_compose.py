"""docker-compose.yml + mosquitto.conf agree with the CLI: same commands, ports, broker."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import yaml

from engine.cli import build_parser
from engine.cli.live import cmd_serve
from engine.paths import ROOT
from engine.settings import DEFAULT_PORTS, SERVICE_NAMES


def test_compose_runs_every_service_with_the_cli_command_and_port():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"broker-init", "mosquitto", *SERVICE_NAMES}
    conf = (ROOT / "mosquitto.conf").read_text()
    # credentials and ACLs, written by broker-init before the broker starts
    assert re.search(r"^allow_anonymous\s+false", conf, re.M), "anonymous clients are refused"
    auth = {k: v for k, v in re.findall(r"^(password_file|acl_file)\s+(\S+)", conf, re.M)}
    assert set(auth) == {"password_file", "acl_file"}, "credentials and topic ACLs required"
    init = services["broker-init"]
    init_args = build_parser().parse_args(init["command"][1:])
    assert init_args.action == "init" and init_args.mosquitto_dir
    assert {auth["password_file"].rsplit("/", 1)[0]} == {init_args.mosquitto_dir}
    assert any(v.endswith(":" + init_args.mosquitto_dir) for v in init["volumes"])
    broker_deps = services["mosquitto"]["depends_on"]
    assert broker_deps["broker-init"]["condition"] == "service_completed_successfully"
    assert re.search(r"^autosave_on_changes\s+true", conf, re.M), "saved at every change"
    listener = re.search(r"^listener\s+(\d+)", conf, re.M)
    assert listener, "mosquitto.conf defines no listener"
    broker_port = int(listener.group(1))
    assert re.search(r"^persistence\s+true", conf, re.M), "sessions must survive broker restarts"
    mounts = services["mosquitto"]["volumes"]
    assert any(m.startswith("./mosquitto.conf:/mosquitto/config/mosquitto.conf") for m in mounts)

    parser = build_parser()
    for name in SERVICE_NAMES:
        svc = services[name]
        command = svc["command"]
        assert command[:1] == ["controlroom"], f"{name}: not the controlroom CLI"
        args = parser.parse_args(command[1:])  # exits (fails the test) if the CLI rejects it
        assert args.func is cmd_serve and args.name == name
        port = DEFAULT_PORTS[name]
        assert svc["ports"] == [f"127.0.0.1:{port}:{port}"], name
        assert f"127.0.0.1:{port}/health" in " ".join(svc["healthcheck"]["test"]), name
        env = svc["environment"]
        broker = urlsplit(env["CONTROLROOM_BROKER"])
        assert (broker.hostname, broker.port) == ("mosquitto", broker_port), name
        assert env["CONTROLROOM_HOST"] == "0.0.0.0", f"{name} must listen beyond the container"
        assert any(v.endswith(":" + env["CONTROLROOM_VAR"]) for v in svc["volumes"]), name


def test_image_ships_the_data_the_services_read():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for needed in ("engine", "scenarios", "rules"):
        assert re.search(rf"^COPY {needed} ", dockerfile, re.M), f"image lacks {needed}/"
    assert "CONTROLROOM_HOME=/app" in dockerfile


def test_env_example_documents_every_setting_the_services_read():
    example = (ROOT / ".env.example").read_text()
    read = set(
        re.findall(r"CONTROLROOM_[A-Z_]+", (ROOT / "engine/services/settings.py").read_text())
    )
    read |= {f"CONTROLROOM_{n.upper()}_PORT" for n in SERVICE_NAMES}
    read.discard("CONTROLROOM_")
    missing = sorted(v for v in read if v not in example)
    assert not missing, f".env.example does not document {missing}"
