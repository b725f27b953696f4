"""Who holds an outbox row, and whether that process is gone, so that its rows go out again at once.

A row is held (`claimed` or `sending`) by one process, named by `process_owner()`: host, PID namespace, PID and
the process's start time. Rows of a process that died are taken back without waiting for their lease when that
process was on this machine and in this PID namespace and is provably gone: no such PID, a zombie, or a PID now
used by a process that started at another time. Anything else (another host, a container with its own PIDs, no
/proc) is never judged gone: its rows wait for their lease, which a live holder keeps renewing.
"""

from __future__ import annotations

import os
import socket
from functools import cache

_SEP = "/"


@cache
def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").replace(_SEP, "_")
    except OSError:
        return "-"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None if there is no
    such process; "Z" for a zombie, which is as gone as a process gets."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    except FileNotFoundError:
        return None
    except OSError:
        return "?"  # cannot tell: treat as alive
    return "Z" if fields[0] == "Z" else fields[19]


def process_owner() -> str:
    """This process's name for the rows it holds (the same for the whole life of the process)."""
    pid = os.getpid()
    host = socket.gethostname().replace(_SEP, "_")
    return _SEP.join((host, _namespace(), str(pid), _start_time(pid) or "?"))


def owner_gone(owner: str) -> bool:
    """True only when the process behind `owner` ran here (same host and PID namespace) and is gone."""
    parts = owner.split(_SEP)
    if len(parts) != 4 or not parts[2].isdigit() or parts[3] == "?":
        return False
    host, namespace, pid, started = parts
    if host != socket.gethostname().replace(_SEP, "_") or namespace != _namespace() or namespace == "-":
        return False
    now = _start_time(int(pid))
    return now is None or now == "Z" or (now != "?" and now != started)
