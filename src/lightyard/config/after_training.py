"""The switches of `predict` and `export`, checked with the trained run's config before anything
loads: inputs that fit the run's data (images for an image model, a text file for a text model,
prompts for a language model), a known export format for the model, the exporter installed."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from lightyard.config.nodes import value
from lightyard.config.problems import Problems
from lightyard.config.signatures import inherited_constant

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
TEXT_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl")
FORMATS = ("onnx", "torchscript", "hf")
# what each export format needs installed, and the extra that brings it
FORMAT_PACKAGES = {"onnx": ("onnx", "onnxscript", "onnxruntime")}


def _data_kind(cfg: DictConfig) -> str | None:
    data = cfg.get("data")
    if not isinstance(data, DictConfig) or "_target_" not in data:
        return None
    kind = inherited_constant(str(data._target_), "input_kind")
    return kind if isinstance(kind, str) else None


def _positive(cfg: DictConfig, key: str, problems: Problems, allow_none: bool = True) -> None:
    resolved, found = value(cfg, key) if key in cfg else (False, None)
    if not resolved or (found is None and allow_none):
        return
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        problems.add(
            key,
            f"is {found!r}",
            "a positive integer" + (" or null" if allow_none else ""),
            f"set {key}=1 or more",
        )


def check_predict(cfg: DictConfig, problems: Problems) -> None:
    kind = _data_kind(cfg)
    inputs, prompts = cfg.get("inputs"), cfg.get("prompts")
    for key in ("top_k", "max_new_tokens", "batch_size"):
        _positive(cfg, key, problems)
    if prompts is not None and not (
        isinstance(prompts, ListConfig) and all(isinstance(p, str) for p in prompts)
    ):
        problems.add(
            "prompts",
            f"is {prompts!r}",
            "a list of strings, e.g. 'prompts=[\"The\"]'",
            "quote the list for the shell",
        )
        return
    if prompts is not None and kind != "lm":
        problems.add(
            "prompts",
            "is set, but the run's model classifies (it continues no text)",
            "prompts for a language model's run; inputs=<file or folder> here",
            "drop prompts=..., or give inputs=<path>",
        )
    if inputs is None:
        return
    if prompts is not None:
        problems.add("inputs", "and prompts are both set", "one of them", "drop one")
    path = Path(str(inputs))
    if not path.exists():
        problems.add(
            "inputs",
            f"{inputs} does not exist",
            _allowed(kind),
            "check the path (relative paths start where the command runs)",
        )
        return
    if kind == "image":
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            problems.add(
                "inputs",
                f"{inputs} is not an image file",
                _allowed(kind),
                "give a folder of images or one image",
            )
        elif path.is_dir() and not any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file()
        ):
            problems.add(
                "inputs",
                f"{inputs} holds no image files",
                _allowed(kind),
                "point inputs at the folder that holds the images",
            )
    elif kind in ("tokens", "lm"):
        allowed = TEXT_SUFFIXES if kind == "tokens" else (".txt",)
        if not path.is_file() or path.suffix.lower() not in allowed:
            problems.add(
                "inputs",
                f"{inputs} is not a {'/'.join(allowed)} file",
                _allowed(kind),
                "give a file of texts",
            )


def _allowed(kind: str | None) -> str:
    return {
        "image": f"a folder of images or one image file ({', '.join(IMAGE_SUFFIXES)})",
        "tokens": "a .txt file (one text a line), or a CSV, TSV or JSONL file (text_column)",
        "lm": "a .txt file of prompts (one a line), or prompts=[...]",
    }.get(kind or "", "a path the run's data can read")


def check_export(cfg: DictConfig, problems: Problems) -> None:
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        problems.add("format", f"is {fmt!r}", ", ".join(FORMATS), "e.g. format=onnx")
        return
    _positive(cfg, "opset", problems)
    tolerance = cfg.get("tolerance")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance <= 0:
        problems.add(
            "tolerance", f"is {tolerance!r}", "a positive number, e.g. 1e-4", "set tolerance=1e-4"
        )
    model = cfg.get("model")
    target = str(model.get("_target_", "")) if isinstance(model, DictConfig) else ""
    if fmt == "hf" and not target.endswith("BertClassifier"):
        problems.add(
            "format",
            f"hf writes a Hugging Face model, but the run's model is {target}",
            "format=hf for model=bert runs; onnx or torchscript for the others",
            "use format=onnx",
        )
    if fmt == "onnx" and _data_kind(cfg) == "lm":
        problems.add(
            "format",
            "onnx exports classifiers; the run is a language model",
            "format=torchscript for a language model",
            "use format=torchscript",
        )
    missing = [name for name in FORMAT_PACKAGES.get(fmt, ()) if find_spec(name) is None]
    if missing:
        problems.add(
            "format",
            f"{fmt} needs {', '.join(missing)}, which is not installed",
            "an environment with lightyard[export]",
            "pip install 'lightyard[export]'",
        )
