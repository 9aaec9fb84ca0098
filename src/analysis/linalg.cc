#include "analysis/linalg.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <string>

#include "core/error.h"

// The Fortran BLAS/LAPACK entry points (column-major; character arguments carry hidden lengths).
extern "C" {
void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* beta, double* c, const int* ldc,
            size_t uplo_len, size_t trans_len);
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info,
             size_t jobz_len, size_t uplo_len);
// OpenBLAS's thread-count controls; weak, so any other BLAS links too (they are then null).
void openblas_set_num_threads(int n) __attribute__((weak));
int openblas_get_num_threads() __attribute__((weak));
}

namespace rwkv_embed::analysis {
namespace {

int CheckedInt(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) {
    throw ShapeError(std::string("linear algebra: ") + what + " " + std::to_string(v) +
                     " exceeds LAPACK's 32-bit sizes");
  }
  return static_cast<int>(v);
}

}  // namespace

std::vector<double> SymmetricEigenvalues(std::vector<double> a, int64_t n) {
  if (n == 0) return {};
  if (static_cast<int64_t>(a.size()) != n * n) {
    throw ShapeError("SymmetricEigenvalues: " + std::to_string(a.size()) + " values for a " +
                     std::to_string(n) + " x " + std::to_string(n) + " matrix");
  }
  const int ni = CheckedInt(n, "matrix size");
  std::vector<double> w(n);
  // Eigenvalues only: LAPACK's documented minimum workspace for jobz = 'N'.
  const int lwork = 2 * ni + 1, liwork = 1;
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  int info = 0;
  dsyevd_("N", "L", &ni, a.data(), &ni, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info,
          1, 1);
  if (info != 0) {
    throw NumericError("LAPACK dsyevd failed on a " + std::to_string(n) + " x " +
                       std::to_string(n) + " symmetric matrix (info " + std::to_string(info) +
                       (info > 0 ? ": no convergence; the input may hold NaN/Inf)" : ")"));
  }
  std::reverse(w.begin(), w.end());  // LAPACK: ascending
  return w;
}

std::vector<double> SmallerGram(const double* x, int64_t n, int64_t c, int64_t* side) {
  // Row-major x [n, c] is column-major x^T [c, n] with leading dimension c.
  const bool rows = n <= c;
  const int64_t m = rows ? n : c;
  *side = m;
  std::vector<double> g(m * m, 0.0);
  if (m == 0) return g;
  const int mi = CheckedInt(m, "Gram size"), ki = CheckedInt(rows ? c : n, "inner size");
  const int lda = CheckedInt(c, "row length");
  const double one = 1.0, zero = 0.0;
  // rows: G = (x^T)^T x^T = x x^T; columns: G = x^T (x^T)^T = x^T x.
  dsyrk_("L", rows ? "T" : "N", &mi, &ki, &one, x, &lda, &zero, g.data(), &mi, 1, 1);
  return g;
}

std::vector<double> SingularValues(const double* x, int64_t n, int64_t c) {
  int64_t m = 0;
  std::vector<double> g = SmallerGram(x, n, c, &m);
  std::vector<double> s = SymmetricEigenvalues(std::move(g), m);
  for (double& v : s) v = v > 0.0 ? std::sqrt(v) : 0.0;
  return s;
}

SingleThreadedBlas::SingleThreadedBlas() {
  if (openblas_set_num_threads != nullptr && openblas_get_num_threads != nullptr) {
    saved_ = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (saved_ > 0) openblas_set_num_threads(saved_);
}

}  // namespace rwkv_embed::analysis
