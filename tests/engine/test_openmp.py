"""OpenMP's wait policy (assistant/openmp.py): passive by default, the user's choice kept, never too late."""

from __future__ import annotations

import os
import subprocess
import sys


def _policy(env_extra: dict[str, str], code: str = "import assistant") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "ASSISTANT_SET_OMP_WAIT_POLICY")}
    env.update(env_extra)
    script = f"{code}; import os; print(os.environ.get('OMP_WAIT_POLICY', '-'))"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_passive_by_default_and_the_users_choice_kept():
    assert _policy({}) == "PASSIVE"
    assert _policy({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_not_set_once_torch_started_openmp():
    assert _policy({}, "import torch; import assistant") == "-"


def test_programs_started_beside_ours_get_the_users_environment_not_ours():
    """llama.cpp's llama-bench (OpenMP too) ran 2.4x slower with the PASSIVE policy our process had inherited."""
    code = "import assistant; from assistant.openmp import user_environment as u; print(u().get('OMP_WAIT_POLICY', '-'))"
    assert _policy({}, code).split() == ["-", "PASSIVE"]  # ours set, theirs not
    assert _policy({"OMP_WAIT_POLICY": "PASSIVE"}, code).split() == ["PASSIVE", "PASSIVE"]  # the user's own kept
    assert _policy({"OMP_WAIT_POLICY": "ACTIVE"}, code).split() == ["ACTIVE", "ACTIVE"]


def test_a_child_of_an_assistant_process_knows_the_policy_was_ours():
    """`assistant bench` started from an assistant process (its agent's shell, a test) inherits PASSIVE: still ours."""
    code = (
        "import assistant, subprocess, sys; "
        "child = 'import assistant; from assistant.openmp import user_environment as u; "
        "print(u().get(\"OMP_WAIT_POLICY\", \"-\"), u().get(\"ASSISTANT_SET_OMP_WAIT_POLICY\", \"-\"))'; "
        "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True, check=True).stdout.strip())"
    )
    assert _policy({}, code).split() == ["-", "-", "PASSIVE"]
    assert _policy({"OMP_WAIT_POLICY": "PASSIVE"}, code).split() == ["PASSIVE", "-", "PASSIVE"]  # the user's own
