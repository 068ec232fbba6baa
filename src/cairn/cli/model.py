"""cairn model show | pull NAME | use PATH | path: the local language model the llama extractor runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cairn.cli.memory import JsonOpt

model_app = typer.Typer(
    help="The local language model (GGUF) for the llama extractor: show, pull, use.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)



def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _set(key: str, value: str) -> Path:
    from cairn.config import set_config_value

    path, _ = set_config_value(key, json.dumps(value))
    return path


def _use(path: Path) -> dict[str, Any]:
    """Check the file is a GGUF model and point [extraction] at it."""
    from cairn.extraction.gguf_info import read_gguf

    info = read_gguf(path)
    resolved = str(info.path.resolve())
    _set("extraction.model", resolved)
    config = _set("extraction.extractor", "llama")
    return {"model": resolved, "extractor": "llama", "config_path": str(config),
            "gguf": info.to_dict(), "llama_cpp": _version("llama-cpp-python")}


def _after_use(out: dict[str, Any], verb: str) -> None:
    from cairn.cli import render

    g = out["gguf"]
    what = " ".join(x for x in (g["name"], g["architecture"] and f"({g['architecture']})") if x)
    render.console().print(f"{verb} {out['model']}" + (f" — {what}" if what else ""))
    render.warn(f"extraction.extractor = llama, extraction.model set in {out['config_path']}")
    if not g["chat_template"]:
        render.warn("note: the file has no chat template; llama-cpp-python will guess the format")
    if out["llama_cpp"] is None:
        render.warn("note: llama-cpp-python is not installed, so extraction falls back to the"
                    " rules extractor until you install it: pip install 'cairn[llm]'")
    render.warn("run 'cairn reextract' to extract the stored episodes again with it")


@model_app.command("show")
def show(json_: JsonOpt = False) -> None:
    """The extractor in use, the configured model (checked) and the models cairn can pull."""
    from cairn.config import load_settings
    from cairn.errors import CairnError
    from cairn.extraction.modelhub import CATALOGUE, DEFAULT, models_dir
    from cairn.extraction.registry import llama_settings, model_path

    s = load_settings()
    model: dict[str, Any] = {"path": None, "exists": False, "gguf": None, "error": None}
    try:
        path = model_path(s)
        tuning: dict[str, Any] | str = llama_settings(s)
    except CairnError as e:
        path, tuning = None, str(e)
        model["error"] = str(e)
    if path is not None:
        from cairn.extraction.gguf_info import read_gguf

        model["path"] = str(path)
        model["exists"] = path.is_file()
        try:
            model["gguf"] = read_gguf(path).to_dict()
        except CairnError as e:
            model["error"] = str(e)
    folder = models_dir()
    downloaded = sorted(str(p) for p in folder.glob("*.gguf")) if folder.is_dir() else []
    data = {
        "extractor": str(s.get("extraction", "extractor")),
        "model": model,
        "settings": tuning,
        "llama_cpp": _version("llama-cpp-python"),
        "huggingface_hub": _version("huggingface-hub"),
        "models_dir": str(folder),
        "downloaded": downloaded,
        "recommended": [dict(m.to_dict(), default=m.name == DEFAULT) for m in CATALOGUE.values()],
        "config_path": str(s.config_path),
    }
    if json_:
        from cairn.cli.render import print_json

        print_json(data)
        return
    out = sys.stdout.write
    out(f"extractor    {data['extractor']}\n")
    if model["path"] is None:
        out(f"model        (none) — 'cairn model pull {DEFAULT}' or 'cairn model use PATH'\n")
    else:
        out(f"model        {model['path']}\n")
        if model["gguf"]:
            g = model["gguf"]
            out(f"             {g['bytes'] / 1e9:.2f} GB, GGUF v{g['gguf_version']},"
                f" {g['name'] or 'unnamed'} ({g['architecture'] or '?'}),"
                f" context {g['context_length'] or '?'},"
                f" chat template {'yes' if g['chat_template'] else 'no'}\n")
    if model["error"]:
        out(f"             problem: {model['error']}\n")
    if isinstance(tuning, dict):
        out("settings     " + ", ".join(f"{k} {v}" for k, v in tuning.items()) + "\n")
    missing = "not installed: pip install 'cairn[llm]'"
    out(f"llama-cpp    {data['llama_cpp'] or missing}\n")
    out(f"models dir   {folder}\n")
    for p in downloaded:
        out(f"             {Path(p).name}\n")
    out("pullable     (cairn model pull NAME)\n")
    for m in CATALOGUE.values():
        mark = "*" if m.name == DEFAULT else " "
        out(f"           {mark} {m.name:<24} {m.size:>7}  {m.repo}  {m.note}\n")


@model_app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="A model from 'cairn model show', or OWNER/REPO/FILE.gguf on the hub.")],
    no_use: Annotated[bool, typer.Option("--no-use", help="Download only; do not switch extraction to it.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Download a small instruct model (GGUF) from the Hugging Face hub and use it."""
    import os

    from cairn.extraction.modelhub import pull as do_pull

    if json_:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    path = do_pull(name)
    if no_use:
        from cairn.extraction.gguf_info import read_gguf

        data: dict[str, Any] = {"model": str(path), "gguf": read_gguf(path).to_dict(),
                                "used": False}
        if json_:
            from cairn.cli.render import print_json

            print_json(data)
        else:
            sys.stdout.write(f"{path}\n")
        return
    out = _use(path)
    out["used"] = True
    if json_:
        from cairn.cli.render import print_json

        print_json(out)
    else:
        _after_use(out, "downloaded")


@model_app.command("use")
def use(
    path: Annotated[str, typer.Argument(help="A .gguf file (or the name of a model pulled before).")],
    json_: JsonOpt = False,
) -> None:
    """Use this GGUF file for extraction (checks it is one; sets the llama extractor)."""
    from cairn.extraction.modelhub import CATALOGUE, models_dir

    file = Path(path).expanduser()
    key = path.strip().lower()
    if not file.exists() and key in CATALOGUE and (models_dir() / CATALOGUE[key].filename).is_file():
        file = models_dir() / CATALOGUE[key].filename
    out = _use(file)
    if json_:
        from cairn.cli.render import print_json

        print_json(out)
    else:
        _after_use(out, "using")


@model_app.command("path")
def path_cmd() -> None:
    """Print the folder 'cairn model pull' downloads to."""
    from cairn.extraction.modelhub import models_dir

    sys.stdout.write(f"{models_dir()}\n")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
