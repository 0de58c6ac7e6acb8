import * as tf from '@tensorflow/tfjs-core';

/** True while tf.grad / tf.grads / tf.variableGrads / tf.valueAndGrad(s) record the ops run (tfjs-core engine.ts isTapeOn). */
export function tapeIsRecording(): boolean {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number; kernelDepth: number } }).state;
  return state.gradientDepth > 0 && state.kernelDepth === 0;
}
