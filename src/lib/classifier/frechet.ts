// The Frechet distance between two Gaussians fitted to feature vectors (the distance behind FID):
// d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2}), in float64.

export interface Gaussian { mean: Float64Array; cov: Float64Array; dim: number; count: number }

/** Mean and (n - 1)-normalised covariance of n feature vectors of length dim, given row-major. */
export function fitGaussian(features: ArrayLike<number>, dim: number): Gaussian {
  const n = features.length / dim;
  if (!Number.isInteger(n) || n < 2) {
    throw new Error(`need at least 2 feature vectors of length ${dim}, `
      + `received ${features.length} values`);
  }
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += features[i * dim + j] / n;
  const cov = new Float64Array(dim * dim);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < dim; a++) {
      const da = features[i * dim + a] - mean[a];
      for (let b = a; b < dim; b++) {
        cov[a * dim + b] += (da * (features[i * dim + b] - mean[b])) / (n - 1);
      }
    }
  }
  for (let a = 0; a < dim; a++) for (let b = 0; b < a; b++) cov[a * dim + b] = cov[b * dim + a];
  return { mean, cov, dim, count: n };
}

/** Eigenvalues and eigenvectors (columns of V) of a symmetric matrix by cyclic Jacobi rotations. */
export function symmetricEigen(matrix: Float64Array, n: number):
  { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(matrix);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) { // A <- A J (columns p, q)
          const [akp, akq] = [A[k * n + p], A[k * n + q]];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) { // A <- J^T A (rows p, q)
          const [apk, aqk] = [A[p * n + k], A[q * n + k]];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) { // V <- V J
          const [vkp, vkq] = [V[k * n + p], V[k * n + q]];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => A[i * n + i]), vectors: V };
}

/** S^{1/2} of a symmetric positive semi-definite matrix (round-off eigenvalues < 0 taken as 0). */
function sqrtm(S: Float64Array, n: number): Float64Array {
  const { values, vectors: V } = symmetricEigen(S, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const r = Math.sqrt(Math.max(values[k], 0));
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) out[i * n + j] += V[i * n + k] * r * V[j * n + k];
    }
  }
  return out;
}

function matmul(A: Float64Array, B: Float64Array, n: number): Float64Array {
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
    const a = A[i * n + k];
    for (let j = 0; j < n; j++) C[i * n + j] += a * B[k * n + j];
  }
  return C;
}

/**
 * d^2(N(mu_1, S_1), N(mu_2, S_2)); Tr (S_1^{1/2} S_2 S_1^{1/2})^{1/2} is the sum of the square
 * roots of its eigenvalues.
 */
export function frechetDistance(g1: Gaussian, g2: Gaussian): number {
  if (g1.dim !== g2.dim) throw new Error(`feature sizes differ: ${g1.dim} and ${g2.dim}`);
  const n = g1.dim;
  const root1 = sqrtm(g1.cov, n);
  const middle = matmul(matmul(root1, g2.cov, n), root1, n);
  for (let i = 0; i < n; i++) { // symmetric up to round-off: make it exactly so
    for (let j = 0; j < i; j++) {
      middle[i * n + j] = middle[j * n + i] = (middle[i * n + j] + middle[j * n + i]) / 2;
    }
  }
  const eigenvalues = symmetricEigen(middle, n).values;
  const traceSqrt = eigenvalues.reduce((a, v) => a + Math.sqrt(Math.max(v, 0)), 0);
  let meanTerm = 0;
  let trace = 0;
  for (let i = 0; i < n; i++) {
    meanTerm += (g1.mean[i] - g2.mean[i]) ** 2;
    trace += g1.cov[i * n + i] + g2.cov[i * n + i];
  }
  return meanTerm + trace - 2 * traceSqrt;
}
