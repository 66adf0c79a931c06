"""Predict with a trained run: `python predict.py run_dir=outputs/train/... [inputs=<path>]`."""

from lightyard.cli import predict

if __name__ == "__main__":
    predict()
