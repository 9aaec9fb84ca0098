#include "methods/linalg.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/random.h"

namespace rwkv_embed::methods {
namespace {

// Directions with less variance than this share of the largest are rounding noise of float input
// (relative rounding 2^-24 per value: variance noise ~ d * 2^-48 of the total), and are dropped.
constexpr double kRelativeVarianceFloor = 1e-9;

// Householder reduction of the symmetric matrix held in v (n x n, row-major) to tridiagonal form:
// diagonal in d, sub-diagonal in e[1..n-1]; v receives the accumulated orthogonal transformation.
void Tridiagonalize(std::vector<double>& v, int64_t n, std::vector<double>& d,
                    std::vector<double>& e) {
  auto V = [&](int64_t r, int64_t c) -> double& { return v[r * n + c]; };
  for (int64_t j = 0; j < n; ++j) d[j] = V(n - 1, j);
  for (int64_t i = n - 1; i > 0; --i) {
    double scale = 0, h = 0;
    for (int64_t k = 0; k < i; ++k) scale += std::abs(d[k]);
    if (scale == 0) {
      e[i] = d[i - 1];
      for (int64_t j = 0; j < i; ++j) {
        d[j] = V(i - 1, j);
        V(i, j) = 0;
        V(j, i) = 0;
      }
    } else {
      for (int64_t k = 0; k < i; ++k) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1];
      double g = f > 0 ? -std::sqrt(h) : std::sqrt(h);
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (int64_t j = 0; j < i; ++j) e[j] = 0;
      for (int64_t j = 0; j < i; ++j) {
        f = d[j];
        V(j, i) = f;
        g = e[j] + V(j, j) * f;
        for (int64_t k = j + 1; k <= i - 1; ++k) {
          g += V(k, j) * d[k];
          e[k] += V(k, j) * f;
        }
        e[j] = g;
      }
      f = 0;
      for (int64_t j = 0; j < i; ++j) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const double hh = f / (h + h);
      for (int64_t j = 0; j < i; ++j) e[j] -= hh * d[j];
      for (int64_t j = 0; j < i; ++j) {
        f = d[j];
        g = e[j];
        for (int64_t k = j; k <= i - 1; ++k) V(k, j) -= (f * e[k] + g * d[k]);
        d[j] = V(i - 1, j);
        V(i, j) = 0;
      }
    }
    d[i] = h;
  }
  for (int64_t i = 0; i < n - 1; ++i) {
    V(n - 1, i) = V(i, i);
    V(i, i) = 1;
    const double h = d[i + 1];
    if (h != 0) {
      for (int64_t k = 0; k <= i; ++k) d[k] = V(k, i + 1) / h;
      for (int64_t j = 0; j <= i; ++j) {
        double g = 0;
        for (int64_t k = 0; k <= i; ++k) g += V(k, i + 1) * V(k, j);
        for (int64_t k = 0; k <= i; ++k) V(k, j) -= g * d[k];
      }
    }
    for (int64_t k = 0; k <= i; ++k) V(k, i + 1) = 0;
  }
  for (int64_t j = 0; j < n; ++j) {
    d[j] = V(n - 1, j);
    V(n - 1, j) = 0;
  }
  V(n - 1, n - 1) = 1;
  e[0] = 0;
}

// Implicit QL iterations on the tridiagonal (d, e), applying the rotations to v's columns.
void TridiagonalQl(std::vector<double>& v, int64_t n, std::vector<double>& d,
                   std::vector<double>& e) {
  auto V = [&](int64_t r, int64_t c) -> double& { return v[r * n + c]; };
  for (int64_t i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0;
  double f = 0, tst1 = 0;
  const double eps = std::ldexp(1.0, -52);
  for (int64_t l = 0; l < n; ++l) {
    tst1 = std::max(tst1, std::abs(d[l]) + std::abs(e[l]));
    int64_t m = l;
    while (m < n - 1 && std::abs(e[m]) > eps * tst1) ++m;
    if (m > l) {
      int iterations = 0;
      do {
        if (++iterations > 60) throw NumericError("symmetric eigensolver did not converge");
        double g = d[l];
        double p = (d[l + 1] - g) / (2 * e[l]);
        double r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (int64_t i = l + 2; i < n; ++i) d[i] -= h;
        f += h;
        p = d[m];
        double c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        const double el1 = e[l + 1];
        for (int64_t i = m - 1; i >= l; --i) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (int64_t k = 0; k < n; ++k) {
            h = V(k, i + 1);
            V(k, i + 1) = s * V(k, i) + c * h;
            V(k, i) = c * V(k, i) - s * h;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

}  // namespace

SymmetricEigen EigenSymmetric(std::span<const double> a, int64_t n) {
  if (n < 1 || static_cast<int64_t>(a.size()) != n * n) {
    throw ShapeError("EigenSymmetric: expected an n x n matrix");
  }
  std::vector<double> v(a.begin(), a.end()), d(n), e(n);
  if (n > 1) {
    Tridiagonalize(v, n, d, e);
    TridiagonalQl(v, n, d, e);
  } else {
    d[0] = a[0];
    v[0] = 1;
  }
  // v's columns are the eigenvectors; return them as rows, by descending eigenvalue.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return d[x] > d[y]; });
  SymmetricEigen out;
  out.values.resize(n);
  out.vectors.resize(n * n);
  for (int64_t i = 0; i < n; ++i) {
    out.values[i] = d[order[i]];
    for (int64_t k = 0; k < n; ++k) out.vectors[i * n + k] = v[k * n + order[i]];
  }
  return out;
}

namespace {

// Orthonormalises the columns of y (rows x cols, row-major) in place (modified Gram-Schmidt,
// twice for stability); a column that vanishes is left zero.
void Orthonormalize(std::vector<double>& y, int64_t rows, int64_t cols) {
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t i = 0; i < j; ++i) {
        double dot = 0;
        for (int64_t r = 0; r < rows; ++r) dot += y[r * cols + i] * y[r * cols + j];
        for (int64_t r = 0; r < rows; ++r) y[r * cols + j] -= dot * y[r * cols + i];
      }
      double norm = 0;
      for (int64_t r = 0; r < rows; ++r) norm += y[r * cols + j] * y[r * cols + j];
      norm = std::sqrt(norm);
      for (int64_t r = 0; r < rows; ++r)
        y[r * cols + j] = norm > 1e-300 ? y[r * cols + j] / norm : 0;
    }
  }
}

// A standard normal draw from two uniform 53-bit draws (Box-Muller).
double Gaussian(PortableRng& rng) {
  const double u1 = (static_cast<double>(rng.Next() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(rng.Next() >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Top-k principal components by randomized subspace iteration (Halko, Martinsson & Tropp 2011,
// Algorithm 4.4: 10 oversampling columns, 4 power iterations, a fixed seed): exact for data of
// rank <= k + 10, and O(n d (k + 10)) per iteration on the float rows, without a copy.
void RandomizedComponents(const std::vector<const float*>& rows, int64_t d, int64_t k,
                          PrincipalComponents* pc) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t l = std::min<int64_t>(k + 10, std::min(n, d));
  const std::vector<double>& mu = pc->mean;
  PortableRng rng(0x5eed);
  std::vector<double> z(d * l), y(n * l);
  for (double& v : z) v = Gaussian(rng);
  auto times = [&](const std::vector<double>& zz, std::vector<double>& yy) {  // y = Xc z
    std::vector<double> muz(l, 0.0);
    for (int64_t c = 0; c < d; ++c) {
      for (int64_t j = 0; j < l; ++j) muz[j] += mu[c] * zz[c * l + j];
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < l; ++j) yy[i * l + j] = -muz[j];
      for (int64_t c = 0; c < d; ++c) {
        const double x = rows[i][c];
        for (int64_t j = 0; j < l; ++j) yy[i * l + j] += x * zz[c * l + j];
      }
    }
  };
  auto times_t = [&](const std::vector<double>& yy, std::vector<double>& zz) {  // z = Xc^T y
    std::vector<double> ysum(l, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < l; ++j) ysum[j] += yy[i * l + j];
    }
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < d; ++c) {
      for (int64_t j = 0; j < l; ++j) zz[c * l + j] = -mu[c] * ysum[j];
      for (int64_t i = 0; i < n; ++i) {
        const double x = rows[i][c];
        for (int64_t j = 0; j < l; ++j) zz[c * l + j] += x * yy[i * l + j];
      }
    }
  };
  times(z, y);
  Orthonormalize(y, n, l);
  for (int it = 0; it < 4; ++it) {
    times_t(y, z);
    Orthonormalize(z, d, l);
    times(z, y);
    Orthonormalize(y, n, l);
  }
  times_t(y, z);  // z = Xc^T Q: [d, l]; Xc^T Xc restricted to span(z) has Gram z^T z
  std::vector<double> small(l * l, 0.0);
  for (int64_t a = 0; a < l; ++a) {
    for (int64_t b = a; b < l; ++b) {
      double s = 0;
      for (int64_t c = 0; c < d; ++c) s += z[c * l + a] * z[c * l + b];
      small[a * l + b] = small[b * l + a] = s;
    }
  }
  const SymmetricEigen eig = EigenSymmetric(small, l);
  const double tol = std::max(eig.values[0], 0.0) * kRelativeVarianceFloor;
  for (int64_t i = 0; i < std::min(k, l) && eig.values[i] > tol; ++i) {
    // Xc^T Q = U S W^T with Q^T Xc Xc^T Q = W S^2 W^T: u_i = (Xc^T Q) w_i / s_i.
    pc->variances.push_back(eig.values[i] / static_cast<double>(n));
    const double s = std::sqrt(eig.values[i]);
    for (int64_t c = 0; c < d; ++c) {
      double u = 0;
      for (int64_t j = 0; j < l; ++j) u += z[c * l + j] * eig.vectors[i * l + j];
      pc->directions.push_back(u / s);
    }
  }
}

}  // namespace

PrincipalComponents FitPrincipalComponents(const std::vector<const float*>& rows, int64_t d,
                                           int64_t k) {
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n < 2) throw DataError("principal components need at least 2 rows, got " + std::to_string(n));
  PrincipalComponents pc;
  pc.mean.assign(d, 0.0);
  for (const float* r : rows) {
    for (int64_t c = 0; c < d; ++c) pc.mean[c] += r[c];
  }
  for (double& m : pc.mean) m /= static_cast<double>(n);
  const bool covariance = d <= n && d <= kExactCovarianceDims;
  if (!covariance && 2 * k <= std::min(n, d)) {
    RandomizedComponents(rows, d, k, &pc);
    return pc;
  }
  std::vector<double> x(n * d);  // centred rows
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < d; ++c) x[i * d + c] = rows[i][c] - pc.mean[c];
  }
  const int64_t m = covariance ? d : n;
  std::vector<double> g(m * m, 0.0);
  if (covariance) {
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t i = 0; i < n; ++i) {
        const double xa = x[i * d + a];
        if (xa == 0) continue;
        const double* xi = &x[i * d];
        for (int64_t b = a; b < d; ++b) g[a * d + b] += xa * xi[b];
      }
    }
  } else {
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t a = 0; a < n; ++a) {
      for (int64_t b = a; b < n; ++b) {
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += x[a * d + c] * x[b * d + c];
        g[a * n + b] = s;
      }
    }
  }
  for (int64_t a = 0; a < m; ++a) {
    for (int64_t b = a; b < m; ++b) {
      g[a * m + b] /= static_cast<double>(n);
      g[b * m + a] = g[a * m + b];
    }
  }
  const SymmetricEigen eig = EigenSymmetric(g, m);
  const double tol = std::max(eig.values[0], 0.0) * kRelativeVarianceFloor;
  for (int64_t i = 0; i < std::min(k, m) && eig.values[i] > tol; ++i) {
    pc.variances.push_back(eig.values[i]);
    const double* w = &eig.vectors[i * m];
    if (covariance) {
      pc.directions.insert(pc.directions.end(), w, w + d);
    } else {
      // u = X^T w / |X^T w|; |X^T w|^2 = n * lambda.
      std::vector<double> u(d, 0.0);
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < d; ++c) u[c] += w[r] * x[r * d + c];
      }
      const double norm = std::sqrt(static_cast<double>(n) * eig.values[i]);
      for (double& uc : u) uc /= norm;
      pc.directions.insert(pc.directions.end(), u.begin(), u.end());
    }
  }
  return pc;
}

}  // namespace rwkv_embed::methods
