"""export(cfg): a trained run's best checkpoint as a file for serving (ONNX, TorchScript or a
Hugging Face directory), with serving.json beside it: the preprocessing, the label names and the
input shapes. Every export is checked against PyTorch on two batches of different shapes from
the run's test split before it is called done."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from lightyard import __version__
from lightyard.config.instantiate import instantiate
from lightyard.errors import ConfigError, RunFailed
from lightyard.runs.build import build_task
from lightyard.runs.checkpoint_files import read
from lightyard.runs.trained_run import open_trained_run

log = logging.getLogger(__name__)
FILES = {"onnx": "model.onnx", "torchscript": "model.pt", "hf": "model"}


class ImageLogits(nn.Module):
    """The backbone as exporters see it: named tensor inputs, logits out."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)


class TokenLogits(ImageLogits):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids, attention_mask)


class NextTokenLogits(ImageLogits):
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids)


WRAPPERS = {"image": ImageLogits, "tokens": TokenLogits, "lm": NextTokenLogits}


def input_names(kind: str) -> list[str]:
    return {"image": ["images"], "tokens": ["input_ids", "attention_mask"]}.get(kind, ["input_ids"])


def example_batches(datamodule, kind: str) -> list[tuple[torch.Tensor, ...]]:
    """Two batches of the test split with different shapes (3 and 2 samples; for text, the
    second batch is cut shorter), as tuples in input_names order."""
    inputs = datamodule.split_inputs("test")
    collate = inputs.collate or torch.utils.data.default_collate
    count = len(inputs.dataset)
    if count < 5:
        raise ConfigError(f"export checks parity on 5 test samples; the test split has {count}")
    batches = []
    for start, size in ((0, 3), (3, 2)):
        batch, _ = collate([inputs.dataset[i] for i in range(start, start + size)])
        if kind == "image":
            batches.append((batch,))
        elif kind == "tokens":
            batches.append((batch["input_ids"], batch["attention_mask"]))
        else:
            batches.append((batch["input_ids"],))
    if kind != "image":
        ids = batches[1]
        length = max(2, ids[0].shape[1] // 2)
        batches[1] = tuple(t[:, :length].contiguous() for t in ids)
    return batches


def load_weights(task, path: Path, trusted: bool) -> None:
    if path.is_dir():
        raise ConfigError(
            f"ckpt_path: {path} is a sharded checkpoint (a directory of FSDP shards). Allowed: "
            "a single-file checkpoint. Fix: consolidate it first (Lightning's "
            "`python -m lightning.pytorch.utilities.consolidate_checkpoint <dir>`) and pass "
            "ckpt_path=<the .ckpt it writes>"
        )
    state = read(path, trusted=trusted)
    task.load_state_dict(state["state_dict"], strict=task.strict_loading)


def export(cfg: DictConfig) -> Path:
    """Write the model and serving.json into the export's own output directory."""
    ckpt = open_trained_run(cfg, "export")
    fmt = str(cfg.format)
    log.info("Exporting %s as %s", ckpt, fmt)
    datamodule = instantiate(cfg.data, "data")
    kind = getattr(datamodule, "input_kind", "image")
    task = build_task(cfg)
    load_weights(task, ckpt, bool(cfg.get("trusted_checkpoint", False)))
    task.eval()
    backbone = task.backbone
    exportable = backbone.for_export() if hasattr(backbone, "for_export") else backbone
    module = WRAPPERS[kind](exportable).eval()
    batches = example_batches(datamodule, kind)
    with torch.no_grad():
        expected = [task(_as_task_inputs(batch, kind)).float() for batch in batches]

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / FILES[fmt]
    if fmt == "onnx":
        exporter = to_onnx(module, batches, kind, target, cfg.get("opset"))
        outputs = run_onnx(target, batches, kind)
    elif fmt == "torchscript":
        exporter = "torch.jit.trace"
        to_torchscript(module, batches, target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit's deprecation: the format still serves
            loaded = torch.jit.load(str(target))
        with torch.no_grad():
            outputs = [loaded(*batch).float() for batch in batches]
    else:
        exporter = "save_pretrained"
        outputs = to_hf(backbone, datamodule, batches, target)
    differences = [float((a - b).abs().max()) for a, b in zip(outputs, expected, strict=True)]
    shapes = [[list(t.shape) for t in batch] for batch in batches]
    if max(differences) > float(cfg.tolerance):
        raise RunFailed(
            f"export: the {fmt} model differs from PyTorch by {max(differences):.3g} on the "
            f"test batches {shapes} (tolerance={cfg.tolerance}); {target} is not fit to serve. "
            "Fix: report this model to lightyard, or try another format"
        )
    if kind != "image" and hasattr(datamodule, "save_tokenizer") and fmt != "hf":
        datamodule.save_tokenizer(out)
    serving = {
        "format": fmt,
        "file": target.name,
        "exporter": exporter,
        "checkpoint": str(ckpt),
        "lightyard": __version__,
        "classes": datamodule.class_names() if kind != "lm" else None,
        "inputs": _input_spec(kind, batches),
        "outputs": {
            "logits": ["batch", "num_classes"] if kind != "lm" else ["batch", "sequence", "vocab"]
        },  # fmt: skip
        "preprocessing": datamodule.serving_info(),
        "parity": {
            "max_abs_difference": max(differences),
            "shapes": shapes,
            "tolerance": float(cfg.tolerance),
        },  # fmt: skip
    }
    (out / "serving.json").write_text(json.dumps(serving, indent=2) + "\n")
    log.info(
        "Exported %s (largest difference from PyTorch %.2g) and serving.json to %s",
        target.name, max(differences), out,
    )  # fmt: skip
    return target


def _as_task_inputs(batch: tuple[torch.Tensor, ...], kind: str):
    if kind == "tokens":
        return {"input_ids": batch[0], "attention_mask": batch[1]}
    if kind == "lm":
        return {"input_ids": batch[0]}
    return batch[0]


def _input_spec(kind: str, batches) -> dict[str, Any]:
    names = input_names(kind)
    axes = ["batch", "channels", "height", "width"] if kind == "image" else ["batch", "sequence"]
    first = batches[0]
    return {
        name: {
            "dtype": str(tensor.dtype).removeprefix("torch."),
            "shape": [
                axis if axis in ("batch", "sequence") else size
                for axis, size in zip(axes, tensor.shape, strict=True)
            ],  # fmt: skip
        }
        for name, tensor in zip(names, first, strict=True)
    }


def _dynamic(kind: str):
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    if kind == "image":
        return {"images": {0: batch}}, {"images": {0: "batch"}}
    sequence = Dim("sequence", min=2, max=4096)
    names = input_names(kind)
    dynamo = {name: {0: batch, 1: sequence} for name in names}
    legacy = {name: {0: "batch", 1: "sequence"} for name in names}
    return dynamo, legacy


def to_onnx(module: nn.Module, batches, kind: str, target: Path, opset) -> str:
    """torch's dynamo exporter where it can trace the model, else the TorchScript-based one
    (said in the log and in serving.json); dynamic batch and sequence axes either way."""
    names = input_names(kind)
    dynamo_axes, legacy_axes = _dynamic(kind)
    kwargs = {"opset_version": int(opset)} if opset else {}
    example = batches[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                example,
                input_names=names,
                output_names=["logits"],
                dynamic_shapes=dynamo_axes,
                dynamo=True,
                verbose=False,
                **kwargs,
            )
        program.save(str(target))
        return "torch.onnx (dynamo)"
    except Exception as error:  # the dynamo exporter's many kinds of "cannot trace this"
        first = next((line for line in str(error).splitlines() if "Error" in line), str(error))
        log.info("the dynamo ONNX exporter failed (%s); using the TorchScript-based one", first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(target),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**legacy_axes, "logits": {0: "batch"}},
            dynamo=False,
            **kwargs,
        )
    return "torch.onnx (TorchScript-based)"


def run_onnx(target: Path, batches, kind: str) -> list[torch.Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    names = input_names(kind)
    return [
        torch.from_numpy(
            session.run(None, {n: t.numpy() for n, t in zip(names, batch, strict=True)})[0]
        ).float()
        for batch in batches
    ]


def to_torchscript(module: nn.Module, batches, target: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer notes
        traced = torch.jit.trace(module, batches[0], check_inputs=[batches[1]], strict=False)
    traced.save(str(target))


def to_hf(backbone: nn.Module, datamodule, batches, target: Path) -> list[torch.Tensor]:
    """save_pretrained of the (merged) model with id2label, and its tokenizer as a fast HF
    tokenizer, so transformers.pipeline("text-classification", model=target) loads both."""
    from transformers import AutoModelForSequenceClassification

    model = backbone.merged()
    names = datamodule.class_names()
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}
    model.save_pretrained(str(target))
    hf_tokenizer(datamodule).save_pretrained(str(target))
    loaded = AutoModelForSequenceClassification.from_pretrained(str(target)).eval()
    with torch.no_grad():
        return [loaded(input_ids=ids, attention_mask=mask).logits.float() for ids, mask in batches]


def hf_tokenizer(datamodule):
    """The run's tokenizer as a transformers tokenizer (a pretrained one is one already)."""
    encoder = datamodule.encoder()
    if encoder.pretrained:
        return encoder.backend
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=encoder.backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=datamodule.max_length or 512,
    )
