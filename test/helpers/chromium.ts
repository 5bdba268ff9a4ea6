/**
 * Headless Chromium for the page tests (test/browser.test.ts, test/consumer.test.ts): the system
 * browser (tools/find-chromium.ts; a missing one fails the test, never skips it) with WebGPU on,
 * and a page whose script leaves its result in a window global.
 */
import type { Browser } from 'puppeteer-core';

export { launchChromium } from '../../bench/node/lib/chromium.js';

/** Opens `url`, waits for `window[global]` and returns it with the page's console lines. */
export async function pageResult<T>(
  browser: Browser,
  url: string,
  global: string,
  timeoutMs: number,
): Promise<{ result: T; console: string[] }> {
  const page = await browser.newPage();
  const console: string[] = [];
  page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.push(`pageerror: ${String(e)}`));
  await page.goto(url);
  await page.waitForFunction(`window.${global} !== undefined`, { timeout: timeoutMs });
  const result = (await page.evaluate(
    (name) => (window as unknown as Record<string, unknown>)[name],
    global,
  )) as T;
  return { result, console };
}
