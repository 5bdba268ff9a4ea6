/** Small DOM helpers for the app: elements, tables, status lines and downloads. */

type Child = Node | string | null | undefined | false;

/** `el('div', {class: 'x'}, 'text', child)`: an element with attributes and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** The element with this id, or an error naming it (the page's HTML and code disagree). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`page: no element #${id}`);
  return node as T;
}

/** A table with a header row; cells are text or nodes. */
export function table(header: string[], rows: (string | Node)[][], caption?: string): HTMLElement {
  return el(
    'div',
    { class: 'table-wrap' },
    el(
      'table',
      {},
      caption ? el('caption', {}, caption) : null,
      el('thead', {}, el('tr', {}, ...header.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c) => el('td', {}, c))))),
    ),
  );
}

/** Saves `text` as a file through a temporary object URL. */
export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A row of download buttons. */
export function downloadBar(
  files: { label: string; name: string; text: () => string; type: string }[],
): HTMLElement {
  return el(
    'div',
    { class: 'downloads' },
    ...files.map((f) => {
      const b = el('button', { type: 'button', class: 'secondary' }, f.label);
      b.addEventListener('click', () => download(f.name, f.text(), f.type));
      return b;
    }),
  );
}

/** Writes a status line; `kind` colours it. */
export function setStatus(
  node: HTMLElement,
  text: string,
  kind: 'info' | 'ok' | 'error' | 'warn' = 'info',
): void {
  node.textContent = text;
  node.dataset.kind = kind;
}

/** "12.3 ms [11.9–13.0]" from a spread-like object, or "—". */
export function msCell(s: { p20: number; p50: number; p80: number } | null | undefined): string {
  if (!s) return '—';
  const d = s.p50 < 1 ? 3 : s.p50 < 100 ? 2 : 1;
  return `${s.p50.toFixed(d)} ms [${s.p20.toFixed(d)}–${s.p80.toFixed(d)}]`;
}

export function pct(x: number | null | undefined): string {
  return x === null || x === undefined ? '—' : `${(100 * x).toFixed(2)} %`;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
