/**
 * Naming a WebGPU adapter for result files, the same way in Node (Dawn) and in a page
 * (`navigator.gpu`): a short description (./adapter-description.ts), and whether it is a
 * software rasteriser (those get the reduced presets, and the app warns that their figures say
 * nothing about a real GPU).
 */
import { classifyAdapter, type AdapterInfoLike } from 'tfjs-fused-distill';
import type { AdapterDescription } from '../protocol/report.js';

export { describeAdapterInfo } from './adapter-description.js';

/** True for software rasterisers: the package's {@link classifyAdapter} on what was described. */
export function isSoftwareAdapter(
  description: AdapterDescription,
  info?: AdapterInfoLike & { isFallbackAdapter?: boolean },
): boolean {
  const { vendor, architecture, device } = description;
  const fallback = info?.isFallbackAdapter === true;
  return (
    classifyAdapter({ vendor, architecture, device, isFallbackAdapter: fallback }) === 'software'
  );
}
