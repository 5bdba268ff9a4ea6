/**
 * Chrome or Chromium with WebGPU on, through puppeteer-core (which downloads no browser): the
 * system browser found by tools/find-chromium.ts (`CHROME_PATH` overrides). Used by the headless
 * runner (`npm run bench:browser`) and the page tests.
 */
import puppeteer, { type Browser } from 'puppeteer-core';
import { chromiumMissingMessage, findChromium } from '../../../tools/find-chromium.js';

/** Launches the browser with the flags known to be needed here, profile in `profileDir`. */
export async function launchChromium(
  profileDir: string,
  who: string,
  options: { headless?: boolean; extraArgs?: string[]; log?: (line: string) => void } = {},
): Promise<Browser> {
  const chromium = findChromium();
  if (!chromium.executable) throw new Error(`${who}: ${chromiumMissingMessage(chromium)}`);
  (options.log ?? ((line) => process.stdout.write(`${line}\n`)))(
    `[${who}] browser: ${chromium.executable}`,
  );
  return puppeteer.launch({
    executablePath: chromium.executable,
    headless: options.headless ?? true,
    defaultViewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profileDir}`,
      ...(options.extraArgs ?? []),
    ],
  });
}
