// Adam (Kingma & Ba 2015), small enough to read beside its equations; the same arithmetic as tfjs's
// tf.train.adam, with its state in plain fields: moments by parameter name and beta^n as numbers.
import * as tf from '@tensorflow/tfjs-core';

type Variables = Record<string, tf.Variable>;

export interface Adam {
  lr: number; beta1: number; beta2: number; epsilon: number; // lr may be changed between steps
  beta1Power: number; beta2Power: number; // beta^n after n steps: float32 running products
  m: Variables; v: Variables; // moments, by parameter name
}

/** Zero moments for every parameter; defaults as tf.train.adam (epsilon: the backend's, 1e-7). */
export function createAdam(params: Variables,
  opts: { lr: number; beta1?: number; beta2?: number; epsilon?: number }): Adam {
  const zeros = () => Object.fromEntries(Object.entries(params).map(([name, theta]) =>
    [name, tf.tidy(() => tf.variable(tf.zerosLike(theta), false))]));
  const { lr, beta1 = 0.9, beta2 = 0.999, epsilon = tf.backend().epsilon() } = opts;
  return { lr, beta1, beta2, epsilon, beta1Power: 1, beta2Power: 1, m: zeros(), v: zeros() };
}

// #region adam
/** m <- beta1 m + (1 - beta1) g,  v <- beta2 v + (1 - beta2) g^2   (Kingma & Ba 2015, Algorithm 1)
 *  theta <- theta - lr (m / (1 - beta1^n)) / (sqrt(v / (1 - beta2^n)) + epsilon), after n steps */
export function adamStep(adam: Adam, params: Variables, grads: Record<string, tf.Tensor>): void {
  const { beta1, beta2, epsilon, m, v } = adam;
  // beta^n, n counting this step, as float32 running products: tfjs's numbers, bit for bit
  adam.beta1Power = Math.fround(adam.beta1Power * Math.fround(beta1));
  adam.beta2Power = Math.fround(adam.beta2Power * Math.fround(beta2));
  const { beta1Power: b1n, beta2Power: b2n } = adam;
  tf.tidy(() => Object.entries(params).forEach(([name, theta]) => {
    const g = grads[name] ?? tf.zerosLike(theta); // by parameter name; a missing one counts as 0
    m[name].assign(tf.add(tf.mul(m[name], beta1), tf.mul(g, 1 - beta1)));
    v[name].assign(tf.add(tf.mul(v[name], beta2), tf.mul(tf.square(g), 1 - beta2)));
    const [mHat, vHat] = [tf.div(m[name], 1 - b1n), tf.div(v[name], 1 - b2n)];
    theta.assign(tf.add(theta, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), epsilon)), -adam.lr)));
  }));
}
// #endregion

/** Frees the moments; the parameters stay. */
export function disposeAdam(adam: Adam): void {
  tf.dispose([...Object.values(adam.m), ...Object.values(adam.v)]);
}
