// The MPI build of the CLI (rwkv-embed-mpi): the same commands as rwkv-embed, with `embed`
// sharded over the ranks of MPI_COMM_WORLD (sharded_embed.cc). Kept out of the rwkv-embed binary
// so that the single-machine program never needs libmpi at run time (docs/mpi.md).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace rwkv_embed::mpi {

// Adds the MPI-only options (embed --shard-bytes; eval, reproduce, ablate --schedule), makes
// `embed` run sharded and `eval`, `reproduce` and `ablate` spread their work over the ranks
// (InstallSweepHook).
void AddMpiOptions(CLI::App& app);

// Runs the chosen command between MPI_Init_thread and MPI_Finalize. `embed`, `eval`,
// `reproduce` and `ablate` run on every rank; any other command runs on rank 0 only. An error on
// any rank is printed with its rank and ends the whole job (MPI_Abort with the error's exit code);
// a single-rank run rethrows it instead.
int RunUnderMpi(const std::string& command, const std::function<int()>& run);

// Which commands run on every rank (the others run on rank 0 alone).
bool RunsOnEveryRank(const std::string& command);

// eval and reproduce: method groups, ablate: passes, dealt over the ranks and gathered on rank 0
// (sweep.cc).
void InstallSweepHook();

// The embed runner installed by AddMpiOptions (sharded_embed.cc).
struct ShardOptions {
  int64_t shard_bytes = 0;  // 0: chosen from the input size and the number of ranks
};
ShardOptions& GetShardOptions();

// eval / reproduce / ablate --schedule: how the units reach the ranks (sweep.cc).
struct SweepOptions {
  std::string schedule = "dynamic";  // dynamic | round-robin
};
SweepOptions& GetSweepOptions();

}  // namespace rwkv_embed::mpi
