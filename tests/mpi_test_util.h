// Helpers shared by the tests that run rwkv-embed-mpi under mpirun against plain rwkv-embed
// (mpi_embed_test.cc, mpi_sweep_test.cc): the mpirun command line and GEMM caches that pin every
// process to one GEMM path, so that results can be compared bit for bit.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kernels/gemm.h"

namespace rwkv_embed::testing {

// `mpiexec -np RANKS` with what several ranks on this one machine need (Open MPI; root needs
// --allow-run-as-root), shell-quoted.
std::string MpirunCommand(const std::string& mpiexec, int ranks);

// "env RWKV_EMBED_CACHE_DIR=CACHE ", to put before a command.
std::string WithGemmCache(const std::filesystem::path& cache);

// A GEMM cache in the fresh folder `dir` that names `path` for every weight shape of `models`
// (the shapes met by one embedding in this process): `auto` runs then take that path. Returns dir.
std::filesystem::path GemmCacheChoosing(kernels::GemmPath path,
                                        const std::vector<std::filesystem::path>& models,
                                        const std::filesystem::path& dir);

// The F32 GEMM paths this CPU runs, fastest kinds first.
std::vector<kernels::GemmPath> AvailableF32GemmPaths();

}  // namespace rwkv_embed::testing
