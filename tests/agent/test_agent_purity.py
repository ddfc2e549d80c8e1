"""The agent's modules stay light: importing them (and the tools plugin) pulls in no torch, transformers or textual."""

from __future__ import annotations

import json
import subprocess
import sys


def test_agent_modules_stay_light():
    code = (
        "import json, sys\n"
        "import assistant.agent, assistant.toolcalls, assistant.permissions, assistant_plugins.tools\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'textual') if m in sys.modules]))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(output.strip().splitlines()[-1]) == []
