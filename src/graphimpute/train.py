"""One training loop for every neural method (scvi-tools' TrainRunner habit).

A method supplies a module and ``loss(module, batch) -> {"loss": total, **terms}``; this file owns
the device, seeding, the optimiser and learning-rate decay, early stopping on the validation loss,
which weights the result comes from (the best epoch's, or the last epoch's where the paper uses those:
``restore_best``), checkpoints and resume, the progress display and the history. The module comes back
in ``eval()`` mode, so the method's final forward pass is the inference one.

Resume refuses a checkpoint made for another run. Every checkpoint stores the ``fingerprint`` of what
it was trained on (``input_fingerprint``: a hash of the counts, the cell and gene names and the graphs
the method reads; the method; its resolved parameters; the seed; the package version). Resuming
against another fingerprint stops with a ``CheckpointError`` (one line, exit 2, nothing written)
that says what differs; it never starts fresh silently, which would overwrite the checkpoint of the
other run. Only ``max_epochs`` may change between the two runs (``RESUMABLE_PARAMS``): a resumed run
follows the same trajectory, so it can be extended, or cut at an epoch the checkpoint has not passed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from graphimpute._version import __version__
from graphimpute.errors import CheckpointError, DeviceError
from graphimpute.monitor import PeakMemory

log = logging.getLogger(__name__)

# Parameters that may differ between a checkpoint and the run resuming it: they do not change the
# training trajectory up to the checkpoint's epoch (max_epochs), or change nothing that is trained.
RESUMABLE_PARAMS = ("max_epochs", "max_memory_gb")
CHECKPOINT_NAME = "checkpoint.pt"

LossFn = Callable[[nn.Module, Any], dict[str, Tensor]]
Batches = Callable[[], Iterable[Any]]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' takes CUDA when present; 'cuda' where there is none is an error, never a fallback."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA device is available here "
                          "(use --device cpu or --device auto)")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda") from None
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return resolved


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels (same seed, same
    result on CPU; CUDA scatter kernels may still differ in the last bits)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@dataclass
class TrainConfig:
    max_epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = None  # epochs without improvement of the monitored loss before stopping
    # True: the weights of the epoch with the lowest monitored loss come back; False: the last epoch's
    # (a method whose paper trains a fixed schedule, or stops without restoring, as Keras' EarlyStopping)
    restore_best: bool = True
    min_delta: float = 0.0
    lr_decay_every: float | None = None  # multiply lr by lr_decay every this many epochs
    lr_decay: float = 1.0
    lr_decay_staircase: bool = True  # True: in steps (StepLR); False: smoothly, lr·decay^(epoch/every)
    grad_clip: float | None = None
    fused_adam: bool = False  # torch's fused Adam kernel: same update, one pass (~8x faster step on CPU)
    checkpoint_every: int | None = None  # epochs; needs checkpoint_dir
    checkpoint_dir: Path | None = None
    resume: bool = False  # continue from checkpoint_dir/checkpoint.pt when it exists
    fingerprint: dict[str, Any] | None = None  # what is trained (run_fingerprint): saved, checked on resume
    # a method's own numpy generators that draw during training (graphMCV's molecular splits and batch
    # order): their states go into every checkpoint, so a resumed run draws what an uninterrupted one would
    generators: tuple[np.random.Generator, ...] = ()
    progress: bool = True
    desc: str = "training"


@dataclass
class History:
    """What training did, saved with every result (``uns['graphimpute']['impute']['history']``)."""

    device: str
    epochs: list[dict[str, float]] = field(default_factory=list)  # per epoch: train_*, val_*, lr, time_s
    best_epoch: int | None = None
    best_loss: float | None = None
    weights: str = "best"  # which epoch's weights the module came back with: "best" or "last"
    stopped_early: bool = False
    resumed_from_epoch: int | None = None
    wall_time_s: float = 0.0
    peak_memory_mb: float = 0.0  # process RSS on CPU, allocator peak on CUDA

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["n_epochs"] = self.n_epochs
        return d


def schedule_in_steps(steps_per_epoch: int, *, max_epochs: int, patience: int | None = None,
                      lr_decay_every: float | None = None) -> dict[str, Any]:
    """``max_epochs``, ``patience`` and ``lr_decay_every`` of a paper that trains in full batch (one
    optimiser step per epoch), for epochs of ``steps_per_epoch`` mini-batch steps: the same number of
    updates (rounded up to whole epochs), the same patience in updates (at least one epoch, as the
    validation loss is checked once per epoch) and the same decay per update, so that crossing the
    mini-batch threshold does not multiply the training by the number of steps
    (bench/results/minibatch_schedule.md)."""
    if steps_per_epoch <= 1:
        return {"max_epochs": max_epochs, "patience": patience, "lr_decay_every": lr_decay_every}

    def epochs(steps: int) -> int:
        return max(1, math.ceil(steps / steps_per_epoch))

    return {"max_epochs": epochs(max_epochs),
            "patience": None if patience is None else epochs(patience),
            "lr_decay_every": None if lr_decay_every is None else lr_decay_every / steps_per_epoch}


def fit(
    module: nn.Module,
    loss: LossFn,
    *,
    config: TrainConfig,
    device: torch.device,
    train_data: Batches | None = None,
    val_data: Batches | None = None,
) -> History:
    """Train ``module`` (already on ``device``) and return its history.

    ``train_data``/``val_data`` return the batches of one epoch; ``None`` for ``train_data`` means one
    full-batch step per epoch (batch ``None``). Early stopping monitors the validation loss when
    ``val_data`` is given, else the training loss; the best weights are restored at the end unless
    ``config.restore_best`` is False (then the last epoch's weights stay, and no copy is kept).

    With ``checkpoint_every`` and ``checkpoint_dir`` the full state (weights, optimiser, scheduler,
    history, best weights, torch/numpy/Python RNGs, ``config.fingerprint``) is written atomically
    every N epochs and when training stops; ``resume`` continues from it and ends with the weights an
    uninterrupted run would have. A resumed run that had already stopped early does not train
    further. A checkpoint whose fingerprint differs from ``config.fingerprint`` (other data, method,
    parameters, seed or version), or that has trained past ``max_epochs``, is refused with a
    ``CheckpointError`` before anything is trained or written."""
    train_data = train_data or (lambda: [None])
    if config.checkpoint_every and config.checkpoint_dir is None:
        log.warning("%s: checkpoint_every=%d ignored: no checkpoint directory (workdir) given",
                    config.desc, config.checkpoint_every)
    optimiser = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 **({"fused": True} if config.fused_adam else {}))
    scheduler = _scheduler(optimiser, config)
    history = History(device=str(device), weights="best" if config.restore_best else "last")
    best_state, start_epoch, since_best = None, 0, 0
    ckpt = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir else None
    if config.resume and ckpt is not None and ckpt.exists():
        # on the CPU: RNG states must stay CPU tensors; weights and optimiser state are copied to the
        # module's device by load_state_dict
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        _check_resumable(ckpt, state, config)
        module.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        history = History(**{k: v for k, v in state["history"].items() if k != "n_epochs"})
        history.resumed_from_epoch = start_epoch = state["epoch"]
        best_state, since_best = state["best_state"], state["since_best"]
        _set_rng_state(state["rng"], config.generators)
        log.info("%s: resumed from %s at epoch %d", config.desc, ckpt, start_epoch)

    bar = _progress(config, start_epoch)
    started = time.perf_counter() - history.wall_time_s
    with PeakMemory(device) as memory:
        last_epoch = start_epoch if history.stopped_early else config.max_epochs
        for epoch in range(start_epoch, last_epoch):
            t0 = time.perf_counter()
            module.train()
            train_terms = _run_epoch(module, loss, train_data(), optimiser, config.grad_clip)
            row = {f"train_{k}": v for k, v in train_terms.items()}
            if val_data is not None:
                module.eval()
                with torch.no_grad():
                    row.update({f"val_{k}": v for k, v in _run_epoch(module, loss, val_data(), None, None).items()})
            row["lr"] = optimiser.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            row["time_s"] = time.perf_counter() - t0
            history.epochs.append(row)
            monitored = row["val_loss"] if val_data is not None else row["train_loss"]
            if not np.isfinite(monitored):
                raise FloatingPointError(f"{config.desc}: loss became {monitored} at epoch {epoch + 1}; "
                                         "try a lower learning rate")
            if history.best_loss is None or monitored < history.best_loss - config.min_delta:
                history.best_loss, history.best_epoch, since_best = monitored, epoch + 1, 0
                if config.restore_best:
                    best_state = copy.deepcopy(module.state_dict())
            else:
                since_best += 1
            bar.update(1)
            bar.set_postfix(loss=f"{monitored:.4g}", refresh=False)
            stop = config.patience is not None and since_best >= config.patience
            history.stopped_early = stop  # before the checkpoint, so a resumed run knows it is done
            if ckpt is not None and config.checkpoint_every and ((epoch + 1) % config.checkpoint_every == 0 or stop):
                history.wall_time_s = time.perf_counter() - started
                _save_checkpoint(ckpt, epoch + 1, module, optimiser, scheduler, history, best_state, since_best,
                                 config.fingerprint, config.generators)
            if stop:
                log.info("%s: early stop at epoch %d (best %d)", config.desc, epoch + 1, history.best_epoch)
                break
    bar.close()
    if best_state is not None and config.restore_best:
        module.load_state_dict(best_state)
    module.eval()
    history.wall_time_s = time.perf_counter() - started
    history.peak_memory_mb = memory.peak_mb
    return history


def _scheduler(optimiser, config: TrainConfig):
    """StepLR, or TensorFlow's exponential_decay(staircase=False) as an ExponentialLR per epoch."""
    if not config.lr_decay_every:
        return None
    if config.lr_decay_staircase:
        return torch.optim.lr_scheduler.StepLR(optimiser, max(1, round(config.lr_decay_every)), config.lr_decay)
    gamma = config.lr_decay ** (1.0 / config.lr_decay_every)
    return torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)


def _run_epoch(module, loss, batches, optimiser, grad_clip) -> dict[str, float]:
    """Mean of each loss term over the epoch's batches; steps the optimiser when one is given."""
    sums: dict[str, float] = {}
    n = 0
    for batch in batches:
        terms = loss(module, batch)
        if "loss" not in terms:
            raise KeyError(f"the loss function must return a dict with a 'loss' entry (got {sorted(terms)})")
        if optimiser is not None:
            optimiser.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
            optimiser.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach() if isinstance(v, Tensor) else v)
        n += 1
    if n == 0:
        raise ValueError("an epoch produced no batches: the training or validation data is empty")
    return {k: v / max(n, 1) for k, v in sums.items()}


def _save_checkpoint(path: Path, epoch, module, optimiser, scheduler, history, best_state, since_best,
                     fingerprint, generators=()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"epoch": epoch, "model": module.state_dict(), "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "history": history.to_dict(), "best_state": best_state, "since_best": since_best,
                "rng": _get_rng_state(generators), "fingerprint": fingerprint}, tmp)
    os.replace(tmp, path)


def input_fingerprint(counts, obs_names: Iterable[str], var_names: Iterable[str], extra: dict | None = None) -> str:
    """SHA-256 of a count matrix and its cell and gene names (plus ``extra`` named matrices, e.g. the
    graphs a method reads), the same for dense and sparse input of the same values.

    The matrix is hashed as canonical CSR arrays (shape, indptr, indices, float64 values), so the cost
    is one pass over the non-zeros: about a second for 100,000 cells x 2,000 genes at 10% density."""
    import scipy.sparse as sp

    digest = hashlib.sha256()

    def add_matrix(matrix) -> None:
        csr = sp.csr_matrix(matrix)
        csr.sum_duplicates()
        csr.sort_indices()
        csr.eliminate_zeros()
        digest.update(np.asarray(csr.shape, np.int64).tobytes())
        digest.update(csr.indptr.astype(np.int64).tobytes())
        digest.update(csr.indices.astype(np.int64).tobytes())
        digest.update(csr.data.astype(np.float64).tobytes())

    add_matrix(counts)
    for names in (obs_names, var_names):
        digest.update("\x00".join(map(str, names)).encode())
        digest.update(b"\x01")
    for key in sorted(extra or {}):
        digest.update(key.encode())
        value = extra[key]
        if isinstance(value, np.ndarray) and value.ndim == 1:
            digest.update(value.astype(np.float64).tobytes())
        else:
            add_matrix(value)
    return digest.hexdigest()


def run_fingerprint(*, data: str, method: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """What a checkpoint is trained on: the input's hash (``input_fingerprint``), the method, its
    resolved parameters (JSON-normalised), the seed and the package version."""
    params = json.loads(json.dumps(dict(params), default=str, sort_keys=True))
    return {"data": data, "method": method, "params": params, "seed": int(seed), "version": __version__}


def _check_resumable(path: Path, state: dict, config: TrainConfig) -> None:
    """Refuse a checkpoint made for another run (see the module docstring), or one already past
    ``max_epochs`` (its weights could come from epochs this run would never train)."""
    advice = "use another --workdir, delete the checkpoint, or run without --resume"
    stored, wanted = state.get("fingerprint"), config.fingerprint
    if wanted is not None:
        if stored is None:
            raise CheckpointError(f"{config.desc}: cannot resume from {path}: it records nothing about what it was "
                                  f"trained on (written by an older version); {advice}")
        differ = [k for k in ("data", "method", "seed", "version") if stored.get(k) != wanted.get(k)]
        params = sorted(k for k in set(stored.get("params", {})) | set(wanted["params"])
                        if k not in RESUMABLE_PARAMS and stored.get("params", {}).get(k) != wanted["params"].get(k))
        if params:
            differ.append("parameters " + ", ".join(params))
        if differ:
            what = {"data": "input data", "method": f"method ({stored.get('method')})",
                    "seed": f"seed ({stored.get('seed')})", "version": f"version ({stored.get('version')})"}
            raise CheckpointError(f"{config.desc}: cannot resume from {path}: it was trained with other "
                                  f"{'; '.join(what.get(d, d) for d in differ)} than this run; {advice}")
    if state["epoch"] > config.max_epochs:
        raise CheckpointError(f"{config.desc}: cannot resume from {path}: it has trained {state['epoch']} epochs, "
                              f"more than max_epochs={config.max_epochs}; raise max_epochs or {advice}")


def _get_rng_state(generators=()) -> dict[str, Any]:
    """Every generator a loss or a batch sampler may draw from, so a resumed run draws the same."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "generators": [g.bit_generator.state for g in generators]}


def _set_rng_state(state: dict[str, Any], generators=()) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    saved = state.get("generators") or []
    if len(saved) != len(generators):
        raise CheckpointError(f"the checkpoint holds {len(saved)} of the method's random generators, the method "
                              f"has {len(generators)}: it was written by another version; delete it or run without --resume")
    for generator, bit_state in zip(generators, saved):
        generator.bit_generator.state = bit_state
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _progress(config: TrainConfig, start: int):
    from tqdm.auto import tqdm

    return tqdm(total=config.max_epochs, initial=start, desc=config.desc, unit="epoch",
                disable=not config.progress, mininterval=1.0, leave=False)
