"""`hft run`'s supervisor with stand-in children: start order, readiness, demo user,
restarts, giving up, port conflicts, start failures, ordered shutdown on a signal."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hft import run

pytestmark = pytest.mark.timeout(120)

# A stand-in engine: the real flags, a real grpc.health.v1 service, a "snapshot" on SIGTERM.
FAKE_ENGINE = textwrap.dedent(
    """
    import argparse, asyncio, os, signal, sys, time
    from pathlib import Path
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    p = argparse.ArgumentParser()
    for flag in ("--config", "--host", "--port", "--data-dir", "--metrics-port"):
        p.add_argument(flag, required=True)
    a = p.parse_args()
    data = Path(a.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    starts = data / "starts"
    n = int(starts.read_text()) + 1 if starts.exists() else 1
    starts.write_text(str(n))
    mode = os.environ.get("FAKE_ENGINE", "ok")
    if mode == "fail-at-start":
        print("boom: the journal is corrupt at offset 42", flush=True)
        sys.exit(3)

    async def main():
        server = grpc.aio.server()
        svc = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(svc, server)
        server.add_insecure_port(f"{a.host}:{a.port}")
        await server.start()
        res = svc.set("", health_pb2.HealthCheckResponse.SERVING)
        if asyncio.iscoroutine(res):
            await res
        print(f"engine listening on {a.host}:{a.port} (start {n})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        crash = mode == "crash-always" or (mode == "crash-once" and n == 1)
        try:
            await asyncio.wait_for(stop.wait(), 0.5 if crash else None)
        except asyncio.TimeoutError:
            print("engine crashing on purpose", flush=True)
            os._exit(7)
        (data / "snapshot").write_text(str(time.time()))
        print("engine snapshot written", flush=True)
        await server.stop(1)

    asyncio.run(main())
    """
)

# A stand-in backend: /health and registration (users kept in a file, 409 when taken).
FAKE_API = textwrap.dedent(
    """
    import argparse, json, signal, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    p = argparse.ArgumentParser()
    for flag in ("--config", "--host", "--port", "--engine-address", "--data-dir",
                 "--database-url", "--web-dir"):
        p.add_argument(flag)
    a = p.parse_args()
    users = Path(a.data_dir) / "fake-users.json"
    (Path(a.data_dir) / "api-args.json").write_text(json.dumps(vars(a)))

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.reply(200, {"status": "ok"}) if self.path == "/health" else self.reply(404, {})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            known = json.loads(users.read_text()) if users.exists() else {}
            if body["username"] in known:
                return self.reply(409, {"error": {"code": "username_taken"}})
            known[body["username"]] = body["password"]
            users.write_text(json.dumps(known))
            self.reply(201, {"id": "1", "username": body["username"]})

    srv = ThreadingHTTPServer((a.host, int(a.port)), H)
    def term(*_):
        print(f"api stopping at {time.time()}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    print(f"api listening on http://{a.host}:{a.port}", flush=True)
    srv.serve_forever()
    """
)

FAKE_SIM = textwrap.dedent(
    """
    import signal, sys, time
    def term(*_):
        print(f"sim stopping at {time.time()}", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    print("sim trading", flush=True)
    while True:
        time.sleep(0.1)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_options(tmp_path: Path, **overrides: Any) -> run.RunOptions:
    config = tmp_path / "config.yaml"
    config.write_text("instruments: []\n")
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "config": config,
        "host": "127.0.0.1",
        "api_port": free_port(),
        "engine_port": free_port(),
        "metrics_port": 0,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hft.db'}",
        "web_dir": None,
        "sim": True,
        "sim_rate": None,
        "seed": None,
        "demo_password": None,
        "start_timeout": 30.0,
    }
    values.update(overrides)
    values["data_dir"].mkdir(parents=True, exist_ok=True)
    return run.RunOptions(**values)


def make_supervisor(tmp_path: Path, opts: run.RunOptions, out: io.StringIO) -> run.Supervisor:
    """A supervisor whose children are the stand-ins, started with the real flags."""
    for name, text in (("engine", FAKE_ENGINE), ("api", FAKE_API), ("sim", FAKE_SIM)):
        (tmp_path / f"fake_{name}.py").write_text(text)
    sup = run.Supervisor(opts, out=out)
    sup.engine.argv = [sys.executable, str(tmp_path / "fake_engine.py"), *run.engine_argv(opts)[4:]]
    sup.api.argv = [sys.executable, str(tmp_path / "fake_api.py"), *run.api_argv(opts)[4:]]
    if sup.sim is not None:
        sup.sim.argv = [sys.executable, str(tmp_path / "fake_sim.py")]
    return sup


async def wait_for_text(out: io.StringIO, text: str, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if text in out.getvalue():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not in output:\n{out.getvalue()}")


@pytest.fixture
def fast_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "RESTART_BACKOFF", (0.1, 0.1, 0.1, 0.1, 0.1))


async def test_start_banner_demo_user_and_ordered_shutdown_on_sigint(tmp_path: Path) -> None:
    opts = make_options(tmp_path)
    out = io.StringIO()
    sup = make_supervisor(tmp_path, opts, out)
    task = asyncio.create_task(sup.run())
    await wait_for_text(out, "Press Ctrl-C")
    text = out.getvalue()
    assert f"API docs    {opts.api_url}/docs" in text
    assert f"gRPC        127.0.0.1:{opts.engine_port}" in text
    assert "web UI not built" in text
    # The password printed once is the one the backend got; the data dir never holds it.
    users = json.loads((opts.data_dir / "fake-users.json").read_text())
    password = users["demo"]
    assert f"demo / {password}" in text
    marker = (opts.data_dir / run.DEMO_MARKER).read_text()
    assert password not in marker
    assert json.loads(marker)["username"] == "demo"
    # The backend got the engine's address and the database URL.
    api_args = json.loads((opts.data_dir / "api-args.json").read_text())
    assert api_args["engine_address"] == f"127.0.0.1:{opts.engine_port}"
    assert api_args["database_url"] == opts.database_url
    await wait_for_text(out, "sim   | sim trading")
    # Output of children is prefixed with their name.
    assert f"engine| engine listening on 127.0.0.1:{opts.engine_port}" in out.getvalue()

    os.kill(os.getpid(), signal.SIGINT)
    assert await asyncio.wait_for(task, 60) == 0
    text = out.getvalue()
    assert "engine snapshot written" in text
    assert text.index("sim stopping") < text.index("api stopping") < text.index("engine snapshot")
    assert (opts.data_dir / "engine" / "snapshot").exists()
    assert text.rstrip().endswith("stopped.")

    # Second start: same data dir, no new demo user, the password is not shown again.
    out2 = io.StringIO()
    sup2 = make_supervisor(tmp_path, opts, out2)
    task2 = asyncio.create_task(sup2.run())
    await wait_for_text(out2, "Press Ctrl-C")
    assert password not in out2.getvalue()
    assert "password printed when it was created" in out2.getvalue()
    assert json.loads((opts.data_dir / "fake-users.json").read_text()) == users
    sup2.stopping.set()
    assert await asyncio.wait_for(task2, 60) == 0


async def test_given_demo_password_is_used_and_not_echoed_as_generated(tmp_path: Path) -> None:
    opts = make_options(tmp_path, demo_password="Secret-Pass-123", sim=False)
    out = io.StringIO()
    sup = make_supervisor(tmp_path, opts, out)
    task = asyncio.create_task(sup.run())
    await wait_for_text(out, "Press Ctrl-C")
    assert json.loads((opts.data_dir / "fake-users.json").read_text())["demo"] == "Secret-Pass-123"
    assert "shown only this once" not in out.getvalue()
    assert "off (--no-sim)" in out.getvalue()
    sup.stopping.set()
    assert await asyncio.wait_for(task, 60) == 0


async def test_existing_demo_user_in_database_is_not_overwritten(tmp_path: Path) -> None:
    opts = make_options(tmp_path, sim=False)
    (opts.data_dir / "fake-users.json").write_text(json.dumps({"demo": "older"}))
    out = io.StringIO()
    sup = make_supervisor(tmp_path, opts, out)
    task = asyncio.create_task(sup.run())
    await wait_for_text(out, "Press Ctrl-C")
    assert "existed already in this database" in out.getvalue()
    sup.stopping.set()
    assert await asyncio.wait_for(task, 60) == 0


@pytest.mark.usefixtures("fast_restarts")
async def test_crashed_engine_is_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ENGINE", "crash-once")
    opts = make_options(tmp_path, sim=False)
    out = io.StringIO()
    sup = make_supervisor(tmp_path, opts, out)
    task = asyncio.create_task(sup.run())
    await wait_for_text(out, "exited with code 7; restarting")
    await wait_for_text(out, "(start 2)")
    assert sup.engine.starts == 2
    sup.stopping.set()
    assert await asyncio.wait_for(task, 60) == 0
    assert "engine snapshot written" in out.getvalue()


@pytest.mark.usefixtures("fast_restarts")
async def test_gives_up_after_repeated_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = make_options(tmp_path, sim=False)
    out = io.StringIO()
    sup = make_supervisor(tmp_path, opts, out)
    task = asyncio.create_task(sup.run())
    await wait_for_text(out, "Press Ctrl-C")
    # From now on every (re)start of the engine crashes after half a second.
    for child in sup.children:
        child.env["FAKE_ENGINE"] = "crash-always"
    assert sup.engine.proc is not None
    sup.engine.proc.kill()
    assert await asyncio.wait_for(task, 60) == 1
    text = out.getvalue()
    assert f"the engine exited {run.MAX_FAILURES} times" in text
    assert "giving up. Last lines:" in text
    assert "engine crashing on purpose" in text
    assert sup.engine.starts == run.MAX_FAILURES


async def test_child_failing_at_start_shows_its_last_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_ENGINE", "fail-at-start")
    opts = make_options(tmp_path)
    out = io.StringIO()
    sup = make_supervisor(tmp_path, opts, out)
    assert await asyncio.wait_for(sup.run(), 60) == 1
    text = out.getvalue()
    assert "the engine exited with code 3 while starting" in text
    assert "boom: the journal is corrupt at offset 42" in text
    assert sup.api.proc is None  # nothing else was started


async def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    opts = make_options(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", opts.api_port))
        busy.listen()
        out = io.StringIO()
        sup = make_supervisor(tmp_path, opts, out)
        assert await asyncio.wait_for(sup.run(), 30) == 1
    assert f"port {opts.api_port} on 127.0.0.1 (backend) is already in use" in out.getvalue()
    assert "--api-port" in out.getvalue()
    assert sup.engine.proc is None


def test_two_services_on_one_port_is_an_error(tmp_path: Path) -> None:
    port = free_port()
    opts = make_options(tmp_path, api_port=port, engine_port=port)
    with pytest.raises(run.StartError, match="share a port"):
        run.Supervisor(opts).check_ports()


def parse(argv: list[str]) -> argparse.Namespace:
    return run.build_parser().parse_args(argv)


def test_options_default_to_sqlite_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HFT_DATABASE_URL", raising=False)
    monkeypatch.delenv("HFT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    opts = run.options_from_args(parse(["--data-dir", "d", "--no-sim", "--api-port", "9000"]))
    assert opts.data_dir == (tmp_path / "d").resolve()
    assert opts.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'd' / 'hft.db'}"
    assert opts.sim is False
    assert opts.api_port == 9000
    assert opts.config.name == "default.yaml"  # found in the source tree
    assert run.api_argv(opts)[run.api_argv(opts).index("--database-url") + 1] == opts.database_url


def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFT_DATABASE_URL", "postgresql+asyncpg://u:pw@db.example:5433/hft")
    opts = run.options_from_args(parse(["--data-dir", str(tmp_path)]))
    assert opts.database_url.startswith("postgresql+asyncpg://")
    assert run.describe_database(opts.database_url) == "postgresql u@db.example:5433/hft"


def test_web_dir_must_hold_a_build(tmp_path: Path) -> None:
    with pytest.raises(run.StartError, match=r"index\.html"):
        run.options_from_args(parse(["--data-dir", str(tmp_path), "--web-dir", str(tmp_path)]))
    (tmp_path / "index.html").write_text("<html></html>")
    opts = run.options_from_args(
        parse(["--data-dir", str(tmp_path / "d"), "--web-dir", str(tmp_path)])
    )
    assert opts.web_dir == tmp_path.resolve()
    assert run.api_argv(opts)[-2:] == ["--web-dir", str(tmp_path.resolve())]


def test_missing_config_is_reported(tmp_path: Path) -> None:
    with pytest.raises(run.StartError, match="config file not found"):
        run.options_from_args(
            parse(["--data-dir", str(tmp_path), "--config", str(tmp_path / "x.yaml")])
        )


def test_bad_port_is_rejected_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--api-port", "70000"])
    assert "port out of range" in capsys.readouterr().err


def test_generated_passwords_are_strong_and_distinct() -> None:
    seen = {run.generate_password() for _ in range(50)}
    assert len(seen) == 50
    for pw in seen:
        raw = pw.replace("-", "")
        assert len(raw) == 16
        assert any(c.isupper() for c in raw)
        assert any(c.islower() for c in raw)
        assert any(c.isdigit() for c in raw)


def test_connect_host_for_wildcard_binds() -> None:
    assert run.connect_host("0.0.0.0") == "127.0.0.1"
    assert run.connect_host("::") == "127.0.0.1"
    assert run.connect_host("10.1.2.3") == "10.1.2.3"


def test_data_dir_is_locked_against_a_second_run(tmp_path: Path) -> None:
    held = run.lock_data_dir(tmp_path)
    try:
        with pytest.raises(
            run.StartError, match=rf"in use by another `hft run` \(pid {os.getpid()}\)"
        ):
            run.lock_data_dir(tmp_path)
    finally:
        held.close()
    run.lock_data_dir(tmp_path).close()


def test_main_refuses_a_locked_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held = run.lock_data_dir(tmp_path)
    try:
        assert run.main(["--data-dir", str(tmp_path), "--no-sim"]) == 2
    finally:
        held.close()
    assert "is in use by another `hft run`" in capsys.readouterr().err
