"""The CLI contract: --json shapes, one-line errors, completions kept current, config, doctor."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli_json, run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_completions_are_current() -> None:
    from cairn.cli.completions import SHELLS, generate

    for shell, name in SHELLS.items():
        path = ROOT / "completions" / name
        assert path.exists(), f"run 'make completions' ({path} missing)"
        assert path.read_text() == generate(shell), f"{path} is stale: run 'make completions'"


def test_bash_completion_completes(tmp_path: Path) -> None:
    import subprocess

    script = (f"source {ROOT / 'completions' / 'cairn.bash'}\n"
              "COMP_WORDS=(cairn rec); COMP_CWORD=1; _cairn; echo \"${COMPREPLY[@]}\"\n"
              "COMP_WORDS=(cairn recall --as); COMP_CWORD=2; _cairn; echo \"${COMPREPLY[@]}\"\n")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["recall", "--as-of"]


def test_remember_json_and_stats(home: Path) -> None:
    out = cli_json("remember", "I", "prefer", "aisle", "seats", "--tag", "travel", "--pin", home=home)
    assert out["id"] == "f1" and out["pinned"] is True and out["tags"] == ["travel"]
    again = cli_json("remember", "I prefer aisle seats", home=home)
    assert again["action"] == "merged" and again["id"] == "f1"
    stats = cli_json("stats", home=home)
    assert {"facts", "episodes", "sources"} <= set(stats)
    assert stats["facts"] == 1


def test_export_import_round_trip(home: Path, tmp_path: Path) -> None:
    run_cli("remember", "The boiler service is every October", home=home, check=True)
    exported = run_cli("export", home=home, check=True).stdout
    assert '"type": "fact"' in exported
    other = tmp_path / "other-home"
    f = tmp_path / "dump.jsonl"
    f.write_text(exported)
    out = cli_json("import", str(f), home=other)
    assert out["episodes_added"] == 1
    hits = cli_json("recall", "boiler service", home=other)["hits"]
    assert hits[0]["text"] == "The boiler service is every October"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    proc = run_cli("import", str(bad), home=other)
    assert proc.returncode == 1 and "line 1" in proc.stderr and "Traceback" not in proc.stderr


def test_config_set_and_bad_config(home: Path) -> None:
    run_cli("config", "set", "recall.limit", "5", home=home, check=True)
    data = cli_json("config", home=home)
    assert data["settings"]["recall"]["limit"] == 5
    proc = run_cli("config", "set", "nope.key", "1", home=home)
    assert proc.returncode == 2 and "unknown key" in proc.stderr
    (home / "config.toml").write_text("[extraction]\nextractor = \n")
    proc = run_cli("recall", "x", home=home)
    assert proc.returncode == 2 and "config.toml" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor(home: Path) -> None:
    proc = run_cli("doctor", "--json", home=home)
    data = json.loads(proc.stdout)
    names = {c["name"]: c for c in data["checks"]}
    assert names["store"]["ok"] and "sqlite-vec" in names["store"]["detail"]
    assert names["embedding model"]["ok"]
    assert proc.returncode == 0


def test_no_color_when_piped(home: Path) -> None:
    run_cli("remember", "Colour test memory", home=home, check=True)
    proc = run_cli("recall", "colour test", home=home, check=True)
    assert "\x1b[" not in proc.stdout
