/**
 * What the linear op needs of the device on WebGPU, checked on shapes alone before anything is
 * dispatched: every tensor it binds whole fits one storage binding.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LinearShapes } from './inputs.js';
import type { LinearHead, LinearTeacher } from './types.js';

/** The bytes of a float32 tensor of `shape`. */
function bytesOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 4);
}

/**
 * On WebGPU every tensor the op binds whole must fit one storage binding: the head weights
 * (matMul binds them whole), and the hidden states, dense teacher logits or labels (sliced a
 * chunk at a time).
 */
export function checkBindings(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  shapes: LinearShapes,
  limit: number,
  op: string,
): void {
  const whole: [string, tf.Tensor | undefined, string][] = [
    ['student.weight', student.weight, 'its gradient is one tensor of the same size'],
    ['student.hidden', student.hidden, 'sliced a chunk at a time; its gradient is as large'],
    ['labels', shapes.labelKind === 'dense' ? labels : undefined, 'pass int32 class indices'],
  ];
  if (shapes.teacherKind === 'head') {
    const head = teacher as LinearHead;
    whole.push(['teacher.weight', head.weight, 'the teacher head is bound whole']);
    whole.push(['teacher.hidden', head.hidden, 'sliced a chunk at a time']);
  } else if (shapes.teacherKind === 'dense') {
    whole.push([
      'teacher',
      teacher as tf.Tensor,
      'pass the teacher as a head { hidden, weight, bias } or top-K, which are never materialised',
    ]);
  }
  for (const [name, t, hint] of whole) {
    if (t !== undefined && bytesOf(t.shape) > limit) {
      throw new RangeError(
        `${op}: ${name} [${t.shape.join(', ')}] is ${bytesOf(t.shape)} bytes, more than this ` +
          `device's maxStorageBufferBindingSize (${limit}) (${hint})`,
      );
    }
  }
}
