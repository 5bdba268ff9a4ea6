/**
 * Finds a Chromium or Chrome executable for the page tests and `npm run bench:browser` (puppeteer-core downloads
 * no browser): `CHROME_PATH` if set, else `CHROMIUM_PATH`, else `PUPPETEER_EXECUTABLE_PATH`, else the usual install
 * locations of the current platform. Returns where it looked too, so that a caller can say so.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

export interface ChromiumSearch {
  /** The executable found, or undefined. */
  readonly executable: string | undefined;
  /** Every path that was looked at, in order. */
  readonly searched: readonly string[];
  /** The environment variable that chose the executable, if one did. */
  readonly fromEnv?: string;
}

function platformCandidates(): string[] {
  switch (process.platform) {
    case 'darwin':
      return [
        '/Applications/Chromium.app/Contents/MacOS/Chromium',
        '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
        '/Applications/Google Chrome Canary.app/Contents/MacOS/Google Chrome Canary',
      ];
    case 'win32': {
      const roots = [
        process.env.PROGRAMFILES,
        process.env['PROGRAMFILES(X86)'],
        process.env.LOCALAPPDATA,
      ].filter((r): r is string => Boolean(r));
      return [
        ...roots.map((r) => path.win32.join(r, 'Chromium', 'Application', 'chrome.exe')),
        ...roots.map((r) => path.win32.join(r, 'Google', 'Chrome', 'Application', 'chrome.exe')),
      ];
    }
    default:
      return [
        '/usr/bin/chromium',
        '/usr/bin/chromium-browser',
        '/usr/bin/google-chrome-stable',
        '/usr/bin/google-chrome',
        '/snap/bin/chromium',
      ];
  }
}

export function findChromium(): ChromiumSearch {
  for (const name of ['CHROME_PATH', 'CHROMIUM_PATH', 'PUPPETEER_EXECUTABLE_PATH'] as const) {
    const fromEnv = process.env[name];
    if (fromEnv) {
      // An explicit choice is respected as is: a wrong path is reported, never replaced.
      return {
        executable: existsSync(fromEnv) ? fromEnv : undefined,
        searched: [fromEnv],
        fromEnv: name,
      };
    }
  }
  const searched = platformCandidates();
  return { executable: searched.find((p) => existsSync(p)), searched };
}

/** The error to give when no browser was found, naming what was searched and what to do. */
export function chromiumMissingMessage(search: ChromiumSearch): string {
  if (search.fromEnv) {
    return `${search.fromEnv}=${search.searched[0]} does not exist: point it at a Chromium or Chrome executable`;
  }
  return (
    `no Chromium or Chrome found (looked at ${search.searched.join(', ')}): install one ` +
    '(on Debian: `apt-get install chromium`) or set CHROME_PATH to its executable'
  );
}
