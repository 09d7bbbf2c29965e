"""How a run computes its generator and train step: XLA or not, and which of the generator's
slow layers are reformulated (training/reformulation.py). Both change speed and float rounding,
never the model. Decided once per run, here, recorded in its config.json, and used alike by the
train step, the evaluations during training and `python -m training.evaluate` afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime.core.cpu import has_avx512
from runtime.core.errors import GanEdgeError

# The DCGAN generator's layers that training/reformulation.py can compute another way: its last
# layer, a Conv2D to one channel, and its stride-2 Conv2DTranspose upsampling layers.
LAST_CONV, UPSAMPLING = "last_conv", "upsampling"
REFORMULATIONS = (LAST_CONV, UPSAMPLING)


@dataclass(frozen=True)
class Acceleration:
    xla: bool                           # the train step (and the sampler) compiled with XLA
    reformulated: tuple[str, ...] = ()  # which of REFORMULATIONS the generator's calls use

    @classmethod
    def decide(cls, cfg, xla: bool | None = None, replicas: int = 1) -> "Acceleration":
        """The fastest measured choice for `cfg` on this CPU (benchmarks/results/train-step-*.md,
        `python -m benchmarks.train_step`), unless `xla` (--xla/--no-xla) says otherwise.

        XLA makes the MLP steps faster on every CPU measured; the DCGAN's it makes slower on
        AVX-512 CPUs and faster on AVX2. The conditional DCGANs follow the DCGAN: their step took
        2.5x as long with XLA on an Intel Xeon with AVX-512, timed by hand; `python -m
        benchmarks.train_step` now measures their row too, not yet in a committed report. Never
        across replicas: XLA refuses one function over variables on several devices.

        Reformulated (the MLPs and the conditional DCGANs have no such layers): both kinds on
        AVX2, with XLA and without, and on AVX-512 with XLA; on AVX-512 without XLA only the last
        conv, since oneDNN's own kernels for the transposed convs are fast there."""
        if xla is None:
            xla = cfg.family == "mlp" or not has_avx512()
        xla = xla and replicas == 1
        if cfg.family != "dcgan":
            return cls(xla)
        return cls(xla, REFORMULATIONS if xla or not has_avx512() else (LAST_CONV,))

    def to_dict(self) -> dict:
        return {"xla": self.xla, "reformulated": list(self.reformulated)}

    @classmethod
    def of_run(cls, run) -> "Acceleration":
        """The choice recorded in the config.json of `run` (a RunDir). A run that records none
        (the committed records in docs/records) gets what training would choose on this
        machine on one device, which may differ from the choice of the CPU it trained on;
        the two evaluate alike within float rounding (tests/test_run.py)."""
        recorded = run.read_config().get("acceleration")
        if recorded is None:
            return cls.decide(run.gan_config())
        if not (isinstance(recorded, dict) and isinstance(recorded.get("xla"), bool)
                and isinstance(recorded.get("reformulated"), list)
                and set(recorded["reformulated"]) <= set(REFORMULATIONS)):
            raise GanEdgeError(f"{run.config_file} is corrupt: its acceleration {recorded!r} is "
                               f"not {{\"xla\": true or false, \"reformulated\": a list of "
                               f"{', '.join(REFORMULATIONS)}}}; fix it or remove the key")
        return cls(recorded["xla"], tuple(recorded["reformulated"]))
