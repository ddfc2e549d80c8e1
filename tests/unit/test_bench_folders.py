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
