"""`cairn doctor`: each thing cairn needs, checked, with the command that fixes it."""

from __future__ import annotations

import platform
import shutil
import sys
from collections.abc import Callable
from typing import Any


def _check(name: str, required: bool, fn: Callable[[], str]) -> dict[str, Any]:
    try:
        return {"name": name, "ok": True, "required": required, "detail": fn()}
    except Exception as e:  # noqa: BLE001 - a doctor reports every failure, it never raises
        return {"name": name, "ok": False, "required": required, "detail": str(e) or repr(e)}


def run_checks() -> list[dict[str, Any]]:
    from cairn.config import load_settings

    checks: list[dict[str, Any]] = []
    checks.append(_check("python", True, lambda: f"{platform.python_version()} ({sys.executable})"))
    settings_box: dict[str, Any] = {}

    def settings() -> str:
        s = load_settings()
        settings_box["s"] = s
        return f"{s.config_path}" + ("" if s.config_path.exists() else " (defaults; no file)")

    checks.append(_check("config", True, settings))

    def sqlite() -> str:
        from cairn.store.db import connect

        s = settings_box["s"]
        conn = connect(s.db_path)
        try:
            version = conn.execute("select sqlite_version()").fetchone()[0]
            vec = conn.execute("select vec_version()").fetchone()[0]
            conn.execute("select count(*) from facts_fts").fetchone()
            mode = conn.execute("pragma journal_mode").fetchone()[0]
        finally:
            conn.close()
        perms = oct(s.db_path.stat().st_mode & 0o777)
        return f"{s.db_path}: SQLite {version}, sqlite-vec {vec}, FTS5, {mode}, mode {perms}"

    if "s" in settings_box or checks[-1]["ok"]:
        checks.append(_check("store", True, sqlite))

    def embeddings() -> str:
        from cairn.extraction.embeddings import load_embedder

        e = load_embedder(settings_box["s"])
        v = e.embed(["cairn doctor"])
        runs = (f"onnxruntime, {e.precision}" if hasattr(e, "precision")
                else type(e).__name__)
        return f"{e.model_id} ({v.shape[1]} dimensions; {runs})"

    checks.append(_check("embedding model", True, embeddings))

    def extractor() -> str:
        from cairn.extraction.base import extractor_id
        from cairn.extraction.registry import load_extractor

        return extractor_id(load_extractor(settings_box["s"]))

    checks.append(_check("extractor", True, extractor))

    def llama() -> str:
        import importlib.metadata

        return "llama-cpp-python " + importlib.metadata.version("llama-cpp-python")

    checks.append(_check("local model runtime (optional)", False, _explain(
        llama, "not installed: pip install 'cairn[llm]' for the llama extractor")))

    def ocr() -> str:
        if shutil.which("tesseract"):
            return f"tesseract at {shutil.which('tesseract')}"
        import importlib.util

        if importlib.util.find_spec("rapidocr"):
            return "rapidocr (no tesseract binary found)"
        raise RuntimeError("no OCR engine: apt-get install tesseract-ocr (or brew install"
                           " tesseract), or pip install 'rapidocr>=3'")

    checks.append(_check("screenshot OCR (optional)", False, ocr))
    return checks


def _explain(fn: Callable[[], str], message: str) -> Callable[[], str]:
    def run() -> str:
        try:
            return fn()
        except Exception:  # noqa: BLE001
            raise RuntimeError(message) from None

    return run
