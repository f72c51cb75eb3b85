"""Scale-out on torch.distributed: shards, all-reduce of ḡ, all-gather of per-sample results.

Launch with torchrun (`torchrun --nproc_per_node=K -m docl_core run ...`), which sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; gloo on CPU, NCCL on GPUs. Every rank
keeps the training set in memory but scores only its contiguous shard: ḡ is the all-reduced
sum of shard gradients over N, per-sample results are all-gathered so every rank makes the
same global selection from the same seeded generator, training steps split each global
batch across ranks under DistributedDataParallel, and only rank 0 writes the run. Both
protocols: mixup, accumulation and the mean teacher under DDP live in train_pass.py
(`TrainPass.run` / `TrainPass.sync_batchnorm`; docs/architecture.md, "torchrun").

What agrees with one process (README "Scaling out"): at the same weights the sharded
measurement equals one process's to float rounding (~1e-7 relative: shard sums and the
all-reduce add in another order). Training steps do not stay bit-identical: DDP averages
per-rank half-batch gradients where one process takes one full-batch gradient, so weights
drift at float level after every step and later rounds agree only up to that drift.
BatchNorm (`prepare_model`, `sync_buffers`) and determinism (`set_deterministic`) live here.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import sys
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class DistContext:
    """Who this process is in the job (world 1 when torch.distributed is not in use)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of n samples (sizes differ by at most one)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def all_reduce_sum_(self, tensors: list[torch.Tensor]) -> None:
        if self.active:
            flat = torch.cat([t.reshape(-1) for t in tensors])
            dist.all_reduce(flat)
            offset = 0
            for t in tensors:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()

    def all_gather_rows(self, local: torch.Tensor) -> torch.Tensor:
        """Concatenate each rank's rows in rank order (row counts may differ by rank)."""
        if not self.active:
            return local
        n = torch.tensor([local.shape[0]], device=local.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(sizes, n)
        sizes = [int(s) for s in sizes]
        pad = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=local.device)
        pad[:local.shape[0]] = local
        parts = [torch.empty_like(pad) for _ in range(self.world)]
        dist.all_gather(parts, pad)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = DistContext()


def init_from_env(device: str = "auto", timeout_s: float = 300.0) -> DistContext:
    """Join the torchrun job described by the environment, or return the single-process context.

    A rank that dies makes the others' next collective fail (gloo: connection closed; both
    backends: after `timeout_s` at the latest), and torchrun then ends the whole job.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world=world, device=dev)


def prepare_model(model: nn.Module, ctx: DistContext) -> tuple[nn.Module, str]:
    """Keep BatchNorm consistent across ranks as far as the backend allows; call before DDP wraps it.

    Returns the model (converted or as given) and how its BatchNorm is kept in step, which
    run.json records as `batchnorm_sync`:
      "none": one process, or a model without BatchNorm; nothing to do.
      "syncbn": CUDA: SyncBatchNorm normalises each training batch with the statistics of
          the global batch, as one process does.
      "buffers-broadcast": CPU (gloo; SyncBatchNorm needs a GPU): each rank normalises its
          training share with that share's own statistics (32 of a 64 batch on 2 ranks), so
          training differs from one process; `sync_buffers` gives every rank rank 0's running
          statistics before each measurement, so at least all ranks score the same weights.
          Rank 0 says so once on stderr.
    """
    if not ctx.active or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model, "none"
    if ctx.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model), "syncbn"
    if ctx.is_writer:
        print("docl: note: SyncBatchNorm needs CUDA; on CPU each process normalises its share of a "
              "batch with that share's statistics and rank 0's running statistics are broadcast "
              "before scoring; scores differ from one process by several % (README, Scaling out)",
              file=sys.stderr, flush=True)
    return model, "buffers-broadcast"


def place_model(model: nn.Module, device: torch.device, ctx: DistContext) -> tuple[nn.Module, nn.Module, bool, str]:
    """The model on the device, ready to train under `ctx`: → (model, net, channels_last,
    batchnorm_sync). CUDA convolutions run in channels_last (NHWC, the layout tensor cores want);
    under torchrun BatchNorm is kept in step (`prepare_model`) and `net`, what training forwards
    call, is the DDP wrapper (else the model itself)."""
    model = model.to(device)
    channels_last = device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, batchnorm_sync = prepare_model(model, ctx)
    net = model
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model)
    return model, net, channels_last, batchnorm_sync


def sync_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics): call before scoring and eval.

    DDP broadcasts them at the start of every training forward, but the last step's update
    is each rank's own: without this, ranks would score their shards with different weights.
    """
    if not ctx.active:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for b in model.buffers():
        by_dtype.setdefault(b.dtype, []).append(b)
    for bufs in by_dtype.values():  # one broadcast per dtype (floats; BatchNorm's int64 counts)
        flat = torch.cat([b.reshape(-1) for b in bufs])
        dist.broadcast(flat, src=0)
        offset = 0
        for b in bufs:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def set_deterministic(on: bool) -> None:
    """`--deterministic`: deterministic kernels wherever PyTorch has them (CUDA's matter).

    cuDNN picks deterministic algorithms and stops benchmarking, cuBLAS gets a fixed workspace
    (CUBLAS_WORKSPACE_CONFIG, read when cuBLAS starts: call this before any CUDA work), and
    `torch.use_deterministic_algorithms(True)` makes an op without a deterministic version
    raise instead of silently varying. On CPU one process is already bit-reproducible on
    the same machine with the same seed; the flag costs speed on GPUs, not on CPU.
    """
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def autocast(device: torch.device, precision: str):
    """`--precision`: the context for training forwards. fp32: nothing; bf16/fp16: torch.autocast
    on the device's type (CPU autocast too, so CPU tests exercise the same code)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host → device: pinned memory and a non-blocking copy to CUDA; a plain `.to` otherwise."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def shutdown(ctx: Optional[DistContext], finished: bool = True) -> None:
    """Leave the job. After a clean finish every rank first waits for the others (a barrier):
    tearing gloo down while a peer is still finishing its last collective can abort the
    process ("terminate called without an active exception", seen on a loaded 2-core CI
    machine). After an error there is no barrier: the peers may never arrive."""
    if ctx is not None and ctx.active and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
