// Starting another program from the benchmark (`bench --mpi` runs `mpirun ... rwkv-embed-mpi`):
// argv vectors handed to posix_spawn, never a command line put together for a shell, so paths with
// spaces or quotes need no quoting and cannot run anything else.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace rwkv_embed::bench {

// How a child ended: exit_code 0..255 when it exited, else signal > 0 (exit_code is then -1).
struct ChildExit {
  int exit_code = -1;
  int signal = 0;
  bool Succeeded() const { return signal == 0 && exit_code == 0; }
  std::string Describe() const;  // "exited with code 6" | "was killed by signal 9 (Killed)"
};

// Runs argv[0] (a path; see FindExecutable) with `argv` and this process's environment, in which
// every "NAME=value" of `env_overrides` replaces the variable of that name, and waits for it. Its
// stdin is /dev/null and its stdout goes to this process's stderr (this process's stdout carries
// the report); its stderr is this process's. Throws IoError when it cannot be started.
ChildExit RunChild(const std::vector<std::string>& argv,
                   const std::vector<std::string>& env_overrides = {});

// `name` when it contains a '/' (checked as is), else the first match in $PATH: an executable
// regular file. Empty when there is none.
std::filesystem::path FindExecutable(const std::string& name);

// This process's executable (/proc/self/exe). Throws IoError when it cannot be read.
std::filesystem::path SelfExecutable();

}  // namespace rwkv_embed::bench
