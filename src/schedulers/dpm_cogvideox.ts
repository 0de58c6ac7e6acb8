// "DPM_Cog": diffusers CogVideoXDPMScheduler (scheduling_dpm_cogvideox.py), used by THUDM's cli_demo and accepted
// by the Fun pipelines. Same float64 ᾱ as CogVideoXDDIMScheduler. A stochastic DPM-Solver++(2M) step: x̂0 and the
// previous timestep are carried by the caller (the pipelines' loop, diffusers pipeline_cogvideox.py).
//
// Noise: the first-order result is always computed with one fresh draw; when x̂0_old exists and t − T//N ≥ 0 the
// second-order result replaces it with a second draw. Both draws are made, so the generator stream advances by one
// or two latent-sized tensors per step exactly as in diffusers. ±∞ at ᾱ = 0 (first trailing step) and ᾱ_prev = 1
// (last step) resolve as IEEE arithmetic, as in torch.
import * as tf from '@tensorflow/tfjs-core';
import { CogVideoXSchedulerBase, cogVideoXPredOriginal } from './ddim_cogvideox.js';
import {
  addNoiseAlphaBar,
  alphaAt,
  requireGenerator,
  type CogVideoXDPMStepper,
  type SchedulerConfig,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

/** λ(ᾱ) = log √(ᾱ / (1 − ᾱ)), the half log-SNR. */
function lambda(alphaBar: number): number {
  return Math.log(Math.sqrt(alphaBar / (1 - alphaBar)));
}

export class CogVideoXDPMScheduler extends CogVideoXSchedulerBase implements CogVideoXDPMStepper {
  readonly kind = 'cogvideox-dpm';
  readonly name = 'DPM_Cog';
  readonly className = 'CogVideoXDPMScheduler';

  constructor(raw: SchedulerConfig) {
    super('CogVideoXDPMScheduler', raw);
  }

  /**
   * diffusers `step(model_output, old_pred_original_sample, timestep, timestep_back, sample, …)`; `timestepBack` is
   * the previous entry of the (possibly strength-sliced) schedule, null at the first step.
   */
  step(
    modelOutput: tf.Tensor,
    oldPredOriginalSample: tf.Tensor | null,
    timestep: number,
    timestepBack: number | null,
    sample: tf.Tensor,
    options?: StepOptions,
  ): Required<StepOutput> {
    const n = this.requireTimesteps();
    const generator = requireGenerator(this.className, options);
    const prevTimestep = timestep - Math.floor(this.config.num_train_timesteps / n);
    const alphaProdT = alphaAt(this.className, this.alphasCumprod, timestep);
    const alphaProdTPrev = prevTimestep >= 0 ? alphaAt(this.className, this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const alphaProdTBack = timestepBack !== null ? alphaAt(this.className, this.alphasCumprod, timestepBack) : null;

    const lamb = lambda(alphaProdT);
    const h = lambda(alphaProdTPrev) - lamb;
    const mult1 = Math.sqrt((1 - alphaProdTPrev) / (1 - alphaProdT)) * Math.exp(-h);
    const mult2 = Math.expm1(-2 * h) * Math.sqrt(alphaProdTPrev);
    const multNoise = Math.sqrt(1 - alphaProdTPrev) * Math.sqrt(1 - Math.exp(-2 * h));
    const secondOrder = oldPredOriginalSample !== null && prevTimestep >= 0;
    if (secondOrder && alphaProdTBack === null) {
      // diffusers fails here too (get_mult returns only two multipliers without timestep_back)
      throw new Error(`${this.className}: oldPredOriginalSample given without timestepBack`);
    }

    return tf.tidy(() => {
      const predOriginalSample = cogVideoXPredOriginal(this.className, this.config.prediction_type, alphaProdT, modelOutput, sample);
      const noise1 = generator.randn(sample.shape);
      let prevSample = tf.add(tf.sub(tf.mul(sample, mult1), tf.mul(predOriginalSample, mult2)), tf.mul(noise1, multNoise));
      if (secondOrder) {
        const r = (lamb - lambda(alphaProdTBack!)) / h;
        const mult3 = 1 + 1 / (2 * r);
        const mult4 = 1 / (2 * r);
        const denoisedD = tf.sub(tf.mul(predOriginalSample, mult3), tf.mul(oldPredOriginalSample!, mult4));
        const noise2 = generator.randn(sample.shape);
        prevSample = tf.add(tf.sub(tf.mul(sample, mult1), tf.mul(denoisedD, mult2)), tf.mul(noise2, multNoise));
      }
      return { prevSample, predOriginalSample };
    });
  }

  addNoise(original: tf.Tensor, noise: tf.Tensor, timestep: number): tf.Tensor {
    return addNoiseAlphaBar(alphaAt(this.className, this.alphasCumprod, timestep), original, noise);
  }
}
