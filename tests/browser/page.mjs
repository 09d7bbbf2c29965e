// Open a gan-edge page in headless Chromium and report, as one JSON line, what the page did:
// its console errors, the backend it chose (or its error), its tiles, its class picker's
// choices, and, as a JSON file asks: the samples for its latents (and labels), and for each
// class it names, what the page drew once that class is picked and generate is clicked, and
// with `canvas`, what it drew once generate is clicked, in full colour; and what the walk's last
// frame fed and drew (with `walkPick`, the class picked before the walk starts).
// Usage: node page.mjs URL [REQUEST.json],
//        REQUEST {latents, n, labels?, picks?: [option text], canvas?: true, walkPick?: option text}
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [url, requestFile] = process.argv.slice(2);
const request = requestFile ? JSON.parse(readFileSync(requestFile, 'utf8')) : {};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // SwiftShader gives headless Chromium a (software) WebGPU adapter, so the WebGPU path runs too.
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--enable-unsafe-webgpu',
         '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader'],
});
const report = { consoleErrors: [] };
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => report.consoleErrors.push(String(e)));
  await page.goto(url);
  Object.assign(report, await page.evaluate(async () => {
    try {
      const g = await window.ganEdge;
      const picker = document.getElementById('class');
      return { backend: g.backend, precision: g.precision, arch: g.arch,
               tiles: Number(document.getElementById('grid').dataset.tiles || 0),
               model: document.getElementById('model').textContent,
               // the picker's choices where the page shows one, else null
               classes: picker.checkVisibility() ? Array.from(picker.options, (o) => o.text) : null };
    } catch (e) {
      return { error: document.getElementById('error').textContent,
               errorShown: !document.getElementById('error').hidden };
    }
  }));
  // the inputs of the grid now on the canvas, its pixels (rgb: three levels a pixel; grey: the
  // first of them), the status line and the error shown, if any
  const drawnNow = (colour) => page.evaluate(async (colour) => {
    const drawn = await (await window.ganEdge).drawn();
    const canvas = document.getElementById('grid');
    const rgba = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const levels = colour ? rgba.filter((_, i) => i % 4 !== 3) : rgba.filter((_, i) => i % 4 === 0);
    return { ...drawn, width: canvas.width, height: canvas.height,
             [colour ? 'rgb' : 'grey']: Array.from(levels),
             styleWidth: canvas.getBoundingClientRect().width,
             styleHeight: canvas.getBoundingClientRect().height,
             status: document.getElementById('status').textContent,
             error: document.getElementById('error').hidden ? null
               : document.getElementById('error').textContent };
  }, colour);
  if (request.walkPick && !report.error) {  // the class the walk is to draw, picked before it
    await page.selectOption('#class', { label: request.walkPick });
    await page.click('#generate');
    await drawnNow(false);
  }
  if (!report.error) {  // the walk button animates the grid, and stops on a second click
    await page.evaluate(() => {
      window.gridBefore = document.getElementById('grid').toDataURL();
      document.getElementById('walk').click();
    });
    // Moves: a frame differs from the grid before it, and a later frame from that one (a walk
    // stuck on its first frame changes the grid once). Decided by the frames, however long a
    // busy machine takes to draw them; the timeout only bounds a walk that never moves.
    const changes = () => page.waitForFunction(() => {
      const now = document.getElementById('grid').toDataURL();
      if (now === window.gridBefore) return false;
      window.gridBefore = now;
      return true;
    }, null, { timeout: 120000 }).then(() => true, () => false);
    report.walkMoves = await changes() && await changes();
    await page.evaluate(() => document.getElementById('walk').click());
    report.walk = await drawnNow(false);  // its last frame
  }
  if (request.latents && !report.error) {
    report.samples = await page.evaluate(async ([z, k, labels]) => (await window.ganEdge).run(z, k, labels),
                                         [request.latents, request.n, request.labels]);
  }
  report.picks = [];
  for (const option of (report.error ? [] : request.picks || [])) {
    await page.selectOption('#class', { label: option });
    await page.click('#generate');
    report.picks.push(await drawnNow(false));
  }
  if (request.canvas && !report.error) {
    await page.click('#generate');
    report.canvas = await drawnNow(true);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
