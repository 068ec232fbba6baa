"""The language models cairn knows how to fetch, and fetching one (`cairn model pull NAME`).

Downloads go through huggingface_hub (extra `[llm]`) into `<data dir>/models/`. Before asking
the hub, one TCP connection to it (5 s at most) tells an offline machine from a slow one, so
`pull` on a machine that cannot reach the hub says so in one line at once, instead of after
huggingface_hub's minute of retries. With a proxy configured, the probe is skipped (the direct
connection may be blocked while the proxy works) and huggingface_hub's own errors are
translated instead. `HF_ENDPOINT` (a mirror) and `HF_HUB_OFFLINE` are honoured.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cairn.errors import BadInput, CairnError, ModelMissing

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Recommended:
    name: str
    repo: str
    filename: str
    size: str
    note: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


# Small instruct models with chat templates in their GGUF, that follow a JSON grammar well on
# a laptop CPU. Q4_K_M: the usual size/quality trade-off.
CATALOGUE: dict[str, Recommended] = {m.name: m for m in [
    Recommended("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
                "qwen2.5-1.5b-instruct-q4_k_m.gguf", "1.1 GB",
                "the default: small, fast on a laptop CPU, follows the JSON grammar well"),
    Recommended("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                "qwen2.5-0.5b-instruct-q4_k_m.gguf", "0.5 GB",
                "fastest; weaker facts than 1.5B"),
    Recommended("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct-GGUF",
                "qwen2.5-3b-instruct-q4_k_m.gguf", "2.1 GB",
                "better facts, about half the speed of 1.5B"),
    Recommended("llama-3.2-1b-instruct", "bartowski/Llama-3.2-1B-Instruct-GGUF",
                "Llama-3.2-1B-Instruct-Q4_K_M.gguf", "0.8 GB", "Meta's small model"),
    Recommended("llama-3.2-3b-instruct", "bartowski/Llama-3.2-3B-Instruct-GGUF",
                "Llama-3.2-3B-Instruct-Q4_K_M.gguf", "2.0 GB", "Meta's 3B model"),
]}
DEFAULT = "qwen2.5-1.5b-instruct"


def models_dir() -> Path:
    from cairn.config import data_dir

    return data_dir() / "models"


def resolve_name(name: str) -> tuple[str, str]:
    """(repo, filename) for a catalogue name, or for 'owner/repo/file.gguf'."""
    key = name.strip().lower().removesuffix(".gguf")
    if key in CATALOGUE:
        m = CATALOGUE[key]
        return m.repo, m.filename
    parts = name.strip().strip("/").split("/")
    if len(parts) >= 3 and parts[-1].lower().endswith(".gguf") and all(parts):
        return "/".join(parts[:2]), "/".join(parts[2:])
    known = ", ".join(CATALOGUE)
    raise BadInput(f"unknown model {name!r}: pull one of {known}, or name a file on the hub as"
                   " OWNER/REPO/FILE.gguf")


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _proxied() -> bool:
    return any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                                           "http_proxy", "ALL_PROXY", "all_proxy"))


def probe(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to the hub opens; else why not, in a few words."""
    u = urlparse(url)
    host = u.hostname or ""
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"cannot resolve {host} (no network or no DNS)"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as e:
        return f"cannot connect to {host}:{port} ({e.strerror or e})"


def _offline(what: str, repo: str, filename: str, why: str) -> CairnError:
    return ModelMissing(
        f"cannot download {what}: the model hub is not reachable from this machine ({why})."
        f" Download {repo}/{filename} on a machine that is online, copy it here and run"
        " 'cairn model use PATH'")


def pull(name: str, dest: Path | None = None) -> Path:
    """Download a model file; returns its path. CairnError with a one-line reason otherwise."""
    repo, filename = resolve_name(name)
    try:
        import huggingface_hub
        from huggingface_hub import errors as hf_errors
    except ImportError:
        raise ModelMissing("'cairn model pull' needs huggingface_hub: pip install 'cairn[llm]'"
                           " (or download a .gguf yourself and run 'cairn model use PATH')"
                           ) from None
    dest = dest or models_dir()
    target = dest / filename
    if target.is_file() and target.stat().st_size > 0:
        log.info("%s is already downloaded", target)
        return target
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise _offline(name, repo, filename, "HF_HUB_OFFLINE is set")
    url = endpoint()
    if not _proxied() and (why := probe(url)):
        raise _offline(name, repo, filename, why)
    from cairn.config import ensure_private_dir

    ensure_private_dir(dest)
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings are not the user's business
    try:
        got: Any = huggingface_hub.hf_hub_download(repo, filename, local_dir=dest,
                                                   endpoint=url)
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError) as e:
        raise BadInput(f"{repo} is not on {url} (or needs a login): {_first_line(e)}") from None
    except hf_errors.GatedRepoError:
        raise ModelMissing(f"{repo} needs you to accept its licence on {url} and log in"
                           " ('hf auth login')") from None
    except hf_errors.EntryNotFoundError as e:
        if isinstance(e, hf_errors.LocalEntryNotFoundError):
            raise _offline(name, repo, filename, "the connection failed") from None
        raise BadInput(f"{repo} has no file {filename} on {url}") from None
    except (hf_errors.HfHubHTTPError, OSError) as e:
        raise _offline(name, repo, filename, _first_line(e)) from None
    finally:
        hub_log.setLevel(level)
    return Path(str(got))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
