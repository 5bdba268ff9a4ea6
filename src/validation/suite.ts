/**
 * The numerics suite's cases as data, shared by the tests (test/fused-grid.test.ts,
 * test/fused-edge.test.ts, test/temperature.test.ts, test/numerics-divergences.test.ts) and the
 * app's "Validate kernels" panel:
 * the same specs under the same names, checked by the same `evaluateCase` with the same
 * tolerances.
 *
 * Families:
 * - 'grid': B × C × T of the issue, α, reduction, label kind, gradient path and upstream
 *   rotated so that every value of every axis meets every B and every C; on the adapter's plan.
 * - 'grid, hardware plan': the same grid with the hardware plan forced (workgroup per row,
 *   shared-memory trees), so that a software adapter proves it too.
 * - 'edge': named edge cases (huge logits, extreme shifts, identical or one-hot teachers, odd
 *   C, explicit upstream gradients, NaN, out-of-range labels), on both plans.
 * - 'largest': the largest supported C, on both plans.
 * - 'temperature': temperatures far outside 1–20 (1e-4 … 1e8), on both plans.
 * - 'top-K teacher': a sparse teacher `{ indices, logProbs }` (K ∈ {1, 5, 32, 256}) instead of
 *   dense logits, the student's gradient compared (the entries are constants): on the adapter's
 *   plan, and forced on each plan at C ≥ 65536 (tolerance-sparse.ts; test/sparse-teacher.test.ts
 *   holds the full suite of the sparse kernel).
 * - 'divergence': reverse KL and the JSD (β = 0.5 and 0.2), values and both gradients, at
 *   T ∈ {1, 4, 100}, a small C (a thread per row on both plans) and a large one (a workgroup per
 *   row on the hardware plan), both plans forced, with −Infinity masks (both sides, one side, and
 *   where reverse KL is +Infinity) and ignored rows rotated in (tolerance-divergence.ts;
 *   test/divergences-fused.test.ts holds the op-level suite of these kernels).
 *
 * `validationSuite('quick')` is a documented subset; see QUICK_MAX_ELEMENTS and quickCases().
 */
import type { Divergence, Reduction } from '../config.js';
import { choosePlan, type AdapterClass } from '../kernels/plan.js';
import type { CaseInputs, CaseSpec, MaskKind } from './cases.js';

export type CaseFamily =
  | 'grid'
  | 'grid, hardware plan'
  | 'edge'
  | 'largest'
  | 'temperature'
  | 'top-K teacher'
  | 'divergence';

export interface NamedCase {
  /** Stable and unique in the suite; the tests' test.each titles. */
  readonly name: string;
  readonly family: CaseFamily;
  /** What the case checks within its family (edge cases: which edge; else the family). */
  readonly kind: string;
  readonly spec: CaseSpec;
}

// ---------------------------------------------------------------------------------------------
// The grid

export const GRID_BATCHES = [1, 7, 64, 300] as const;
export const GRID_CLASSES = [1, 2, 10, 1000, 1271, 32768] as const;
export const GRID_TEMPERATURES = [0.5, 1, 4, 10, 20] as const;
export const GRID_ALPHAS = [0, 0.1, 0.5, 1] as const;
export const GRID_REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];
export const GRID_LABEL_KINDS = ['index', 'dense'] as const;

/** The whole B × C × T grid, unfiltered (seeds 1000, 1001, … in this order). */
export function gridSpecs(): CaseSpec[] {
  const cases: CaseSpec[] = [];
  GRID_BATCHES.forEach((batch, bi) =>
    GRID_CLASSES.forEach((classes, ci) =>
      GRID_TEMPERATURES.forEach((temperature, ti) => {
        const k = bi + ci + ti;
        cases.push({
          batch,
          classes,
          temperature,
          alpha: GRID_ALPHAS[(k + bi) % GRID_ALPHAS.length]!,
          reduction: GRID_REDUCTIONS[k % GRID_REDUCTIONS.length]!,
          labelKind: GRID_LABEL_KINDS[(bi + ti) % 2]!,
          seed: 1000 + cases.length,
          // every gradient path: student only (training), teacher on the tape, teacher lazily
          teacherGrad: (['none', 'tape', 'lazy'] as const)[(ci + ti) % 3]!,
          // labelKind follows ti's parity, upstream ⌊ti/2⌋'s: every (B, C) sees all four pairs
          upstream: (Math.floor(ti / 2) + bi + ci) % 2 === 0 ? 'unit' : 'random',
        });
      }),
    ),
  );
  return cases;
}

function gridName(c: CaseSpec): string {
  return `B=${c.batch} C=${c.classes} T=${c.temperature} α=${c.alpha} ${c.reduction} ${c.labelKind} ${c.teacherGrad} dy=${c.upstream}`;
}

/** Cases of a million elements or more: the 300 × 32768 ones (and 64 × 32768). */
const HUGE = 1e6;

/** The grid on the adapter's plan. The 300 × 32768 cases dominate: one temperature in two. */
export function gridCases(): NamedCase[] {
  return gridSpecs()
    .filter((c) => c.batch * c.classes < HUGE || c.temperature !== 4)
    .map((spec) => ({ name: gridName(spec), family: 'grid', kind: 'grid', spec }));
}

/** The grid with the hardware plan forced; of the huge cases only T = 10. */
export function gpuPlanGridCases(): NamedCase[] {
  return gridSpecs()
    .filter((c) => c.batch * c.classes < HUGE || c.temperature === 10)
    .map((c) => ({
      name: `${gridName(c)}, hardware plan`,
      family: 'grid, hardware plan',
      kind: 'grid',
      spec: { ...c, plan: 'hardware' },
    }));
}

// ---------------------------------------------------------------------------------------------
// Edge cases (test/fused-edge.test.ts)

export const PLANS: readonly AdapterClass[] = ['software', 'hardware'];
export const EDGE_BASE: Readonly<CaseSpec> = {
  batch: 7,
  classes: 10,
  temperature: 10,
  alpha: 0.1,
  reduction: 'none',
  labelKind: 'index',
  seed: 42,
  teacherGrad: 'tape',
  upstream: 'random',
};
export const EDGE_SIZES = [10, 1271, 4096] as const;
export const ODD_SIZES = [10, 1271, 1023, 257] as const;

/** Edge kinds whose tests check more than the comparison (see test/fused-edge.test.ts). */
export type EdgeKind =
  | 'logits ±100'
  | 'logits ±1e4'
  | 'shifted row'
  | 'identical'
  | 'one-hot teacher'
  | 'odd C'
  | 'upstream'
  | 'NaN'
  | 'labels out of range';

function edge(kind: EdgeKind, title: string, plan: AdapterClass, spec: CaseSpec): NamedCase {
  return { name: `${title}, ${plan} plan`, family: 'edge', kind, spec: { ...spec, plan } };
}

/** The edge cases of one plan. */
export function edgeCasesOf(plan: AdapterClass): NamedCase[] {
  const out: NamedCase[] = [];
  for (const classes of EDGE_SIZES) {
    const base = { ...EDGE_BASE, classes };
    out.push(edge('logits ±100', `logits ±100, C=${classes}`, plan, { ...base, scale: 100 }));
    out.push(
      edge('logits ±1e4', `logits ±1e4 at T = 0.05, C=${classes}`, plan, {
        ...base,
        scale: 1e4,
        temperature: 0.05,
      }),
      edge('logits ±1e4', `logits ±1e4 at T = 100, C=${classes}`, plan, {
        ...base,
        scale: 1e4,
        temperature: 100,
        seed: 43,
      }),
    );
    out.push(
      edge('shifted row', `a row shifted by a large constant, C=${classes}`, plan, {
        ...base,
        mutate: ({ student, teacher }: CaseInputs) => {
          for (let c = 0; c < classes; c++) {
            student[2 * classes + c]! += 9000;
            teacher[3 * classes + c]! -= 9000;
          }
        },
      }),
    );
    out.push(
      edge('identical', `identical teacher and student, α = 0, C=${classes}`, plan, {
        ...base,
        alpha: 0,
        mutate: (x: CaseInputs) => x.teacher.set(x.student),
      }),
    );
    out.push(
      edge(
        'one-hot teacher',
        `one-hot teacher (one logit far above the rest), C=${classes}`,
        plan,
        {
          ...base,
          temperature: 1,
          mutate: ({ teacher }: CaseInputs) => {
            teacher.fill(-50);
            for (let b = 0; b < base.batch; b++) teacher[b * classes + ((b * 3) % classes)] = 50;
          },
        },
      ),
    );
    out.push(
      edge('NaN', `NaN propagates to its row only, C=${classes}`, plan, {
        ...base,
        mutate: ({ student, teacher }: CaseInputs) => {
          student[1 * classes + (classes >> 1)] = NaN;
          teacher[4 * classes + classes - 1] = NaN;
        },
      }),
    );
    out.push(
      edge('labels out of range', `out-of-range labels make their row NaN, C=${classes}`, plan, {
        ...base,
        mutate: ({ labels }: CaseInputs) => {
          labels[0] = classes;
          labels[3] = -1;
          labels[5] = 2 ** 31 - 1;
        },
      }),
    );
  }
  for (const classes of ODD_SIZES) {
    out.push(
      edge('odd C', `C not a multiple of the workgroup size or of 4, C=${classes}`, plan, {
        ...EDGE_BASE,
        classes,
        batch: 5,
        reduction: 'mean',
      }),
    );
  }
  const upstream = { ...EDGE_BASE, classes: 1000, upstream: 'random' as const };
  out.push(
    edge('upstream', 'non-unit upstream gradient, scalar (sum)', plan, {
      ...upstream,
      reduction: 'sum',
    }),
    edge('upstream', 'non-unit upstream gradient, per row (none)', plan, {
      ...upstream,
      reduction: 'none',
    }),
    edge('upstream', 'non-unit upstream gradient, scalar (mean), student only', plan, {
      ...upstream,
      reduction: 'mean',
      teacherGrad: 'none',
    }),
  );
  return out;
}

/** The edge cases of both plans. */
export function edgeCases(): NamedCase[] {
  return PLANS.flatMap(edgeCasesOf);
}

/** The largest supported C (MAX_CLASSES = 262144) at B = 1, and 262143 at B = 2. */
export function largestCases(): NamedCase[] {
  return PLANS.flatMap((plan): NamedCase[] => [
    {
      name: `C = 262144 (the largest supported) and B = 1, ${plan} plan`,
      family: 'largest',
      kind: 'largest',
      spec: { ...EDGE_BASE, plan, batch: 1, classes: 262_144, reduction: 'mean', scale: 20 },
    },
    {
      name: `C = 262143 and B = 2, ${plan} plan`,
      family: 'largest',
      kind: 'largest',
      spec: { ...EDGE_BASE, plan, batch: 2, classes: 262_143, reduction: 'none', seed: 7 },
    },
  ]);
}

// ---------------------------------------------------------------------------------------------
// Extreme temperatures (test/temperature.test.ts)

export const EXTREME_TEMPERATURES = [1e-4, 0.01, 0.05, 1e3, 1e4, 1e6, 1e8] as const;
export const TEMPERATURE_BASE: Readonly<CaseSpec> = {
  batch: 16,
  classes: 1000,
  temperature: 1,
  alpha: 0.1,
  reduction: 'none',
  labelKind: 'index',
  seed: 7,
  teacherGrad: 'tape',
  upstream: 'random',
};

/** At each extreme temperature, on both plans: C = 10, 1000 and 4096, every gradient path. */
export function temperatureCases(): NamedCase[] {
  const out: NamedCase[] = [];
  for (const plan of PLANS) {
    for (const T of EXTREME_TEMPERATURES) {
      const base = { ...TEMPERATURE_BASE, plan, temperature: T };
      const add = (title: string, spec: CaseSpec) =>
        out.push({
          name: `T = ${T}, ${title}, ${plan} plan`,
          family: 'temperature',
          kind: 'temperature',
          spec,
        });
      add('C = 10, teacher on the tape', { ...base, classes: 10, scale: 3 });
      add('C = 1000, teacher lazily', { ...base, teacherGrad: 'lazy', seed: 8 });
      add('C = 4096 B = 3 dense mean, student only', {
        ...base,
        classes: 4096,
        batch: 3,
        labelKind: 'dense',
        reduction: 'mean',
        teacherGrad: 'none',
        seed: 9,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Top-K (sparse) teachers

/** Each K on the adapter's plan, then K = 32 and K = 256 forced on a plan at C ≥ 65536. */
export function sparseCases(): NamedCase[] {
  const specs: [string, CaseSpec][] = [];
  const add = (spec: Omit<CaseSpec, 'sparse'> & { topK: number; sorted?: boolean }) => {
    const { topK, sorted, ...rest } = spec;
    const full: CaseSpec = {
      ...rest,
      teacherGrad: 'none',
      sparse: sorted ? { topK, sorted } : { topK },
    };
    const plan = full.plan ? `${full.plan} plan` : 'adapter plan';
    specs.push([
      `top-K teacher K=${topK} B=${full.batch} C=${full.classes} T=${full.temperature} ` +
        `α=${full.alpha} ${full.reduction} ${full.labelKind} dy=${full.upstream ?? 'unit'}` +
        `${sorted ? ' sorted' : ''}, ${plan}`,
      full,
    ]);
  };
  const base = { seed: 3100, upstream: 'unit' as const };
  add({
    ...base,
    topK: 1,
    batch: 7,
    classes: 1000,
    temperature: 1,
    alpha: 0.1,
    reduction: 'mean',
    labelKind: 'index',
  });
  add({
    ...base,
    topK: 5,
    batch: 3,
    classes: 32_768,
    temperature: 4,
    alpha: 0,
    reduction: 'none',
    labelKind: 'dense',
    upstream: 'random',
    seed: 3101,
  });
  add({
    ...base,
    topK: 32,
    batch: 16,
    classes: 4096,
    temperature: 10,
    alpha: 1,
    reduction: 'sum',
    labelKind: 'index',
    upstream: 'random',
    sorted: true,
    seed: 3102,
  });
  add({
    ...base,
    topK: 256,
    batch: 8,
    classes: 1000,
    temperature: 0.5,
    alpha: 0.1,
    reduction: 'none',
    labelKind: 'dense',
    sorted: true,
    seed: 3103,
  });
  add({
    ...base,
    topK: 32,
    batch: 24,
    classes: 37,
    temperature: 4,
    alpha: 0.1,
    reduction: 'mean',
    labelKind: 'dense',
    seed: 3104,
  });
  add({
    ...base,
    topK: 32,
    batch: 7,
    classes: 65_536,
    temperature: 4,
    alpha: 0.1,
    reduction: 'none',
    labelKind: 'index',
    upstream: 'random',
    plan: 'hardware',
    seed: 3105,
  });
  add({
    ...base,
    topK: 256,
    batch: 2,
    classes: 262_144,
    temperature: 1,
    alpha: 0.1,
    reduction: 'mean',
    labelKind: 'index',
    plan: 'software',
    sorted: true,
    seed: 3106,
  });
  return specs.map(([name, spec]) => ({
    name,
    family: 'top-K teacher',
    kind: 'top-K teacher',
    spec,
  }));
}

// ---------------------------------------------------------------------------------------------
// Reverse KL and the JSD

/** The divergences of the 'divergence' family: reverse KL, the JSD at β = 0.5 and at 0.2. */
export const DIVERGENCE_FAMILY: readonly { divergence: Divergence; beta?: number }[] = [
  { divergence: 'reverse-kl' },
  { divergence: 'jsd', beta: 0.5 },
  { divergence: 'jsd', beta: 0.2 },
];
export const DIVERGENCE_TEMPERATURES = [1, 4, 100] as const;
/**
 * [B, C]: a small C (a thread per row on every plan) and two large ones (a workgroup per row on
 * the hardware plan; 1271 scalar loads, 1000 vec4 ones).
 */
export const DIVERGENCE_SHAPES = [
  [7, 10],
  [5, 1271],
  [6, 1000],
] as const;

/** 'reverse-kl', 'jsd β=0.5', 'jsd β=0.2': a case's divergence (forward-kl by default). */
export function divergenceName(spec: CaseSpec): string {
  const d = spec.divergence ?? 'forward-kl';
  return d === 'jsd' ? `jsd β=${spec.beta ?? 0.5}` : d;
}

/**
 * Every divergence × T × plan, each at the small C and at one of the large ones, the other axes
 * rotated: masks (none, both sides, one side; reverse KL also +Infinity), ignored rows,
 * α (0.1, 0.5, 0, 0.3), reduction, label kind (index where rows are ignored), gradient path,
 * upstream, and logits in ±6 or ±20 (seeds 6000, 6001, …).
 */
export function divergenceCases(): NamedCase[] {
  const out: NamedCase[] = [];
  // (the JSD never is +Infinity: its one-sided masks take either side already)
  const masks: (MaskKind | undefined)[] = [undefined, 'both', 'one-sided', 'infinite'];
  const jsdMasks: (MaskKind | undefined)[] = [undefined, 'both', 'one-sided'];
  for (const plan of PLANS) {
    for (const d of DIVERGENCE_FAMILY) {
      DIVERGENCE_TEMPERATURES.forEach((temperature, ti) => {
        for (const large of [false, true]) {
          const i = out.length;
          const [batch, classes] = DIVERGENCE_SHAPES[large ? 1 + (ti % 2) : 0]!;
          const ignore = i % 3 !== 1;
          const list = d.divergence === 'jsd' ? jsdMasks : masks;
          const mask =
            list[(2 * ti + (large ? 1 : 0) + (plan === 'hardware' ? 2 : 0)) % list.length];
          const spec: CaseSpec = {
            batch,
            classes,
            temperature,
            alpha: [0.1, 0.5, 0, 0.3][i % 4]!,
            reduction: (['mean', 'none', 'sum'] as const)[i % 3]!,
            labelKind: ignore ? 'index' : 'dense',
            seed: 6000 + i,
            scale: temperature === 1 && i % 2 === 0 ? 20 : 6,
            teacherGrad: (['tape', 'lazy', 'none'] as const)[(i >> 1) % 3]!,
            upstream: i % 4 < 2 ? 'random' : 'unit',
            plan,
            ...d,
            ...(mask ? { masks: mask } : {}),
            ...(ignore ? { ignoreIndex: -100, ignoreEveryFourthRow: true } : {}),
          };
          const name =
            `${divergenceName(spec)} B=${batch} C=${classes} T=${temperature} ` +
            `α=${spec.alpha} ${spec.reduction} ${spec.labelKind} ${spec.teacherGrad} ` +
            `dy=${spec.upstream} scale=${spec.scale} masks=${mask ?? 'none'}` +
            `${ignore ? ' ignoreIndex' : ''}, ${plan} plan`;
          out.push({ name, family: 'divergence', kind: spec.divergence!, spec });
        }
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The app's suites

/** Every shared case, in the order above. */
export function sharedCases(): NamedCase[] {
  return [
    ...gridCases(),
    ...gpuPlanGridCases(),
    ...edgeCases(),
    ...largestCases(),
    ...temperatureCases(),
    ...sparseCases(),
    ...divergenceCases(),
  ];
}

/**
 * Cases of the quick suite are below this many elements (B · C): no 300 × 32768 or
 * 64 × 32768 case.
 */
export const QUICK_MAX_ELEMENTS = 600_000;

/** "software plan, thread per row", "hardware plan, row shared by invocations" or "adapter plan". */
function rowSplit(c: NamedCase): string {
  const { batch, classes, reduction, plan } = c.spec;
  if (!plan) return 'adapter plan'; // known only on the adapter that runs it
  const tileCols = choosePlan(batch, classes, reduction !== 'none', plan).tileCols;
  return `${plan} plan, ${tileCols === 1 ? 'thread per row' : 'row shared by invocations'}`;
}

/** The axes the quick suite covers, and each case's value on them. */
export const COVERAGE_AXES = {
  batch: (c: NamedCase) => c.spec.batch,
  classes: (c: NamedCase) => c.spec.classes,
  temperature: (c: NamedCase) => c.spec.temperature,
  alpha: (c: NamedCase) => c.spec.alpha,
  reduction: (c: NamedCase) => c.spec.reduction,
  labelKind: (c: NamedCase) => c.spec.labelKind,
  teacherGrad: (c: NamedCase) => c.spec.teacherGrad ?? 'lazy',
  upstream: (c: NamedCase) => c.spec.upstream ?? 'unit',
  /** 'dense' logits, or a top-K teacher ('top-K', K its entries per row). */
  teacher: (c: NamedCase) => (c.spec.sparse ? `top-${c.spec.sparse.topK}` : 'dense'),
  /** 'adapter' (the running adapter's own), 'software' or 'hardware' (forced). */
  plan: (c: NamedCase) => c.spec.plan ?? 'adapter',
  /** The soft term's divergence, with β for the JSD ('forward-kl' by default). */
  divergence: (c: NamedCase) => divergenceName(c.spec),
  /** −Infinity masks ('none', or a MaskKind). */
  masks: (c: NamedCase) => c.spec.masks ?? 'none',
  /** Whether rows are ignored (ignoreIndex). */
  ignoreIndex: (c: NamedCase) => (c.spec.ignoreIndex === undefined ? 'no' : 'yes'),
  /** Every C on every plan it runs with (the plans differ most in how they split a row). */
  'plan × classes': (c: NamedCase) => `${c.spec.plan ?? 'adapter'} plan, C=${c.spec.classes}`,
  /**
   * Every family and edge kind, on every plan it runs on, and with each way of splitting a row
   * that the plan gives it: a thread per row, or a row shared by invocations (shared memory).
   */
  'kind × plan × row split': (c: NamedCase) => `${c.family}: ${c.kind}, ${rowSplit(c)}`,
} as const satisfies Record<string, (c: NamedCase) => string | number>;

export type CoverageAxis = keyof typeof COVERAGE_AXES;

/** The values each axis takes over `cases` ("axis=value" strings). */
export function coverageOf(cases: readonly NamedCase[]): Set<string> {
  const out = new Set<string>();
  for (const c of cases) {
    for (const [axis, value] of Object.entries(COVERAGE_AXES)) out.add(`${axis}=${value(c)}`);
  }
  return out;
}

/** What a case is assumed to cost (elements, plus a fixed overhead per case). */
function quickCost(c: NamedCase): number {
  return c.spec.batch * c.spec.classes + 2000;
}

/**
 * The quick suite: every value of every coverage axis (COVERAGE_AXES) that a case below
 * QUICK_MAX_ELEMENTS reaches, by a greedy set cover over the shared cases: repeatedly the case
 * that covers the most still-uncovered values per unit of cost (B · C + 2000), the first one on
 * ties. Returned in the shared order. Deterministic: it depends only on the lists above.
 */
export function quickCases(): NamedCase[] {
  const all = sharedCases();
  const eligible = all.filter((c) => c.spec.batch * c.spec.classes < QUICK_MAX_ELEMENTS);
  const covered = new Set<string>();
  const chosen = new Set<NamedCase>();
  for (;;) {
    let best: NamedCase | null = null;
    let bestScore = 0;
    for (const c of eligible) {
      if (chosen.has(c)) continue;
      let gain = 0;
      for (const v of coverageOf([c])) if (!covered.has(v)) gain++;
      const score = gain / quickCost(c);
      if (gain > 0 && score > bestScore) {
        best = c;
        bestScore = score;
      }
    }
    if (!best) break;
    chosen.add(best);
    for (const v of coverageOf([best])) covered.add(v);
  }
  return all.filter((c) => chosen.has(c));
}

/** The app's suites: 'full' = every shared case; 'quick' = quickCases(). */
export function validationSuite(level: 'quick' | 'full'): NamedCase[] {
  return level === 'full' ? sharedCases() : quickCases();
}
