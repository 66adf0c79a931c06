"""Evaluate a trained run with its own config: `python eval.py run_dir=outputs/train/...`."""

from lightyard.cli import evaluate

if __name__ == "__main__":
    evaluate()
