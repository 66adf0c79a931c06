"""Prepare and stream: the ratios of benchmarks.data_pipeline that need LitData, each measured
inside one run on generated JPEG folders.

- stream_vs_folder: images/s of one streamed epoch from prepared shards against an ImageFolder
  (per-sample loader) of the same 32x32 JPEGs, the same loader workers;
- stream_vs_decode_limit: images/s streamed from shards of ~500x375 JPEGs resized to 224,
  against a bare decode-and-resize loop over the same bytes in as many processes (the limit);
- prepare_2_vs_1_workers: prepare throughput (images/s) with 2 workers against 1;
- rss_large_vs_small: peak RSS of a fresh process that prepares a folder and streams one epoch,
  a large generated set against a small one (--large-gb, --small-gb).

    python -m benchmarks.streaming_pipeline [--large-gb 4 --small-gb 0.5]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import emit, machine, print_table


def write_jpegs(root: Path, count: int, size: tuple[int, int], classes: int = 4) -> int:
    """`count` noisy-gradient JPEGs (quality 90) in <root>/<class>/; returns their bytes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = size
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    total = 0
    for i in range(count):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.normal(0, 40, (height, width, 3)).astype(np.float32)
        pixels = np.clip(base + noise + rng.integers(0, 80), 0, 255).astype(np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        total += path.stat().st_size
    return total


def prepare(root: Path, out: Path, workers: int, image_size: int) -> tuple[Path, float]:
    from lightyard.data.shards import prepare_image_folder

    return prepare_image_folder(
        root,
        out,
        workers,
        num_classes=4,
        image_size=image_size,
        num_workers=0,
        loader="per_sample",
    )


def folder_rate(root: Path, workers: int, image_size: int) -> float:
    from lightyard.data.vision import ImageFolderDataModule

    module = ImageFolderDataModule(
        root=str(root),
        num_classes=4,
        image_size=image_size,
        num_workers=workers,
        loader="per_sample",
        batch_size=64,
        persistent_workers=False,
    )
    module.setup("fit")
    started, seen = time.perf_counter(), 0
    for _, labels in module.train_dataloader():
        seen += len(labels)
    return seen / (time.perf_counter() - started)


def _decode_resize(blobs: list[bytes]) -> int:
    from PIL import Image

    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as image:
            image.convert("RGB").resize((224, 224))
    return len(blobs)


def decode_limit(root: Path, processes: int) -> float:
    """Images/s of decode + resize alone, over the files' bytes held in memory."""
    blobs = [path.read_bytes() for path in sorted(root.glob("*/*.jpg"))]
    parts = [blobs[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_decode_resize, [p[:4] for p in parts]))  # start-up is not throughput
        started = time.perf_counter()
        done = sum(pool.map(_decode_resize, parts))
    return done / (time.perf_counter() - started)


PREPARE_AND_STREAM = """
import json, sys

def peak_rss_gb():
    # VmHWM starts afresh with exec; ru_maxrss keeps the parent's peak across it
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20

from pathlib import Path
from benchmarks.streaming_pipeline import prepare
from lightyard.data.streaming import iterate_train
folder, seconds = prepare(Path(sys.argv[1]), Path(sys.argv[2]), 2, 64)
rate = iterate_train(str(folder), batch_size=64, num_workers=1)
print(json.dumps({"prepare_s": seconds, "stream_images_per_s": rate,
                  "peak_rss_gb": peak_rss_gb()}))
"""


def peak_rss(root: Path, gigabytes: float, out: Path) -> dict:
    count = max(8, int(gigabytes * 2**30 / 110_000))  # ~110 KB per 500x375 JPEG
    size = write_jpegs(root, count, (500, 375))
    done = subprocess.run(
        [sys.executable, "-c", PREPARE_AND_STREAM, str(root), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {"images": count, "gb": size / 2**30, **json.loads(done.stdout.strip().splitlines()[-1])}


def streaming_ratios(
    work: Path,
    small: int = 2000,
    large_images: int = 300,
    large_gb: float = 4.0,
    small_gb: float = 0.5,
    workers: int = 1,
) -> tuple[dict, dict]:
    from lightyard.data.streaming import iterate_train

    work.mkdir(parents=True, exist_ok=True)
    ratios, details = {}, {}
    cifar = work / "cifar_jpegs"
    write_jpegs(cifar, small, (32, 32))
    folder, _ = prepare(cifar, work / "prepared_cifar", 2, 32)
    streamed = iterate_train(str(folder), batch_size=64, num_workers=workers)
    read = folder_rate(cifar, workers, 32)
    details["stream_vs_folder"] = {"stream": streamed, "folder": read, "workers": workers}
    ratios["stream_vs_folder"] = streamed / read

    big = work / "imagenet_jpegs"
    write_jpegs(big, large_images, (500, 375))
    rates, folders = {}, {}
    for count in (1, 2):
        folders[count], seconds = prepare(big, work / f"prepared_big_{count}", count, 224)
        rates[count] = large_images / seconds
    details["prepare_images_per_s"] = rates
    ratios["prepare_2_vs_1_workers"] = rates[2] / rates[1]
    streamed = iterate_train(str(folders[2]), batch_size=32, num_workers=2)
    limit = decode_limit(big, 2)
    details["stream_vs_decode_limit"] = {"stream": streamed, "limit": limit, "processes": 2}
    ratios["stream_vs_decode_limit"] = streamed / limit

    sizes = {}
    for name, gigabytes in (("small", small_gb), ("large", large_gb)):
        sizes[name] = peak_rss(work / f"rss_{name}", gigabytes, work / f"rss_{name}_out")
    details["rss"] = sizes
    ratios["rss_large_vs_small"] = sizes["large"]["peak_rss_gb"] / sizes["small"]["peak_rss_gb"]
    return ratios, details


def main() -> dict:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large-gb", type=float, default=4.0)
    parser.add_argument("--small-gb", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=2000, help="32x32 JPEGs")
    parser.add_argument("--large-images", type=int, default=300, help="500x375 JPEGs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ratios, details = streaming_ratios(
            Path(tmp), args.images, args.large_images, args.large_gb, args.small_gb
        )
    print_table("Prepare and stream", ["ratio", "value"], [[k, v] for k, v in ratios.items()])
    result = {"machine": machine(), "ratios": ratios, "details": details}
    emit("streaming_pipeline", result)
    return result


if __name__ == "__main__":
    main()
