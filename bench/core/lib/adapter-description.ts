/**
 * The description of a WebGPU adapter that result files and logs carry. No import of the
 * package: the adapter check (tools/find-adapter.ts) runs before the package is built.
 */
import type { AdapterInfoLike } from 'tfjs-fused-distill';
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
