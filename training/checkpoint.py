"""Checkpoint folders: checkpoints/epoch_040/ (or step_001000/) holding

  generator.keras, discriminator.keras   full models, loadable alone (export uses the generator;
                                         the discriminator needs `import training.models`)
  generator_ema.keras                    the averaged generator (runs with --ema > 0)
  training_state.npz                     both optimisers' variables, the dropout RNG states and
                                         the averaged weights
  state.json                             step, epoch, kind (eval or resume), arch, replicas

Written into a hidden temp folder and renamed into place, so a folder that exists is complete.
The file and folder names: runtime/core/artifacts.py; where checkpoints live and how they are
found: training/rundir.py.
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
from runtime.core.artifacts import (CHECKPOINT_STATE_FILE, KERAS_DISCRIMINATOR_FILE,
                                     KERAS_GENERATOR_FILES, TRAINING_STATE_FILE)
from runtime.core.errors import GanEdgeError


def _training_state(gan) -> dict:
    """Variables beyond the weights that a resumed run needs, by stable key."""
    groups = (("d_opt", gan.d_optimizer.variables), ("g_opt", gan.g_optimizer.variables),
              ("d_rng", _rng_variables(gan.discriminator)),
              ("g_rng", _rng_variables(gan.generator)), ("g_ema", gan.ema_weights))
    return {f"{prefix}/{i:04d}": v for prefix, variables in groups for i, v in enumerate(variables)}


def _rng_variables(model):
    # Dropout's SeedGenerator state is a model variable that .keras files do not restore.
    return [v for v in model.non_trainable_variables if "seed_generator" in v.path]


def save_checkpoint(gan, final: Path, state: dict, averaged=None) -> Path:
    """Write the checkpoint folder `final` (RunDir names it), whole or not at all; `averaged`:
    the generator with the averaged weights (GAN.averaged_generator), if the run keeps one."""
    root, name = final.parent, final.name
    root.mkdir(parents=True, exist_ok=True)
    if final.exists():
        raise GanEdgeError(f"{final} already exists and will not be overwritten; remove it or "
                           f"resume from it with --resume")
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{name}-"))
    try:
        gan.generator.save(tmp / KERAS_GENERATOR_FILES["raw"])
        gan.discriminator.save(tmp / KERAS_DISCRIMINATOR_FILE)
        if averaged is not None:
            averaged.save(tmp / KERAS_GENERATOR_FILES["ema"])
        np.savez(tmp / TRAINING_STATE_FILE,
                 **{k: np.asarray(v.numpy()) for k, v in _training_state(gan).items()})
        (tmp / CHECKPOINT_STATE_FILE).write_text(json.dumps(state, indent=2))
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def restore_checkpoint(gan, ckpt: Path) -> dict:
    """Load weights, optimiser and RNG state into a GAN made by build_gan (whose optimisers are
    built), under any strategy: the saved values do not depend on the replica count. A
    checkpoint without averaged weights (written with --ema 0, or by an older version) starts
    the average from the generator's weights; the returned state then says "ema_started"."""
    try:
        state = json.loads((ckpt / CHECKPOINT_STATE_FILE).read_text())
        g = keras.saving.load_model(ckpt / KERAS_GENERATOR_FILES["raw"], compile=False)
        d = keras.saving.load_model(ckpt / KERAS_DISCRIMINATOR_FILE, compile=False)
        gan.generator.set_weights(g.get_weights())
        gan.discriminator.set_weights(d.get_weights())
        with np.load(ckpt / TRAINING_STATE_FILE) as f:
            arrays = dict(f)
        variables = _training_state(gan)
        missing = set(variables) - set(arrays)
        ema_started = bool(missing) and all(k.startswith("g_ema/") for k in missing)
        if ema_started:
            arrays.update({f"g_ema/{i:04d}": w.numpy()
                           for i, w in enumerate(gan.generator.trainable_variables)})
        # Averaged weights saved by a run that had them and resumed with --ema 0 are dropped.
        arrays = {k: v for k, v in arrays.items() if k in variables or not k.startswith("g_ema/")}
        if set(variables) != set(arrays):
            raise ValueError(f"{TRAINING_STATE_FILE} does not fit this architecture")
        for key, v in variables.items():
            v.assign(arrays[key])
        state["ema_started"] = ema_started
    except Exception as e:  # any failure here means the same thing: this checkpoint is unusable
        raise GanEdgeError(f"checkpoint {ckpt} is corrupt or from another architecture "
                           f"({type(e).__name__}: {str(e)[:120]}); delete it to resume from the "
                           f"one before") from None
    return state
