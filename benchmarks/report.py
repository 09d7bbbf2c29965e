"""The benchmark report as Markdown and PNG charts, and what every benchmark's report shares:
its machine line, its table heads, and writing it as .json and .md."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


def write_report(out_dir: Path, stem: str, report: dict, text: str) -> Path:
    """out_dir/STEM.json (the figures) and out_dir/STEM.md (`text`, made from them), each
    written whole or not at all; returns the .md."""
    from runtime.core.files import write_text_atomic
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out_dir / f"{stem}.md", text)
    return out_dir / f"{stem}.md"


def machine_text(m: dict) -> str:
    """The machine a report was measured on, from its "machine" figures."""
    return f"{m['cpus']} CPUs, {m['processor']}, {m['platform']}, Python {m['python']}"


def cpu_text(avx512: bool = False) -> str:
    """This machine's CPU in one phrase, for the reports measured on one CPU and kept as that
    phrase (int8 files, knobs); with `avx512`, whether it has AVX-512, which the int8 kernels
    use."""
    import platform

    from runtime.core.cpu import cpu_name, has_avx512
    text = f"{platform.machine()}, {cpu_name()}"
    return text + (f", {'with' if has_avx512() else 'without'} AVX-512" if avx512 else "")


def cpu_kind() -> str:
    """The kind of CPU in a report's file name, for the reports kept one per kind: avx2,
    avx512-amd, avx512-amx (Intel's with AMX), avx512 (another), else the machine's name."""
    import platform

    from runtime.core.cpu import cpu_flags, cpu_name
    flags = cpu_flags()
    if "avx512f" in flags:
        return ("avx512-amx" if "amx_tile" in flags else
                "avx512-amd" if "AMD" in cpu_name() else "avx512")
    return "avx2" if "avx2" in flags else platform.machine()


class OtherWork:
    """The share of the CPUs' time that processes other than the benchmark's own took while it
    measured: the machine's busy time (/proc/stat) less the CPU time of this process and of the
    children it has waited for, over the wall time of all CPUs. A load average cannot say it:
    it counts the benchmark's own processes, and decays over minutes from what ran before."""

    def __init__(self):
        self.start = self.now()

    @staticmethod
    def now() -> tuple[float, float, float]:
        """(wall seconds, the CPUs' busy seconds since boot, the benchmark's own CPU seconds)."""
        import resource
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
        own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                     resource.getrusage(resource.RUSAGE_CHILDREN)))
        busy = (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
        return time.monotonic(), busy, own

    def share(self) -> float:
        (wall0, busy0, own0), (wall1, busy1, own1) = self.start, self.now()
        others = (busy1 - busy0) - (own1 - own0)
        return min(1.0, max(0.0, others / ((wall1 - wall0) * os.cpu_count())))


def other_work_text(share: float, cpus: int) -> str:
    """A report's sentence on how much other work shared the machine (OtherWork.share)."""
    return (f"Other processes took {share:.0%} of the {cpus} CPUs' time while it measured (the "
            f"machine's busy time less the benchmark's own).")


def table_head(*columns: str) -> list[str]:
    """A Markdown table's first two lines."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _fmt(v, digits=3):
    if v is None:
        return "not measured"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [f"# gan-edge benchmarks: {r['host']}, {r['date']}", "",
             f"Machine: {machine_text(m)}. Mode: {'quick' if r['quick'] else 'full'}. "
             f"Generator: `{r['arch']}`, {r['model_source']}.", "",
             f"{other_work_text(m['other_work_share'], m['cpus'])} The contenders alternate, "
             f"so the ratios hold better than the rates under other work.", "",
             f"Made by `{r['command']}`.", "",
             "## Goals", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    for g in r["goals"]:
        met = "n/a" if g["met"] is None else ("yes" if g["met"] else "**no**")
        lines.append(f"| {g['what']} | {g['target']} | {_fmt(g['measured'])} | {met} |")
    lines += ["", "## Training: seconds per step (medians of alternating rounds)", "",
              "| arch | gan-edge step | article loop | speed-up |", "|---|---|---|---|"]
    for t in r["training"]:
        lines.append(f"| {t['arch']} | {t['project_s_per_step'] * 1e3:.1f} ms | "
                     f"{t['article_s_per_step'] * 1e3:.1f} ms | {t['speedup']:.1f}x |")
    g = r["generation"]
    batches = list(next(iter(g["images_per_s"].values())))
    lines += ["", "## Generation in-process: images per second (share of fp32 peak)", "",
              f"FLOPs per image: {g['flops_per_image'] / 1e6:.1f} M. Peak: "
              f"{g['peak_gflops']:.1f} GFLOP/s ({g['peak_note']}). {g['note']}", "",
              *table_head("contender", *(f"batch {b}" for b in batches))]
    for name, per in g["images_per_s"].items():
        cells = [f"{per[b]:,.0f} ({g['fraction_of_peak'][name][b]:.0%})" for b in batches]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    c = r["cold_start"]
    lines += ["", "## Cold start, whole process, 25 images to a PNG", "",
              "| command | wall median (min-max) | peak RSS median (min-max) |", "|---|---|---|"]
    for name in (n for n in ("ganrun", "keras_script", "ganrun_default", "import_floor") if n in c):
        x = c[name]
        lines.append(f"| {name} | {x['wall_s_median']:.2f} s ({x['wall_s_min']:.2f}-"
                     f"{x['wall_s_max']:.2f}) | {x['peak_rss_mb_median']:.0f} MB "
                     f"({x['peak_rss_mb_min']:.0f}-{x['peak_rss_mb_max']:.0f}) |")
    if "ganrun_default_phases_s" in c:  # reports before it lack it
        phases = c["ganrun_default_phases_s"]
        after_floor = sum(list(phases.values())[1:])
        above = c["ganrun_default"]["wall_s_median"] - c["import_floor"]["wall_s_median"]
        lines += ["", "Where `ganrun --n 25` (shipped default) spends its time: each step timed "
                  "inside one process (median of each step over the rounds).", "",
                  *table_head("step", "median")]
        lines += [f"| {step} | {s * 1e3:.1f} ms |" for step, s in phases.items()]
        lines += [f"| the steps after the import floor's, summed | {after_floor * 1e3:.1f} ms |",
                  f"| whole process above the import floor (difference of the medians above) | "
                  f"{above * 1e3:.1f} ms |", "",
                  "What the second of the last two lines has beyond the first is outside the "
                  "timed steps: parsing the options, ganrun's checks, and a longer exit."]
    lines += ["", "## Files: size and quality per precision", ""]
    files = r["files"]
    keys = [k for k in ("classifier_score", "frechet_distance", "classes_covered",
                        "kl_to_uniform", "energy_distance") if k in next(iter(files.values()))]
    lines += ["| file | size | " + " | ".join(keys) + " | samples |",
              "|---|---|" + "---|" * (len(keys) + 1)]
    for name, f in files.items():
        lines.append(f"| {name} | {f['bytes'] / 1e6:.2f} MB | "
                     + " | ".join(_fmt(f[k]) for k in keys) + f" | {f['n_samples']} |")
    lines += ["", *[f"![{Path(p).stem}]({Path(p).name})" for p in r.get("charts", [])], ""]
    return "\n".join(lines)


def charts(r: dict, out_dir: Path, stem: str) -> list[str]:
    from training.plots import plt, save_figure  # pyplot with the Agg backend set
    paths = []
    speed = r["generation"]["images_per_s"]
    batches = list(next(iter(speed.values())))
    fig, axes = plt.subplots(1, len(batches), figsize=(4 * len(batches), 3.5))
    for ax, b in zip(axes, batches):
        names = list(speed)
        ax.barh(names, [speed[n][b] for n in names], color="tab:blue")
        ax.set(title=f"batch {b}", xlabel="images / s")
    fig.suptitle(f"generation speed, {r['arch']}")
    paths.append(str(save_figure(fig, out_dir / f"{stem}-generation.png", dpi=90)))

    c = r["cold_start"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 2.8))
    names = ["ganrun", "keras_script"]
    a1.barh(names, [c[n]["wall_s_median"] for n in names], color="tab:green")
    a1.set(xlabel="wall time, s (median)")
    a2.barh(names, [c[n]["peak_rss_mb_median"] for n in names], color="tab:orange")
    a2.set(xlabel="peak RSS, MB (median)")
    fig.suptitle("cold start: 25 images to a PNG")
    paths.append(str(save_figure(fig, out_dir / f"{stem}-cold-start.png", dpi=90)))
    return paths
