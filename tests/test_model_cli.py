"""cairn model show | pull | use: a GGUF is checked before it is used; pull is honest offline.

No test reaches the network: `pull` is pointed (HF_ENDPOINT) at a closed local port, or at a
small local server that answers like the hub's resolve endpoint, so the real huggingface_hub
download runs end to end on a tiny model.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import cli_json, run_cli

pytest.importorskip("gguf")
sys.path.insert(0, str(Path(__file__).parent))
from gguf_tiny import build_tiny_gguf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("m") / "tiny-test.gguf")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Hub(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    requests: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> bytes | None:
        self.requests.append(self.path)
        parts = self.path.split("?")[0].strip("/").split("/")
        data = None
        if len(parts) >= 5 and parts[2] == "resolve":  # OWNER/REPO/resolve/REV/FILE
            data = self.files.get("/".join(parts[:2]) + "/" + "/".join(parts[4:]))
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
        self.send_header("X-Repo-Commit", "0" * 40)
        self.end_headers()
        return data

    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        data = self._answer()
        if data is not None:
            self.wfile.write(data)


@pytest.fixture
def hub(tiny: Path) -> Iterator[str]:
    _Hub.files = {"cairn-test/tiny-GGUF/tiny-test.gguf": tiny.read_bytes()}
    _Hub.requests = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def one_line_error(proc: object, code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    err = proc.stderr.strip()  # type: ignore[attr-defined]
    assert err.startswith("Error: ") and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_use_checks_the_file_and_sets_the_llama_extractor(home: Path, tiny: Path) -> None:
    out = cli_json("model", "use", str(tiny), home=home)
    assert out["extractor"] == "llama" and out["model"] == str(tiny.resolve())
    assert out["gguf"]["architecture"] == "llama" and out["gguf"]["chat_template"] is True
    settings = cli_json("config", home=home)["settings"]["extraction"]
    assert settings["extractor"] == "llama" and settings["model"] == str(tiny.resolve())
    shown = cli_json("model", "show", home=home)
    assert shown["model"]["gguf"]["name"] == "cairn-tiny-test" and shown["model"]["error"] is None
    assert shown["settings"] == {"n_threads": 2, "timeout": 60.0, "batch_size": 4, "n_ctx": 4096}
    text = run_cli("model", "show", home=home, check=True).stdout
    assert "cairn-tiny-test (llama)" in text and "qwen2.5-1.5b-instruct" in text


@pytest.mark.parametrize(("blob", "message"), [
    (b"<html>rate limited</html>", "is not a GGUF model"),
    (b"GGUF\x01\x00\x00\x00" + bytes(16), "is GGUF version 1"),
    (b"GGUF\x03\x00\x00\x00\x05", "ends inside its header"),
    (b"", "is not a GGUF model"),
])
def test_use_refuses_what_is_not_a_model(home: Path, tmp_path: Path, blob: bytes,
                                         message: str) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(blob)
    err = one_line_error(run_cli("model", "use", str(bad), home=home))
    assert message in err and str(bad) in err
    assert not (home / "config.toml").exists()  # nothing written


def test_use_missing_file(home: Path, tmp_path: Path) -> None:
    err = one_line_error(run_cli("model", "use", str(tmp_path / "nope.gguf"), home=home))
    assert "no such file" in err


def test_show_reports_a_broken_model_without_failing(home: Path, tmp_path: Path) -> None:
    (home).mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[extraction]\nextractor = "llama"\nmodel = "{tmp_path / "gone.gguf"}"\n')
    out = cli_json("model", "show", home=home)
    assert out["model"]["exists"] is False and "no such file" in out["model"]["error"]


def test_pull_offline_says_so_in_one_line_at_once(home: Path, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HOME": str(tmp_path / "hf")}
    t0 = time.monotonic()
    err = one_line_error(run_cli("model", "pull", "qwen2.5-0.5b-instruct", home=home, env=env))
    assert time.monotonic() - t0 < 20
    assert "not reachable from this machine" in err and "cairn model use PATH" in err
    assert "Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf" in err
    err = one_line_error(run_cli("model", "pull", "qwen2.5-1.5b-instruct", home=home,
                                 env={**env, "HF_HUB_OFFLINE": "1"}))
    assert "HF_HUB_OFFLINE is set" in err
    assert not (home / "config.toml").exists()


def test_pull_unknown_name(home: Path) -> None:
    err = one_line_error(run_cli("model", "pull", "gpt-5", home=home))
    assert "unknown model 'gpt-5'" in err and "OWNER/REPO/FILE.gguf" in err


def test_pull_downloads_with_huggingface_hub_and_uses_it(home: Path, tmp_path: Path,
                                                         hub: str, tiny: Path) -> None:
    pytest.importorskip("huggingface_hub")
    env = {"HF_ENDPOINT": hub, "HF_HOME": str(tmp_path / "hf")}
    proc = run_cli("model", "pull", "cairn-test/tiny-GGUF/tiny-test.gguf", "--json", home=home,
                   env=env, check=True)
    out = json.loads(proc.stdout)
    path = home / "models" / "tiny-test.gguf"
    assert out["model"] == str(path.resolve()) and out["used"] is True
    assert path.read_bytes() == tiny.read_bytes()
    assert any("/resolve/" in p for p in _Hub.requests)
    assert cli_json("config", home=home)["settings"]["extraction"]["model"] == str(path.resolve())
    _Hub.requests.clear()
    run_cli("model", "pull", "cairn-test/tiny-GGUF/tiny-test.gguf", "--no-use", home=home,
            env=env, check=True)
    assert _Hub.requests == []  # already there: no download
    err = one_line_error(run_cli("model", "pull", "cairn-test/tiny-GGUF/missing.gguf",
                                 home=home, env=env))
    assert "has no file missing.gguf" in err


@pytest.mark.parametrize(("key", "value", "message"), [
    ("extraction.timeout", "soon", "timeout = 'soon'"),
    ("extraction.n_threads", "-1", "n_threads = -1"),
    ("extraction.batch_size", "0", "batch_size = 0"),
    ("extraction.n_ctx", "2.5", "n_ctx = 2.5"),
])
def test_bad_extraction_settings_are_one_line_errors(home: Path, tiny: Path, key: str,
                                                     value: str, message: str) -> None:
    run_cli("model", "use", str(tiny), home=home, check=True)
    run_cli("config", "set", "--", key, value, home=home, check=True)
    err = one_line_error(run_cli("reextract", home=home), code=2)
    assert message in err and "config.toml" in err
    shown = cli_json("model", "show", home=home)
    assert message in shown["model"]["error"]
