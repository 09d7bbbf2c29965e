"""An emulated Raspberry Pi on an x86-64 Linux machine: Debian bookworm's arm64 Python 3.11
under user-mode QEMU, with no root-level change and no binfmt_misc, and the device wheel
installed for it from PyPI's aarch64 wheels.

    python tests/arm64.py --cpu cortex-a76 [--wheel dist/gan_edge_runtime-*.whl] -- GANRUN-ARGS

runs `ganrun GANRUN-ARGS` there, in the current folder (cortex-a72 is a Pi 4's CPU, cortex-a76
a Pi 5's). What it needs comes from the registries once and is kept under $GAN_EDGE_ARM64_CACHE
(default ~/.cache/gan-edge/arm64, about 130 MB): the interpreter and its libraries, fetched
with `apt-get download` through a private apt state (the system's sources are not touched) and
unpacked with `dpkg-deb -x`; the static `qemu-aarch64` of bookworm-backports' qemu-user (10.0:
bookworm's own 7.2 hands the program the host's /proc/cpuinfo, and `import onnxruntime`
crashes); and the aarch64 wheels of numpy, onnxruntime, Pillow and click, at the releases this
machine's environment has, so both sides run the same code. Needs apt-get and dpkg-deb.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

DEBIAN = "http://deb.debian.org/debian"
PYPI = "https://pypi.org/simple/"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# The interpreter, its standard library's shared libraries, and libstdc++ for onnxruntime,
# with what they depend on; minus what a package manager needs and Python never loads.
ROOTS = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6")
NOT_NEEDED = {"dpkg", "tar", "install-info", "mailcap", "mime-support"}
# docs/device.md's `pip download` for a Pi, from any machine: bookworm's Python 3.11 and its
# glibc 2.36, which loads manylinux_2_28 wheels and older ones.
FOR_THE_PI = ("--platform", "manylinux_2_28_aarch64", "--platform", "manylinux_2_17_aarch64",
              "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              "--only-binary=:all:")
PINNED = ("numpy", "onnxruntime", "pillow", "click")  # at this environment's releases
CPUS = ("cortex-a72", "cortex-a76")  # Raspberry Pi 4 and 5


class Unreachable(Exception):
    """A registry could not be reached while something was missing from the cache."""


def cache_dir() -> Path:
    if os.environ.get("GAN_EDGE_ARM64_CACHE"):
        return Path(os.environ["GAN_EDGE_ARM64_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gan-edge" / "arm64"


@dataclass(frozen=True)
class Emulator:
    qemu: Path
    sysroot: Path
    cache: Path

    def command(self, cpu: str, *args) -> list[str]:
        """The command line that runs the sysroot's python3.11 with `args` on `cpu`."""
        return [str(self.qemu), "-cpu", cpu, "-L", str(self.sysroot),
                str(self.sysroot / "usr" / "bin" / "python3.11"), *map(str, args)]

    def run(self, cpu: str, site: Path | None, *args, **kw) -> subprocess.CompletedProcess:
        """python3.11 `args` on `cpu`, with the packages installed into `site` importable."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "PIP_"))}  # nothing of this machine's Python
        env.update(PYTHONNOUSERSITE="1", **({"PYTHONPATH": str(site)} if site else {}))
        return subprocess.run(self.command(cpu, *args), env=env, **kw)

    def install(self, wheel: Path, site: Path, log=print) -> None:
        """`wheel` with its [cpu] extra, installed into `site` for the emulated Pi from aarch64
        wheels that docs/device.md's `pip download` fetches once into the cache, at this
        environment's releases of PINNED so that both sides run the same code. This machine's
        pip installs them (--target, for FOR_THE_PI): pip itself, emulated, took about a minute
        of CPU time for it."""
        wheels = self.cache / "wheels"
        pins = [f"{name}=={version(name)}" for name in PINNED]
        pip = [sys.executable, "-m", "pip"]
        offline = [*pip, "--isolated", "install", "-q", "--no-index", "--find-links", str(wheels),
                   "--target", str(site), *FOR_THE_PI, f"{wheel}[cpu]", *pins]
        if subprocess.run(offline, capture_output=True).returncode == 0:
            return
        log(f"arm64: fetching the aarch64 wheels of {', '.join(pins)}")
        _fetch([*pip, "download", "-q", "-d", str(wheels), *FOR_THE_PI, f"{wheel}[cpu]", *pins],
               PYPI, "pip download (aarch64)")
        (wheels / wheel.name).unlink(missing_ok=True)  # pip download copies it too
        done = subprocess.run(offline, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"installing {wheel.name} for arm64 failed:\n{done.stderr[-3000:]}")


def _reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=20).close()
    except urllib.error.HTTPError:
        pass  # it answered, if only with an error status
    except OSError:
        return False
    return True


def _fetch(command: list[str], url: str, what: str, cwd: Path | None = None) -> str:
    """Run a command that downloads from `url`'s registry; Unreachable where that registry
    cannot be reached, an error with its output where it failed otherwise."""
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if result.returncode == 0:
        return result.stdout
    if not _reachable(url):
        raise Unreachable(f"{what}: {url} cannot be reached")
    raise RuntimeError(f"{what} failed:\n{result.stdout[-1500:]}{result.stderr[-1500:]}")


class _PrivateApt:
    """apt-get and apt-cache on a state of their own under `folder`: bookworm's arm64 packages
    and bookworm-backports' amd64 ones, beside (not in) the system's sources."""

    def __init__(self, folder: Path):
        self.folder = folder
        for sub in ("lists/partial", "cache/archives/partial"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "status").touch()
        (folder / "sources.list").write_text(
            f"deb [arch=arm64 signed-by={KEYRING}] {DEBIAN} bookworm main\n"
            f"deb [arch=amd64 signed-by={KEYRING}] {DEBIAN} bookworm-backports main\n")
        self.options = [
            f"-oDir::State={folder}", f"-oDir::State::Lists={folder}/lists",
            f"-oDir::State::status={folder}/status", f"-oDir::Cache={folder}/cache",
            f"-oDir::Etc::SourceList={folder}/sources.list", "-oDir::Etc::SourceParts=/dev/null",
            "-oAPT::Architectures::=arm64", "-oAPT::Architectures::=amd64",
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root" if os.geteuid() == 0 else ""]

    def __call__(self, tool: str, *args, cwd: Path | None = None) -> str:
        return _fetch([tool, *filter(None, self.options), *args], DEBIAN, f"{tool} {args[0]}",
                      cwd)


def _closure(apt: _PrivateApt) -> list[str]:
    """The arm64 packages (and architecture-independent ones) that ROOTS need."""
    listing = apt("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                  "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                  *(f"{p}:arm64" for p in ROOTS))
    names = {line.strip() for line in listing.splitlines()
             if line and not line.startswith(" ") and "<" not in line}  # <virtual> ones
    return sorted(n for n in names if n.split(":")[0] not in NOT_NEEDED)


def emulator(cache: Path | None = None, log=print) -> Emulator:
    """The emulator and sysroot, fetched into the cache where it lacks them."""
    cache = cache or cache_dir()
    found = Emulator(cache / "qemu-aarch64", cache / "sysroot", cache)
    if found.qemu.is_file() and (found.sysroot / "usr" / "bin" / "python3.11").is_file():
        return found
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"the arm64 emulation needs {tool} (Debian's apt and dpkg)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        work = Path(work)
        apt = _PrivateApt(work / "apt")
        log("arm64: reading Debian bookworm's package lists")
        apt("apt-get", "-q", "update")
        debs = work / "debs"
        debs.mkdir()
        packages = _closure(apt)
        log(f"arm64: fetching {len(packages)} packages of Python 3.11 and qemu-user")
        apt("apt-get", "-q", "download", *packages, "qemu-user:amd64", cwd=debs)
        sysroot = work / "sysroot"
        for deb in sorted(debs.glob("*_arm64.deb")) + sorted(debs.glob("*_all.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(sysroot)], check=True)
        qemu_deb = next(debs.glob("qemu-user_*_amd64.deb"))
        subprocess.run(f'dpkg-deb --fsys-tarfile "{qemu_deb}" | tar -x -C "{work}" '
                       f'./usr/bin/qemu-aarch64', shell=True, check=True)
        if found.sysroot.exists():
            shutil.rmtree(found.sysroot)
        sysroot.rename(found.sysroot)
        (work / "usr" / "bin" / "qemu-aarch64").rename(found.qemu)  # last: it marks completion
    return found


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [--cpu CPU] [--wheel FILE] -- GANRUN-ARGS")
    parser.add_argument("--cpu", choices=CPUS, default=CPUS[0])
    parser.add_argument("--wheel", type=Path,
                        help="the device wheel [default: the one in dist/, from make wheel]")
    parser.add_argument("ganrun_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    wheel = args.wheel or next((root / "dist").glob("gan_edge_runtime-*.whl"), None)
    if wheel is None or not wheel.is_file():
        sys.exit("error: no device wheel; run `make wheel` first, or pass --wheel FILE")
    try:
        emu = emulator()
        with tempfile.TemporaryDirectory() as site:
            emu.install(wheel, Path(site))
            extra = args.ganrun_args[1:] if args.ganrun_args[:1] == ["--"] else args.ganrun_args
            sys.exit(emu.run(args.cpu, Path(site), Path(site) / "bin" / "ganrun",
                             *extra).returncode)
    except (Unreachable, RuntimeError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
