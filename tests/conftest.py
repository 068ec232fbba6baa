"""Shared fixtures: every test gets its own CAIRN_HOME, so nothing touches the real home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def _shared_onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One built ONNX graph (90 MB) for the whole run, not one per test's store; subprocesses
    inherit it through the environment. Tests of the cache itself pass their own folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_CACHE_DIR", str(tmp_path_factory.mktemp("onnx-cache")))
        yield


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "cairn-home"
    monkeypatch.setenv("CAIRN_HOME", str(h))
    monkeypatch.delenv("CAIRN_DB", raising=False)
    monkeypatch.delenv("CAIRN_EXTRACTOR", raising=False)
    return h


@pytest.fixture
def memory(home: Path) -> Iterator[Any]:
    from cairn.config import load_settings
    from cairn.service import Memory

    m = Memory(load_settings())
    yield m
    m.close()


def run_cli(*args: str, home: Path, input: str | None = None, exe: str = "cairn",
            check: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run an installed console script as a user would, in a subprocess."""
    e = {**os.environ, "CAIRN_HOME": str(home), "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run([str(BIN / exe), *args], capture_output=True, text=True, input=input,
                          env=e, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{exe} {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


def cli_json(*args: str, home: Path) -> Any:
    proc = run_cli(*args, "--json", home=home, check=True)
    return json.loads(proc.stdout)


def write_chat(path: Path, messages: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    return path
