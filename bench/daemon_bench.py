"""Daemon figures: how soon a saved note, a chat export and a screenshot can be recalled; the
daemon's idle CPU; the first scan of a 10,000-file notes folder (time, peak memory) and a
rescan with nothing changed.

Runs the real `cairn daemon run` on temporary folders with CAIRN_HOME and HOME pointed at a
temporary directory; nothing touches the real home. Linux (reads /proc).

    python bench/daemon_bench.py                  # the full run (~10-20 min on 2 cores)
    python bench/daemon_bench.py --quick          # smaller, for a smoke test
    python bench/daemon_bench.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def wait_until(fn: Callable[[], Any], timeout: float, step: float = 0.02) -> float:
    """Seconds until fn() is truthy (raises on timeout)."""
    t0 = time.monotonic()
    while not fn():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"not done after {timeout} s")
        time.sleep(step)
    return time.monotonic() - t0


class Daemon:
    def __init__(self, root: Path, config: str) -> None:
        self.root = root
        self.home = root / "cairn-home"
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(config)
        self.env = {**os.environ, "CAIRN_HOME": str(self.home), "HOME": str(root / "user"),
                    "NO_COLOR": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.home / "cairn.daemon.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self, timeout: float = 3600) -> float:
        t0 = time.monotonic()
        self.proc = subprocess.Popen([str(BIN / "cairn"), "daemon", "run", "--log-level",
                                      "warning"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: (self.status().get("pid") == self.proc.pid  # type: ignore[union-attr]
                            and (self.status().get("last_scan") or {}).get("complete")),
                   timeout, 0.1)
        return time.monotonic() - t0

    def once(self) -> tuple[float, int]:
        """`cairn daemon run --once`: wall seconds and peak RSS (KB) of the process."""
        t0 = time.monotonic()
        p = subprocess.Popen([str(BIN / "cairn"), "daemon", "run", "--once", "--log-level",
                              "warning"], env=self.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise RuntimeError(f"cairn daemon run --once exited {p.returncode}")
        return time.monotonic() - t0, int(usage.ru_maxrss)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)


def memory(home: Path) -> Any:
    os.environ["CAIRN_HOME"] = str(home)
    from cairn.config import load_settings
    from cairn.service import Memory

    m = Memory(load_settings())
    _ = m.embedder
    return m


def recalled(m: Any, query: str, word: str) -> bool:
    return any(word in h.text for h in m.recall(query, limit=5, reinforce=False).hits)


# ---------------------------------------------------------------- latency figures

def bench_latency(tmp: Path, n_notes: int, chat_sizes: list[int], idle_seconds: int
                  ) -> dict[str, Any]:
    notes, chats, shots = tmp / "notes", tmp / "chats", tmp / "shots"
    for p in (notes, chats, shots):
        p.mkdir(parents=True)
    d = Daemon(tmp, f'[sources]\nnotes = ["{notes}"]\nchats = ["{chats}"]\n'
                    f'screenshots = ["{shots}"]\n')
    out: dict[str, Any] = {}
    try:
        out["startup_seconds"] = round(d.start(), 2)
        m = memory(d.home)
        cities = ["Lisbon", "Porto", "Braga", "Faro", "Evora", "Coimbra", "Aveiro", "Sintra",
                  "Tavira", "Viseu", "Leiria", "Setubal", "Guarda", "Beja", "Lagos", "Nazare"]
        lat = []
        for i in range(n_notes):
            city = cities[i % len(cities)] + str(i)
            t0 = time.monotonic()
            (notes / f"trip-{i}.md").write_text(f"# Trip {i}\n\nMy cousin Rui lives in {city}.\n")
            wait_until(lambda c=city: recalled(m, f"where does Rui live {c}", c), 30)
            lat.append(time.monotonic() - t0)
            time.sleep(0.3)
        out["note_recall_seconds"] = {"median": round(statistics.median(lat), 3),
                                      "max": round(max(lat), 3), "n": len(lat)}

        out["chat_export"] = []
        for size in chat_sizes:
            word = f"zebra{size}"
            lines = [json.dumps({
                "conversation": f"c{size}", "id": f"m{i}", "speaker": "Ana" if i % 2 else "Me",
                "role": "other" if i % 2 else "user",
                "time": f"2026-05-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
                "text": (f"The {word} project review is on Friday at noon." if i == size - 1 else
                         f"Message {i}: we need {random.randint(2, 90)} boxes for the"
                         f" {random.choice(['garden', 'office', 'kitchen'])} by day {i % 28}.")})
                for i in range(size)]
            t0 = time.monotonic()
            tmpf = chats / f".export-{size}.part"
            tmpf.write_text("\n".join(lines) + "\n")
            os.replace(tmpf, chats / f"export-{size}.chat.jsonl")  # as a browser saves it
            wait_until(lambda w=word: recalled(m, f"when is the {w} project review", w), 600, 0.2)
            secs = time.monotonic() - t0
            out["chat_export"].append({"messages": size, "seconds": round(secs, 2),
                                       "seconds_per_1000": round(secs * 1000 / size, 2)})

        out["screenshot"] = bench_screenshot(shots, m)

        # Idle: nothing changes for a minute.
        time.sleep(2)
        c0, t0 = d.cpu_seconds(), time.monotonic()
        time.sleep(idle_seconds)
        c1, t1 = d.cpu_seconds(), time.monotonic()
        out["idle_cpu_percent"] = round(100 * (c1 - c0) / (t1 - t0), 3)
        out["idle_seconds"] = idle_seconds
        m.close()
    finally:
        d.stop()
    return out


def bench_screenshot(shots: Path, m: Any) -> dict[str, Any]:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return {"skipped": "pillow not installed (pip install 'cairn[ocr]')"}
    from cairn.ingest.sources.screenshots import engine_name

    engine = engine_name()
    if engine is None:
        return {"skipped": "no OCR engine (tesseract or rapidocr)"}
    img = Image.new("RGB", (1280, 400), "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=34)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    lines = ["Meeting notes", "The quarterly budget review moves to Thursday.",
             "Bring the pelican design mockups for the team."]
    for i, line in enumerate(lines):
        draw.text((40, 40 + i * 90), line, fill="black", font=font)
    t0 = time.monotonic()
    img.save(shots / "Screenshot 2026-05-08 at 10.00.00.png")
    wait_until(lambda: recalled(m, "pelican design mockups", "pelican"), 120, 0.1)
    return {"engine": engine, "seconds": round(time.monotonic() - t0, 2)}


# ---------------------------------------------------------------- a big notes folder

WORDS = ["garden", "tomato", "bicycle", "meeting", "budget", "Lisbon", "piano", "recipe", "coffee", "train", "doctor", "invoice", "holiday", "backup", "server", "laptop", "sister", "birthday", "museum", "novel", "river"]


def make_notes(folder: Path, n: int) -> None:
    rng = random.Random(7)
    for i in range(n):
        sub = folder / f"area-{i // 100:03d}"
        if i % 100 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        body = [f"# Note {i}", ""]
        for _ in range(rng.randint(1, 3)):
            body.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + ".")
            body.append("")
        body.append(f"I prefer the {rng.choice(WORDS)} option for item {i}.")
        (sub / f"note-{i:05d}.md").write_text("\n".join(body) + "\n")


def bench_folder(tmp: Path, n_files: int) -> dict[str, Any]:
    notes = tmp / "vault"
    t0 = time.monotonic()
    make_notes(notes, n_files)
    made = time.monotonic() - t0
    d = Daemon(tmp, f'[sources]\nnotes = ["{notes}"]\n')
    first_wall, first_rss = d.once()
    first = d.status().get("last_scan") or {}
    again_wall, again_rss = d.once()
    again = d.status().get("last_scan") or {}
    return {
        "files": n_files, "generate_seconds": round(made, 1),
        "initial_scan": {"wall_seconds": round(first_wall, 1),
                         "scan_seconds": first.get("seconds"), "read": first.get("read"),
                         "files_per_second": round(n_files / max(first.get("seconds") or 1, 1e-9),
                                                   1),
                         "peak_rss_mb": round(first_rss / 1024, 1)},
        "rescan_unchanged": {"wall_seconds": round(again_wall, 2),
                             "scan_seconds": again.get("seconds"), "read": again.get("read"),
                             "peak_rss_mb": round(again_rss / 1024, 1)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 files, 20 s idle, 3 notes")
    ap.add_argument("--files", type=int, default=None, help="files in the big folder")
    ap.add_argument("--idle", type=int, default=None, help="seconds of idle CPU measurement")
    ap.add_argument("--skip-folder", action="store_true", help="only the latency figures")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    files = args.files or (1000 if args.quick else 10_000)
    idle = args.idle or (20 if args.quick else 60)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    tmp = Path(tempfile.mkdtemp(prefix="cairn-daemon-bench-"))
    try:
        results["latency"] = bench_latency(tmp / "latency", 3 if args.quick else 10,
                                           [1000] if args.quick else [1000, 5000], idle)
        print(json.dumps(results["latency"], indent=2), file=sys.stderr)
        if not args.skip_folder:
            results["notes_folder"] = bench_folder(tmp / "folder", files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
