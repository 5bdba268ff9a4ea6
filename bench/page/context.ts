/**
 * What the panels share: the page's GPU, and one run at a time (two benchmarks sharing a GPU
 * would time each other), with the Stop button and device loss both aborting the run in flight.
 */
import { emit, type Task } from './automation.js';
import type { PageGpu } from './gpu.js';
import { el, errorText } from './ui.js';

export class PageContext {
  private running: { task: Task; controller: AbortController } | null = null;
  private readonly listeners = new Set<() => void>();
  /** Set when the device is lost: nothing more can run until the page is reloaded. */
  lost: string | null = null;

  constructor(readonly gpu: PageGpu) {}

  get busy(): Task | null {
    return this.running?.task ?? null;
  }

  /** Called whenever a run starts or ends (the panels enable and disable their buttons). */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  /**
   * Runs `body` as the page's one run: refuses when another is running or the device is lost,
   * reports the outcome to the runner (`done`), and returns whether it succeeded.
   */
  async run(task: Task, body: (signal: AbortSignal) => Promise<void>): Promise<boolean> {
    if (this.lost) {
      emit({ type: 'done', task, ok: false, error: `GPU device lost: ${this.lost}` });
      return false;
    }
    if (this.running) throw new Error(`a ${this.running.task} run is in progress`);
    const controller = new AbortController();
    this.running = { task, controller };
    this.changed();
    try {
      await body(controller.signal);
      if (this.lost) throw new Error(`GPU device lost: ${this.lost}`);
      emit({ type: 'done', task, ok: true });
      return true;
    } catch (err) {
      // After a device loss the outcome was reported already (deviceLost); reads on a lost
      // device may reject with anything, or settle much later.
      if (!this.lost) {
        console.error(err);
        emit({ type: 'done', task, ok: false, error: errorText(err) });
      }
      throw err;
    } finally {
      this.running = null;
      this.changed();
    }
  }

  stop(): void {
    this.running?.controller.abort();
  }

  /**
   * The device is gone: abort whatever runs, report it as failed at once (a read waiting on a
   * lost device may never settle, and the runner must not hang on it) and refuse new runs.
   */
  deviceLost(message: string): void {
    this.lost = message;
    if (this.running) {
      emit({
        type: 'done',
        task: this.running.task,
        ok: false,
        error: `GPU device lost: ${message}`,
      });
    }
    this.stop();
    this.changed();
  }
}

/**
 * A panel's start and stop buttons: start runs `run` and is enabled only while the page is idle
 * with a live device; stop aborts this panel's run and is enabled only while it runs.
 */
export function runButtons(
  ctx: PageContext,
  task: Task,
  label: string,
  run: () => void,
): { start: HTMLButtonElement; stop: HTMLButtonElement } {
  const start = el('button', { type: 'button' }, label);
  const stop = el('button', { type: 'button', class: 'secondary' }, 'Stop');
  const sync = (): void => {
    start.disabled = ctx.busy !== null || ctx.lost !== null;
    stop.disabled = ctx.busy !== task;
  };
  ctx.onChange(sync);
  sync();
  start.addEventListener('click', run);
  stop.addEventListener('click', () => ctx.stop());
  return { start, stop };
}
