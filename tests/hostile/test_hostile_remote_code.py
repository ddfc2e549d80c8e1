"""Issue 22.4: trust_remote_code = true names the code files that will run, once per model (and again when that
code changes), and records the consent."""

from __future__ import annotations

import json
import shutil

from assistant.paths import user_paths
from assistant.remotecode import CONSENT_FILE, code_files
from tests.hostile.kit import cli


def _model_with_code(tmp_path):
    """A copy of the tiny model's folder with a Python file in it (loading does not import it: harmless)."""
    from assistant.engine.tiny import ensure_local_model

    folder = tmp_path / "model"
    shutil.copytree(ensure_local_model("tiny-smolvlm", user_paths().models_dir), folder)
    (folder / "helper_code.py").write_text("VALUE = 1\n")
    return folder


def _profile(tmp_path, folder, trust: bool):
    path = tmp_path / "custom.toml"
    path.write_text(
        f'[model]\nid = "{folder}"\ndtype = "float32"\ndevice = "cpu"\ntrust_remote_code = {str(trust).lower()}\n'
        "[generation]\nmax_new_tokens = 2\n"
    )
    return path


def _notices(err: str) -> list[str]:
    return [line for line in err.splitlines() if "runs its own Python code" in line]


def test_trusting_a_models_code_names_its_files_once_and_again_when_they_change(capsys, tmp_path):
    folder = _model_with_code(tmp_path)
    profile = _profile(tmp_path, folder, trust=True)
    first = cli(capsys, "ask", "--profile", str(profile), "hi")
    assert first.code == 0, first.err
    (notice,) = _notices(first.err)
    assert "helper_code.py" in notice and str(folder) in notice
    record = json.loads((user_paths().config / CONSENT_FILE).read_text())
    assert list(record[f"{folder}@main"]["files"]) == ["helper_code.py"]

    again = cli(capsys, "ask", "--profile", str(profile), "-c", "hi again")
    assert again.code == 0 and _notices(again.err) == []  # consent recorded: said once

    (folder / "helper_code.py").write_text("VALUE = 2  # changed\n")
    changed = cli(capsys, "ask", "--profile", str(profile), "-c", "and now?")
    (notice,) = _notices(changed.err)
    assert "changed" in notice


def test_without_trust_nothing_is_said_or_recorded(capsys, tmp_path):
    folder = _model_with_code(tmp_path)
    result = cli(capsys, "ask", "--profile", str(_profile(tmp_path, folder, trust=False)), "hi")
    assert result.code == 0 and _notices(result.err) == []
    assert not (user_paths().config / CONSENT_FILE).exists()


def test_modules_named_by_auto_map_are_listed(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel", "AutoProcessor": ["processing_x.XProc", None]}})
    )
    assert code_files(tmp_path) == {"modeling_x.py": "", "processing_x.py": ""}
