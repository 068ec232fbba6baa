"""Screenshots through OCR: text rendered into real images, read by whichever engines exist."""

from __future__ import annotations

import io
import itertools
import re
import shutil
import struct
import subprocess
import zlib
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import BadInput
from cairn.ingest.sources import screenshots

PIL = pytest.importorskip("PIL", reason="Pillow is not installed (pip install pillow)")
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

HAS_TESSERACT = bool(shutil.which("tesseract")) and find_spec("pytesseract") is not None
HAS_RAPIDOCR = find_spec("rapidocr") is not None and find_spec("onnxruntime") is not None
ENGINES = [
    pytest.param("tesseract", marks=pytest.mark.skipif(
        not HAS_TESSERACT, reason="tesseract not installed (apt-get install tesseract-ocr; "
                                  "pip install pytesseract)")),
    pytest.param("rapidocr", marks=pytest.mark.skipif(
        not HAS_RAPIDOCR, reason="rapidocr not installed (pip install 'rapidocr>=3')")),
]
needs_engine = pytest.mark.skipif(
    not (HAS_TESSERACT or HAS_RAPIDOCR),
    reason="no OCR engine: install tesseract-ocr or pip install 'rapidocr>=3'")
MTIME = 1_778_248_560.0  # 2026-05-08T13:56:00Z


def _font(size: int) -> Any:
    candidates = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                  "/Library/Fonts/Arial.ttf", "C:/Windows/Fonts/arial.ttf"]
    if shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":style=Book", "file"], capture_output=True,
                             text=True, check=False).stdout
        candidates += [ln.split(":")[0] for ln in out.splitlines() if "DejaVuSans.ttf" in ln]
    for path in candidates:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def _png(img: Any, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def render_screen(dark: bool = False) -> Any:
    """A mail-client-like screen: a title bar, a message body and, far below, a second note."""
    bg, fg = ((28, 28, 30), (230, 230, 230)) if dark else ((255, 255, 255), (20, 20, 20))
    img = Image.new("RGB", (1000, 520), bg)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 1000, 56], fill=(40, 44, 60))
    d.text((20, 12), "Inbox - Mail", font=_font(28), fill=(255, 255, 255))
    body = _font(28)
    d.text((40, 110), "Meeting with Priya moved to Thursday", font=body, fill=fg)
    d.text((40, 150), "at the Lisbon office, room Aurora.", font=body, fill=fg)
    d.text((40, 380), "Flight TP1234 departs Porto at 08:45", font=body, fill=fg)
    d.text((40, 420), "Gate changes are announced by SMS.", font=body, fill=fg)
    d.text((900, 480), "~", font=_font(20), fill=fg)  # a stray symbol: dropped
    return img


def _words(texts: list[str]) -> set[str]:
    return {w.strip(".,:").lower() for t in texts for w in t.split()}


@pytest.mark.parametrize("engine", ENGINES)
def test_ocr_blocks_become_third_party_episodes(tmp_path: Path, engine: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screenshots, "engine_name", lambda: engine)
    p = tmp_path / "Screenshot 2026-05-08.png"
    data = _png(render_screen())
    p.write_bytes(data)
    parsed = screenshots.parse(p, data, mtime=MTIME)
    assert parsed.kind == "screenshot"
    texts = [e.text for e in parsed.episodes]
    words = _words(texts)
    assert {"meeting", "priya", "thursday", "lisbon", "aurora", "flight", "porto"} <= words
    # The two messages are far apart: two blocks, not one.
    meeting = next(e for e in parsed.episodes if "Priya" in e.text)
    flight = next(e for e in parsed.episodes if "Porto" in e.text)
    assert meeting is not flight
    assert "Lisbon" in meeting.text and "SMS" in flight.text
    for e in parsed.episodes:
        x, y, w, h = (int(v) for v in e.locator.split(","))
        assert 0 <= x < 1000 and 0 <= y < 520 and w > 0 and h > 0
        assert e.role == "third_party" and e.speaker is None
        assert e.occurred_at == "2026-05-08T13:56:00Z"
        assert e.context == "screenshot Screenshot 2026-05-08.png"
    x, y, _, _ = (int(v) for v in meeting.locator.split(","))
    assert 20 <= x <= 60 and 90 <= y <= 130
    assert not any(t.strip() == "~" for t in texts)


@pytest.mark.parametrize("engine", ENGINES)
def test_dark_mode_jpeg(engine: str) -> None:
    img = screenshots.load_image(_png(render_screen(dark=True), "JPEG"))
    kept, _ = screenshots.ocr_blocks(img, engine)
    assert {"priya", "thursday", "porto"} <= _words([b.text for b in kept])


@needs_engine
def test_parse_with_default_engine_and_webp(tmp_path: Path) -> None:
    data = _png(render_screen(), "WEBP")
    parsed = screenshots.parse(tmp_path / "shot.webp", data)
    assert "thursday" in _words([e.text for e in parsed.episodes])
    assert all(e.occurred_at is None for e in parsed.episodes)


@needs_engine
def test_blank_image_has_no_episodes(tmp_path: Path) -> None:
    data = _png(Image.new("RGB", (400, 300), "white"))
    assert screenshots.parse(tmp_path / "blank.png", data).episodes == []


def test_tiny_image_is_empty_not_an_error(tmp_path: Path) -> None:
    parsed = screenshots.parse(tmp_path / "icon.png", _png(Image.new("RGB", (4, 4), "white")))
    assert parsed.episodes == [] and "too small" in parsed.skipped[0]


def test_no_engine_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(screenshots, "engine_name", lambda: None)
    with pytest.raises(BadInput, match=r"no OCR engine: install tesseract-ocr or pip install"):
        screenshots.parse(tmp_path / "a.png", _png(Image.new("RGB", (64, 64), "white")))


def test_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a PNG, JPEG or WebP image"):
        screenshots.parse(tmp_path / "a.png", b"hello, I am a text file\n" * 10)
    with pytest.raises(BadInput, match="empty file"):
        screenshots.parse(tmp_path / "a.png", b"")


def test_truncated_image(tmp_path: Path) -> None:
    data = _png(render_screen())
    with pytest.raises(BadInput, match="corrupt or truncated image"):
        screenshots.parse(tmp_path / "cut.png", data[: len(data) // 2])
    jpeg = _png(render_screen(), "JPEG")
    with pytest.raises(BadInput, match="corrupt or truncated image"):
        screenshots.parse(tmp_path / "cut.jpg", jpeg[: len(jpeg) // 3])


def test_corrupt_png_chunk(tmp_path: Path) -> None:
    data = bytearray(_png(render_screen()))
    idat = data.index(b"IDAT")
    data[idat + 40: idat + 400] = bytes(360)  # zeroed compressed data
    with pytest.raises(BadInput, match="corrupt or truncated image"):
        screenshots.parse(tmp_path / "bad.png", bytes(data))


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image, as a decompression bomb would."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="too large to OCR safely"):
        screenshots.parse(tmp_path / "bomb.png", _png_with_size(60_000, 60_000))


def test_pillow_bomb_error_becomes_bad_input(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(BadInput, match="decompression bomb"):
        screenshots.parse(tmp_path / "b.png", _png(Image.new("RGB", (100, 100), "white")))
    with pytest.raises(BadInput, match="decompression bomb"):  # between 1x and 2x: a warning
        screenshots.parse(tmp_path / "b.png", _png(Image.new("RGB", (40, 40), "white")))


def test_transparent_screenshot_is_put_on_white() -> None:
    img = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle([10, 10, 20, 20], fill=(0, 0, 0, 255))
    rgb = screenshots.load_image(_png(img))
    assert rgb.mode == "RGB"
    assert rgb.getpixel((2, 2)) == (255, 255, 255)
    assert rgb.getpixel((15, 15)) == (0, 0, 0)


def test_tall_images_are_read_in_overlapping_strips() -> None:
    assert screenshots._strips(1080, 1920) == [(0, 1080, 0, 1080)]
    strips = screenshots._strips(7000, 1200)
    assert strips[0][0] == 0 and strips[-1][1] == 7000
    for (_, bottom, _, keep_to), (top, _, keep_from, _) in itertools.pairwise(strips):
        assert top < bottom  # they overlap
        assert keep_to == keep_from  # every line is kept from exactly one strip


def test_matches_by_extension_and_magic() -> None:
    m = screenshots.matches
    assert m(Path("a.PNG"), b"") and m(Path("b.jpeg"), b"") and m(Path("c.webp"), b"")
    assert m(Path("no_extension"), b"\x89PNG\r\n\x1a\n....")
    assert m(Path("photo.bin"), b"\xff\xd8\xff\xe0")
    assert m(Path("x"), b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    assert not m(Path("notes.md"), b"# title")
    assert not m(Path("anim.gif"), b"GIF89a")


def test_locators_are_boxes() -> None:
    b = screenshots.Block("hello world", 3, 4, 50, 20, 0.9)
    assert re.fullmatch(r"\d+,\d+,\d+,\d+", b.locator) and b.locator == "3,4,50,20"


def test_module_import_does_not_load_pil() -> None:
    code = ("import sys; import cairn.ingest.sources.screenshots; "
            "bad = [m for m in ('PIL', 'pytesseract', 'rapidocr', 'numpy') if m in sys.modules]; "
            "print(bad); raise SystemExit(1 if bad else 0)")
    import sys

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
