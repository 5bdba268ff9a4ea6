/**
 * The fused reverse KL and JSD at the sizes that take minutes on a software adapter: real row
 * chunks past lavapipe's 128 MiB storage binding (a device with a larger limit is capped to
 * 128 MiB through the test hook, so they are chunked everywhere), and the ends of the tested
 * temperature range on both plans. Same cases, references and bounds as
 * test/divergences-fused.test.ts (test/helpers/divergence-cases.ts).
 */
import { describe, expect, test } from 'vitest';
import { rowChunks } from '../src/kernels/plan.js';
import { deviceLimit } from '../src/tfjs-internals.js';
import { useCheckedWebGPU } from './helpers/backend.js';
import { FUSED_DIVS, fusedVsReference } from './helpers/divergence-cases.js';

useCheckedWebGPU();

describe('reverse KL and the JSD in the fused kernels: large inputs and extreme temperatures', () => {
  test.each([
    ['reverse-kl', [129], 262_144, 'mean', 'tape'],
    ['jsd', [3, 43], 262_143, 'none', 'lazy'],
  ] as const)(
    "real row chunks past the device's binding limit: %s %j × %i, %s, %s teacher gradient",
    async (divergence, leading, C, reduction, teacher) => {
      const B = leading.reduce((a, b) => a * b, 1);
      // lavapipe's limit; a device with a larger one is capped to it through the test hook
      const limit = Math.min(deviceLimit('maxStorageBufferBindingSize'), 128 * 2 ** 20);
      const alignment = deviceLimit('minStorageBufferOffsetAlignment');
      expect(rowChunks(B, C, limit, alignment).length).toBeGreaterThan(1);
      await fusedVsReference(
        {
          divergence,
          ...(divergence === 'jsd' ? { beta: 0.3 } : {}),
          T: 4,
          alpha: 0.3,
          reduction,
          dense: false,
          shape: [...leading, C],
          scale: 6,
          masks: 'finite',
          ignore: true,
          components: false,
          plan: 'software',
          teacher,
          upstream: reduction === 'none' ? 'random' : 'unit',
          bindingLimit: limit,
        },
        9950,
      );
    },
  );

  test('the ends of the tested temperature range (1e-4, 1e8) and between, both plans', async () => {
    // At large T, D ~ Var(s − t) / (2T²) is kept to its relative precision (k = T² magnifies
    // any cancellation); at small T the distributions are one-hot and D ~ |s − t| / T.
    let i = 0;
    for (const plan of ['software', 'hardware'] as const) {
      for (const d of FUSED_DIVS.slice(0, 3)) {
        for (const T of [1e-4, 0.05, 1e4, 1e8]) {
          await fusedVsReference(
            {
              ...d,
              T,
              alpha: 0.2,
              reduction: (['none', 'mean'] as const)[i % 2]!,
              dense: false,
              shape: [
                [6, 10],
                [3, 300],
                [4, 1000],
              ][i % 3]!,
              scale: 6,
              masks: i % 2 === 0 ? 'finite' : 'none',
              ignore: false,
              components: false,
              plan,
              teacher: 'tape',
              upstream: 'unit',
            },
            9800 + i++,
          );
        }
      }
    }
  });
});
