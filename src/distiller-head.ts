/**
 * The Distiller's fused head (`fusedHead`): a model whose last layer is a linear Dense is split
 * into its body (a model from the same input to the head's input, sharing the layers and so the
 * weights) and the head's kernel `[H, C]` and bias `[C]`, which `fusedLinearDistillationLoss`
 * takes as they are, so the step never holds the `[B, C]` logits.
 *
 * The body is never disposed: it owns nothing (a container's `dispose` would release the
 * shared layers, i.e. the model's weights). tfjs-layers stays a type-only dependency: the body is built with the LayersModel class found
 * on the model's own prototype chain (the same copy of tfjs-layers as the model's layers).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { LinearHead } from './linear/types.js';
import { isTensorLike } from './validate.js';

/** A model split at its linear Dense head. */
export interface DenseHead {
  /** The model up to the head: input → the head's input `[..., H]`; shares the layers. */
  readonly body: LayersModel;
  /** The head layer (its `apply` gives the logits from the body's output). */
  readonly layer: LayersModel['layers'][number];
  /** The head's kernel `[H, C]` and bias `[C]` (null: `useBias: false`), the layer's own. */
  readonly kernel: LayerVariableLike;
  readonly bias: LayerVariableLike | null;
}

/** What the Distiller reads of a tfjs-layers LayerVariable. */
export interface LayerVariableLike {
  readonly name: string;
  readonly shape: readonly (number | null)[];
  readonly dtype: string;
  /** The backing tf.Variable (typed as a Tensor by tfjs-layers). */
  read(): tf.Tensor;
}

type ContainerArgs = { inputs: unknown; outputs: unknown };
type ModelClass = (new (args: ContainerArgs) => LayersModel) & { className?: string };

/** The tfjs-layers LayersModel class (static className 'Model') of `model`'s prototype chain. */
function layersModelClass(model: LayersModel): ModelClass | null {
  let cls = (model as { constructor?: unknown }).constructor as ModelClass | null | undefined;
  while (typeof cls === 'function') {
    if (cls.className === 'Model') return cls;
    cls = Object.getPrototypeOf(cls) as ModelClass | null;
  }
  return null;
}

/**
 * Splits `model` at its last layer when that is a Dense with linear activation, called once,
 * whose output is the model's, on one input tensor.
 *
 * @returns the split, or why the model does not qualify (a phrase for an error message).
 */
export function splitDenseHead(model: LayersModel): DenseHead | string {
  const layer = model.layers.at(-1);
  if (layer === undefined) return 'it has no layers';
  const cls = layer.getClassName();
  if (cls !== 'Dense') return `its last layer '${layer.name}' is a ${cls}, not a Dense`;
  const activation = (layer.getConfig() as { activation?: unknown }).activation;
  if (activation !== 'linear') {
    return `its last layer '${layer.name}' has activation '${String(activation)}', not 'linear'`;
  }
  if (model.outputs.length !== 1 || model.outputs[0]!.sourceLayer !== layer) {
    return `its output is not the output of its last layer '${layer.name}'`;
  }
  if (layer.inboundNodes.length !== 1) {
    return `its last layer '${layer.name}' is called ${layer.inboundNodes.length} times`;
  }
  const input = layer.input;
  if (Array.isArray(input)) return `its last layer '${layer.name}' takes several inputs`;
  const weights = layer.weights as unknown as LayerVariableLike[];
  const kernel = weights[0];
  const bias = weights.length > 1 ? weights[1]! : null;
  const units = model.outputs[0]!.shape.at(-1);
  const featureShape = input.shape.at(-1);
  if (
    kernel === undefined ||
    weights.length > 2 ||
    kernel.shape.length !== 2 ||
    kernel.shape[0] !== featureShape ||
    kernel.shape[1] !== units ||
    (bias !== null && (bias.shape.length !== 1 || bias.shape[0] !== units))
  ) {
    return `its last layer '${layer.name}' does not hold a kernel [H, C] and a bias [C]`;
  }
  if (kernel.dtype !== 'float32' || (bias !== null && bias.dtype !== 'float32')) {
    return `its last layer '${layer.name}' has ${kernel.dtype} weights, not float32`;
  }
  const Model = layersModelClass(model);
  if (Model === null) return 'its class is not a tfjs-layers LayersModel';
  if (model.inputs.length !== 1) return 'it has several inputs';
  const body = new Model({ inputs: model.inputs[0], outputs: input });
  // The body must hold the model's own variables (never copies), and with the head all of them:
  // gradients through body and head then reach every weight the whole model trains.
  const own = new Set(model.weights.map((w) => w.read()));
  const split = [...body.weights, ...layer.weights].map((w) => w.read());
  if (!split.every((v) => own.has(v)) || new Set(split).size !== own.size) {
    return 'its layers up to the head do not hold exactly its other weights';
  }
  return { body, layer, kernel, bias };
}

/** A teacher head `{ hidden, weight, bias? }` (duck-typed: a plain object of tensors). */
export function isLinearHead(value: unknown): value is LinearHead {
  if (typeof value !== 'object' || value === null || isTensorLike(value)) return false;
  const v = value as Partial<Record<'hidden' | 'weight' | 'bias', unknown>>;
  return isTensorLike(v.hidden) && isTensorLike(v.weight);
}

/** The tensors of a head. */
export function headTensors(head: LinearHead): tf.Tensor[] {
  return head.bias === undefined
    ? [head.hidden, head.weight]
    : [head.hidden, head.weight, head.bias];
}
