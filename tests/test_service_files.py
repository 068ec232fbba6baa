"""`cairn service`: the systemd unit passes `systemd-analyze verify`, the launchd plist
round-trips through plistlib, install is idempotent and uninstall removes exactly what
install wrote. The service manager is a recorded fake: nothing real is started."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from cairn.daemon.servicefiles import LABEL, MARKER, Service, render_systemd
from conftest import BIN


class FakeManager:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: Sequence[str]) -> tuple[int, str]:
        self.calls.append(list(argv))
        if self.fail:
            return 1, "Failed to connect to bus: No medium found"
        if argv[:2] == ["launchctl", "print"]:
            return 113, "Could not find service"
        return 0, ""


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _service(user: Path, kind: str, env: dict[str, str] | None = None) -> Service:
    return Service.for_user(home=user, env={"HOME": str(user), "PATH": "/usr/bin:/bin",
                                            **(env or {})},
                            platform="linux" if kind == "systemd" else "darwin")


def test_systemd_unit_runs_the_daemon_with_path_and_home(tmp_path: Path) -> None:
    user = tmp_path / "home dir"  # a space, to test the quoting
    svc = _service(user, "systemd", {"CAIRN_HOME": str(tmp_path / "c%home")})
    text = svc.render()
    assert svc.path == user / ".config" / "systemd" / "user" / "cairn.service"
    assert MARKER in text
    assert "\nRestart=on-failure\n" in text
    assert "daemon run\n" in text.split("ExecStart=")[1]
    assert f'Environment="HOME={user}"' in text
    assert "c%%home" in text  # systemd specifiers escaped
    assert "Environment=PATH=" in text and str(Path(svc.program[0]).parent) in text
    assert "WantedBy=default.target" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    user = tmp_path / "home dir"
    user.mkdir()
    svc = _service(user, "systemd", {"CAIRN_HOME": str(tmp_path / "c%home $x")})
    unit = tmp_path / "cairn.service"
    unit.write_text(svc.render([user / ".config"]))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    # verify only warns (exit 0) about unknown keys or bad values: any output is a failure.
    problems = [x for x in (out.stdout + out.stderr).splitlines()
                if "cairn.service" in x or "Unknown" in x or "ignoring" in x]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr


def test_launchd_plist_round_trips(tmp_path: Path) -> None:
    user = tmp_path / "u"
    svc = _service(user, "launchd", {"CAIRN_HOME": str(tmp_path / "c")})
    text = svc.render([user / "Library"])
    data = plistlib.loads(text.encode())
    assert svc.path == user / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    assert data["Label"] == LABEL
    assert data["ProgramArguments"][-2:] == ["daemon", "run"]
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["RunAtLoad"] is True
    assert data["EnvironmentVariables"]["HOME"] == str(user)
    assert data["EnvironmentVariables"]["CAIRN_HOME"] == str(tmp_path / "c")
    assert "/usr/bin" in data["EnvironmentVariables"]["PATH"].split(":")
    assert plistlib.loads(plistlib.dumps(data)) == data
    assert svc.is_ours(text) and svc.is_current(text)


@pytest.mark.parametrize("kind", ["systemd", "launchd"])
def test_install_is_idempotent_and_uninstall_removes_exactly_it(tmp_path: Path,
                                                                kind: str) -> None:
    user = tmp_path / "user"
    (user / "Documents").mkdir(parents=True)
    (user / "Documents" / "keep.txt").write_text("x")
    before = tree(user)
    svc = _service(user, kind)
    mgr = FakeManager()

    first = svc.install(run=mgr)
    assert first["action"] == "created" and not first["command_errors"]
    assert svc.path.is_file()
    if kind == "systemd":
        assert ["systemctl", "--user", "enable", "cairn.service"] in mgr.calls
    else:
        assert ["launchctl", "bootstrap", f"gui/{svc.uid}", str(svc.path)] in mgr.calls
        plistlib.loads(svc.path.read_bytes())
    written = svc.path.read_bytes()
    after_install = tree(user)

    again = svc.install(run=mgr)
    assert again["action"] == "unchanged"
    assert svc.path.read_bytes() == written and tree(user) == after_install

    status = svc.status(run=mgr)
    assert status["installed"] and status["ours"] and status["current"]

    mgr.calls.clear()
    out = svc.uninstall(run=mgr)
    assert out["action"] == "removed" and str(svc.path) in out["removed"]
    assert tree(user) == before  # the folders install created went too
    assert mgr.calls[0][:2] in (["systemctl", "--user"], ["launchctl", "bootout"])
    assert svc.uninstall(run=mgr)["action"] == "not installed"


def test_uninstall_leaves_folders_that_existed_and_files_it_did_not_write(tmp_path: Path) -> None:
    user = tmp_path / "user"
    units = user / ".config" / "systemd" / "user"
    units.mkdir(parents=True)
    (units / "other.service").write_text("[Service]\nExecStart=/bin/true\n")
    svc = _service(user, "systemd")
    svc.install(run=FakeManager())
    svc.uninstall(run=FakeManager())
    assert (units / "other.service").exists() and units.is_dir()
    # A cairn.service someone else wrote is neither overwritten nor removed.
    svc.path.write_text("[Service]\nExecStart=/bin/true\n")
    from cairn.errors import CairnError

    with pytest.raises(CairnError, match="not written by cairn"):
        svc.install(run=FakeManager())
    with pytest.raises(CairnError, match="not written by cairn"):
        svc.uninstall(run=FakeManager())


def test_changed_install_updates_and_restarts(tmp_path: Path) -> None:
    user = tmp_path / "user"
    svc = _service(user, "systemd")
    svc.install(run=FakeManager())
    moved = _service(user, "systemd", {"CAIRN_HOME": str(tmp_path / "elsewhere")})
    assert not moved.is_current(svc.path.read_text())
    mgr = FakeManager()
    out = moved.install(run=mgr)
    assert out["action"] == "updated"
    assert ["systemctl", "--user", "restart", "cairn.service"] in mgr.calls
    assert moved.status(run=mgr)["current"]
    moved.uninstall(run=mgr)
    assert not (user / ".config").exists()


def test_unreachable_service_manager_is_reported(tmp_path: Path) -> None:
    svc = _service(tmp_path / "user", "systemd")
    out = svc.install(run=FakeManager(fail=True))
    assert svc.path.is_file()
    assert out["command_errors"] and "bus" in out["command_errors"][0]


def test_render_quotes_odd_paths() -> None:
    text = render_systemd(["/opt/my apps/cairn", "daemon", "run"], {"HOME": '/h/"q"$x'})
    assert 'ExecStart="/opt/my apps/cairn" daemon run' in text
    assert 'Environment="HOME=/h/\\"q\\"$$x"' in text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd layout")
def test_cli_dry_run_and_no_start_install(tmp_path: Path, home: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    env = {**os.environ, "CAIRN_HOME": str(home), "HOME": str(user), "NO_COLOR": "1"}
    env.pop("XDG_CONFIG_HOME", None)

    def cairn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "cairn"), *args], env=env, capture_output=True,
                              text=True, timeout=60)

    dry = cairn("service", "install", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "ExecStart=" in dry.stdout and "would run: systemctl --user" in dry.stderr
    assert tree(user) == set()
    out = cairn("service", "install", "--no-start", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["action"] == "created" and data["commands"] == []
    assert Path(data["path"]).is_file()
    assert cairn("service", "install", "--no-start", "--json").stdout.count('"unchanged"') == 1
    st = cairn("service", "status", "--json")
    assert json.loads(st.stdout)["installed"] is True
    gone = cairn("service", "uninstall", "--dry-run")
    assert Path(data["path"]).is_file() and "would remove" in gone.stderr
    cairn("service", "uninstall")
    assert tree(user) == set()
    assert cairn("service", "status").returncode == 3
