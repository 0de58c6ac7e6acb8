// Gradient checkpointing (recompute in backward), as torch.utils.checkpoint.checkpoint does for CogVideoX-Fun's blocks
// (cogvideox/models/transformer3d.py:598-613; diffusers cogvideox_transformer_3d.py:485-500): the forward runs the
// function without recording anything for the gradient (its intermediates are freed at once) and keeps only its
// inputs; the backward runs the function again under a tape of its own and backpropagates through that.
//
// On TensorFlow.js: tf.customGrad runs its forward inside a kernel (engine.kernelDepth > 0), so the ops inside are not
// taped and their intermediates are disposed by the kernel's tidy; its `save` keeps clones of the inputs for the
// backward. The backward calls ENGINE.gradients for the recomputation. That nested call runs while the outer
// gradients() is backpropagating (gradientDepth 0), so it would start a fresh `activeTape` and set it to null when done
// (tfjs-core 4.22 dist/engine.js:805-809 startTape, :888-896 the clean-up): the outer call then fails on the null tape
// and never frees the tensors its nodes saved. The outer tape is put back after the nested call.
import * as tf from '@tensorflow/tfjs-core';

interface EngineState {
  activeTape: unknown;
}

function engineState(): EngineState {
  return (tf.engine() as unknown as { state: EngineState }).state;
}

/**
 * y = f(inputs, constants), differentiable with respect to `inputs`, with f's activations recomputed in the backward
 * pass instead of being kept. `constants` (no gradient) are kept for the recomputation too. f must be a pure function
 * of its arguments (deterministic: it runs twice) returning one new tensor. Outside a gradient tape this is f.
 */
export function recompute(f: (inputs: tf.Tensor[], constants: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], constants: tf.Tensor[] = []): tf.Tensor {
  if (!inputs.length) throw new Error('recompute: no inputs to differentiate with respect to');
  const n = inputs.length;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[n] as tf.GradSaveFunc;
    const xs = args.slice(0, n) as tf.Tensor[];
    save([...xs, ...constants]);
    return {
      value: f(xs, constants),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const xs2 = saved.slice(0, n);
        const consts2 = saved.slice(n);
        const state = engineState();
        const outerTape = state.activeTape;
        let r: { value: tf.Tensor; grads: tf.Tensor[] };
        try {
          r = tf.engine().gradients(() => f(xs2, consts2), xs2, dy as tf.Tensor, true);
        } finally {
          state.activeTape = outerTape;
        }
        r.value.dispose();
        // dy (the gradient of this call's output) is needed by no other node, but the tape would keep it until the
        // whole backward pass ends (tfjs-core 4.22 dist/tape.js backpropagateGradients never frees a node's dys)
        (dy as tf.Tensor).dispose();
        // an input f does not depend on has no gradient: zeros, as customGrad wants one tensor per input
        return r.grads.map((g, i) => g ?? tf.zerosLike(xs2[i]!));
      },
    };
  });
  return op(...inputs);
}

/** The tensors of a plain object tree (objects, arrays; other leaves skipped), in a fixed depth-first order. */
export function collectTensors(tree: unknown, out: tf.Tensor[] = []): tf.Tensor[] {
  if (tree instanceof tf.Tensor) out.push(tree);
  else if (Array.isArray(tree)) for (const v of tree) collectTensors(v, out);
  else if (tree && typeof tree === 'object' && !ArrayBuffer.isView(tree)) for (const v of Object.values(tree)) collectTensors(v, out);
  return out;
}

/** A copy of a plain object tree with every tensor replaced by `f(tensor)` (same order as collectTensors). */
export function mapTensors<T>(tree: T, f: (t: tf.Tensor) => tf.Tensor): T {
  if (tree instanceof tf.Tensor) return f(tree) as T;
  if (Array.isArray(tree)) return tree.map((v) => mapTensors(v, f)) as T;
  if (tree && typeof tree === 'object' && !ArrayBuffer.isView(tree)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(tree)) out[k] = mapTensors(v, f);
    return out as T;
  }
  return tree;
}
