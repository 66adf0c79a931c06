"""Export a trained run for serving: `python export.py run_dir=outputs/train/... format=onnx`."""

from lightyard.cli import export

if __name__ == "__main__":
    export()
