/** What a kernel benchmark run is asked: the device, the shapes, the settings, the callbacks. */
import type { Divergence } from 'tfjs-fused-distill';
import type { LinearShapeResult } from './linear-report.js';
import type { LinearShape } from './linear-shapes.js';
import type { KernelSweep, TopKShape } from './shapes.js';
import type {
  KernelBenchMeta,
  KernelRunPlan,
  KernelShapeFailure,
  KernelShapeResult,
  TopKShapeResult,
} from './report.js';

export interface KernelBenchOptions {
  /** tfjs' WebGPU device (the ceiling runs on it). */
  device: GPUDevice;
  /** The WGSL source of bench/core/memory-ceiling.wgsl. */
  ceilingShader: string;
  /** `"64x10,256x32768"` or the parsed list; ignored when `sweep` is set. */
  shapes: string | readonly (readonly [number, number])[];
  /** A named sweep instead of `shapes`; it implies phases and a memory budget. */
  sweep?: KernelSweep | null;
  /**
   * Sparse (top-K) teacher shapes, `"256x32768k32"` or parsed; ignored with a sweep (`topk`
   * times topKSweepShapes() (shapes.ts), `vocab` none). Default: none.
   */
  topK?: string | readonly TopKShape[] | null;
  /** After each top-K shape: its result, its index and the number of top-K shapes. */
  onTopKShape?(r: TopKShapeResult, i: number, n: number): void;
  /**
   * Linear-head sizes `rows × H × V` (`"512x256x32768"`, `"grid"`, or parsed): the fused
   * linear op against matMul + the fused loss and matMul + the stock composition, forward+
   * backward w.r.t. hidden, weight and bias (linear.ts). Default: none.
   */
  linear?: string | readonly LinearShape[] | null;
  /** The fused linear op's memoryBudgetBytes (default: the op's own). */
  linearOpBudgetBytes?: number | null;
  /**
   * Run a matMul side whose `[rows, V]` logits or `[H, V]` weight exceed one storage binding
   * (default false: refused; run anyway, tfjs' matMul returns zeros, which the check reports).
   */
  linearTryPastBinding?: boolean;
  /** One measured step per linear side (see LinearSettings.singleStep). Default false. */
  linearSingleStep?: boolean;
  /** After each linear size: its result, its index and the number of linear sizes. */
  onLinearShape?(r: LinearShapeResult, i: number, n: number): void;
  windows: number;
  windowMs: number;
  alpha: number;
  temperature: number;
  /**
   * The soft term's divergence, both sides (default forward-kl); reverse-kl and jsd are timed
   * against the exact composition (StockBaseline in report.ts). Top-K shapes need forward-kl.
   */
  divergence?: Divergence;
  /** β of 'jsd', in (0, 1) (default 0.5); only with divergence 'jsd'. */
  beta?: number | null;
  seed: number;
  meta: KernelBenchMeta;
  /** Time forward alone too, and backward as the paired difference (default: with a sweep). */
  phases?: boolean;
  /**
   * Skip a side whose estimated memory exceeds this, bytes (default with a sweep:
   * DEFAULT_MEMORY_BUDGET_GIB (plan.ts) GiB; else none, and no calibration).
   */
  memoryBudgetBytes?: number | null;
  /**
   * Cut a side's windows (to 3 at least) so that its timing stays near this, ms (default with
   * a sweep: 30 s; else none, and the stock side at C ≥ 8192 gets 5 windows as before).
   */
  maxSideMs?: number | null;
  /** Before the first shape: the plan, with the skips and the time estimate. */
  onPlan?(plan: KernelRunPlan): void;
  /** After each shape: its result, its index and the number of shapes. */
  onShape?(r: KernelShapeResult, i: number, n: number): void;
  /** After a shape where a side failed or was skipped. */
  onFailure?(f: KernelShapeFailure, i: number, n: number): void;
  /** What is being timed now, one line at a time. */
  onProgress?(line: string): void;
  /** Stops between windows; the report then has complete: false and the shapes done. */
  signal?: AbortSignal;
  /** Awaited between windows, e.g. to let a page repaint. */
  yieldToEventLoop?: () => Promise<void>;
}
