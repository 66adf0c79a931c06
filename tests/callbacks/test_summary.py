"""The model summary shows what it can count and no column that would always read 0."""

from __future__ import annotations

from lightyard.callbacks.summary import RichModelSummary


def test_the_summary_has_no_flops_column(capsys):
    RichModelSummary.summarize(
        summary_data=[
            (" ", ["0", "1"]),
            ("Name", ["backbone", "criterion"]),
            ("Type", ["SimpleCNN", "CrossEntropyLoss"]),
            ("Params", ["28.5 K", "0"]),
            ("Mode", ["train", "train"]),
            ("FLOPs", ["0", "0"]),
        ],
        total_parameters=28500,
        trainable_parameters=28500,
        model_size=0.114,
        total_training_modes={"train": 2, "eval": 0},
        total_flops=0,
    )
    shown = capsys.readouterr().out
    assert "SimpleCNN" in shown and "28.5 K" in shown and "Trainable params" in shown
    assert "FLOPs" not in shown
