"""Prepare and stream: the ratios of benchmarks.data_pipeline that need LitData, each measured
inside one run on generated JPEG folders. Loader rates are one epoch after its first batch
(worker start-up is not throughput), for the streamed and the compared loader alike.

- stream_vs_folder: images/s of a training epoch streamed from prepared shards (32x32 JPEGs
  decoded once at prepare: data.prepare_image_format=auto) against an ImageFolder (per-sample
  loader) of the same files, the same workers, the same shift augmentation;
- stream_vs_decode_limit: images/s streamed from shards of ~500x375 JPEGs (stored as read)
  decoded and resized to 224, against a bare decode-and-resize loop over the same bytes in as
  many processes as the loader has workers (the machine's limit);
- prepare_2_vs_1_workers: prepare throughput (images/s) with 2 workers against 1, on the
  ~500x375 JPEGs decoded and resized to 224 at prepare (the CPU-bound prepare);
- rss_large_vs_small: peak RSS (this process and its workers, summed) of a fresh process that
  prepares a generated folder and streams one epoch of it, --large-gb against --small-gb.

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

from benchmarks.common import REPO, emit, epoch_rate, machine, print_table

CLASSES = 4


def _write_part(root: str, indices: range, size: tuple[int, int]) -> int:
    from PIL import Image

    width, height = size
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    total = 0
    for i in indices:
        rng = np.random.default_rng(i)
        folder = Path(root) / f"class_{i % CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.normal(0, 40, (height, width, 3)).astype(np.float32)
        pixels = np.clip(base + noise + rng.integers(0, 80), 0, 255).astype(np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        total += path.stat().st_size
    return total


def write_jpegs(root: Path, count: int, size: tuple[int, int], processes: int = 2) -> int:
    """`count` noisy-gradient JPEGs (quality 90) in <root>/class_<i % 4>/; returns their bytes."""
    parts = [range(p, count, processes) for p in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(_write_part, [str(root)] * processes, parts, [size] * processes))


def prepare(
    root: Path, out: Path, workers: int, image_size: int, image_format: str = "auto"
) -> tuple[Path, float]:
    from lightyard.data.shards import prepare_image_folder

    return prepare_image_folder(
        root,
        out,
        workers,
        num_classes=CLASSES,
        image_format=image_format,
        image_size=image_size,
        num_workers=0,
        loader="per_sample",
    )


def stream_rate(folder: Path, batch_size: int, workers: int, shift: int = 0) -> float:
    """Images/s of a training epoch streamed as data=streaming reads it."""
    from lightyard.data.shards import read_meta
    from lightyard.data.streaming import StreamingImageDataModule

    meta = read_meta(folder)
    module = StreamingImageDataModule(
        path=str(folder),
        num_classes=meta["num_classes"],
        channels=meta["channels"],
        image_size=meta["image_size"],
        cache_dir=str(folder / ".cache"),
        batch_size=batch_size,
        num_workers=workers,
        shift=shift,
    )
    module.setup("fit")
    return epoch_rate(module.train_dataloader())[0]


def folder_rate(root: Path, batch_size: int, workers: int, image_size: int, shift: int) -> float:
    """Images/s of a training epoch of data=image_folder data.loader=per_sample."""
    from lightyard.data.vision import ImageFolderDataModule

    module = ImageFolderDataModule(
        root=str(root),
        num_classes=CLASSES,
        image_size=image_size,
        num_workers=workers,
        loader="per_sample",
        batch_size=batch_size,
        persistent_workers=False,
        pin_memory=False,
        shift=shift,
    )
    module.setup("fit")
    return epoch_rate(module.train_dataloader())[0]


def _decode_resize(blobs: list[bytes]) -> int:
    from PIL import Image

    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as image:
            image.convert("RGB").resize((224, 224), Image.BILINEAR)  # as Resize in training
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
import json, sys, time
from pathlib import Path
from benchmarks.common import TreeMemory, peak_rss_gb
from benchmarks.streaming_pipeline import prepare, stream_rate
with TreeMemory() as memory:
    folder, seconds = prepare(Path(sys.argv[1]), Path(sys.argv[2]), 2, 224)
    rate = stream_rate(folder, batch_size=64, workers=2)
print(json.dumps({"prepare_s": seconds, "stream_images_per_s": rate,
                  "peak_rss_gb": memory.peak_gb, "main_process_peak_rss_gb": peak_rss_gb()}))
"""


def peak_rss(root: Path, gigabytes: float, out: Path) -> dict:
    count = max(8, int(gigabytes * 2**30 / 110_000))  # ~110 KB per 500x375 JPEG
    size = write_jpegs(root, count, (500, 375))
    done = subprocess.run(
        [sys.executable, "-c", PREPARE_AND_STREAM, str(root), str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return {"images": count, "gb": size / 2**30, **json.loads(done.stdout.strip().splitlines()[-1])}


def streaming_ratios(
    work: Path,
    small: int = 50_000,
    large_images: int = 1500,
    large_gb: float = 4.0,
    small_gb: float = 0.5,
    workers: int = 2,
) -> tuple[dict, dict]:
    work.mkdir(parents=True, exist_ok=True)
    ratios, details = {}, {}
    cifar = work / "cifar_jpegs"
    write_jpegs(cifar, small, (32, 32))
    folder, _ = prepare(cifar, work / "prepared_cifar", 2, 32)
    streamed = stream_rate(folder, 64, workers, shift=2)
    read = folder_rate(cifar, 64, workers, 32, shift=2)
    details["stream_vs_folder"] = {"stream": streamed, "folder": read, "workers": workers}
    ratios["stream_vs_folder"] = streamed / read

    big = work / "imagenet_jpegs"
    write_jpegs(big, large_images, (500, 375))
    rates = {}
    for count in (1, 2):
        _, seconds = prepare(big, work / f"prepared_pixels_{count}", count, 224, "pixels")
        rates[count] = large_images / seconds
    details["prepare_images_per_s"] = rates
    ratios["prepare_2_vs_1_workers"] = rates[2] / rates[1]
    encoded, _ = prepare(big, work / "prepared_encoded", 2, 224, "encoded")
    streamed = stream_rate(encoded, 32, workers)
    limit = decode_limit(big, workers)
    details["stream_vs_decode_limit"] = {"stream": streamed, "limit": limit, "processes": workers}
    ratios["stream_vs_decode_limit"] = streamed / limit

    sizes = {}
    for name, gigabytes in (("small", small_gb), ("large", large_gb)):
        sizes[name] = peak_rss(work / f"rss_{name}", gigabytes, work / f"rss_{name}_out")
    details["rss"] = sizes
    ratios["rss_large_vs_small"] = sizes["large"]["peak_rss_gb"] / sizes["small"]["peak_rss_gb"]
    return ratios, details


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--large-gb", type=float, default=4.0, help="rss_large_vs_small's set")
    parser.add_argument("--small-gb", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=50_000, help="32x32 JPEGs")
    parser.add_argument("--large-images", type=int, default=1500, help="500x375 JPEGs")


def ratios_from(args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    return streaming_ratios(work, args.images, args.large_images, args.large_gb, args.small_gb)


def main() -> dict:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ratios, details = ratios_from(args, Path(tmp))
    print_table("Prepare and stream", ["ratio", "value"], [[k, v] for k, v in ratios.items()])
    result = {"machine": machine(), "ratios": ratios, "details": details}
    emit("streaming_pipeline", result)
    return result


if __name__ == "__main__":
    main()
