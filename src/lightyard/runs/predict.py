"""predict(cfg): a trained run's best checkpoint over its test split or over new inputs, written
as predictions.csv (classes) or predictions.jsonl (generated text) in predict's own output
directory, rows in input order whatever the number of DDP ranks."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ProgressBar
from omegaconf import DictConfig, open_dict

from lightyard.config.instantiate import instantiate, instantiate_all
from lightyard.data.predict import PredictionData, PredictionInputs
from lightyard.runs.build import build_task, build_trainer, finish
from lightyard.runs.trained_run import open_trained_run

log = logging.getLogger(__name__)
# with more classes than this, rows carry the top_k classes instead of every probability
ALL_PROBABILITIES_UP_TO = 20


class GatherPredictions(Callback):
    """Keeps each batch's outputs on the CPU and, when the epoch ends, hands every rank's rows
    to rank 0 (all_gather_object), while the process group is still up."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        outputs = {k: v.detach().cpu() for k, v in outputs.items()}
        for position in range(len(outputs["index"])):
            self.rows.append({k: v[position] for k, v in outputs.items()})

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        from torch import distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shares: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(shares, self.rows)
            self.rows = [row for share in shares for row in share]
        self.rows.sort(key=lambda row: int(row["index"]))


def _inputs(cfg: DictConfig, datamodule, language_model: bool) -> PredictionInputs:
    if language_model:
        prompts = list(cfg.get("prompts") or [])
        if cfg.get("inputs"):
            from lightyard.data.predict import read_texts

            prompts = read_texts(Path(cfg.inputs), cfg.get("text_column") or "text")[1]
        return datamodule.prompt_inputs(prompts or [str(cfg.task.get("sample_prompt", "The"))])
    if cfg.get("inputs"):
        return datamodule.new_inputs(cfg.inputs, cfg.get("text_column"))
    return datamodule.split_inputs("test")


def predict(cfg: DictConfig) -> Path:
    """Predict, then write the rows (rank 0); returns the predictions file."""
    ckpt = open_trained_run(cfg, "predict")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    log.info("Predicting with %s", ckpt)
    with open_dict(cfg):
        cfg.logger = None  # predict logs nothing: no empty runs in the trackers

    datamodule = instantiate(cfg.data, "data")
    language_model = getattr(datamodule, "input_kind", None) == "lm"
    inputs = _inputs(cfg, datamodule, language_model)
    batch_size = 1 if language_model else int(cfg.get("batch_size") or datamodule.batch_size)
    data = PredictionData(inputs, batch_size, int(cfg.get("num_workers") or 0))
    task = build_task(cfg)
    task.predict_tokens = int(cfg.get("max_new_tokens") or 0) or None
    gather = GatherPredictions()
    bars = [
        c for c in instantiate_all(cfg.get("callbacks"), "callbacks") if isinstance(c, ProgressBar)
    ]
    trainer = build_trainer(cfg, [*bars, gather], task, job="predict", datamodule=data)
    failed = True
    try:
        trainer.predict(
            task, datamodule=data, ckpt_path=str(ckpt), weights_only=True, return_predictions=False
        )
        path = None
        if trainer.is_global_zero:
            output_dir = Path(cfg.paths.output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            if language_model:
                path = write_generations(output_dir, gather.rows, inputs, datamodule)
            else:
                path = write_classes(output_dir, gather.rows, inputs, datamodule, cfg.get("top_k"))
            log.info("%d predictions written to %s", len(gather.rows), path)
        failed = False
    finally:
        finish(trainer, failed)
    return path


def _atomic_write(path: Path, write) -> Path:
    part = path.with_name(path.name + ".part")
    with part.open("w", newline="", encoding="utf-8") as handle:
        write(handle)
    part.replace(path)
    return path


def write_classes(output_dir: Path, rows, inputs: PredictionInputs, datamodule, top_k) -> Path:
    """predictions.csv: id, the true label (test split), the predicted class and its
    probability, then every class's probability (up to 20 classes) or the top_k classes."""
    names = datamodule.class_names()
    classes = len(names)
    k = None if top_k is None and classes <= ALL_PROBABILITIES_UP_TO else min(top_k or 5, classes)
    header = ["id", *(["label"] if inputs.has_targets else []), "predicted", "probability"]
    if k is None:
        header += [f"p_{name}" for name in names]
    else:
        header += [part for rank in range(1, k + 1) for part in (f"top{rank}", f"top{rank}_p")]

    def write(handle) -> None:
        out = csv.writer(handle)
        out.writerow(header)
        for row in rows:
            prob = row["prob"]
            best = int(prob.argmax())
            line = [inputs.ids[int(row["index"])]]
            if inputs.has_targets:
                line.append(names[int(row["target"])])
            line += [names[best], f"{float(prob[best]):.6f}"]
            if k is None:
                line += [f"{float(p):.6f}" for p in prob]
            else:
                values, indices = torch.topk(prob, k)
                for value, index in zip(values.tolist(), indices.tolist(), strict=True):
                    line += [names[index], f"{value:.6f}"]
            out.writerow(line)

    return _atomic_write(output_dir / "predictions.csv", write)


def write_generations(output_dir: Path, rows, inputs: PredictionInputs, datamodule) -> Path:
    """predictions.jsonl: one {"id", "prompt", "continuation"} object a prompt."""

    def write(handle) -> None:
        for row in rows:
            index = int(row["index"])
            record = {
                "id": inputs.ids[index],
                "prompt": inputs.texts[index],
                "continuation": datamodule.decode(row["tokens"].tolist()),
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    return _atomic_write(output_dir / "predictions.jsonl", write)
