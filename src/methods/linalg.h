// Dense symmetric eigendecomposition and principal components, in double precision, for the
// fitted post-processing of embeddings (whitening, all-but-the-top, PCA) and trained poolings.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace rwkv_embed::methods {

// Eigenvalues (descending) and unit eigenvectors of the symmetric n x n matrix `a` (row-major;
// only symmetric input is meaningful). vectors[i * n + k] = component k of eigenvector i.
// Householder reduction to tridiagonal form, then the implicit QL algorithm (Wilkinson & Reinsch,
// Handbook for Automatic Computation II, tred2/tql2): O(n^3), accurate to rounding.
struct SymmetricEigen {
  std::vector<double> values;
  std::vector<double> vectors;
};
SymmetricEigen EigenSymmetric(std::span<const double> a, int64_t n);

// Principal components of a set of d-dimensional rows: their mean, and the top k directions of
// the centred rows (unit vectors, by descending variance) with their variances (divided by the
// number of rows). Exact from the d x d covariance when d <= rows and d <= kExactCovarianceDims;
// otherwise, for k <= min(rows, d) / 2, by seeded randomized subspace iteration on the rows as
// given (no copy: a 10^5-dimensional state costs O(rows d k)), else exact from the rows x rows
// Gram matrix. Directions of zero variance (rank < k) are dropped: `variances.size()` may be
// below k.
inline constexpr int64_t kExactCovarianceDims = 2048;

struct PrincipalComponents {
  std::vector<double> mean;        // [d]
  std::vector<double> variances;   // [k'] descending, > 0
  std::vector<double> directions;  // [k', d]
};
PrincipalComponents FitPrincipalComponents(const std::vector<const float*>& rows, int64_t d,
                                           int64_t k);

}  // namespace rwkv_embed::methods
