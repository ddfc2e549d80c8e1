"""Benchmarks keep nothing: each throwaway folder goes when its process exits (144 had once gathered in /tmp)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_throwaway_folder_is_removed_when_the_process_exits(tmp_path):
    script = (
        "import sys; from assistant.bench import throwaway_folder; "
        "work = throwaway_folder('bench-x-'); (work / 'store.sqlite3').write_text('x'); "
        "(work / 'images').mkdir(); (work / 'images' / 'a.png').write_bytes(b'p'); print(work)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    work = Path(done.stdout.strip())
    assert work.parent == tmp_path and work.name.startswith("bench-x-")
    assert not work.exists() and list(tmp_path.iterdir()) == []


def test_peak_memory_is_the_processs_own_not_its_parents():
    """ru_maxrss carries the parent's peak into a child; a benchmark side must report only what it used."""
    parent = (
        "import subprocess, sys; big = bytearray(400 * 1024 * 1024)\n"
        "for i in range(0, len(big), 4096): big[i] = 1\n"
        "child = 'from assistant.bench import peak_rss_mb; print(peak_rss_mb())'\n"
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True, check=True).stdout)\n"
        "from assistant.bench import peak_rss_mb; print(peak_rss_mb())"
    )
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True)
    child_mb, parent_mb = (float(line) for line in done.stdout.split())
    assert parent_mb >= 400
    assert child_mb < 300  # the interpreter and assistant.bench: tens of MB, not the parent's 400+
