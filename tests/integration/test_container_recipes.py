"""recipes/container: the Dockerfile's CMD and the Kubernetes manifest, against the real CLI.

No container runtime is needed (none may be installed; a Docker client without
its daemon is as good as none). What a container would add is checked
another way:

* the image: slim Python base, a numeric non-root ``USER``, ``CMD`` in exec
  form naming ``pounce``, ``EXPOSE`` on the port the CMD serves;
* the manifest against the CMD as the CLI reads it (``--print-config``): the
  probe paths are the health paths, the probe port is the served port, the
  grace period outlasts preStop plus the graceful timeout, ``runAsUser`` is
  the image's user, ``POUNCE_WORKERS`` follows the CPU limit;
* the CMD itself, run as PID 1 of a new PID namespace (``unshare``), as a
  container runs it: the probes answer, SIGTERM from outside the namespace
  (what ``docker stop`` and the kubelet send) lets an in-flight request
  finish, and the process exits 0.

docs/deploy.md shows both files; every line it shows is checked to be in them.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml

from tests.integration.conftest import need

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "container"
DOCKERFILE = RECIPE / "Dockerfile"
MANIFEST = RECIPE / "deployment.yaml"
DOC = ROOT / "docs" / "deploy.md"
TIMEOUT = 10.0  # seconds for every wait on the server
MARGIN = 5  # seconds the grace period must leave after preStop and the graceful timeout


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def instruction(keyword: str) -> str:
    values = [rest for key, rest in instructions() if key == keyword]
    assert len(values) == 1, f"the Dockerfile should have one {keyword}, has {values}"
    return values[0]


def cmd() -> list[str]:
    text = instruction("CMD")
    assert text.startswith("["), "CMD must be in exec form, so that pounce is PID 1"
    argv = json.loads(text)
    assert argv[0] == "pounce", argv
    return list(argv)


def deployment() -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    kinds = [d["kind"] for d in documents]
    assert kinds == ["Deployment", "Service"], kinds
    return dict(documents[0])


def container() -> dict[str, Any]:
    containers = deployment()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def manifest_env() -> dict[str, str]:
    """The container's environment as the kubelet would set it (resource fields resolved)."""
    found = {}
    for variable in container().get("env", []):
        if "value" in variable:
            found[variable["name"]] = str(variable["value"])
            continue
        field = variable["valueFrom"]["resourceFieldRef"]
        resource, unit = field["resource"].split(".", 1)
        assert resource == "limits" and unit == "cpu" and str(field["divisor"]) == "1", field
        found[variable["name"]] = str(math.ceil(cpus(container()["resources"]["limits"]["cpu"])))
    return found


def cpus(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def cli_config(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """What the real CLI makes of `argv` and `env`: ``pounce … --print-config``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_")}
    environ.update(env, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "pounce", *argv[1:], "--print-config"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tomllib.loads(done.stdout)


def port_number(port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container()["ports"]}
    return int(named[port])


# -- the files, read ---------------------------------------------------------------------------


def test_image_is_slim_unprivileged_and_runs_pounce_in_exec_form() -> None:
    assert re.fullmatch(r"python:3\.\d+-slim", instruction("FROM"))
    user = instruction("USER")
    assert user.isdigit() and int(user) != 0, "USER: a numeric uid, not root"
    config = cli_config(cmd(), {})
    assert instruction("EXPOSE") == str(config["port"])
    assert config["host"] == "0.0.0.0"  # reachable from outside the container
    assert config["health"] is True


def test_manifest_agrees_with_the_image_and_the_cli() -> None:
    config = cli_config(cmd(), manifest_env())
    web = container()
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(instruction("USER"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert [p["containerPort"] for p in web["ports"]] == [config["port"]]
    for probe, path in [
        ("startupProbe", config["health_live_path"]),
        ("livenessProbe", config["health_live_path"]),
        ("readinessProbe", config["health_ready_path"]),
    ]:
        assert web[probe]["httpGet"]["path"] == path, probe
        assert port_number(web[probe]["httpGet"]["port"]) == config["port"], probe
    assert config["workers"] == math.ceil(cpus(web["resources"]["limits"]["cpu"]))
    pre_stop = web["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(pre_stop[1]) + config["timeout_graceful_shutdown"]
    assert pod["terminationGracePeriodSeconds"] >= drain + MARGIN


def test_docs_show_the_recipes_as_they_are() -> None:
    shown = {"dockerfile": DOCKERFILE.read_text(), "yaml": MANIFEST.read_text()}
    blocks = re.findall(r"^```(dockerfile|yaml)\n(.*?)^```", DOC.read_text(), re.M | re.S)
    assert {lang for lang, _ in blocks} == set(shown)
    for lang, block in blocks:
        for line in block.splitlines():
            code = line.split("  #")[0].rstrip()
            if code.strip() and code.strip() != "...":
                assert code in shown[lang], f"docs/deploy.md: {code!r} is not in the {lang} recipe"


# -- the CMD, run as PID 1 ---------------------------------------------------------------------

APP = """
import asyncio, os, pathlib

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/slow":
        pathlib.Path("started").touch()
        await asyncio.sleep(1)
        body = b"done"
    else:
        body = f"{os.getpid()} {os.getppid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def pid_namespace() -> list[str]:
    """The command prefix that makes the next command PID 1 of a new PID namespace."""
    unshare = need("unshare")
    prefix = [unshare, "--pid", "--fork", "--mount-proc"]
    if os.geteuid() != 0:
        prefix[1:1] = ["--user", "--map-root-user"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no new PID namespace here: {probe.stderr.decode().strip()}")
    return prefix


class Lines:
    """The process's stderr lines, read on a thread, each wait with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self.done = threading.Event()
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stderr is not None
        threading.Thread(target=self._read, args=(process.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self.done.set()

    def wait_for(self, pattern: str) -> re.Match[str]:
        while True:
            try:
                line = self._queue.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in:\n{''.join(self.seen)}") from None
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "myapp.py").write_text(APP)
    return tmp_path


def host_pid_of_pid_1(unshare: subprocess.Popen[str]) -> int:
    """The PID, seen from here, of the namespace's PID 1: unshare's one child."""
    children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.parametrize("workers", ["manifest", "1"])
def test_cmd_as_pid_1_answers_probes_and_drains_on_sigterm(app_dir: Path, workers: str) -> None:
    env = manifest_env() if workers == "manifest" else {"POUNCE_WORKERS": workers}
    count = int(env["POUNCE_WORKERS"])
    web = container()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_")}
    environ.update(env, PYTHONPATH=str(ROOT))
    # The CMD as the image runs it, but on 127.0.0.1 and a free port (later flags win)
    argv = [sys.executable, "-m", "pounce", *cmd()[1:], "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(
        [*pid_namespace(), *argv], cwd=app_dir, env=environ, stderr=subprocess.PIPE, text=True
    )
    lines = Lines(process)
    try:
        url = lines.wait_for(r"Pounce running on (http://127\.0\.0\.1:\d+)")[1]
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            pid, parent = map(int, client.get("/").text.split())
            # one worker: pounce serves as PID 1; more: its workers are PID 1's children
            assert (pid if count == 1 else parent) == 1
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                assert client.get(web[probe]["httpGet"]["path"]).status_code == 200, probe
            slow: list[httpx.Response] = []
            request = threading.Thread(target=lambda: slow.append(client.get("/slow")))
            request.start()
            started = app_dir / "started"
            for _ in range(int(TIMEOUT / 0.05)):  # until the app has the request
                if started.exists():
                    break
                threading.Event().wait(0.05)
            assert started.exists()
            os.kill(host_pid_of_pid_1(process), signal.SIGTERM)  # as docker stop does
            request.join(TIMEOUT)
        assert [(r.status_code, r.text) for r in slow] == [(200, "done")]
        grace = deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert process.wait(timeout=grace) == 0
        lines.wait_for(r"Shutting down")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
        lines.done.wait(TIMEOUT)  # stderr read to its end before it is closed
        assert process.stderr is not None
        process.stderr.close()
    assert "Traceback" not in "".join(lines.seen)
