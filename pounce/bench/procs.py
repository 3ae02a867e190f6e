"""Processes: start a pinned server in its own process group, stop it, read its RSS."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STOP_GRACE_S = 10.0
KILL_WAIT_S = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: int | str | None, argv: list[str]) -> list[str]:
    """`argv` run under `taskset -c cpu` (a CPU, or a list such as "0-7"), or unchanged
    when there is nothing to pin to."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


@dataclass
class Process:
    """A child in its own session (so its whole tree can be signalled) with a log file."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @classmethod
    def start(cls, argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path) -> Process:
        log = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        return cls(popen, log_path, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL after a grace period."""
        try:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_GRACE_S)
            self._signal_group(signal.SIGKILL)  # children that outlived their parent too
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=KILL_WAIT_S)
        finally:
            self.log.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def log_tail(self, lines: int = 20) -> str:
        self.log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _parent_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; ppid follows the state.
        fields = stat[stat.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    parents = _parent_map()
    tree = [pid]
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.extend(children)
        frontier.extend(children)
    return tree


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@dataclass(frozen=True, slots=True)
class Rss:
    """VmRSS of a process tree: the sum, and each process (KiB)."""

    total_kib: int
    processes: tuple[tuple[int, str, int], ...]  # (pid, command name, VmRSS KiB)

    @property
    def total_mib(self) -> float:
        return self.total_kib / 1024

    def as_json(self) -> dict[str, object]:
        return {
            "total_mib": round(self.total_mib, 2),
            "processes": [
                {"pid": pid, "name": name, "rss_mib": round(kib / 1024, 2)}
                for pid, name, kib in self.processes
            ],
        }


def tree_rss(pid: int) -> Rss:
    """VmRSS summed over `pid` and its children (Granian and Hypercorn fork workers)."""
    rows = []
    for member in process_tree(pid):
        kib = _status_kib(member, "VmRSS")
        if kib is not None:
            rows.append((member, _command_name(member), kib))
    return Rss(sum(kib for _, _, kib in rows), tuple(rows))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it returns true or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree_cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` and its children, all threads, in clock ticks."""
    total = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return total


def _cpu_jiffies(cpu: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU from /proc/stat.

    Busy is user + nice + system + steal: processes and the hypervisor. Interrupt and
    softirq time is left out: that is mostly the loopback traffic of the run itself.
    """
    prefix = f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            user, nice, system, _idle, _iowait, _irq, _softirq, steal = (
                int(v) for v in line.split()[1:9]
            )
            total = sum(int(v) for v in line.split()[1:9])
            return user + nice + system + steal, total
    return 0, 0


def _children_cpu_ticks() -> float:
    """CPU time of this process's waited-for children (wrk), in clock ticks."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class CpuSample:
    wall: float
    server_ticks: float
    client_ticks: float
    server_core: tuple[int, int]  # (busy, total) jiffies of the server's CPU
    client_core: tuple[int, int]

    @classmethod
    def take(cls, pid: int, server_cpu: int | None, client_cpu: int | None) -> CpuSample:
        return cls(
            time.monotonic(),
            _tree_cpu_ticks(pid),
            _children_cpu_ticks(),
            _cpu_jiffies(server_cpu) if server_cpu is not None else (0, 0),
            _cpu_jiffies(client_cpu) if client_cpu is not None else (0, 0),
        )


def _others(before: tuple[int, int], after: tuple[int, int], own_ticks: float) -> float | None:
    total = after[1] - before[1]
    if total <= 0:
        return None
    return max(0.0, (after[0] - before[0] - own_ticks) / total)


@dataclass(frozen=True, slots=True)
class CpuShares:
    """CPU use during one run, as fractions of one core.

    server, client: CPU time of the server (its process tree) and of wrk per wall second.
    A server below ~90 % was not saturated: wrk, or the machine, could not feed it.
    server_others, client_others: the share of each core that went to other processes or
    was stolen by the hypervisor: noise.
    """

    server: float
    client: float
    server_others: float | None
    client_others: float | None

    @property
    def noise(self) -> float | None:
        values = [v for v in (self.server_others, self.client_others) if v is not None]
        return max(values) if values else None

    @classmethod
    def between(cls, before: CpuSample, after: CpuSample) -> CpuShares:
        wall = max(after.wall - before.wall, 1e-9)
        server_ticks = after.server_ticks - before.server_ticks
        client_ticks = after.client_ticks - before.client_ticks
        return cls(
            server=server_ticks / _CLOCK_TICKS / wall,
            client=client_ticks / _CLOCK_TICKS / wall,
            server_others=_others(before.server_core, after.server_core, server_ticks),
            client_others=_others(before.client_core, after.client_core, client_ticks),
        )
