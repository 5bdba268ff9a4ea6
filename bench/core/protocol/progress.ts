/** Progress events of the training runs, and the sink that receives them. */
import type { EpochRecord, RunName } from './report.js';

/** Where an epoch stands, for progress displays. */
export interface EpochProgress {
  run: RunName;
  epoch: number;
  epochs: number;
  /** Steps in this epoch. */
  steps: number;
}

/** One step's progress; loss and accuracy come at window read-backs only. */
export interface StepProgress extends EpochProgress {
  /** Steps done in this epoch. */
  done: number;
  /** Mean loss of the last read-back window, when one was just read. */
  loss?: number;
  accuracy?: number;
  /** Steps per second so far in this epoch. */
  stepsPerSecond: number;
}

/** Receives progress events; the CLI draws bars or prints a line per epoch. */
export interface ProgressSink {
  epochStart(info: EpochProgress): void;
  step(info: StepProgress): void;
  epochEnd(info: EpochProgress & { record: EpochRecord }): void;
}

/** A sink that ignores every event (the default). */
export const SILENT: ProgressSink = {
  epochStart: () => undefined,
  step: () => undefined,
  epochEnd: () => undefined,
};
