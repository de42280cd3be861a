"""Process helpers for the benchmark: start, wait, CPU and RSS accounting from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[int]:
        """This process and its children (gateway workers)."""
        pids = [self.pid]
        with contextlib.suppress(FileNotFoundError):
            children = open(f"/proc/{self.pid}/task/{self.pid}/children").read().split()
            pids += [int(c) for c in children]
        return pids

    def stop(self, sig: int = signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()


def start(cmd: list[str], env: dict[str, str] | None = None) -> Proc:
    return Proc(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def _cpu_one(pid: int) -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def proc_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its direct children (the gateway's workers)."""
    total = _cpu_one(pid)
    with contextlib.suppress(FileNotFoundError):
        for c in open(f"/proc/{pid}/task/{pid}/children").read().split():
            total += _cpu_one(int(c))
    return total


def proc_rss_peak_kb(pid: int) -> int:
    with contextlib.suppress(FileNotFoundError):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
