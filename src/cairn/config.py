"""Where cairn keeps things and what config.toml says: one Settings, built per entry point."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.errors import ConfigError

SOURCE_KINDS = ("notes", "chats", "agent_sessions", "screenshots")

# The keys config.toml may hold, with their defaults. Unknown keys are errors.
DEFAULTS: dict[str, dict[str, Any]] = {
    "sources": {k: None for k in SOURCE_KINDS},
    "extraction": {
        "extractor": "rules",
        "model": None,
        "n_threads": 2,
        "timeout": 60.0,
        "batch_size": 4,
        "n_ctx": 4096,
    },
    "embeddings": {"backend": "minilm", "model": None, "allow_download": False,
                   "precision": "int8"},
    "recall": {"limit": 10, "token_budget": 2000},
    "privacy": {"exclude": []},
    "daemon": {"debounce": 0.5, "rescan_minutes": 60},
    "consolidation": {"schedule_minutes": 60},
}


def _home() -> Path | None:
    home = os.environ.get("CAIRN_HOME")
    return Path(home).expanduser() if home else None


def data_dir() -> Path:
    """Where the database and state live; CAIRN_HOME overrides (tests always set it)."""
    if home := _home():
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir("cairn"))


def config_dir() -> Path:
    if home := _home():
        return home
    import platformdirs

    return Path(platformdirs.user_config_dir("cairn"))


def log_dir() -> Path:
    if home := _home():
        return home / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir("cairn"))


def config_path() -> Path:
    return config_dir() / "config.toml"


def db_path() -> Path:
    if p := os.environ.get("CAIRN_DB"):
        return Path(p).expanduser()
    return data_dir() / "cairn.db"


def ensure_private_dir(path: Path) -> Path:
    """Create a folder readable by the user only (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    return path


@dataclass(frozen=True)
class Settings:
    db_path: Path
    config_path: Path
    log_dir: Path
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values.get(section, {}).get(key, DEFAULTS[section][key])

    def source_folders(self, kind: str) -> list[Path] | None:
        """Configured folders for a source kind, or None when the user set none."""
        folders = self.values.get("sources", {}).get(kind)
        if folders is None:
            return None
        return [Path(os.path.expandvars(str(f))).expanduser() for f in folders]


def read_config_file(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    for section, body in raw.items():
        if section not in DEFAULTS:
            raise ConfigError(f"{path}: unknown section [{section}]")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key in body:
            if key not in DEFAULTS[section]:
                raise ConfigError(f"{path}: unknown key '{key}' in [{section}]")
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from CAIRN_* environment variables and config.toml."""
    env = os.environ if env is None else env
    cfg = config_path()
    values = read_config_file(cfg)
    if extractor := env.get("CAIRN_EXTRACTOR"):
        values.setdefault("extraction", {})["extractor"] = extractor
    return Settings(db_path=db_path(), config_path=cfg, log_dir=log_dir(), values=values)


def parse_value(raw: str) -> Any:
    """A value typed on the command line: TOML if it parses (numbers, lists, booleans), else text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def set_config_value(key: str, raw: str, path: Path | None = None) -> tuple[Path, Any]:
    """Write section.key = value into config.toml, keeping the other keys; returns the value."""
    import tomli_w

    section, _, name = key.partition(".")
    if section not in DEFAULTS or name not in DEFAULTS[section]:
        known = ", ".join(f"{s}.{k}" for s, keys in DEFAULTS.items() for k in keys)
        raise ConfigError(f"unknown key {key!r}; known keys: {known}")
    path = path or config_path()
    data = read_config_file(path)
    value = parse_value(raw)
    if section == "sources" and isinstance(value, str):
        value = [value]
    data.setdefault(section, {})[name] = value
    ensure_private_dir(path.parent)
    tmp = path.with_suffix(".toml.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as fh:
        tomli_w.dump(data, fh)
    os.replace(tmp, path)
    return path, value
