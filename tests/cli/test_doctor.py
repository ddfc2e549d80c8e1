"""`assistant doctor`: the real machine, the real installed stack, the real display; exit 1 names what failed."""

from __future__ import annotations

import json
from typing import Any

import pytest

import assistant.plugins as plugins_module
from assistant import stack
from assistant.cli import main


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["doctor", *args])
    out, err = capsys.readouterr()
    return code, out, err


def checks(out: str) -> dict[tuple[str, str], dict[str, Any]]:
    report = json.loads(out)
    return {(check["section"], check["name"]): check for check in report["checks"]}


def test_a_healthy_install_reports_every_section_and_exits_0(
    capsys: pytest.CaptureFixture[str], xvfb_display: Any
) -> None:
    from assistant.engine.loading import model_source
    from assistant.profiles import load_profile

    model_source(load_profile("tiny-smolvlm"))  # built (once per session) before the doctor looks for it
    code, out, _ = doctor(capsys, "--json", "--profile", "tiny-smolvlm")
    found = checks(out)
    assert code == 0 and json.loads(out)["ok"] is True
    sections = {section for section, _ in found}
    assert {"system", "torch", "tested stack", "storage", "display", "plugins", "model"} <= sections
    import transformers

    assert found[("tested stack", "transformers")]["status"] == "ok"
    assert found[("tested stack", "transformers")]["detail"].startswith(transformers.__version__)
    assert "(tested: >=" in found[("tested stack", "peft")]["detail"]
    assert "flags: avx2" in found[("system", "cpu")]["detail"]
    # the real virtual screen is captured
    assert found[("display", "screen")]["status"] == "ok" and "screenshots work (1280x480)" in found[("display", "screen")]["detail"]
    assert found[("model", "profile tiny-smolvlm")]["detail"].startswith("tiny-smolvlm: built locally")


def test_text_report_marks_lines_and_says_all_passed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, out, _ = doctor(capsys)
    assert code == 0
    assert "✓ transformers" in out and "all checks passed" in out
    assert "! screen" in out and "screenshots cannot work" in out  # a warning, not a failure


def test_a_version_outside_the_tested_range_fails_with_the_fix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda name: "5.99.0" if name == "transformers" else real(name))
    code, out, _ = doctor(capsys)
    assert code == 1
    problems = out.split("problem(s):", 1)[1]
    assert "transformers: 5.99.0 outside tested >=5.23,<5.25; pip install 'transformers>=5.23,<5.25'" in problems


def test_a_missing_package_and_a_broken_plugin_fail(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenEntryPoint:
        name, value = "brokenplug", "brokenplug:plugin"

        def load(self) -> object:
            raise ImportError("No module named 'brokenplug'")

    monkeypatch.setattr(plugins_module, "entry_points", lambda group: [BrokenEntryPoint()])
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda name: None if name == "peft" else real(name))
    code, out, _ = doctor(capsys, "--json")
    found = checks(out)
    assert code == 1 and json.loads(out)["ok"] is False
    assert found[("tested stack", "peft")]["status"] == "fail" and "not installed" in found[("tested stack", "peft")]["detail"]
    assert found[("plugins", "brokenplug")]["status"] == "fail"
    assert "No module named 'brokenplug'" in found[("plugins", "brokenplug")]["detail"]


def test_an_unknown_profile_is_a_failed_line_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = doctor(capsys, "--profile", "no-such-profile")
    assert code == 1 and "✗ profile" in out


def test_ask_warns_once_about_an_untested_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda name: "0.30.0" if name == "peft" else real(name))
    monkeypatch.setattr(stack, "_warned", False)
    assert main(["ask", "--profile", "tiny-smolvlm", "--max-tokens", "2", "hello"]) == 0
    assert main(["ask", "--profile", "tiny-smolvlm", "--max-tokens", "2", "hello again"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: peft 0.30.0 is outside the tested range >=0.21,<0.22; pip install 'peft>=0.21,<0.22'") == 1


def test_a_profile_whose_model_directory_is_missing_fails(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    profile = tmp_path / "gone.toml"
    profile.write_text(f'[model]\nid = "{tmp_path / "no-such-model"}"\n', encoding="utf-8")
    code, out, _ = doctor(capsys, "--profile", str(profile))
    assert code == 1 and "no-such-model: no such directory" in out.split("problem(s):", 1)[1]
