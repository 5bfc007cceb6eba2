"""RESULTS.md is shared by the benchmark scripts: each owns a section between marker lines."""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
from pathlib import Path


def write_section(path: Path, text: str, start: str, end: str) -> None:
    """Replace the section of `path` between `start` and `end` (or append `text`), keeping
    everything else; written to a temporary file and renamed, so never half-written."""
    old = path.read_text() if path.exists() else ""
    if start in old and end in old and old.index(start) < old.index(end):
        head, rest = old.split(start, 1)
        _, tail = rest.split(end, 1)
        new = head + text + tail
    else:
        new = old.rstrip("\n") + ("\n\n" if old.strip() else "") + text + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(new)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else `platform.processor()`, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    """ "CPU, cores, date, load average": the first line of every section."""
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, {datetime.datetime.now():%Y-%m-%d %H:%M}, load "
        f"{os.getloadavg()[0]:.1f}"
    )
