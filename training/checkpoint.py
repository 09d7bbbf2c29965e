"""Checkpoint folders: checkpoints/epoch_040/ (or step_001000/) holding

  generator.keras, discriminator.keras   full models, loadable alone (export uses the generator;
                                         the discriminator needs `import training.models`)
  training_state.npz                     both optimisers' variables and the dropout RNG states
  state.json                             step, epoch, kind (eval or resume), arch, replicas

Written into a hidden temp folder and renamed into place, so a folder that exists is complete.
Where checkpoints live, their names and how they are found: training/rundir.py.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

import training.models  # noqa: F401  registers GlobalBatchDropout, for discriminator.keras
from runtime.errors import GanEdgeError


def _training_state(gan) -> dict:
    """Variables beyond the weights that a resumed run needs, by stable key."""
    groups = (("d_opt", gan.d_optimizer.variables), ("g_opt", gan.g_optimizer.variables),
              ("d_rng", _rng_variables(gan.discriminator)),
              ("g_rng", _rng_variables(gan.generator)))
    return {f"{prefix}/{i:04d}": v for prefix, variables in groups for i, v in enumerate(variables)}


def _rng_variables(model):
    # Dropout's SeedGenerator state is a model variable that .keras files do not restore.
    return [v for v in model.non_trainable_variables if "seed_generator" in v.path]


def save_checkpoint(gan, final: Path, state: dict) -> Path:
    """Write the checkpoint folder `final` (RunDir names it), whole or not at all."""
    root, name = final.parent, final.name
    root.mkdir(parents=True, exist_ok=True)
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
    """Load weights, optimiser and RNG state into a GAN made by build_gan (whose optimisers are
    built), under any strategy: the saved values do not depend on the replica count."""
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
