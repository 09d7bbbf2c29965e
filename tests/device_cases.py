"""Every shipped model through ganrun, in one process, for comparing one machine's outputs with
another's (tests/test_device.py runs it on x86 and on emulated arm64):

    python device_cases.py OUT [--values-only] [FILE...]

Reads the shipped index, so a model shipped later is covered without an edit here, and runs the
exported FILEs (named by their model's name and precision) likewise. For every file of every
model it writes OUT/<model>.<precision>.raw.npy: the generator's values for RAW_N seeded
latents, and OUT/<model>.<precision>.keep-logits.npy: the discriminator's logits of the samples
that --keep chooses from (its picks can differ where logits differ). Through ganrun's own
command it writes OUT/<model>.<precision>.<case>.<ext> (images: grid, --class, --keep, --walk;
points: CSV, scatter, --keep) for the smallest file of each kind of model (points or images,
conditional or not, colour or grey): those are the same Python for every file of a kind, whose
arithmetic the values show. --values-only writes the values and logits alone, for a CPU whose
arithmetic is all that differs from one that ran the cases. Needs the runtime alone (the device
wheel). Under emulation the fp16 files on cortex-a76 (whose fp16 arithmetic QEMU does in
software) take most of the time.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from runtime import shipped
from runtime.core.artifacts import DISCRIMINATOR_FILE
from runtime.cli import main as ganrun
from runtime.discriminator import Discriminator, check_keep
from runtime.generator import Generator

RAW_N = 16
KEEP_N, KEEP = 8, 0.5


def cases(is_1d: bool) -> dict[str, tuple[str, list[str]]]:
    """case -> (file extension, ganrun options besides --model, --precision and --out)."""
    if is_1d:
        return {"csv": ("csv", ["--n", "500"]),
                "scatter": ("png", ["--n", "500"]),
                "keep": ("csv", ["--n", str(KEEP_N), "--keep", str(KEEP)])}
    return {"grid": ("png", ["--n", "25"]),
            "class": ("png", ["--n", "2", "--class", "1,2", "--batch", "16"]),
            "keep": ("png", ["--n", str(KEEP_N), "--keep", str(KEEP)]),
            "walk": ("gif", ["--n", "1", "--walk", "2"])}


def models() -> dict[str, dict[str, Path]]:
    """model name -> {precision: file} of every shipped model."""
    return {name: {precision: shipped.model_file(entry, precision) for precision in entry["files"]}
            for name, entry in shipped.load_index()["models"].items()}


def _smallest_of_each_kind(gens: dict[Path, Generator]) -> set[Path]:
    """Of each kind of model (points or images, conditional or not, channels), its smallest
    file."""
    smallest = {}
    for path, gen in gens.items():
        kind = (gen.info.sample_shape[-1:], gen.info.conditional)
        if kind not in smallest or path.stat().st_size < smallest[kind].stat().st_size:
            smallest[kind] = path
    return set(smallest.values())


def main(out: Path, values_only: bool = False, files: tuple[Path, ...] = ()) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Which machine this ran on, and which runtime it loaded: the caller checks both.
    (out / "where.txt").write_text(f"{platform.machine()}\n{Path(shipped.__file__).parent}\n")
    every = models()
    # Each file opened once, for choosing which run the cases and for running them.
    gens = {path: Generator.from_file(path, "cpu")
            for files_of in every.values() for path in files_of.values()}
    for file in files:
        gen = gens[file] = Generator.from_file(file, "cpu")
        every.setdefault(gen.arch, {})[gen.info.precision] = file
    ranges, with_cases = {}, _smallest_of_each_kind(gens)
    for name, files_of in every.items():
        for precision, path in files_of.items():
            started, cpu = time.perf_counter(), time.process_time()
            stem = f"{name}.{precision}"
            gen = gens[path]
            ranges[stem] = gen.info.output_range
            z = np.random.default_rng(0).standard_normal((RAW_N, gen.info.latent_dim))
            labels = gen.labels_for(RAW_N, 0)  # a conditional model: classes drawn as ganrun draws them
            np.save(out / f"{stem}.raw.npy", gen.run(z.astype(np.float32), labels))
            keeps = (path.parent / DISCRIMINATOR_FILE).is_file()
            if keeps:
                n_tries = check_keep(KEEP, KEEP_N)
                tries_labels = gen.labels_for(n_tries, 0)
                tries = np.concatenate(list(gen.generate(n_tries, 0, labels=tries_labels)))
                np.save(out / f"{stem}.keep-logits.npy",
                        Discriminator.beside(gen).logits(tries, tries_labels))
            model = (["--model", str(path)] if path in files
                     else ["--model", name, "--precision", precision])
            for case, (ext, options) in ({} if values_only or path not in with_cases else
                                         cases(gen.info.sample_shape == (2,))).items():
                if case == "keep" and not keeps or case == "class" and not gen.info.conditional:
                    continue
                ganrun.main([*model, "--seed", "0", "--device", "cpu", "--quiet", *options,
                             "--out", str(out / f"{stem}.{case}.{ext}")], standalone_mode=False)
            print(f"{stem}: {time.perf_counter() - started:.1f} s "
                  f"({time.process_time() - cpu:.1f} s of CPU)", file=sys.stderr)
    # Each file's output range, for comparing its values across machines.
    (out / "ranges.json").write_text(json.dumps(ranges))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]), "--values-only" in args[1:],
         tuple(Path(a) for a in args[1:] if a != "--values-only"))
