// fulcrumd: bring-up in phases (config -> load/adopt -> apply -> attach -> serve), the event
// loop (signals, timers) and shut-down. One object per run.
#pragma once

#include <string>

namespace fulcrum::daemon {

inline constexpr const char* kVersion = "0.1.0";

// Validates FILE and prints every error; touches nothing in the kernel. Returns the exit code.
int check_config(const std::string& path);
// fulcrumd --check --diff: after check_config, asks the fulcrumd running with FILE's control.socket
// what a reload of FILE would change (runs fulcrumctl diff, installed beside fulcrumd).
int check_diff(const std::string& path);
// Withdraws every route fulcrumd announces in FILE's routes.table (protocol 201) and touches nothing
// else: for systemd to run once fulcrumd has stopped for good (withdraw_routes.cpp says why).
// Returns the exit code.
int withdraw_routes(const std::string& path);
// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
int run(const std::string& path);

}  // namespace fulcrum::daemon
