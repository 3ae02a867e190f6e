"""HTTP/3 1 MiB downloads under callgrind: instructions per MiB, split by whose code ran them.

    python benchmarks/h3_callgrind.py                          # pounce-h3 and hypercorn-h3
    python benchmarks/h3_callgrind.py --groups all,aioquic,pounce,hypercorn,stdlib,other,app
    python benchmarks/h3_callgrind.py --servers pounce-h3 --downloads 2 --groups all  # smoke
    python benchmarks/h3_callgrind.py --servers pounce-h3 --groups plain \
        --pounce-args "--http3-max-datagram-size 1452"   # an opt-in setting's effect
    python benchmarks/h3_callgrind.py --groups plain --counts --downloads 16 \
        --gtls-args=--ack-thresh=10   # the client acknowledging as often as at full speed
    python benchmarks/h3_callgrind.py --groups plain --counts --connections 3 --downloads 4
    python benchmarks/h3_callgrind.py --servers pounce-h3 --downloads 16 \
        --inclusive "connection.py:QuicConnection._write_stream_frame"  # one function, inclusive

Under valgrind the server runs some 50x slower than the client, and that
changes how often the client acknowledges: Hypercorn's datagrams, one
``sendto`` each, arrive one by one and gtlsclient (``--ack-thresh`` 2)
acknowledges every 4 of them, ~227 ACKs per MiB; at full speed they arrive
in bursts and it acknowledges every 10 to 14 (67 to 127 per MiB measured with
``h3_bench.py --counts``). Pounce's flights leave in one ``sendmsg`` either
way (~100 ACKs per MiB both ways). ``--counts`` (``quic_counts.py``) prints
those counts for the measured connection; ``--gtls-args=--ack-thresh=10``
makes the client acknowledge under callgrind about as often as at full speed.

Each server of ``h3_bench.py`` (the same app, certificate and command line,
Hypercorn with ``--workers 0`` so that it serves in the process valgrind
watches) runs under ``valgrind --tool=callgrind --collect-atstart=no`` once
per group, with ``pysplit.c`` (built here with gcc) loaded: callgrind then
counts only while a Python frame of that group's files is the innermost one
(see pysplit.c). The peer is ngtcp2's C client ``gtlsclient``: a warm-up
connection (one 1 MiB download), then one connection asking
``/callgrind/zero`` and ``--downloads`` MiB at once, then ``/callgrind/dump``
on a third: the count is what the server executed for that connection's
downloads, handshake excluded.

Groups, by the code's file name (first match): ``aioquic`` (aioquic,
pylsqpack and cryptography: QUIC, QPACK, TLS and packet protection, with the
C they call), ``pounce`` (less the four next), ``pounce.h3`` (the sans-I/O
core, ``pounce/protocols/h3*``), ``pounce.http3`` (the driver and endpoint),
``pounce.udp`` (``pounce/net/udp.py``), ``pounce.asgi`` (the exchange and
adapter), ``hypercorn``, ``app`` (this benchmark's ASGI app), ``other``
(other site-packages: uvloop, h11, h2, ...), ``stdlib`` (asyncio and the
rest of the standard library, with the C they call: the event loop, the
datagram transport, ``sendto``); ``none``, code of no known file (what
``exec`` made, such as a dataclass's ``__init__``, counts for its caller).
``all`` counts every group: the groups add up to it. ``plain`` counts
everything without pysplit's hook, which slows the interpreter (it stops
inlining Python calls): the total to compare servers by.

``--inclusive`` counts, instead of groups, what one function costs with all it
calls (a substring of ``file:qualname``, e.g.
``quic/connection.py:QuicConnection._write_application``): callgrind collects
while a frame of it is anywhere on the stack. The hook's slowdown applies.

The bound: a server built on aioquic executes at least aioquic's share per
MiB; a server whose own share were zero would beat Hypercorn by at most
Hypercorn's total ÷ that server's aioquic share.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import quic_counts
from h3_bench import GTLS_WINDOW, HERE, MIB, ROOT, free_port, server_command, wait_listening

GROUPS = {
    "none": 0, "aioquic": 1, "pounce": 2, "hypercorn": 3, "app": 4, "other": 5, "stdlib": 6,
    "pounce.h3": 7, "pounce.http3": 8, "pounce.udp": 9, "pounce.asgi": 10,
}  # fmt: skip
ALL = 16  # pysplit's GROUPS: count every group
FUNCTION = 11  # the group of --inclusive's function
PLAIN = -1  # every group, no frame hook
PATTERNS = [  # (group, substring of a code object's file name); first match wins
    (-1, "<string>"),  # made by exec (dataclasses' __init__ ...): counts for its caller
    (1, "/aioquic/"),
    (1, "/pylsqpack/"),
    (1, "/cryptography/"),
    (7, "/pounce/protocols/h3"),
    (8, "/pounce/drivers/http3"),
    (9, "/pounce/net/udp.py"),
    (10, "/pounce/asgi/"),
    (2, "/pounce/"),
    (3, "/hypercorn/"),
    (4, "/benchmarks/"),
    (5, "/site-packages/"),
    (6, "/python3."),
    (6, "<frozen "),
]
LAUNCH = """
import json, os, runpy, sys
import pysplit
pysplit.install([tuple(p) for p in json.loads(os.environ["PYSPLIT_PATTERNS"])],
                int(os.environ["PYSPLIT_GROUP"]), os.environ.get("PYSPLIT_INCLUSIVE") == "1")
sys.argv = json.loads(os.environ["PYSPLIT_ARGV"])
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
GTLS = ["gtlsclient", "-q", "--exit-on-all-streams-close", "--handshake-timeout=120s",
        "--timeout=300s"]  # fmt: skip  # the server is 50x slower under valgrind


def build(into: Path) -> None:
    """Compile pysplit.c into `into` for this interpreter."""
    include = sysconfig.get_paths()["include"]
    target = into / f"pysplit{sysconfig.get_config_var('EXT_SUFFIX')}"
    command = ["gcc", "-O2", "-shared", "-fPIC", f"-I{include}", f"-I{include}/internal"]
    subprocess.run([*command, str(HERE / "pysplit.c"), "-o", str(target)], check=True)


def gtls(port: int, paths: list[str], into: Path, *more: str) -> None:
    into.mkdir(exist_ok=True)
    uris = [f"https://127.0.0.1:{port}{path}" for path in paths]
    command = [*GTLS, *more, "--download", str(into), "127.0.0.1", str(port), *uris]
    subprocess.run(command, check=True, timeout=900, stdout=subprocess.DEVNULL)


def total(dump: Path) -> int:
    """The instruction count of a callgrind dump file."""
    for line in dump.read_text().splitlines():
        if match := re.fullmatch(r"(?:summary|totals): (\d+).*", line):
            return int(match.group(1))
    raise SystemExit(f"no total in {dump}")


def measure(
    name: str,
    group: int,
    options: argparse.Namespace,
    files: tuple[str, str],
    work: Path,
    function: str | None = None,
) -> int:
    """Instructions the server ran for `downloads` MiB on one connection, in `group`."""
    downloads = options.downloads
    port = free_port()
    argv = server_command(name, port, *files)[2:]  # less "python -m": runpy runs the module
    if name.startswith("hypercorn"):
        argv += ["--workers", "0"]
    else:
        argv += shlex.split(options.pounce_args)
    out = work / f"{name}.{group}.{'fn' if function else 'g'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(work), str(HERE), str(ROOT)]),
        "PYSPLIT_PATTERNS": json.dumps(PATTERNS if function is None else [(group, function)]),
        "PYSPLIT_GROUP": str(group),
        "PYSPLIT_INCLUSIVE": "0" if function is None else "1",
        "PYSPLIT_ARGV": json.dumps(argv),
    }
    if options.counts:  # quic_counts.py in the server, zeroed and frozen with the count
        (work / "sitecustomize.py").write_text(quic_counts.SITECUSTOMIZE)
        shutil.rmtree(work / "counts", ignore_errors=True)
        (work / "counts").mkdir()
        env["QUIC_COUNTS_DIR"] = str(work / "counts")
    valgrind = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--dump-instr=no",
                f"--callgrind-out-file={out}", "-q"]  # fmt: skip
    proc = subprocess.Popen(
        [*valgrind, sys.executable, "-c", LAUNCH], cwd=HERE, env=env, start_new_session=True
    )
    try:
        wait_listening(port, proc, timeout=300)
        time.sleep(5)  # the UDP endpoint opens after the TCP one, slowly under valgrind
        gtls(port, ["/1mib"], work / "warm")
        paths = [f"/1mib?{n}" for n in range(downloads)]
        more = shlex.split(options.gtls_args)
        if options.connections == 1:
            gtls(port, ["/callgrind/zero", *paths], work / "load", *more)
            loads = [work / "load"]
        else:  # the zero on a connection of its own; the load's handshakes count
            gtls(port, ["/callgrind/zero"], work / "zero")
            loads = [work / f"load{c}" for c in range(options.connections)]
            more.append(f"--max-data={GTLS_WINDOW}")
            threads = [threading.Thread(target=gtls, args=(port, paths, into, *more))
                       for into in loads]  # fmt: skip
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for into in loads:
            for n in range(downloads):
                if (into / f"1mib?{n}").read_bytes() != MIB:
                    raise SystemExit(f"{name}: download {n} came back wrong")
        gtls(port, ["/callgrind/dump"], work / "dump")
        if options.counts:
            print(f"{name:14} {quic_counts.per_mib(quic_counts.total(str(work / 'counts')))}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    if options.keep:
        shutil.copy(f"{out}.1", Path(options.keep) / f"callgrind.{name}.{group}")
    return total(Path(f"{out}.1"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="pounce-h3,hypercorn-h3")
    parser.add_argument("--groups", default="all,aioquic", help=f"plain, all, {', '.join(GROUPS)}")
    parser.add_argument("--downloads", type=int, default=6, help="MiB on the measured connection")
    parser.add_argument("--pounce-args", default="", help="more pounce flags, one string")
    parser.add_argument(
        "--inclusive",
        default="",
        metavar="FUNCTIONS",
        help="instead of groups: each function's inclusive count, comma-separated substrings"
        " of file:qualname",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep the callgrind dumps here")
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="measured connections at once, each --downloads MiB (their handshakes count"
        " when more than 1; the client's window is then h3_bench's 64 MiB)",
    )
    parser.add_argument(
        "--gtls-args",
        default="",
        help="more gtlsclient flags for the measured connections, one string"
        " (e.g. --ack-thresh=10: the client acknowledges less often)",
    )
    parser.add_argument(
        "--counts",
        action="store_true",
        help="also count aioquic's datagrams, transmits and ACKs per MiB (quic_counts.py)",
    )
    options = parser.parse_args(argv)
    if sys.version_info[:2] != (3, 11):  # pysplit.c reads 3.11's _PyInterpreterFrame
        raise SystemExit("h3_callgrind.py needs CPython 3.11 (pysplit.c uses its frame struct)")
    for tool in ("valgrind", "gcc", "gtlsclient"):
        if shutil.which(tool) is None:
            raise SystemExit(f"h3_callgrind.py needs {tool} on PATH")
    import trustme

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build(work)
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        files = (f"{tmp}/cert.pem", f"{tmp}/key.pem")
        issued.cert_chain_pems[0].write_to_path(files[0])
        issued.private_key_pem.write_to_path(files[1])
        for name in options.servers.split(","):
            if options.inclusive:
                for function in options.inclusive.split(","):
                    count = measure(name, FUNCTION, options, files, work, function)
                    count /= options.downloads * options.connections * 1e6
                    print(f"{name:14} {count:8.1f} M per MiB in {function}", flush=True)
                continue
            counts = {}
            for group in options.groups.split(","):
                number = {"all": ALL, "plain": PLAIN}.get(group) or GROUPS[group]
                counts[group] = measure(name, number, options, files, work)
                counts[group] /= options.downloads * options.connections * 1e6  # M per MiB
                line = f"{name:14} {group:9} {counts[group]:8.1f} M instructions per MiB"
                print(line, flush=True)
            parts = [g for g in counts if g in GROUPS]
            if "all" in counts and parts:
                rest = counts["all"] - sum(counts[g] for g in parts)
                print(f"{name:14} rest       {rest:8.1f} M (all less the groups measured)")


if __name__ == "__main__":
    main()
