// Symmetric eigenvalues and singular values in double precision, through LAPACK (Debian's
// libopenblas-dev provides liblapack): the spectra the layer analysis and the weight spectra need.
// Matrices here are small to moderate (a text's T x T Gram matrix, a C x C covariance), so
// nothing iterative is hand-written.
#pragma once

#include <cstdint>
#include <vector>

namespace rwkv_embed::analysis {

// Eigenvalues, descending, of the symmetric n x n matrix `a` (row-major; only its lower triangle
// in column-major terms, i.e. its upper triangle row-major, is read). NumericError when LAPACK
// does not converge.
std::vector<double> SymmetricEigenvalues(std::vector<double> a, int64_t n);

// The Gram matrix of the smaller side of x [n, c] (row-major): x x^T [n, n] when n <= c, else
// x^T x [c, c]. Both have the same non-zero eigenvalues (the squared singular values of x). Only
// the triangle SymmetricEigenvalues reads is filled; `*side` receives the size.
std::vector<double> SmallerGram(const double* x, int64_t n, int64_t c, int64_t* side);

// Singular values of x [n, c], descending (min(n, c) of them): square roots of the eigenvalues of
// the smaller Gram matrix, with eigenvalues that rounding made negative read as 0.
std::vector<double> SingularValues(const double* x, int64_t n, int64_t c);

// While alive, BLAS/LAPACK calls run on the calling thread only (OpenBLAS's own thread pool is
// set to 1 and restored after; a no-op with other BLAS libraries). For many small problems solved
// in parallel by the caller: OpenBLAS's threads cost ~4x on a 25 x 25 eigenproblem.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_ = 0;
};

}  // namespace rwkv_embed::analysis
