"""`assistant doctor`: one report a user can paste into a bug report (machine, torch build, the tested stack,
disk, display, plugins, the default model), each line ok / warn / fail.

Collecting never raises: a check that cannot run is itself a line saying why. Only `fail` lines (a package
missing or outside its tested range, a plugin that failed to load, a nearly full disk) make the exit status 1.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import click

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
MARKS = {OK: "✓", WARN: "!", FAIL: "✗", INFO: "·"}
LOW_DISK_BYTES = 2 * 1024**3
"""Below this much free space a model download or a training run will likely fail."""
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


@dataclass
class Check:
    """One line of the report."""

    section: str
    name: str
    status: str
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, section: str, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(section, name, status, detail))

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]

    def to_json(self) -> str:
        return json.dumps(
            {"ok": not self.failures, "checks": [asdict(check) for check in self.checks]}, indent=2, ensure_ascii=False
        )

    def to_text(self) -> str:
        lines: list[str] = []
        section = None
        width = max((len(check.name) for check in self.checks), default=0)
        for check in self.checks:
            if check.section != section:
                section = check.section
                lines.append(("" if not lines else "\n") + section)
            lines.append(f"  {MARKS[check.status]} {check.name.ljust(width)}  {check.detail}")
        if self.failures:
            lines.append(f"\n{len(self.failures)} problem(s):")
            lines.extend(f"  ✗ {check.name}: {check.detail}" for check in self.failures)
        else:
            lines.append("\nall checks passed")
        return "\n".join(lines)


def collect(profile_name: str | None = None) -> Report:
    """Run every check; each section is isolated so one broken part cannot hide the others."""
    report = Report()
    sections: list[tuple[str, Callable[[Report], None]]] = [
        ("system", _system),
        ("torch", _torch),
        ("tested stack", _stack),
        ("storage", _storage),
        ("display", _display),
        ("plugins", _plugins),
    ]
    for title, check in sections:
        try:
            check(report)
        except Exception as error:  # noqa: BLE001 - the doctor reports, it never crashes
            report.add(title, "check", WARN, f"could not run: {type(error).__name__}: {error}".splitlines()[0])
    try:
        _model(report, profile_name)
    except Exception as error:  # noqa: BLE001
        report.add("model", "profile", FAIL, str(error).splitlines()[0] if str(error) else type(error).__name__)
    return report


# --- sections ------------------------------------------------------------------------------------------------------


def _system(report: Report) -> None:
    report.add("system", "python", INFO, f"{platform.python_version()} ({sys.executable})")
    report.add("system", "os", INFO, platform.platform())
    report.add("system", "cpu", INFO, f"{platform.machine()}, {os.cpu_count()} cores; flags: {_cpu_flags()}")


def _cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS)


def _torch(report: Report) -> None:
    try:
        import torch
    except Exception as error:  # noqa: BLE001 - a broken torch is exactly what the doctor is for
        report.add("torch", "import", FAIL, f"cannot import torch: {type(error).__name__}: {error}".splitlines()[0])
        return
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
    report.add("torch", "build", INFO, f"torch {torch.__version__} ({build} build)")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        bf16 = "bf16 yes" if torch.cuda.is_bf16_supported() else "bf16 no"
        report.add("torch", "cuda", OK, f"{torch.cuda.device_count()} device(s): {name} ({bf16})")
    else:
        report.add("torch", "cuda", INFO, "not available (models run on the CPU)")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and sys.platform == "darwin":
        report.add("torch", "mps", INFO, "available" if mps.is_available() else "not available")
    from .engine.loading import cpu_has_native_bf16

    report.add("torch", "cpu bf16", INFO, "native (profiles with dtype=auto use bf16)" if cpu_has_native_bf16() else "emulated (fp32 is used)")


def _stack(report: Report) -> None:
    from .stack import stack_status

    for status in stack_status():
        if status.installed is None:
            report.add("tested stack", status.name, FAIL, f"not installed (tested: {status.specifier}); {status.fix}")
        elif status.ok:
            report.add("tested stack", status.name, OK, f"{status.installed}  (tested: {status.specifier})")
        else:
            report.add("tested stack", status.name, FAIL, f"{status.installed} outside tested {status.specifier}; {status.fix}")


def _storage(report: Report) -> None:
    from .paths import user_paths

    paths = user_paths()
    for label, folder in (("data", paths.data), ("config", paths.config), ("cache", paths.cache)):
        free = shutil.disk_usage(_existing_parent(folder)).free
        status = FAIL if free < LOW_DISK_BYTES else OK
        exists = "" if folder.exists() else " (not created yet)"
        report.add("storage", f"{label} dir", status, f"{folder}{exists}, {_size(free)} free")
    from .models import hub_cache_dir

    report.add("storage", "chats", INFO, _size(sum(_size_of(p) for p in _store_files(paths.store_file))))
    report.add("storage", "images", INFO, _size(_size_of(paths.images_dir)))
    report.add("storage", "adapters", INFO, _size(_size_of(paths.adapters_dir)))
    report.add("storage", "local models", INFO, f"{_size(_size_of(paths.models_dir))} in {paths.models_dir}")
    hub = hub_cache_dir()
    report.add("storage", "hub models", INFO, f"{_size(_size_of(hub))} in {hub}")


def _display(report: Report) -> None:
    wayland = os.environ.get("WAYLAND_DISPLAY")
    x11 = os.environ.get("DISPLAY")
    if sys.platform in ("darwin", "win32"):
        report.add("display", "screen", INFO, f"{sys.platform}: screenshots use the system API")
    elif x11:
        can, why = _can_capture()
        session = f"X11 DISPLAY={x11}" + (f" (Wayland {wayland}, through XWayland)" if wayland else "")
        report.add("display", "screen", OK if can else WARN, f"{session}: {why}")
    elif wayland:
        report.add("display", "screen", WARN, f"Wayland {wayland} without XWayland: screenshots need a Wayland screenshot plugin")
    else:
        report.add("display", "screen", WARN, "no display ($DISPLAY and $WAYLAND_DISPLAY unset): screenshots cannot work")
    xvfb = shutil.which("Xvfb")
    report.add("display", "Xvfb", OK if xvfb else INFO, xvfb or "not installed (needed only for the screenshot tests)")


def _can_capture() -> tuple[bool, str]:
    try:
        import mss

        with mss.MSS() as screen:
            monitor = screen.monitors[0]
            screen.grab({"left": monitor["left"], "top": monitor["top"], "width": 1, "height": 1})
        return True, f"screenshots work ({monitor['width']}x{monitor['height']})"
    except Exception as error:  # noqa: BLE001
        return False, f"cannot capture: {type(error).__name__}: {error}".splitlines()[0]


def _plugins(report: Report) -> None:
    from .plugins import DEFAULT_PLUGINS, create_plugin_manager

    manager = create_plugin_manager()
    builtin_modules = set(DEFAULT_PLUGINS)
    names = [name for name, plugin in manager.pm.list_name_plugin() if plugin is not None]
    builtin = [name for name in names if name in manager.builtin or name in builtin_modules]
    third = [name for name in names if name not in builtin]
    report.add("plugins", "loaded", OK, f"{len(builtin)} built-in, {len(third)} third-party" + (f": {', '.join(third)}" if third else ""))
    seen: set[tuple[str, str]] = set()
    for failure in manager.failures:
        if (failure.name, failure.stage) in seen:
            continue
        seen.add((failure.name, failure.stage))
        error = " ".join(str(failure.error).split())[:160]
        report.add("plugins", failure.name, FAIL, f"failed at {failure.stage}: {error}")


def _model(report: Report, profile_name: str | None) -> None:
    """The profile's model as `assistant models` sees it (one source of truth: assistant/models.py)."""
    from .models import human_size, model_state
    from .profiles import load_profile

    profile = load_profile(profile_name)
    state = model_state(profile)
    label = f"profile {profile.name}"
    if state.kind == "remote":
        where = f" at {profile.model.base_url}" if profile.model.base_url else ""
        report.add("model", label, INFO, f"{state.model}: {state.state}{where} (not checked: no network calls)")
    elif state.ready:
        report.add("model", label, OK, f"{state.model}: {state.state} in {state.path} ({human_size(state.size_bytes)})")
    elif state.kind == "local_build":
        report.add("model", label, INFO, f"{state.model}: {state.state} (built locally on first use, no download)")
    elif state.kind == "directory":
        report.add("model", label, FAIL, f"{state.model}: no such directory")
    else:
        report.add("model", label, WARN if state.state == "partly downloaded" else INFO,
                   f"{state.model}: {state.state} (fetched on first start, or now with `assistant pull`)")


# --- helpers ---------------------------------------------------------------------------------------------------------


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _store_files(store: Path) -> list[Path]:
    return [store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")]


def _size_of(path: Path) -> int:
    """Bytes of a file or of the regular files under a folder (links not followed); 0 when absent."""
    from .models import directory_size

    if path.is_file():
        return path.stat().st_size
    return directory_size(path) if path.is_dir() else 0


def _size(count: float) -> str:
    from .models import human_size

    return human_size(int(count))


@click.command("doctor")
@click.option("--profile", "-p", default=None, help="Profile whose model to check (default: the default profile).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor_command(profile: str | None, as_json: bool) -> None:
    """Check the installation: machine, torch, tested versions, disk, display, plugins, model.

    Exit status 0 when everything is usable, 1 when a line failed (the failing lines are repeated at the end).
    """
    report = collect(profile)
    click.echo(report.to_json() if as_json else report.to_text())
    if report.failures:
        raise SystemExit(1)

