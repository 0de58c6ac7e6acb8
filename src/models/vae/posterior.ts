// The encoder's posterior: diffusers/.../autoencoders/vae.py DiagonalGaussianDistribution (lines 780-835).
import * as tf from '@tensorflow/tfjs-core';

/** Diagonal Gaussian over the latents. Owns its tensors. Built from tensor ops: gradients flow through it. */
export class DiagonalGaussianDistribution {
  readonly mean: tf.Tensor5D;
  /** clamp(moments[:, C:], −30, 20) */
  readonly logvar: tf.Tensor5D;
  /** exp(0.5·logvar) */
  readonly std: tf.Tensor5D;

  /** moments [B, 2C, T, h, w] = [mean ‖ logvar] (taken over). */
  constructor(readonly moments: tf.Tensor5D) {
    const [B, C2, T, h, w] = moments.shape;
    const C = C2 / 2;
    this.mean = tf.slice(moments, [0, 0, 0, 0, 0], [B, C, T, h, w]) as tf.Tensor5D;
    this.logvar = tf.tidy(() => tf.clipByValue(tf.slice(moments, [0, C, 0, 0, 0], [B, C, T, h, w]), -30, 20));
    this.std = tf.tidy(() => tf.exp(tf.mul(this.logvar, 0.5)) as tf.Tensor5D);
  }

  /** The mean (a new tensor). */
  mode(): tf.Tensor5D {
    return tf.clone(this.mean);
  }

  /**
   * mean + std·ε. ε is `noise` if given (e.g. the draw of torch.randn, for parity), else `randn(shape)`, else
   * tf.randomNormal (seeded by `seed` when given). tfjs' generator is not torch's: seeds do not reproduce PyTorch.
   */
  sample(opts: { noise?: tf.Tensor; randn?: (shape: number[]) => tf.Tensor; seed?: number } = {}): tf.Tensor5D {
    const shape = this.mean.shape;
    return tf.tidy(() => {
      const eps = opts.noise ?? opts.randn?.(shape) ?? tf.randomNormal(shape, 0, 1, 'float32', opts.seed);
      if (eps.shape.length !== shape.length || eps.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`posterior sample: noise shape [${eps.shape.join(', ')}] differs from the latents' [${shape.join(', ')}]`);
      }
      return tf.add(this.mean, tf.mul(this.std, eps)) as tf.Tensor5D;
    });
  }

  /**
   * KL divergence to N(0, 1) as diffusers computes it: 0.5·Σ(mean² + var − 1 − logvar) over dims 1, 2, 3 only
   * (channels, time, height) — on a video posterior [B, C, T, h, w] the result is [B, w], literally.
   */
  kl(): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.sum(tf.sub(tf.sub(tf.add(tf.square(this.mean), tf.exp(this.logvar)), 1), this.logvar), [1, 2, 3]), 0.5) as tf.Tensor2D);
  }

  dispose(): void {
    this.moments.dispose();
    this.mean.dispose();
    this.logvar.dispose();
    this.std.dispose();
  }
}
