"""Colour and any size at run time, with generators that gan-edge did not train (tests/foreign.py):
ganrun's grids, --out-dir samples and --walk GIFs, the Python API and the web page, each read
back and held to the generator's own samples."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_line_error, cli
from foreign import LATENT, color_generator
from test_web import browser_tools, open_page, serve  # noqa: F401 (the page tests' fixtures)

PAD = 2  # the gap between tiles, in grid pixels (ganrun's and the page's)
# (height, width, channels, output range): RGB at the keras-io faces' size and at 256 x 256,
# grayscale not square
SHAPES = {"64x64x3": (64, 64, 3, (0.0, 1.0)), "256x256x3": (256, 256, 3, (-1.0, 1.0)),
          "40x24x1": (40, 24, 1, (0.0, 1.0))}


def ganrun(*args, cwd=None):
    return cli("runtime.cli", *args, cwd=cwd or ROOT)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """foreign(name) -> the path of a generator of SHAPES[name], built once per module."""
    folder, made = tmp_path_factory.mktemp("foreign"), {}

    def make(name: str):
        if name not in made:
            h, w, c, output_range = SHAPES[name]
            made[name] = color_generator(folder / f"{name}.onnx", h, w, c,
                                         output_range=output_range)
        return made[name]
    return make


def levels(samples: np.ndarray, output_range) -> np.ndarray:
    """Samples [n, h, w, c] as 8-bit levels [n, h, w, c] (the declared range onto 0..255)."""
    lo, hi = output_range
    x = (samples.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def expected(path, z: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The generator's own samples for latents z, as levels [n, h, w, c], and its sample shape."""
    from runtime.generator import Generator
    gen = Generator.from_file(path)
    return levels(gen.run(z), gen.info.output_range), gen.info.sample_shape


def seeded_latents(n: int, seed: int) -> np.ndarray:
    """The latents ganrun draws for --n n --seed seed (one stream, whatever the batch)."""
    return np.random.default_rng(seed).standard_normal((n, LATENT)).astype(np.float32)


def read_pixels(path, mode: str) -> np.ndarray:
    """An image file's pixels as [H, W, C] uint8, after checking its mode."""
    with Image.open(path) as img:
        assert img.mode == mode, (path, img.mode)
        pixels = np.asarray(img)
    return pixels if pixels.ndim == 3 else pixels[..., None]


def tiles_of(image: np.ndarray, n: int, cols: int, h: int, w: int):
    """The n tiles of a grid image [H, W, C] laid out `cols` to a row, and the pixels outside
    them (its gutters and empty cells)."""
    outside = np.ones(image.shape[:2], bool)
    tiles = []
    for i in range(n):
        top, left = PAD + (i // cols) * (h + PAD), PAD + (i % cols) * (w + PAD)
        tiles.append(image[top:top + h, left:left + w])
        outside[top:top + h, left:left + w] = False
    return np.stack(tiles), image[outside]


@pytest.mark.parametrize("name", list(SHAPES))
def test_grid_holds_the_generators_samples_in_colour_or_gray(foreign, name, tmp_path):
    """5 samples in 3 columns: an RGB (or L) PNG of 3 x 2 tiles and 2-pixel black gutters,
    enlarged by ganrun's viewing scale, whose tiles are the generator's samples for the seed's
    latents, level for level."""
    h, w, c, _ = SHAPES[name]
    out = tmp_path / "grid.png"
    result = ganrun("--model", str(foreign(name)), "--n", "5", "--cols", "3", "--seed", "3",
                    "--out", str(out))
    assert result.returncode == 0, result.stderr
    width, height = 3 * (w + PAD) + PAD, 2 * (h + PAD) + PAD
    scale = max(1, min(4, 512 // width))
    image = read_pixels(out, "RGB" if c == 3 else "L")
    assert image.shape == (height * scale, width * scale, c)
    assert (image == image[::scale, ::scale].repeat(scale, 0).repeat(scale, 1)).all()
    want, shape = expected(foreign(name), seeded_latents(5, 3))
    assert shape == (h, w, c)
    got, outside = tiles_of(image[::scale, ::scale], 5, 3, h, w)
    assert np.array_equal(got, want)
    assert not outside.any()  # gutters and the empty sixth cell stay black


@pytest.mark.parametrize("name", ["256x256x3", "40x24x1"])
def test_out_dir_writes_each_sample_at_its_own_size(foreign, name, tmp_path):
    h, w, c, _ = SHAPES[name]
    result = ganrun("--model", str(foreign(name)), "--n", "3", "--seed", "8", "--batch", "2",
                    "--out", str(tmp_path / "grid.png"), "--out-dir", str(tmp_path / "each"))
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "each").glob("sample_*.png"))
    assert len(files) == 3
    want, _ = expected(foreign(name), seeded_latents(3, 8))
    for path, tile in zip(files, want):
        pixels = read_pixels(path, "RGB" if c == 3 else "L")
        assert pixels.shape == (h, w, c) and np.array_equal(pixels, tile), path


def test_colour_walk_is_a_gif_of_the_walks_samples_in_one_palette(foreign, tmp_path):
    """Every frame of a colour walk, read back as RGB, is the generator's grid for that frame's
    latents, each pixel a colour of the GIF's one palette and at most a little farther from
    the generator's colour than the nearest colour of that palette (the palette's own error,
    plus Pillow's approximate nearest-colour search)."""
    from runtime.walk import FRAMES_PER_STEP, walk_latents
    out = tmp_path / "walk.gif"
    result = ganrun("--model", str(foreign("64x64x3")), "--n", "4", "--walk", "2", "--seed", "5",
                    "--out", str(out))
    assert result.returncode == 0, result.stderr
    from runtime.generator import Generator
    gen = Generator.from_file(foreign("64x64x3"))
    latents = walk_latents(4, gen.info.spec, 2, 5)
    width = 2 * (64 + PAD) + PAD
    scale = max(1, min(4, 512 // width))
    with Image.open(out) as img:
        assert img.format == "GIF" and img.n_frames == 2 * FRAMES_PER_STEP == len(latents)
        assert img.size == (width * scale, width * scale)
        palette = np.asarray(img.getpalette(), np.int32).reshape(-1, 3)
        errors = []
        for f, z in enumerate(latents):
            img.seek(f)
            frame = np.asarray(img.convert("RGB"), np.int32)[::scale, ::scale]
            got, outside = tiles_of(frame, 4, 2, 64, 64)
            assert not outside.any()
            got = got.reshape(-1, 3)
            want = levels(gen.run(z), gen.info.output_range).astype(np.int32).reshape(-1, 3)
            colours = np.unique(got, axis=0)
            assert (colours[:, None] == palette[None]).all(-1).any(-1).all(), f"frame {f}"
            nearest = np.sqrt(((want[:, None] - palette[None]) ** 2).sum(-1)).min(1)
            distance = np.sqrt(((got - want) ** 2).sum(-1))
            assert (distance <= nearest + 12).all(), (f, (distance - nearest).max())
            errors.append(np.abs(got - want).mean())
    assert max(errors) <= 16, errors


def test_gray_walk_of_a_non_square_file_is_exact(foreign, tmp_path):
    from runtime.walk import walk_latents
    out = tmp_path / "walk.gif"
    result = ganrun("--model", str(foreign("40x24x1")), "--n", "3", "--walk", "2",
                    "--out", str(out))
    assert result.returncode == 0, result.stderr
    width, height = 2 * (24 + PAD) + PAD, 2 * (40 + PAD) + PAD
    scale = max(1, min(4, 512 // width))
    from runtime.generator import Generator
    gen = Generator.from_file(foreign("40x24x1"))
    with Image.open(out) as img:
        assert img.size == (width * scale, height * scale)
        for f, z in enumerate(walk_latents(3, gen.info.spec, 2, 0)):
            img.seek(f)
            frame = np.asarray(img.convert("L"))[::scale, ::scale, None]
            got, outside = tiles_of(frame, 3, 2, 40, 24)
            assert np.array_equal(got, levels(gen.run(z), gen.info.output_range))
            assert not outside.any()


def test_python_api_draws_colour_as_ganrun_does(foreign, tmp_path):
    """The README's Python block on a colour file: to_uint8 keeps the three channels, grid tiles
    them, save_png writes an RGB PNG (colour type 2) byte for byte ganrun's grid."""
    from runtime.core.images import grid, save_png, to_uint8
    from runtime.generator import Generator
    path = foreign("64x64x3")
    gen = Generator.from_file(path)
    samples = np.concatenate(list(gen.generate(6, seed=2, batch=4)))
    pixels = to_uint8(samples, gen.info.output_range)
    assert pixels.shape == (6, 64, 64, 3) and pixels.dtype == np.uint8
    assert np.array_equal(pixels, levels(samples, gen.info.output_range))
    image = grid(pixels, cols=3)
    assert image.shape == (2 * 66 + PAD, 3 * 66 + PAD, 3)
    mine = save_png(image, tmp_path / "mine.png", scale=2)
    result = ganrun("--model", str(path), "--n", "6", "--cols", "3", "--seed", "2",
                    "--out", str(tmp_path / "ganrun.png"))
    assert result.returncode == 0, result.stderr
    assert mine.read_bytes() == (tmp_path / "ganrun.png").read_bytes()
    assert mine.read_bytes()[25] == 2  # IHDR's colour type: truecolour
    assert np.array_equal(read_pixels(mine, "RGB"), image.repeat(2, 0).repeat(2, 1))


def test_python_api_keeps_gray_as_mode_l_and_inverts_only_gray(tmp_path):
    """Gray samples lose their channel axis (mode L, colour type 0); invert (dark digits on
    white) inverts gray tiles; colour tiles keep their colours, on the same white ground."""
    from runtime.core.images import grid, png_bytes, save_png, to_uint8
    rng = np.random.default_rng(1)
    gray = to_uint8(rng.uniform(-1, 1, (3, 5, 4, 1)), (-1.0, 1.0))
    colour = to_uint8(rng.uniform(0, 1, (3, 5, 4, 3)), (0.0, 1.0))
    assert gray.shape == (3, 5, 4) and colour.shape == (3, 5, 4, 3)
    save_png(grid(gray, cols=3), tmp_path / "gray.png")
    assert (tmp_path / "gray.png").read_bytes()[25] == 0
    assert np.array_equal(read_pixels(tmp_path / "gray.png", "L")[..., 0], grid(gray, cols=3))
    for pixels, inverted in ((gray, 255 - gray), (colour, colour)):
        image = grid(pixels, cols=3, invert=True)
        got, outside = tiles_of(image if image.ndim == 3 else image[..., None], 3, 3, 5, 4)
        assert np.array_equal(got.reshape(inverted.shape), inverted)
        assert (outside == 255).all()
    with pytest.raises(ValueError):
        png_bytes(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError):
        to_uint8(np.zeros((1, 2, 2, 4)), (0.0, 1.0))


@pytest.mark.parametrize("name, args, fragment", [
    # 44 x 44 tiles of 258 pixels: a third of a gray grid's pixel budget is the colour one's
    ("256x256x3", ["--n", "2000"], "in all"),
    ("256x256x3", ["--n", "300", "--cols", "300"], "per side"),
    ("64x64x3", ["--n", "400", "--walk", "100", "--out", "w.gif"], "latents (--walk)"),
])
def test_grids_and_walks_too_large_for_their_tiles_are_refused(foreign, name, args, fragment,
                                                               tmp_path):
    result = ganrun("--model", str(foreign(name)), *args, cwd=tmp_path)
    assert_one_line_error(result, fragment, "--n")
    assert list(tmp_path.iterdir()) == []


def test_the_same_grids_fit_with_smaller_tiles(foreign, tmp_path):
    """The bounds above come from the tile size: the gray file's --n 2000 grid is drawn."""
    result = ganrun("--model", str(foreign("40x24x1")), "--n", "2000", "--out",
                    str(tmp_path / "g.png"))
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "g.png") as img:
        cols = math.ceil(math.sqrt(2000))
        assert img.size == (cols * (24 + PAD) + PAD, cols * (40 + PAD) + PAD)


def test_images_with_other_channel_counts_are_refused(tmp_path):
    four = color_generator(tmp_path / "rgba.onnx", 8, 8, 4)
    result = ganrun("--model", str(four), "--out", str(tmp_path / "g.png"))
    assert_one_line_error(result, "[H, W, 1] (grayscale) or [H, W, 3] (RGB)")
    assert not (tmp_path / "g.png").exists()


@pytest.mark.browser
@pytest.mark.network
@pytest.mark.usefixtures("browser_tools")
def test_page_draws_a_colour_generator_in_colour(request, tmp_path):
    """The page for a 48 x 136 RGB file (fp32, WebAssembly): its canvas holds, tile for tile,
    Python onnxruntime's samples for the page's own latents in all three channels (fp32 on
    WebAssembly within 1e-5: at most one level apart), the tiles are not gray, and the canvas,
    wider than the page, shrinks to fit it without distortion."""
    from export.web import build_site, sibling_files
    path = color_generator(tmp_path / "wide.onnx", 48, 136, 3)
    site = tmp_path / "site"
    build_site(sibling_files(path, ("fp32",)), site, "wide")
    model = json.loads((site / "model.json").read_text())
    assert model["metadata"]["gan.sample_shape"] == "48,136,3"
    url = request.getfixturevalue("serve")(site) + "index.html"
    report = open_page(url, tmp_path=tmp_path, canvas=True)
    assert report["consoleErrors"] == [] and "error" not in report, report
    assert report["precision"] == "fp32" and report["tiles"] == 25
    drawn = report["canvas"]
    assert drawn["error"] is None and drawn["n"] == 25
    cols = math.ceil(math.sqrt(25))
    assert (drawn["width"], drawn["height"]) == (cols * (136 + PAD) + PAD, cols * (48 + PAD) + PAD)
    assert drawn["styleWidth"] < drawn["width"]
    assert math.isclose(drawn["styleHeight"] / drawn["styleWidth"],
                        drawn["height"] / drawn["width"], rel_tol=0.01)
    image = np.asarray(drawn["rgb"], np.int32).reshape(drawn["height"], drawn["width"], 3)
    got, outside = tiles_of(image, 25, cols, 48, 136)
    z = np.asarray(drawn["latents"], np.float32).reshape(25, LATENT)
    want = expected(path, z)[0].astype(np.int32)
    assert np.abs(got - want).max() <= 1 and not outside.any()
    assert np.abs(got[..., 0] - got[..., 1]).mean() > 10  # colour, not three equal channels


def test_a_walk_draws_its_keys_from_the_files_prior():
    """Normal keys are what numpy's seeded normal draws, joined along great circles; uniform
    keys are U(-1, 1) and every frame between them stays in that box."""
    from runtime.core.spec import NORMAL, UNIFORM, Spec
    from runtime.walk import FRAMES_PER_STEP, walk_latents
    normal = Spec("g", 6, (8, 8, 3), (0.0, 1.0), latent_prior=NORMAL)
    keys = np.random.default_rng(3).standard_normal((2, 5, 6)).astype(np.float32)
    walk = walk_latents(5, normal, 2, 3)
    np.testing.assert_array_equal(walk[0], keys[0])
    np.testing.assert_array_equal(walk[FRAMES_PER_STEP], keys[1])
    uniform = walk_latents(5, normal._replace(latent_prior=UNIFORM), 2, 3)
    assert uniform.dtype == np.float32 and np.abs(uniform).max() <= 1.0
    assert np.abs(uniform[0]).max() > 0.5 and not np.array_equal(uniform[0], walk[0])


def test_a_file_with_large_tensors_is_drawn_in_calls_that_keep_them_within_bounds(tmp_path):
    """Without a batch size, a file whose largest tensor per sample (gan.largest_tensor_bytes)
    would pass CALL_TENSOR_BYTES in 256 samples runs fewer a call; a file that states none runs
    256. The samples are the seed's either way."""
    from runtime.core.batch import CALL_TENSOR_BYTES
    from runtime.generator import Generator
    plain = Generator.from_file(color_generator(tmp_path / "plain.onnx", 8, 8, 3))
    large = Generator.from_file(color_generator(
        tmp_path / "large.onnx", 8, 8, 3, gan_largest_tensor_bytes=str(CALL_TENSOR_BYTES // 10)))
    assert [len(b) for b in large.generate(25, seed=1)] == [10, 10, 5]
    assert [len(b) for b in plain.generate(300, seed=1)] == [256, 44]
    assert np.array_equal(np.concatenate(list(large.generate(25, seed=1))),
                          np.concatenate(list(plain.generate(25, seed=1))))


def test_ganrun_without_batch_draws_in_the_files_default_batch(tmp_path, monkeypatch):
    from runtime import cli as ganrun_cli
    from runtime.core.batch import CALL_TENSOR_BYTES
    from runtime.generator import Generator
    large = color_generator(tmp_path / "large.onnx", 8, 8, 3,
                            gan_largest_tensor_bytes=str(CALL_TENSOR_BYTES // 10))
    calls, run = [], Generator.run

    def counted(self, z, labels=None):
        calls.append(len(z))
        return run(self, z, labels)
    monkeypatch.setattr(Generator, "run", counted)
    ganrun_cli.main.main(["--model", str(large), "--n", "25", "--out", str(tmp_path / "g.png"),
                          "--quiet"], standalone_mode=False)
    assert calls == [2, 10, 10, 5] and (tmp_path / "g.png").is_file()  # 2: the file's probe
    calls.clear()
    ganrun_cli.main.main(["--model", str(large), "--n", "25", "--batch", "20", "--out",
                          str(tmp_path / "g.png"), "--quiet"], standalone_mode=False)
    assert calls == [2, 20, 5]
