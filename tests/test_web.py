"""The web page in a real browser: Debian's Chromium, headless, driven by playwright-core
(tests/browser, installed by `npm ci` from its lock file), against a page built by
export/web.py and served on 127.0.0.1 by a server that the tests start and stop."""
import functools
import http.server
import json
import math
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import CALIBRATION, ROOT, assert_one_line_error, cli, missing, run_cli
from foreign import LATENT, color_generator

BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PAD = 2  # the page's gap between tiles, in canvas pixels (gan-edge.js, draw)
# The share of a grid's pixels that may lie one grey level from Python's, for fp32 within 1e-5
# (a value that near a rounding boundary; about 1 in 10,000 here).
ROUNDED_APART = 0.02


@pytest.fixture(scope="session")
def browser_tools():
    """node with playwright-core installed from the lock file, and Chromium; where they cannot
    be had, a skip that says what is missing (a failure under CI, which installs them)."""
    if not Path(CHROMIUM).is_file():
        missing(f"no Chromium at {CHROMIUM} (sudo make test-tools installs it; or set CHROMIUM)")
    if shutil.which("npm") is None or shutil.which("node") is None:
        missing("node and npm are not installed (sudo make test-tools installs them)")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        result = subprocess.run(["npm", "ci", "--silent"], cwd=BROWSER_DIR, capture_output=True,
                                text=True, timeout=600)
        if result.returncode != 0:
            missing(f"npm ci in tests/browser failed: {result.stderr.strip()[-300:]}")


@pytest.fixture(scope="module")
def export_dir(exported_runs):
    return exported_runs["mlp-mnist"] / "export"


def _site(export: Path, out: Path) -> Path:
    from export.web import build_site, sibling_files
    build_site(sibling_files(export / "generator.int8.onnx", ("int8", "fp16", "fp32")), out,
               "tiny")
    return out


@pytest.fixture(scope="module")
def site(export_dir, tmp_path_factory):
    return _site(export_dir, tmp_path_factory.mktemp("site") / "site")


@pytest.fixture(scope="module")
def dcgan_site(exported_runs, tmp_path_factory):
    """The DCGAN's page: its int8 file holds the rewritten graph (sub-pixel convolutions,
    Col2Im) and QDQ nodes, which onnxruntime-web must run as Python's onnxruntime does."""
    return _site(exported_runs["dcgan-mnist"] / "export", tmp_path_factory.mktemp("dcgan") / "site")


@pytest.fixture(scope="module")
def conditional_export(exported_runs):
    """A tiny conditional generator's export: cgan-mnist, inputs z and label, ten digits."""
    return exported_runs["cgan-mnist"] / "export"


@pytest.fixture(scope="module")
def conditional_site(conditional_export, tmp_path_factory):
    from export.web import build_site, sibling_files
    out = tmp_path_factory.mktemp("site") / "conditional"
    build_site(sibling_files(conditional_export / "generator.int8.onnx", ("int8", "fp32")), out,
               "tiny-conditional")
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL; every server is shut down after the test."""
    servers = []

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def open_page(url: str, latents: np.ndarray | None = None, tmp_path: Path | None = None,
              labels: np.ndarray | None = None, picks: list[str] | None = None,
              canvas: bool = False, walk_pick: str | None = None) -> dict:
    """page.mjs's report on the page at `url`; with `latents` (and `labels`), the samples the
    page's test hook gives for them; with `picks`, what the page drew for each picker choice;
    with `canvas`, what it drew on clicking generate, in colour; with `walk_pick`, the walk's
    last frame once that choice is picked before the walk."""
    args = ["node", "page.mjs", url]
    request = {"canvas": True} if canvas else {}
    if latents is not None:
        request.update(latents=latents.ravel().tolist(), n=len(latents))
    if labels is not None:
        request["labels"] = labels.tolist()
    if picks:
        request["picks"] = picks
    if walk_pick is not None:
        request["walkPick"] = walk_pick
    if request:
        path = tmp_path / "request.json"
        path.write_text(json.dumps(request))
        args.append(str(path))
    result = subprocess.run(args, cwd=BROWSER_DIR, capture_output=True, text=True, timeout=480,
                            env={**os.environ, "CHROMIUM": CHROMIUM})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def python_samples(path: Path, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    from runtime.generator import Generator
    return Generator.from_file(path).run(z, labels)


def canvas_tiles(drawn: dict, h: int, w: int) -> np.ndarray:
    """The n tiles of the page's canvas (page.mjs's grey levels), row by row as the page lays
    them out, as an [n, h, w] array."""
    n, width = drawn["n"], drawn["width"]
    grey = np.asarray(drawn["grey"], np.int32).reshape(drawn["height"], width)
    cols = math.ceil(math.sqrt(n))
    return np.stack([grey[PAD + (i // cols) * (h + PAD):][:h, PAD + (i % cols) * (w + PAD):][:, :w]
                     for i in range(n)])


def assert_samples_match_python(report: dict, path: Path, z: np.ndarray, precision: str,
                                backend: str = "wasm", labels: np.ndarray | None = None) -> None:
    """The page's test-hook samples for latents `z` (and `labels`) against Python's
    onnxruntime on the same file: fp32 within 1e-5 on WebAssembly, 1e-4 on WebGPU (another
    device's float sums); int8 within the export's own bounds for int8 (as fractions of the
    output range)."""
    from export.validate import MAX_ABS, MEAN_ABS, TAIL
    from runtime.generator import Generator
    info = Generator.from_file(path).info
    got = np.asarray(report["samples"], np.float32).reshape(len(z), *info.sample_shape)
    diff = np.abs(got - python_samples(path, z, labels))
    lo, hi = info.output_range
    if precision == "fp32":
        assert diff.max() <= (1e-5 if backend == "wasm" else 1e-4), diff.max()
    else:
        assert np.quantile(diff, TAIL["int8"]) <= MAX_ABS["int8"] * (hi - lo)
        assert diff.mean() <= MEAN_ABS["int8"] * (hi - lo)


def grey_levels(samples: np.ndarray, output_range: tuple[float, float]) -> np.ndarray:
    """Samples [n, h, w, 1] as the page's grey levels (its output range onto 0..255)."""
    lo, hi = output_range
    return np.clip(np.round((samples[..., 0] - lo) * 255 / (hi - lo)), 0, 255).astype(np.int32)


@pytest.mark.browser
@pytest.mark.network
def test_page_loads_without_console_errors_and_draws_the_grid(browser_tools, site, serve):
    report = open_page(serve(site) + "index.html")
    assert report["consoleErrors"] == [], report
    assert "error" not in report, report
    # Headless Chromium's WebGPU adapter (SwiftShader) has no shader-f16: WebAssembly, int8.
    assert (report["backend"], report["precision"]) == ("WebAssembly", "int8")
    assert report["tiles"] == 25 and report["arch"] == "mlp-mnist"
    assert report["walkMoves"]
    assert report["classes"] is None  # an unconditional model: no class picker


@pytest.mark.browser
@pytest.mark.network
@pytest.mark.parametrize("arch, backend, precision", [
    ("mlp-mnist", "wasm", "fp32"), ("mlp-mnist", "wasm", "int8"), ("mlp-mnist", "webgpu", "fp32"),
    ("dcgan-mnist", "wasm", "int8"), ("dcgan-mnist", "wasm", "fp32")])
def test_browser_samples_equal_python_onnxruntime(browser_tools, request, serve, tmp_path, arch,
                                                  backend, precision):
    """Fixed latents through the page's test hook against Python's onnxruntime on the same
    file (assert_samples_match_python says how near)."""
    from runtime.generator import Generator
    site = request.getfixturevalue("dcgan_site" if arch == "dcgan-mnist" else "site")
    info = Generator.from_file(site / f"generator.{precision}.onnx").info
    assert info.arch == arch
    z = np.random.default_rng(11).standard_normal((7, info.latent_dim)).astype(np.float32)
    report = open_page(serve(site) + f"index.html?backend={backend}&precision={precision}",
                       z, tmp_path)
    if backend == "webgpu" and "error" in report and "webgpu" in report["error"].lower():
        missing(f"this Chromium offers no WebGPU adapter: {report['error']}")
    assert report["consoleErrors"] == [] and "error" not in report, report
    assert (report["backend"], report["precision"]) == (
        {"wasm": "WebAssembly", "webgpu": "WebGPU"}[backend], precision)  # as the URL asks
    assert_samples_match_python(report, site / f"generator.{precision}.onnx", z, precision,
                                backend)


@pytest.mark.browser
@pytest.mark.network
def test_page_runs_a_file_with_large_tensors_in_calls_of_its_batch(browser_tools, serve,
                                                                    tmp_path):
    """A file whose largest tensor per sample (gan.largest_tensor_bytes) allows 10 samples a
    call: model.json gives the batch that ganrun's rule gives, the page draws its 25 tiles in
    calls of 10, 10 and 5, and its samples for 25 latents are Python onnxruntime's."""
    from export.web import build_site, sibling_files
    from runtime.core.batch import CALL_TENSOR_BYTES
    from runtime.generator import Generator
    path = color_generator(tmp_path / "large.onnx", 8, 8, 3,
                           gan_largest_tensor_bytes=str(CALL_TENSOR_BYTES // 10))
    model = build_site(sibling_files(path, ("fp32",)), tmp_path / "site", "large")
    assert model["files"]["fp32"]["batch"] == Generator.from_file(path).info.default_batch == 10
    z = np.random.default_rng(5).standard_normal((25, LATENT)).astype(np.float32)
    report = open_page(serve(tmp_path / "site") + "index.html", z, tmp_path, canvas=True)
    assert report["consoleErrors"] == [] and "error" not in report, report
    assert report["canvas"]["n"] == 25 and report["canvas"]["calls"] == [10, 10, 5]
    assert_samples_match_python(report, path, z, "fp32")


@pytest.mark.browser
@pytest.mark.network
def test_conditional_page_draws_the_picked_class(browser_tools, conditional_site, serve,
                                                tmp_path):
    """The picker lists "any class" and each class name; picking a class and clicking
    generate feeds the generator that class's label for every tile, and draws, tile for tile,
    Python onnxruntime's samples of the same file for the latents and labels fed; "any class"
    feeds labels of several classes; a class picked before the walk is fed along it, and its
    frames are Python's samples too; the status line names the class. The labels are those
    the generator got, as the page's test hook reads them back from its input tensors. A tiny
    run's label moves a pixel by a grey level or two, on about a fifth of them: the drawn grid
    is held to Python's on all but a few pixels a rounding apart, a share that Python's own
    samples for other labels exceed many times over."""
    from runtime.generator import Generator
    model = json.loads((conditional_site / "model.json").read_text())
    assert model["metadata"]["gan.conditional"] == "1"
    names = json.loads(model["metadata"]["gan.class_names"])
    assert names == [str(d) for d in range(10)] and model["metadata"]["gan.n_classes"] == "10"
    path = conditional_site / "generator.fp32.onnx"
    info = Generator.from_file(path).info
    report = open_page(serve(conditional_site) + "index.html?backend=wasm&precision=fp32",
                       tmp_path=tmp_path, picks=["any class", "7", "2"], walk_pick="3")
    assert report["consoleErrors"] == [] and "error" not in report, report
    assert report["classes"] == ["any class", *names]
    assert report["walkMoves"]
    drawn = {pick: d for pick, d in zip(["any", 7, 2], report["picks"])}
    for pick, d in [*drawn.items(), (3, report["walk"])]:
        assert d["error"] is None and d["n"] == 25, d["error"]
        labels = np.asarray(d["labels"], np.int64)
        if pick == "any":  # drawn uniformly: 25 tiles of 10 classes are not all of one class
            assert set(labels) <= set(range(10)) and len(set(labels)) > 1, labels
        else:
            assert (labels == pick).all(), labels
            assert f"class {pick}" in d["status"], d["status"]
        z = np.asarray(d["latents"], np.float32).reshape(25, info.latent_dim)
        want = grey_levels(python_samples(path, z, labels), info.output_range)
        got = canvas_tiles(d, *info.sample_shape[:2])
        # fp32 within 1e-5: at most one rounding apart, on few pixels
        assert np.abs(got - want).max() <= 1 and (got != want).mean() <= ROUNDED_APART
        # the tiles of other labels (each tile another class) lie outside that bound
        wrong = grey_levels(python_samples(path, z, (labels + 1) % 10), info.output_range)
        assert (got != wrong).mean() > 5 * ROUNDED_APART, (got != wrong).mean()
    # the same seed's latents whatever the class, and the class changes the tiles; the walk's
    # frame has latents of its own
    assert drawn[7]["latents"] == drawn[2]["latents"] == drawn["any"]["latents"]
    assert report["walk"]["latents"] != drawn[7]["latents"]
    assert drawn[7]["grey"] != drawn[2]["grey"]


@pytest.mark.browser
@pytest.mark.network
def test_conditional_int8_page_feeds_labels_to_its_generator(browser_tools, conditional_site,
                                                            serve, tmp_path):
    """The default choice (int8 on WebAssembly) runs the label input: latents and labels
    through the test hook give Python onnxruntime's samples of the same file within the export's
    int8 bounds, and far nearer to them than to Python's samples for other labels. (A tiny run's
    labels move its int8 samples by about 0.0015 on average, too little for the export's bounds
    to tell labels apart; both onnxruntimes compute the same int8 graph, here within 1e-8.)"""
    from runtime.generator import Generator
    path = conditional_site / "generator.int8.onnx"
    info = Generator.from_file(path).info
    z = np.random.default_rng(5).standard_normal((10, info.latent_dim)).astype(np.float32)
    labels = np.arange(10, dtype=np.int64)
    report = open_page(serve(conditional_site) + "index.html", z, tmp_path, labels=labels)
    assert report["consoleErrors"] == [] and "error" not in report, report
    assert (report["backend"], report["precision"]) == ("WebAssembly", "int8")
    assert_samples_match_python(report, path, z, "int8", labels=labels)
    got = np.asarray(report["samples"], np.float32).reshape(len(z), *info.sample_shape)
    right = np.abs(got - python_samples(path, z, labels)).mean()
    for other in (np.zeros(10, np.int64), (labels + 1) % 10):  # one label for all; each another
        wrong = np.abs(got - python_samples(path, z, other)).mean()
        assert right * 10 < wrong, (right, wrong)


@pytest.mark.browser
@pytest.mark.network
def test_malformed_class_metadata_shows_a_readable_error(browser_tools, conditional_site, serve,
                                                         tmp_path):
    page = tmp_path / "page"
    shutil.copytree(conditional_site, page)
    model = json.loads((page / "model.json").read_text())
    model["metadata"]["gan.class_names"] = json.dumps(["only one"])
    (page / "model.json").write_text(json.dumps(model))
    report = open_page(serve(page) + "index.html")
    assert report.get("errorShown") and "class metadata" in report["error"], report


def _swap_model(site_dir: Path, tmp_path: Path, replacement: Path, fix_hash: bool) -> Path:
    """A copy of the page whose int8 file is `replacement` (with model.json's hash updated to
    match, or left as it was)."""
    from runtime.core.files import sha256_file
    copy = tmp_path / "page"
    shutil.copytree(site_dir, copy)
    shutil.copy(replacement, copy / "generator.int8.onnx")
    if fix_hash:
        model = json.loads((copy / "model.json").read_text())
        model["files"]["int8"]["sha256"] = sha256_file(replacement)
        (copy / "model.json").write_text(json.dumps(model))
    return copy


@pytest.mark.browser
@pytest.mark.network
def test_a_model_that_is_not_a_generator_shows_a_readable_error(browser_tools, site, export_dir,
                                                                serve, tmp_path):
    page = _swap_model(site, tmp_path, export_dir / "discriminator.int8.onnx", fix_hash=True)
    report = open_page(serve(page) + "index.html")
    assert report.get("errorShown"), report
    assert "is not a gan-edge generator" in report["error"], report


@pytest.mark.browser
@pytest.mark.network
def test_a_file_that_is_not_the_one_described_is_refused(browser_tools, site, export_dir, serve,
                                                         tmp_path):
    page = _swap_model(site, tmp_path, export_dir / "generator.fp32.onnx", fix_hash=False)
    report = open_page(serve(page) + "index.html")
    assert report.get("errorShown") and "SHA-256 differs" in report["error"], report


def test_building_a_page_refuses_bad_input(export_dir, exported_runs, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert_one_line_error(run_cli("-m", "export.web", "--model",
                                  str(export_dir / "generator.int8.onnx"), "--out", str(foreign)),
                          "holds no gan-edge page")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert_one_line_error(run_cli("-m", "export.web", "--precision", "int4", "--out",
                                  str(tmp_path / "a")), "unknown precision int4")
    one_d = exported_runs["gan-1d"] / "export"
    assert_one_line_error(run_cli("-m", "export.web", "--model", str(one_d / "generator.fp32.onnx"),
                                  "--out", str(tmp_path / "b")), "gan-1d models are not supported")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_building_without_npm_says_so_in_one_line(export_dir, tmp_path):
    """No npm on PATH and nothing cached: one line naming npm, no folder written."""
    import sys
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin"), "GAN_EDGE_CACHE": str(tmp_path / "c")}
    result = subprocess.run([sys.executable, "-m", "export.web", "--model",
                             str(export_dir / "generator.int8.onnx"), "--out", str(tmp_path / "s")],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert_one_line_error(result, "needs npm")
    assert not (tmp_path / "s").exists()


def test_onnxruntime_web_that_is_not_the_pinned_one_is_refused(export_dir, tmp_path, monkeypatch):
    """A registry (or a proxy) that hands out another onnxruntime-web tarball than the pinned
    one: one line, no page, nothing cached. The tarball comes from an `npm` on PATH that packs
    a tampered copy, as such a registry would serve it."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "npm").write_text("#!/bin/sh\nmkdir -p package/dist && echo 'alert(1)' > "
                              "package/dist/ort.webgpu.min.js && "
                              "tar czf onnxruntime-web-1.30.0.tgz package && rm -r package\n")
    (fake / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("GAN_EDGE_CACHE", str(tmp_path / "cache"))
    result = cli("export.web", "--model", str(export_dir / "generator.int8.onnx"), "--out",
                 str(tmp_path / "site"))
    assert_one_line_error(result, "does not match its pinned integrity hash", "refusing")
    assert not (tmp_path / "site").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


@pytest.mark.network
def test_default_page_fits_its_size_budget(tmp_path):
    """The page for the shipped default model: at most 15 MB (the budget docs/web.md states)."""
    if shutil.which("npm") is None:
        missing("npm is not installed: it fetches onnxruntime-web (sudo make test-tools installs it)")
    result = run_cli("-m", "export.web", "--out", str(tmp_path / "default"))
    assert result.returncode == 0, result.stderr
    size = sum(p.stat().st_size for p in (tmp_path / "default").rglob("*") if p.is_file())
    assert size <= 15_000_000, size
    assert onnx.load(str(tmp_path / "default" / "generator.int8.onnx")).metadata_props


@pytest.mark.network
def test_ganexport_web_writes_the_page_beside_the_export(tiny_runs, tmp_path):
    if shutil.which("npm") is None:
        missing("npm is not installed: it fetches onnxruntime-web (sudo make test-tools installs it)")
    result = cli("export.cli", "--run", str(tiny_runs["mlp-mnist"]), "--precision",
                     "int8,fp16", "--quality-samples", "200", "--calibration-samples",
                 str(CALIBRATION), "--out", str(tmp_path / "export"),
                     "--web", str(tmp_path / "site"))
    assert result.returncode == 0, result.stderr
    model = json.loads((tmp_path / "site" / "model.json").read_text())
    assert set(model["files"]) == {"int8", "fp16"} and model["metadata"]["gan.arch"] == "mlp-mnist"
    for precision, entry in model["files"].items():
        assert (tmp_path / "site" / entry["file"]).read_bytes() == \
            (tmp_path / "export" / f"generator.{precision}.onnx").read_bytes()
    assert (tmp_path / "site" / "index.html").is_file()
