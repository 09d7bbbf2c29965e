"""A static web page that generates with an exported generator in the browser (onnxruntime-web).

    python -m export.web --out site/                       # the shipped default model
    python -m export.web --model runs/X/export/generator.int8.onnx --out site/
    ganexport --run runs/X --best --web site/              # export, then the page
    python -m http.server -d site 8000                     # any static file server

The folder holds index.html and gan-edge.js (ours, from export/web/), model.json (the
generator's gan.* metadata, with a conditional model's class names for the page's class picker,
and each file's size and SHA-256, which the page checks, and its batch: the samples the page
runs in one call, by ganrun's rule, runtime/core/batch.py), the generator files (int8 for
WebAssembly, fp16 for WebGPU) and onnxruntime-web's files, copied from the npm package at a
pinned version (fetched with `npm pack`, checked against the registry's integrity hash,
cached). Its WebAssembly binary is stored gzipped (6.6 MB instead of 27) and inflated by the
page with the browser's DecompressionStream. No CDN, no network: the page works from a local
file server. Building needs npm; nothing else in gan-edge does.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import click

from runtime.core.artifacts import generator_file
from runtime.core.command import run_cli
from runtime.core.errors import GanEdgeError
from runtime.core.files import sha256_file, write_text_atomic
from runtime.core.precision import parse_precisions
from runtime.core.samples import POINT

ORT_WEB = "onnxruntime-web@1.30.0"
ORT_WEB_INTEGRITY = ("sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRM"
                     "Ds1SigqR4CXAfKYQ==")  # the registry's, for the tarball `npm pack` fetches
# ort.webgpu.min.js runs both the WebGPU and the WebAssembly providers on one binary.
ORT_FILES = ("ort.webgpu.min.js", "ort-wasm-simd-threaded.asyncify.mjs")
ORT_WASM = "ort-wasm-simd-threaded.asyncify.wasm"  # written gzipped, as ORT_WASM + ".gz"
PAGE_FILES = ("index.html", "gan-edge.js")
PAGE_DIR = Path(__file__).parent / "web"
DEFAULT_PRECISIONS = ("int8", "fp16")  # WebAssembly's and WebGPU's; fp32 only when asked


def ort_web_dir() -> Path:
    """The onnxruntime-web package's dist/ folder in our cache, fetched with npm if missing."""
    from training.data import cache_dir
    target = cache_dir() / "npm" / ORT_WEB.replace("@", "-") / "dist"
    if all((target / f).is_file() for f in (*ORT_FILES, ORT_WASM)):
        return target
    if shutil.which("npm") is None:
        raise GanEdgeError(f"building a web page needs npm, to fetch {ORT_WEB}; install Node.js "
                           f"and npm (Debian: apt-get install npm)")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["npm", "pack", ORT_WEB, "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=600)
            tgz = next(Path(tmp).glob("onnxruntime-web-*.tgz"))
        except (subprocess.SubprocessError, StopIteration) as e:
            raise GanEdgeError(f"`npm pack {ORT_WEB}` failed ({type(e).__name__}); check access "
                               f"to the npm registry") from None
        digest = base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if f"sha512-{digest}" != ORT_WEB_INTEGRITY:
            raise GanEdgeError(f"the {ORT_WEB} tarball does not match its pinned integrity hash; "
                               f"refusing to use it")
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        # Staged beside the cache folder and renamed in, so the cache never holds half a copy.
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        for name in (*ORT_FILES, ORT_WASM):
            shutil.copy2(Path(tmp) / "package" / "dist" / name, staged / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    return target


def sibling_files(model: Path, precisions) -> dict[str, Path]:
    """The files of one export for each precision: `model` itself and, beside it, the
    generator.<precision>.onnx files of the same export (same source checkpoint)."""
    from runtime.generator import Generator
    first = Generator.from_file(model)
    if first.info.kind == POINT:
        raise GanEdgeError("the web page draws image grids; gan-1d models are not supported")
    files = {first.info.precision: model}
    for precision in precisions:
        other = model.parent / generator_file(precision)
        if precision in files or not other.is_file():
            continue
        meta = Generator.from_file(other).info.metadata
        if meta.get("gan.source_sha256") == first.info.metadata.get("gan.source_sha256"):
            files[precision] = other
    chosen = {p: f for p, f in files.items() if p in precisions}
    if not chosen:
        raise GanEdgeError(f"{model} is {first.info.precision}, and no "
                           f"{'/'.join(precisions)} file of the same export is beside it")
    return chosen


def check_site_dir(out: Path) -> None:
    """A page is written only into a new or empty folder, or over an earlier page."""
    if out.exists() and not out.is_dir():
        raise GanEdgeError(f"{out} is a file; pass a folder for the page")
    if out.is_dir() and any(out.iterdir()) and not (out / "model.json").is_file():
        raise GanEdgeError(f"{out} is not empty and holds no gan-edge page; pass an empty or new "
                           f"folder")


def build_site(files: dict[str, Path], out: Path, name: str) -> dict:
    """Write the page for generator `files` ({precision: path}) into `out`, replacing what an
    earlier build put there; return model.json's content plus the folder's size."""
    from runtime.generator import Generator
    check_site_dir(out)
    ort_dir = ort_web_dir()
    out.mkdir(parents=True, exist_ok=True)
    infos = {precision: Generator.from_file(path).info for precision, path in files.items()}
    meta = next(iter(infos.values())).metadata
    model = {"name": name, "metadata": {k: v for k, v in meta.items() if k.startswith("gan.")},
             "ort": ORT_WEB, "files": {}}
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.tmp-") as tmp:
        stage = Path(tmp)
        (stage / "ort").mkdir()
        for page in PAGE_FILES:
            shutil.copy2(PAGE_DIR / page, stage / page)
        for f in ORT_FILES:
            shutil.copy2(ort_dir / f, stage / "ort" / f)
        with open(ort_dir / ORT_WASM, "rb") as src, \
                gzip.GzipFile(stage / "ort" / (ORT_WASM + ".gz"), "wb", 9, mtime=0) as dst:
            shutil.copyfileobj(src, dst)
        for precision, path in files.items():
            target = generator_file(precision)
            shutil.copy2(path, stage / target)
            model["files"][precision] = {
                "file": target, "bytes": path.stat().st_size, "sha256": sha256_file(path),
                "batch": infos[precision].default_batch}
        write_text_atomic(stage / "model.json", json.dumps(model, indent=2) + "\n")
        # Swap in whole: the old page's files go only once the new ones are complete.
        for old in list(out.iterdir()):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        for new in stage.iterdir():
            os.replace(new, out / new.name)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {**model, "folder_bytes": size}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", help="A shipped model's name or an exported generator file "
                              "[default: the shipped default].")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the page into (new, empty, or an earlier page).")
@click.option("--precision", default=",".join(DEFAULT_PRECISIONS), show_default=True,
              help="Files to include: int8 (WebAssembly), fp16 (WebGPU), fp32.")
def main(model, out_dir, precision):
    """Build a static web page that generates samples in the browser with onnxruntime-web."""
    from runtime import shipped
    precisions = parse_precisions(precision)
    if model is None or shipped.is_shipped_name(model):
        entry = shipped.model_entry(model)
        name = model or shipped.load_index()["default"]
        files = {p: shipped.MODELS_DIR / f for p, f in entry["files"].items() if p in precisions}
        if not files:
            raise GanEdgeError(f"shipped model {name} has no {'/'.join(precisions)} file; it has "
                               f"{', '.join(entry['files'])}")
    else:
        path = Path(model)
        files, name = sibling_files(path, precisions), path.stem
    report = build_site(files, Path(out_dir), name)
    click.echo(f"{Path(out_dir) / 'index.html'}: {name}, {', '.join(report['files'])}; "
               f"{report['folder_bytes'] / 1e6:.1f} MB", err=True)
    click.echo(f"serve it with: python -m http.server -d {out_dir} 8000", err=True)


if __name__ == "__main__":
    run_cli(main)
