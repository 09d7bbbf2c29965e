// gan-edge in the browser: draw samples of an exported generator with onnxruntime-web.
// model.json (written by `python -m export.web`) describes the model as ganrun reads its
// gan.* metadata; each file is checked against its SHA-256 before it is used. WebGPU with the
// fp16 file where the browser offers WebGPU and shader-f16, else WebAssembly with int8.
// A conditional generator (gan.conditional) gets a class picker and its second input, label.
'use strict';

const WASM_GZ = 'ort/ort-wasm-simd-threaded.asyncify.wasm.gz';
const FRAMES_PER_STEP = 12;   // as ganrun --walk
const FRAME_MS = 80;
const WALK_KEYS = 4;

const $ = (id) => document.getElementById(id);

function fail(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
  $('generate').disabled = $('walk').disabled = $('class').disabled = true;
  return message;
}

async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch ${url} (HTTP ${response.status})`);
  return response;
}

// The model's description, as ganrun's ModelInfo reads it from gan.* metadata.
function describe(model) {
  const meta = (model && model.metadata) || {};
  const need = ['gan.arch', 'gan.latent_dim', 'gan.sample_shape', 'gan.output_range'];
  const missing = need.filter((k) => !(k in meta));
  if (missing.length) throw new Error(`model.json is not a gan-edge generator's (lacks ${missing.join(', ')})`);
  const shape = meta['gan.sample_shape'].split(',').map(Number);
  const range = meta['gan.output_range'].split(',').map(Number);
  const latent = Number(meta['gan.latent_dim']);
  // Images are [H, W, C], C = 1 (grayscale) or 3 (RGB), as ganrun draws them.
  if (shape.length !== 3 || ![1, 3].includes(shape[2]) || !(latent > 0) || range.length !== 2 ||
      !(range[1] > range[0])) {
    throw new Error('model.json describes no image generator this page can draw');
  }
  // A file of another source than a run has no epoch: it names its source file instead.
  const origin = 'gan.epoch' in meta ? `epoch ${meta['gan.epoch']}` : meta['gan.source_file'] || '';
  return { arch: meta['gan.arch'], dataset: meta['gan.dataset'] || 'unknown data set',
           origin, weights: meta['gan.weights'], latent, shape, range,
           prior: meta['gan.latent_prior'] || 'normal', classNames: classNames(meta) };
}

// A conditional generator's class names, in label order (as ganrun's ModelInfo reads
// gan.class_names); [] for an unconditional one.
function classNames(meta) {
  if (meta['gan.conditional'] !== '1') return [];
  let names = null;
  try { names = JSON.parse(meta['gan.class_names']); } catch (e) { /* refused below */ }
  if (!Array.isArray(names) || !names.length || !names.every((n) => typeof n === 'string') ||
      names.length !== Number(meta['gan.n_classes'])) {
    throw new Error('model.json has malformed class metadata (gan.class_names, gan.n_classes); ' +
                    'rebuild the page');
  }
  return names;
}

async function chooseBackend(files) {
  if (files.fp16 && navigator.gpu) {
    try {
      const adapter = await navigator.gpu.requestAdapter();
      if (adapter && adapter.features.has('shader-f16')) return { ep: 'webgpu', precision: 'fp16' };
    } catch (e) { /* no usable adapter: WebAssembly below */ }
  }
  return { ep: 'wasm', precision: ['int8', 'fp32', 'fp16'].find((p) => files[p]) };
}

// Seeded uniforms in (0, 1) (mulberry32); `salt` keeps the latents' and the labels' streams
// apart, so one seed draws the same latents with or without labels (as ganrun does).
function uniforms(seed, salt) {
  let a = (seed >>> 0) ^ salt;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
}

// Seeded standard normals (Box-Muller): the page's own stream, not numpy's, so seed s here
// draws other samples than `ganrun --seed s`.
function normals(count, seed) {
  const uniform = uniforms(seed, 0x9e3779b9);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform())), phi = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(phi);
    if (i + 1 < count) out[i + 1] = r * Math.sin(phi);
  }
  return out;
}

// Seeded latents from the model's prior (gan.latent_prior): standard normals, or uniforms in
// (-1, 1).
function latents(count, seed, prior) {
  if (prior !== 'uniform') return normals(count, seed);
  const uniform = uniforms(seed, 0x9e3779b9);
  return Float32Array.from({ length: count }, () => 2 * uniform() - 1);
}

// The class of each of n tiles: the picked class (its label, a string from the picker), or,
// with "any class" (''), labels drawn uniformly from the seed's own label stream.
function labelsFor(n, seed, picked, classes) {
  if (picked !== '') return new Array(n).fill(Number(picked));
  const uniform = uniforms(seed, 0x85ebca6b);
  return Array.from({ length: n }, () => Math.floor(uniform() * classes));
}

function slerp(a, b, t, dim) {
  const out = new Float32Array(a.length);
  for (let row = 0; row < a.length; row += dim) {
    let dot = 0, na = 0, nb = 0;
    for (let j = row; j < row + dim; j++) { dot += a[j] * b[j]; na += a[j] * a[j]; nb += b[j] * b[j]; }
    const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb))));
    const s = Math.sin(omega);
    for (let j = row; j < row + dim; j++) {
      out[j] = s < 1e-6 ? (1 - t) * a[j] + t * b[j]
        : (Math.sin((1 - t) * omega) * a[j] + Math.sin(t * omega) * b[j]) / s;
    }
  }
  return out;
}

// The tiles of samples [n, h, w, c] (NHWC, in the model's range) on the canvas, in rows of
// cols with pad pixels between them, as ganrun's grids: a gray sample's level in all three
// channels, a colour sample's channels as they are.
function draw(samples, n, info) {
  const [h, w, c] = info.shape, pad = 2, cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols);
  const canvas = $('grid');
  const width = cols * (w + pad) + pad, height = rows * (h + pad) + pad;
  const scale = Math.max(1, Math.min(4, Math.floor(512 / width)));
  canvas.width = width; canvas.height = height;
  // The height follows the width, so a grid wider than the page shrinks without distortion.
  canvas.style.width = `${width * scale}px`; canvas.style.height = 'auto';
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
  image.data.fill(0);
  for (let p = 3; p < image.data.length; p += 4) image.data[p] = 255;
  const [lo, hi] = info.range;
  const level = (v) => Math.min(255, Math.max(0, Math.round((v - lo) * 255 / (hi - lo))));
  for (let i = 0; i < n; i++) {
    const top = pad + Math.floor(i / cols) * (h + pad), left = pad + (i % cols) * (w + pad);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const from = ((i * h + y) * w + x) * c, at = ((top + y) * width + left + x) * 4;
        for (let k = 0; k < 3; k++) image.data[at + k] = level(samples[from + (c === 3 ? k : 0)]);
      }
    }
  }
  ctx.putImageData(image, 0, 0);
  canvas.dataset.tiles = String(n);
}

async function main() {
  const params = new URLSearchParams(location.search);
  const model = await (await fetchBytes('model.json')).json();
  const info = describe(model);
  const files = model.files || {};
  // ?backend=wasm|webgpu and ?precision=int8|fp16|fp32 override the choice (tests, comparisons).
  const backend = await chooseBackend(files);
  if (params.get('backend')) backend.ep = params.get('backend') === 'webgpu' ? 'webgpu' : 'wasm';
  if (params.get('precision')) backend.precision = params.get('precision');
  const entry = files[backend.precision];
  if (!entry) throw new Error(`model.json lists no ${backend.precision || 'generator'} file for this page to run`);

  ort.env.logLevel = 'error';
  // Threads need cross-origin isolation (COOP/COEP headers), which plain file servers lack.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
  const wasm = (await fetchBytes(WASM_GZ)).body.pipeThrough(new DecompressionStream('gzip'));
  ort.env.wasm.wasmBinary = await new Response(wasm).arrayBuffer();

  const bytes = await (await fetchBytes(entry.file)).arrayBuffer();
  if (await sha256Hex(bytes) !== entry.sha256) {
    throw new Error(`${entry.file} is not the file model.json describes (SHA-256 differs); rebuild the page`);
  }
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: [backend.ep] });
  } catch (e) {
    throw new Error(`${entry.file} cannot be loaded by onnxruntime-web (${String(e.message || e).slice(0, 160)})`);
  }
  const conditional = info.classNames.length > 0;
  const inputs = conditional ? 'z,label' : 'z';
  if (session.inputNames.join() !== inputs || session.outputNames.join() !== 'sample') {
    throw new Error(`${entry.file} is not a gan-edge generator (inputs ${session.inputNames.join(', ')}; ` +
                    `outputs ${session.outputNames.join(', ')}; ` +
                    `expected ${inputs.replace(',', ', ')} and sample)`);
  }
  if (conditional) {
    const picker = $('class');
    picker.replaceChildren(new Option('any class', ''),
                           ...info.classNames.map((name, label) => new Option(name, String(label))));
    $('class-picker').hidden = false;
  }

  const per = info.shape.reduce((a, b) => a * b, 1);
  // At most `batch` samples a call: model.json's, by ganrun's rule (runtime/core/batch.py), so a
  // generator with large tensors stays within the same memory bound here as in ganrun.
  const batch = entry.batch;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new Error(`model.json gives ${entry.file} no batch size; rebuild the page`);
  }
  // One session.run at a time: the walk's frames, the generate button and the test hook share
  // the session, and WebGPU sessions do not take overlapping runs.
  let queue = Promise.resolve();
  // n samples in calls of at most `batch`: {samples, fed}, where fed is what the generator was
  // given, read back from the tensors of its calls (so that a test sees the labels and call
  // sizes the generator got, not those the page meant to give it): {n, latents, labels, calls}.
  function run(latents, n, labels) {
    if (conditional && (!labels || labels.length !== n)) {
      return Promise.reject(new Error('this model is conditional: pass one label per latent'));
    }
    const next = queue.then(async () => {
      let samples = null;
      const fed = { n, latents: [], labels: conditional ? [] : null, calls: [] };
      for (let start = 0; start < n; start += batch) {
        const k = Math.min(batch, n - start);
        const z = Float32Array.from(latents.slice(start * info.latent, (start + k) * info.latent));
        const feed = { z: new ort.Tensor('float32', z, [k, info.latent]) };
        // onnxruntime-web takes int64 tensors as BigInt64Array.
        if (conditional) feed.label = new ort.Tensor('int64', BigInt64Array.from(labels.slice(start, start + k), BigInt), [k]);
        const out = (await session.run(feed)).sample.data;
        samples = samples || new out.constructor(n * per);
        samples.set(out, start * per);
        fed.latents = fed.latents.concat(Array.from(feed.z.data));
        if (conditional) fed.labels = fed.labels.concat(Array.from(feed.label.data, Number));
        fed.calls.push(k);
      }
      return { samples, fed };
    });
    queue = next.catch(() => {});
    return next;
  }
  // The labels for n tiles of this seed, as the picker now asks; null for an unconditional model.
  const currentLabels = (n, seed) =>
    (conditional ? labelsFor(n, seed, $('class').value, info.classNames.length) : null);
  const classText = () => (!conditional ? '' : $('class').value === '' ? ', classes drawn at random,'
    : ` of class ${info.classNames[Number($('class').value)]}`);
  // What was fed for the grid now on the canvas (a generate's or a walk frame's), for the test hook.
  let lastDraw = Promise.resolve(null);
  async function generate() {
    const n = Math.max(1, Math.min(100, Number($('n').value) || 25));
    const seed = Math.max(0, Number($('seed').value) || 0);
    const started = performance.now();
    const z = latents(n * info.latent, seed, info.prior), labels = currentLabels(n, seed), asked = classText();
    const { samples, fed } = await run(z, n, labels);
    draw(samples, n, info);
    $('status').textContent = `${n} samples${asked} in ${(performance.now() - started).toFixed(0)} ms`;
    return fed;
  }
  let walking = null;
  async function walk() {
    if (walking) { clearTimeout(walking); walking = null; $('walk').textContent = 'walk'; return; }
    const n = Math.max(1, Math.min(100, Number($('n').value) || 25));
    const seed = Math.max(0, Number($('seed').value) || 0);
    const keys = Array.from({ length: WALK_KEYS }, (_, k) => latents(n * info.latent, seed + 7919 * (k + 1), info.prior));
    let frame = 0;
    $('walk').textContent = 'stop';
    const step = async () => {
      const k = Math.floor(frame / FRAMES_PER_STEP) % WALK_KEYS, t = (frame % FRAMES_PER_STEP) / FRAMES_PER_STEP;
      // Each tile keeps its class along the walk; a class picked meanwhile shows from the next frame.
      const z = slerp(keys[k], keys[(k + 1) % WALK_KEYS], t, info.latent);
      lastDraw = run(z, n, currentLabels(n, seed)).then(({ samples, fed }) => {
        draw(samples, n, info);
        return fed;
      });
      await lastDraw;
      frame += 1;
      if (walking !== null) walking = setTimeout(step, FRAME_MS);
    };
    walking = setTimeout(step, 0);
  }
  const generateNow = () => {
    lastDraw = generate();
    lastDraw.catch((e) => fail(String(e.message || e)));
  };
  $('generate').onclick = generateNow;
  // A new class redraws at once; during a walk, the walk's next frame shows it.
  $('class').onchange = () => { if (!walking) generateNow(); };
  $('walk').onclick = () => walk().catch((e) => fail(String(e.message || e)));
  $('generate').disabled = $('walk').disabled = false;

  const provider = backend.ep === 'webgpu' ? 'WebGPU' : 'WebAssembly';
  const [h, w, c] = info.shape;
  $('model').textContent = `${model.name === info.arch ? '' : model.name + ': '}${info.arch} (${info.dataset}${info.origin ? ', ' + info.origin : ''}` +
    `${info.weights === 'ema' ? ', averaged' : ''}; ${w} x ${h} ${c === 3 ? 'RGB' : 'grayscale'}), ` +
    `${backend.precision} on ${provider}`;
  lastDraw = generate();
  await lastDraw;
  return { backend: provider, precision: backend.precision, arch: info.arch, latent: info.latent,
           sampleSize: per, classNames: info.classNames,
           run: async (latents, n, labels) => Array.from((await run(latents, n, labels)).samples),
           drawn: async () => lastDraw };
}

// Test hook: window.ganEdge resolves to the backend chosen, a run(latents, n[, labels])
// function and drawn(), what was fed the generator for the grid now on the canvas (a
// generate's or the walk's latest frame: {n, latents, labels, calls}), once it is drawn; or it
// rejects with the message shown on the page.
window.ganEdge = main().catch((e) => { throw new Error(fail(String(e.message || e))); });
window.ganEdge.catch(() => {});
