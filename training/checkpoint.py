"""Checkpoint folders: checkpoints/epoch_040/ (or step_001000/) holding

  generator.keras, discriminator.keras   full models, loadable alone (export uses the generator;
                                         the discriminator needs `import training.models`)
  training_state.npz                     both optimisers' variables and the dropout RNG states
  state.json                             step, epoch, arch and config, so a folder explains itself

Written into a hidden temp folder and renamed into place, so a folder that exists is complete.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

import training.models  # noqa: F401  registers GlobalBatchDropout, for discriminator.keras
from runtime.errors import GanEdgeError
from training.config import GANConfig

_NAME = re.compile(r"^(epoch|step)_(\d+)$")


def checkpoint_name(cfg: GANConfig, step: int, steps_per_epoch: int) -> str:
    """epoch_040 after 40 whole epochs for epoch-scheduled systems; step_001000 otherwise."""
    if cfg.unit == "epoch" and step % steps_per_epoch == 0:
        return f"epoch_{step // steps_per_epoch:03d}"
    return f"step_{step:06d}"


@dataclass
class Checkpoint:
    path: Path
    step: int
    epoch: float
    kind: str  # "eval": kept for export; "resume": replaced by the next one

    @property
    def name(self) -> str:
        return self.path.name


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints of a run, oldest first (temp folders are ignored)."""
    out = []
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        for p in root.iterdir():
            if _NAME.match(p.name) and (p / "state.json").is_file():
                try:
                    s = json.loads((p / "state.json").read_text())
                    out.append(Checkpoint(p, int(s["step"]), float(s["epoch"]), s.get("kind", "eval")))
                except (ValueError, KeyError) as e:
                    raise GanEdgeError(f"{p / 'state.json'} is corrupt ({e}); delete {p} to resume "
                                       f"from the checkpoint before it") from None
    return sorted(out, key=lambda c: c.step)


def _training_state(gan) -> dict:
    """Variables beyond the weights that a resumed run needs, by stable key."""
    groups = (("d_opt", gan.d_optimizer.variables), ("g_opt", gan.g_optimizer.variables),
              ("d_rng", _rng_variables(gan.discriminator)),
              ("g_rng", _rng_variables(gan.generator)))
    return {f"{prefix}/{i:04d}": v for prefix, variables in groups for i, v in enumerate(variables)}


def _rng_variables(model):
    # Dropout's SeedGenerator state is a model variable that .keras files do not restore.
    return [v for v in model.non_trainable_variables if "seed_generator" in v.path]


def save_checkpoint(gan, run_dir: Path, name: str, state: dict) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.exists():
        raise GanEdgeError(f"{final} already exists and will not be overwritten; remove it or "
                           f"resume from it with --resume")
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{name}-"))
    try:
        gan.generator.save(tmp / "generator.keras")
        gan.discriminator.save(tmp / "discriminator.keras")
        np.savez(tmp / "training_state.npz",
                 **{k: np.asarray(v.numpy()) for k, v in _training_state(gan).items()})
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def restore_checkpoint(gan, ckpt: Path) -> dict:
    """Load weights, optimiser and RNG state into a GAN made by GAN.from_config (whose optimisers
    are built), under any strategy: the saved values do not depend on the replica count."""
    try:
        state = json.loads((ckpt / "state.json").read_text())
        g = keras.saving.load_model(ckpt / "generator.keras", compile=False)
        d = keras.saving.load_model(ckpt / "discriminator.keras", compile=False)
        gan.generator.set_weights(g.get_weights())
        gan.discriminator.set_weights(d.get_weights())
        with np.load(ckpt / "training_state.npz") as f:
            arrays = dict(f)
        variables = _training_state(gan)
        if set(variables) != set(arrays):
            raise ValueError("training_state.npz does not fit this architecture")
        for key, v in variables.items():
            v.assign(arrays[key])
    except Exception as e:  # any failure here means the same thing: this checkpoint is unusable
        raise GanEdgeError(f"checkpoint {ckpt} is corrupt or from another architecture "
                           f"({type(e).__name__}: {str(e)[:120]}); delete it to resume from the "
                           f"one before") from None
    return state
