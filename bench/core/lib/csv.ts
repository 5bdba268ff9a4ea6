/** Result-file text that every host shares: CSV lines and a file-name timestamp. */
/** One CSV line per row; values are quoted only when they need to be. */
export function toCsv(rows: readonly Record<string, string | number | boolean>[]): string {
  if (rows.length === 0) return '';
  const header = Object.keys(rows[0]!);
  const cell = (v: unknown) => {
    const s = String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return (
    [header.join(','), ...rows.map((r) => header.map((h) => cell(r[h])).join(','))].join('\n') +
    '\n'
  );
}

/** A timestamp usable in a file name: 2026-11-28T08-20-07Z. */
export function fileStamp(date = new Date()): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}
