"""CPU time of one cnnImpute training step (batch 32, 512 targets, fused Adam, one thread) against the
network's input width: the paper's padded 2,560 inputs, and the 30-100 genes that `trim_padding=true`
keeps on sparse UMI data. Process CPU time, so machine load inflates it less than wall time.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/cnnimpute_step.py [--widths 2560,100,64,32] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import torch

from graphimpute.methods._impl.cnnimpute import CnnImputeNet


def step_cpu_ms(n_inputs: int, steps: int, batch: int = 32, n_targets: int = 512) -> tuple[float, int]:
    torch.manual_seed(0)
    net = CnnImputeNet(n_inputs=n_inputs, n_targets=n_targets)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)
    x, y = torch.randn(batch, n_inputs), torch.rand(batch, n_targets)

    def step():
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()

    for _ in range(5):  # warm-up
        step()
    start = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - start) * 1000 / steps, sum(p.numel() for p in net.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="2560,100,64,32")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("inputs\tparameters\tcpu_ms_per_step")
    for width in map(int, args.widths.split(",")):
        ms, n_params = step_cpu_ms(width, args.steps)
        print(f"{width}\t{n_params}\t{ms:.2f}")


if __name__ == "__main__":
    main()
