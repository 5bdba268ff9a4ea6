/**
 * The build's provenance, compiled in by bench/node/app-vite.config.ts (`define`), and the
 * browser's name and version, for the result files' `commit` and `versions`.
 */
declare const __APP_BUILD__: {
  commit: string;
  builtAt: string;
  versions: Record<string, string>;
};

export const BUILD = __APP_BUILD__;

interface UADataLike {
  brands?: { brand: string; version: string }[];
  platform?: string;
}

/** "Chrome 131", "Firefox 141", "Safari 26"…: from UA client hints when there, else the UA. */
export function browserName(): string {
  const data = (navigator as Navigator & { userAgentData?: UADataLike }).userAgentData;
  const brand = data?.brands?.find(
    (b) => !/not.?a.?brand/i.test(b.brand) && b.brand !== 'Chromium',
  );
  if (brand) return `${brand.brand} ${brand.version}`;
  const ua = navigator.userAgent;
  for (const [name, re] of [
    ['Edge', /Edg\/(\d+)/],
    ['Chrome', /(?:HeadlessChrome|Chrome|Chromium)\/(\d+)/],
    ['Firefox', /Firefox\/(\d+)/],
    ['Safari', /Version\/(\d+).*Safari/],
  ] as const) {
    const m = re.exec(ua);
    if (m) return `${name} ${m[1]}`;
  }
  return 'unknown browser';
}

/** The `versions` of a page's result file. */
export function pageVersions(): Record<string, string> {
  return { browser: browserName(), userAgent: navigator.userAgent, ...BUILD.versions };
}
