/**
 * The frame of a test file on the WebGPU backend: the backend before its tests (useWebGPU) and,
 * after them, no WebGPU error that an error scope did not catch (uncapturedGpuErrors).
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { uncapturedGpuErrors, useWebGPU } from './backend.js';

/** Registers the file's hooks: call once, at the top level of a test file. */
export function useCheckedWebGPU(): void {
  beforeAll(useWebGPU);
  afterAll(() => expect(uncapturedGpuErrors()).toEqual([]));
}
