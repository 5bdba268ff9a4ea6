/**
 * Naming a WebGPU adapter for result files, the same way in Node (Dawn) and in a page
 * (`navigator.gpu`): a short description, and whether it is a software rasteriser (those get
 * the reduced presets, and the app warns that their figures say nothing about a real GPU).
 */
import { classifyAdapter, type AdapterInfoLike } from 'tfjs-fused-distill';
import type { AdapterDescription } from '../protocol/report.js';

/**
 * The adapter's description: "SwiftShader (google, swiftshader, …)", "lavapipe (mesa, …)" or
 * the device/vendor name of a hardware adapter. `icd` names the Vulkan ICD file in Node, or
 * where the adapter came from in a page (e.g. "browser").
 */
export function describeAdapterInfo(
  info: AdapterInfoLike | undefined,
  icd: string,
): AdapterDescription {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const name = /swiftshader/i.test(`${architecture} ${device} ${icd}`)
    ? 'SwiftShader'
    : /mesa|llvmpipe|lavapipe/i.test(`${vendor} ${device} ${icd}`)
      ? 'lavapipe'
      : device || info?.description || vendor || 'unknown adapter';
  const description = `${name} (${[vendor, architecture, device].filter(Boolean).join(', ')})`;
  return { description, vendor, architecture, device, icd };
}

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
