"""Screenshots (PNG, JPEG, WebP) read through OCR: each block of text is an episode with an
`x,y,w,h` box as its locator.

OCR engines, in order: tesseract through pytesseract when the `tesseract` binary is on PATH,
else `rapidocr>=3` (its models ship inside the wheel). What a screen shows is someone else's
content as far as cairn can tell, so every block is `third_party`. Images are checked
before they are decoded: a decompression bomb or a truncated file is a one-line BadInput.
PIL, pytesseract and rapidocr are imported only when an image is read.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import statistics
import threading
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.errors import BadInput
from cairn.ingest.normalise import clean_text, to_utc_iso
from cairn.models import EpisodeDraft, ParsedSource

if TYPE_CHECKING:
    from PIL.Image import Image

SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
FORMATS = ("PNG", "JPEG", "WEBP")  # the JPEG plugin also opens MPO (camera) JPEGs
MAX_PIXELS = 50_000_000  # 8K x 6K; a full-page capture of 1920 x 26000 still fits
OCR_TIMEOUT = 120  # seconds for one image
MIN_SIDE = 8  # pixels
MIN_WORD_CHARS = 3
MAX_BLOCK_CHARS = 1200  # as for notes: longer runs of text are cut at line boundaries
MIN_TESSERACT_CONF = 60.0  # mean word confidence of a block, 0-100
MIN_RAPIDOCR_SCORE = 0.6  # mean line score of a block, 0-1
RAPID_MAX_SIDE = 2000  # rapidocr's default Global.max_side_len
STRIP_OVERLAP = 160  # pixels shared by two strips of a tall image: a few lines of text
NO_ENGINE = "no OCR engine: install tesseract-ocr or pip install 'rapidocr>=3'"

_WORD = re.compile(r"\w", re.UNICODE)
_rapid_lock = threading.Lock()
_rapid_engine: Any = None


@dataclass(frozen=True)
class Block:
    """One block of recognised text and its box in image pixels."""

    text: str
    x: int
    y: int
    w: int
    h: int
    confidence: float  # 0-1

    @property
    def locator(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"


@dataclass
class _Line:
    """A line (or part of one) of recognised text and its box."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 1.0)


def matches(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in SUFFIXES or _magic(head) is not None


def _magic(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def engine_name() -> str | None:
    """The OCR engine parse() will use: 'tesseract', 'rapidocr' or None."""
    if shutil.which("tesseract") and find_spec("pytesseract") is not None:
        return "tesseract"
    if find_spec("rapidocr") is not None and find_spec("onnxruntime") is not None:
        return "rapidocr"
    return None


def parse(path: Path, data: bytes, *, mtime: float | None = None) -> ParsedSource:
    if not data:
        raise BadInput("empty file")
    if _magic(data[:16]) is None:
        raise BadInput("not a PNG, JPEG or WebP image (unrecognised header)")
    image = load_image(data)
    if min(image.size) < MIN_SIDE:  # an icon or a spacer: nothing to read, nothing wrong
        return ParsedSource(kind="screenshot", episodes=[],
                            skipped=[f"image too small to hold text ({image.width} x "
                                     f"{image.height} pixels)"])
    engine = engine_name()
    if engine is None:
        raise BadInput(NO_ENGINE)
    kept, dropped = ocr_blocks(image, engine)
    occurred = to_utc_iso(mtime) if mtime is not None else None
    episodes = [EpisodeDraft(text=b.text, locator=b.locator, speaker=None, role="third_party",
                             occurred_at=occurred, context=f"screenshot {path.name}")
                for b in kept]
    return ParsedSource(kind="screenshot", episodes=episodes, skipped=dropped)


# ------------------------------------------------------------------ decoding


def load_image(data: bytes) -> Image:
    """Decode an image for OCR: RGB, upright, transparency on white; BadInput when unsafe."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    if PILImage.MAX_IMAGE_PIXELS is None or PILImage.MAX_IMAGE_PIXELS > MAX_PIXELS:
        PILImage.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: make it an error.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data), formats=list(FORMATS))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise BadInput(f"image too large to OCR safely ({w} x {h} pixels, "
                               f"limit {MAX_PIXELS // 1_000_000} megapixels)")
            img.load()
            return _rgb(ImageOps.exif_transpose(img) or img)
    except BadInput:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as e:
        raise BadInput(f"image too large to OCR safely (possible decompression bomb: {e})"
                       ) from None
    except UnidentifiedImageError:
        raise BadInput("not a PNG, JPEG or WebP image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as e:
        raise BadInput(f"corrupt or truncated image ({e})") from None
    except MemoryError:
        raise BadInput("image too large to decode in memory") from None


def _rgb(img: Image) -> Image:
    from PIL import Image as PILImage

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        # Transparent screenshots (window captures) would turn black: put them on white.
        canvas = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


# ------------------------------------------------------------------ OCR


def ocr_blocks(image: Image, engine: str | None = None) -> tuple[list[Block], list[str]]:
    """Blocks of text in the image (kept) and one reason per block dropped."""
    engine = engine or engine_name()
    if engine == "tesseract":
        blocks = _tesseract(image)
        floor = MIN_TESSERACT_CONF / 100
    elif engine == "rapidocr":
        blocks = _rapidocr(image)
        floor = MIN_RAPIDOCR_SCORE
    else:
        raise BadInput(NO_ENGINE)
    kept: list[Block] = []
    dropped: list[str] = []
    for b in blocks:
        chars = len(_WORD.findall(b.text))
        visible = len(b.text.replace(" ", "").replace("\n", ""))
        if chars < MIN_WORD_CHARS:
            dropped.append(f"block {b.locator}: too little text ({b.text[:20]!r})")
        elif chars < visible / 2:
            dropped.append(f"block {b.locator}: mostly symbols, not text")
        elif b.confidence < floor:
            dropped.append(f"block {b.locator}: low OCR confidence ({b.confidence:.2f})")
        else:
            kept.append(b)
    kept.sort(key=lambda b: (b.y, b.x))
    return kept, dropped


def _tesseract(image: Image) -> list[Block]:
    import pytesseract
    from PIL import ImageOps, ImageStat

    # Tesseract's OpenMP threads fight each other on small images: one thread is faster.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    gray = image.convert("L")
    if ImageStat.Stat(gray).mean[0] < 110:  # dark mode: tesseract reads dark on light best
        gray = ImageOps.invert(gray)
    try:
        d = pytesseract.image_to_data(gray, output_type=pytesseract.Output.DICT,
                                      timeout=OCR_TIMEOUT)
    except pytesseract.TesseractNotFoundError:
        raise BadInput(NO_ENGINE) from None
    except pytesseract.TesseractError as e:
        raise BadInput(f"tesseract failed ({e.message or e.status})") from None
    except RuntimeError as e:  # pytesseract's timeout
        raise BadInput(f"OCR timed out after {OCR_TIMEOUT} s ({e})") from None
    # (page, block, paragraph) → line → words: (text, x0, y0, x1, y1, confidence 0-1)
    paras: dict[tuple[int, int, int], dict[int, list[tuple[str, int, int, int, int, float]]]] = {}
    for i, word in enumerate(d["text"]):
        conf = float(d["conf"][i])
        if conf < 0 or not str(word).strip():
            continue
        key = (int(d["page_num"][i]), int(d["block_num"][i]), int(d["par_num"][i]))
        x, y = int(d["left"][i]), int(d["top"][i])
        paras.setdefault(key, {}).setdefault(int(d["line_num"][i]), []).append(
            (str(word).strip(), x, y, x + int(d["width"][i]), y + int(d["height"][i]), conf / 100))
    blocks = []
    for key in sorted(paras):
        segments = [seg for n in sorted(paras[key]) for seg in _segments(paras[key][n])]
        for group in _columns(segments):
            blocks.extend(_blocks(group))
    return blocks


def _segments(words: list[tuple[str, int, int, int, int, float]]) -> list[_Line]:
    """A tesseract line cut where words are far apart: it often runs a sidebar or a second
    column into the line beside it."""
    words = sorted(words, key=lambda w: w[1])
    height = max(w[4] - w[2] for w in words)
    out: list[list[tuple[str, int, int, int, int, float]]] = [[words[0]]]
    for w in words[1:]:
        if w[1] - out[-1][-1][3] > 2.5 * height:
            out.append([w])
        else:
            out[-1].append(w)
    lines = []
    for seg in out:
        # Long words weigh more: one misread symbol should not sink a line.
        weight = sum(len(w[0]) for w in seg)
        lines.append(_Line(" ".join(w[0] for w in seg), min(w[1] for w in seg),
                           min(w[2] for w in seg), max(w[3] for w in seg),
                           max(w[4] for w in seg), sum(w[5] * len(w[0]) for w in seg) / weight))
    return lines


def _columns(segments: list[_Line]) -> list[list[_Line]]:
    """Segments of one paragraph grouped by horizontal overlap (columns side by side)."""
    groups: list[list[_Line]] = []
    for seg in segments:
        hits = [g for g in groups
                if min(max(s.x1 for s in g), seg.x1) - max(min(s.x0 for s in g), seg.x0) > 0]
        merged = [seg]
        for g in hits:
            merged.extend(g)
            groups.remove(g)
        groups.append(merged)
    return [sorted(g, key=lambda s: (s.y0, s.x0)) for g in groups]


def _rapid() -> Any:
    global _rapid_engine
    with _rapid_lock:
        if _rapid_engine is None:
            try:
                from rapidocr import RapidOCR
            except ImportError as e:
                raise BadInput(f"{NO_ENGINE} ({e})") from None
            # Half the cores at most: the daemon OCRs in the background, like tesseract's
            # single OpenMP thread above.
            threads = max(1, min(4, (os.cpu_count() or 2) // 2))
            _rapid_engine = RapidOCR(params={
                "Global.log_level": "warning",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
        return _rapid_engine


def _rapidocr(image: Image) -> list[Block]:
    lines: list[_Line] = []
    for top, bottom, keep_from, keep_to in _strips(image.height, image.width):
        strip = image if (top, bottom) == (0, image.height) else \
            image.crop((0, top, image.width, bottom))
        for ln in _rapid_lines(strip):
            ln.y0 += top
            ln.y1 += top
            if keep_from <= (ln.y0 + ln.y1) / 2 < keep_to:
                lines.append(ln)
    return [b for group in _cluster(lines) for b in _blocks(group)]


def _strips(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(top, bottom, keep_from, keep_to) for each strip of a tall image.

    rapidocr shrinks an image to 2000 px on its long side, which makes the text of a
    full-page capture unreadable, so tall images are read in overlapping strips and each
    line is kept from the strip where its centre is away from the cut.
    """
    size = max(width, RAPID_MAX_SIDE // 2)
    if height <= max(RAPID_MAX_SIDE, int(size * 1.5)):
        return [(0, height, 0, height)]
    out = []
    top = 0
    while True:
        bottom = min(top + size, height)
        keep_from = 0 if top == 0 else top + STRIP_OVERLAP // 2
        keep_to = height + 1 if bottom == height else bottom - STRIP_OVERLAP // 2
        out.append((top, bottom, keep_from, keep_to))
        if bottom == height:
            return out
        top = bottom - STRIP_OVERLAP


def _rapid_lines(image: Image) -> list[_Line]:
    import numpy as np

    engine = _rapid()
    try:
        res = engine(np.asarray(image))
    except Exception as e:  # noqa: BLE001 - onnxruntime and opencv raise many types
        raise BadInput(f"rapidocr failed ({type(e).__name__}: {e})") from None
    if res.boxes is None or res.txts is None or res.scores is None:
        return []
    lines = []
    for box, txt, score in zip(res.boxes, res.txts, res.scores, strict=False):
        text = clean_text(str(txt))
        if not text:
            continue
        xs = [float(p[0]) for p in box]
        ys = [float(p[1]) for p in box]
        lines.append(_Line(text, min(xs), min(ys), max(xs), max(ys), float(score)))
    return lines


def _cluster(lines: list[_Line]) -> list[list[_Line]]:
    """Group lines into blocks: a line joins the block right above it when they overlap
    horizontally and the vertical gap is under about one line height."""
    blocks: list[list[_Line]] = []
    for line in sorted(lines, key=lambda ln: (ln.y0, ln.x0)):
        best: list[_Line] | None = None
        for block in blocks:
            last = block[-1]
            bx0 = min(ln.x0 for ln in block)
            bx1 = max(ln.x1 for ln in block)
            overlap = min(bx1, line.x1) - max(bx0, line.x0)
            if overlap <= 0:
                continue
            h = statistics.median(ln.height for ln in block)
            if not 0.6 < line.height / h < 1.7:  # a heading and body text are two blocks
                continue
            gap = line.y0 - max(ln.y1 for ln in block)
            if -0.5 * h <= gap <= 0.8 * h and (best is None or last.y1 > best[-1].y1):
                best = block
        if best is None:
            blocks.append([line])
        else:
            best.append(line)
    return blocks


def _blocks(lines: list[_Line]) -> list[Block]:
    """Blocks from a group of lines (top to bottom): lines side by side on one row are
    joined with a space, rows with a newline; a long group is cut at row boundaries."""
    rows: list[list[_Line]] = []
    for ln in lines:
        if rows and abs((ln.y0 + ln.y1) / 2 - (rows[-1][0].y0 + rows[-1][0].y1) / 2) < \
                ln.height / 2:
            rows[-1].append(ln)
        else:
            rows.append([ln])
    out: list[Block] = []
    chunk: list[list[_Line]] = []
    size = 0
    for row in rows:
        row_len = sum(len(ln.text) + 1 for ln in row)
        if chunk and size + row_len > MAX_BLOCK_CHARS:
            out.append(_block(chunk))
            chunk, size = [], 0
        chunk.append(row)
        size += row_len
    if chunk:
        out.append(_block(chunk))
    return out


def _block(rows: list[list[_Line]]) -> Block:
    text = "\n".join(" ".join(ln.text for ln in sorted(r, key=lambda ln: ln.x0)) for r in rows)
    lines = [ln for r in rows for ln in r]
    x0 = min(ln.x0 for ln in lines)
    y0 = min(ln.y0 for ln in lines)
    x1 = max(ln.x1 for ln in lines)
    y1 = max(ln.y1 for ln in lines)
    # Long lines weigh more: one misread icon should not sink a paragraph.
    weight = sum(len(ln.text) for ln in lines)
    score = sum(ln.score * len(ln.text) for ln in lines) / max(weight, 1)
    return Block(clean_text(text), round(x0), round(y0), round(x1 - x0), round(y1 - y0), score)
