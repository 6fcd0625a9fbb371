"""Checkpoints: weights as safetensors, training state for ``torch.load(weights_only=True)``.

Each checkpoint is a folder ``checkpoints/step-NNNNNNN/`` written under a temporary name
and renamed into place, so a crash never leaves a half-written checkpoint behind; the
``latest`` file names the newest one and is replaced atomically too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import GantoolError
from ..safe_write import TMP_MARK, write_text_atomic

WEIGHTS = "weights.safetensors"
#: The generators' averaged weights (``--ema``), keyed like ``WEIGHTS``; absent without.
AVERAGE = "ema.safetensors"
STATE = "state.pt"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_DOOMED = ".deleting"


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def save_checkpoint(
    checkpoints: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
    average: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write one checkpoint atomically and point ``latest`` at it (with the generators'
    averaged weights, when the run keeps an average)."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    final = checkpoints / step_dir_name(step)
    tmp = checkpoints / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_files(tmp, step, weights, state, average)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _out_of_space(exc):
            # torch and safetensors say so in their own words (inline_container.cc, ...).
            raise GantoolError(f"no space left on the device while writing checkpoint {final}; "
                               "earlier checkpoints are intact: free some space and --resume") from None
        raise
    if final.is_symlink() or final.is_file():
        final.unlink()  # a link is replaced, never followed into what it points at
    elif final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text_atomic(checkpoints / LATEST, final.name + "\n")
    return final


def _write_files(folder: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
                 average: dict[str, torch.Tensor] | None) -> None:
    for name, tensors in ((WEIGHTS, weights), (AVERAGE, average)):
        if tensors is not None:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
                      str(folder / name), metadata={"step": str(step)})
    torch.save(state, folder / STATE)
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _out_of_space(exc: BaseException) -> bool:
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left" in text or "disk quota exceeded" in text or (
        "inline_container" in text and ("write" in text or "failed" in text))


def list_checkpoints(checkpoints: Path) -> dict[int, Path]:
    """Step -> folder for every complete checkpoint: real folders inside ``checkpoints``
    only (a symlink could lead anywhere)."""
    out = {}
    if checkpoints.is_dir():
        for p in checkpoints.iterdir():
            m = _STEP_DIR.match(p.name)
            if m and not p.is_symlink() and (p / WEIGHTS).is_file() and (p / STATE).is_file():
                out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def prune_checkpoints(checkpoints: Path, keep_last: int, history_every: int) -> None:
    """Keep the newest ``keep_last`` plus every multiple of ``history_every``.

    Each folder is renamed aside before it is deleted, so a kill during deletion never
    leaves a half-deleted checkpoint under a step name; :func:`clean_leftovers` removes
    what such a kill leaves."""
    steps = list(list_checkpoints(checkpoints))
    recent = set(steps[-keep_last:]) if keep_last > 0 else set(steps[-1:])
    for step in steps:
        if step in recent or (history_every > 0 and step % history_every == 0):
            continue
        doomed = checkpoints / f".{step_dir_name(step)}{_DOOMED}"
        os.replace(checkpoints / step_dir_name(step), doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def clean_leftovers(checkpoints: Path) -> None:
    """Remove what an interrupted checkpoint write or prune left: hidden ``.step-*``
    folders and temporary files of :mod:`.safe_write`."""
    if checkpoints.is_dir():
        for p in checkpoints.iterdir():
            if p.is_symlink() or not p.name.startswith("."):
                continue
            if p.name.startswith(".step-") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif TMP_MARK in p.name and p.is_file():
                p.unlink(missing_ok=True)


def find_checkpoint(checkpoints: Path, step: int | None = None) -> Path:
    """The checkpoint of ``step``, or the one ``latest`` names (else the newest).

    Only folders of :func:`list_checkpoints` can be chosen, whatever ``latest`` says."""
    available = list_checkpoints(checkpoints)
    if not available:
        raise GantoolError(f"no checkpoint in {checkpoints}")
    if step is not None:
        if step not in available:
            known = ", ".join(str(s) for s in available)
            raise GantoolError(f"no checkpoint at step {step} in {checkpoints}; steps: {known}")
        return available[step]
    by_name = {p.name: p for p in available.values()}
    latest = checkpoints / LATEST
    if latest.is_file() and not latest.is_symlink():
        named = latest.read_text(errors="replace").strip()
        if named in by_name:
            return by_name[named]
    return available[max(available)]


def load_weights(folder: Path, name: str = WEIGHTS) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(folder / name))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GantoolError(f"checkpoint {folder} is corrupt: {exc}") from None


def load_average(folder: Path) -> dict[str, torch.Tensor] | None:
    """The generators' averaged weights, or None for a run without ``--ema``."""
    return load_weights(folder, AVERAGE) if (folder / AVERAGE).is_file() else None


def load_inference_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights that samples, evaluation and export use: the generators' average
    where the run keeps one, the trained weights elsewhere."""
    return {**load_weights(folder), **(load_average(folder) or {})}


def load_state(folder: Path) -> dict[str, Any]:
    """Training state, loaded without running any code from the file."""
    try:
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise GantoolError(_load_failure(folder, exc)) from None
    problem = state_problem(state)
    if problem:
        raise GantoolError(f"checkpoint {folder / STATE} is damaged: {problem}")
    return state


def _load_failure(folder: Path, exc: Exception) -> str:
    """Why ``state.pt`` did not load, without torch's advice: it suggests
    ``weights_only=False``, which would run whatever code the file carries."""
    text = str(exc).strip()
    refused = "Weights only load failed" in text or "Unsupported global" in text
    # A refused opcode ("Unsupported operand") means bytes that are no pickle at all.
    if refused and "Unsupported operand" not in text:
        return (f"checkpoint {folder} holds pickled Python objects, not only tensors and "
                "numbers; gantool never runs code from a file, so it cannot be loaded")
    first = text.splitlines()[0] if text else type(exc).__name__
    if refused:
        first = "not a PyTorch file"
    return f"checkpoint {folder} is corrupt: {first[:200]}"


def state_problem(state: Any) -> str | None:
    """What is wrong with the structure of a loaded ``state.pt`` (None: nothing).

    Checks what the training loop reads before it reads it, so a crafted or damaged file
    gives one sentence instead of an exception from deep inside torch."""
    if not isinstance(state, dict):
        return f"it holds {type(state).__name__}, not a dict of training state"
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"'step' must be a whole number of at least 0, not {step!r:.40}"
    if not isinstance(state.get("model"), str):
        return "'model' must be the model's name"
    for key in ("optimizers", "schedulers"):
        if not isinstance(state.get(key), dict):
            return f"'{key}' must be a dict, not {type(state.get(key)).__name__}"
    for key, kind in (("scalers", dict), ("extra", dict), ("extra_ranks", list), ("fixed", dict)):
        if key in state and not isinstance(state[key], kind):
            return f"'{key}' must be a {kind.__name__}, not {type(state[key]).__name__}"
    if not all(isinstance(v, torch.Tensor) for v in state.get("fixed", {}).values()):
        return "'fixed' must hold tensors"
    partial = state.get("log_partial", {"counts": {}, "sums": {}})
    counts = partial.get("counts") if isinstance(partial, dict) else None
    sums = partial.get("sums") if isinstance(partial, dict) else None
    if (not isinstance(counts, dict) or not isinstance(sums, dict) or set(counts) != set(sums)
            or not all(type(c) is int and c > 0 for c in counts.values())
            or not all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in sums.values())):
        return "'log_partial' must hold the summed losses since the last log row and their counts"
    return _rng_problem(state.get("rng"))


def _rng_problem(rng: Any) -> str | None:
    size = torch.get_rng_state().numel()
    if not isinstance(rng, list) or not rng:
        return "'rng' must be a list with one random state per process"
    for entry in rng:
        stream = entry.get("torch") if isinstance(entry, dict) else None
        if not (isinstance(stream, torch.Tensor) and stream.dtype == torch.uint8 and stream.numel() == size):
            return f"'rng' entries must hold the CPU generator's state ({size} bytes)"
        try:  # the generator's own check (an all-zero state is not one), on a spare one
            torch.Generator().set_state(stream)
        except RuntimeError:
            return "'rng' holds a state no random generator can take"
    return None


def load_into(module: torch.nn.Module, weights: dict[str, torch.Tensor], where: Path) -> None:
    """Load weights, turning shape or key mismatches into one short, clear error."""
    # Compiled runs of gantool 0.1 saved torch.compile's wrapper names; the weights are the same.
    weights = {k.replace("._orig_mod.", ".").removeprefix("_orig_mod."): v for k, v in weights.items()}
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise GantoolError(
            f"checkpoint {where} does not fit this model (other options or model?): "
            f"{_mismatch(module.state_dict(), weights, exc)}"
        ) from None


def _mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], exc: Exception) -> str:
    """What differs, in one line: key counts with one example each, or the first bad shape."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) such as '{missing[0]}'")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) such as '{unexpected[0]}'")
    for key, tensor in found.items():
        if key in expected and tensor.shape != expected[key].shape:
            parts.append(f"'{key}' has shape {list(tensor.shape)}, the model {list(expected[key].shape)}")
            break
    if parts:
        return "; ".join(parts)
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[1] if len(lines) > 1 else lines[0])[:200]


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GantoolError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GantoolError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise GantoolError(f"{path} is not valid JSON: nested too deeply") from None
    except OSError as exc:
        raise GantoolError(f"cannot read {path}: {exc.strerror or exc}") from None
