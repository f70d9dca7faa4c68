"""Training and inference speed of each backbone on spectrogram images, float32 vs bfloat16.

Picks the backbone and dtype for a CPU recipe by measurement: bf16 autocast is a large win
only where the CPU has native bf16 (AVX512-BF16/AMX); elsewhere it is emulated and slower.
Images are 1 × 128 × 251 (the cpu recipe's log-mel), batch 32, random weights (speed does
not depend on them), channels-last, torch with --threads threads. Rates are medians of
--steps timed steps after --warmup steps.

    .venv/bin/python benchmarks/backbones.py [--backbones resnet18 mobilenetv2_100 ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audiocnn.models import BACKBONES, create


def images_per_second(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, train: bool, bf16: bool,
                      warmup: int, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3) if train else None
    model.train(train)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        if train:
            with autocast:
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        else:
            with torch.inference_mode(), autocast:
                model(x)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return len(x) / float(np.median(times))


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 matmul throughput: the machine's raw compute, for scaling the other figures."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=3, default=[1, 128, 251], metavar=("C", "H", "W"),
                        help="image size (default 1 128 251, cpu.yaml; the ablation recipe is 1 64 126)")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    x = torch.randn(args.batch, *args.shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 50, (args.batch,))
    rows = []
    for name in args.backbones:
        model = create(name, 50, args.shape[0]).to(memory_format=torch.channels_last)
        row = {"backbone": name}
        for dtype in args.dtypes:
            for mode in ("train", "infer"):
                row[f"{mode}_{dtype}"] = images_per_second(model, x, y, train=mode == "train", bf16=dtype == "bf16",
                                                            warmup=args.warmup, steps=args.steps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    gflops = matmul_gflops()
    print(f"\n{platform.node()} · CPU capability {torch.backends.cpu.get_cpu_capability()} · native bf16: "
          f"{native_bf16} · {args.threads} threads · fp32 matmul {gflops:.0f} GFLOP/s · batch {args.batch} × "
          f"{'×'.join(map(str, args.shape))}\n")
    print("| backbone | train img/s fp32 | train img/s bf16 | bf16/fp32 | inference img/s fp32 | inference img/s bf16 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        bf16 = "train_bf16" in r
        print(f"| {r['backbone']} | {r['train_fp32']:.1f} | {r['train_bf16'] if bf16 else float('nan'):.1f} | "
              f"{r['train_bf16'] / r['train_fp32'] if bf16 else float('nan'):.2f} "
              f"| {r['infer_fp32']:.0f} | {r['infer_bf16'] if bf16 else float('nan'):.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"native_bf16": native_bf16, "matmul_gflops": gflops, "shape": args.shape,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
