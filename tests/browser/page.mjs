// Open a gan-edge page in headless Chromium and report, as one JSON line, what the page did:
// its console errors, the backend it chose (or its error), its tiles, and optionally the
// samples for latents read from a JSON file. Usage: node page.mjs URL [LATENTS.json]
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [url, latentsFile] = process.argv.slice(2);
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
      return { backend: g.backend, precision: g.precision, arch: g.arch,
               tiles: Number(document.getElementById('grid').dataset.tiles || 0),
               model: document.getElementById('model').textContent };
    } catch (e) {
      return { error: document.getElementById('error').textContent,
               errorShown: !document.getElementById('error').hidden };
    }
  }));
  if (!report.error) {  // the walk button animates the grid, and stops on a second click
    await page.evaluate(() => {
      window.gridBeforeWalk = document.getElementById('grid').toDataURL();
      document.getElementById('walk').click();
    });
    // Decided by the first frame that differs, however long a busy machine takes to draw it;
    // the timeout only bounds a walk that never moves.
    report.walkMoves = await page.waitForFunction(
      () => document.getElementById('grid').toDataURL() !== window.gridBeforeWalk,
      null, { timeout: 120000 }).then(() => true, () => false);
    await page.evaluate(() => document.getElementById('walk').click());
  }
  if (latentsFile && !report.error) {
    const { latents, n } = JSON.parse(readFileSync(latentsFile, 'utf8'));
    report.samples = await page.evaluate(async ([z, k]) => (await window.ganEdge).run(z, k), [latents, n]);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
