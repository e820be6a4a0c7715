// Logging to stderr with levels (journald reads stderr; the "<N>" prefix is its priority).
// Format-checked like printf. libbpf's and libxdp's own messages are routed here one level lower.
#pragma once

namespace fulcrum::log {

enum class Level { error = 3, warning = 4, info = 6, debug = 7 };

void set_level(Level level);
Level level();
// Sends libbpf's and libxdp's messages through this logger (warnings become info, info becomes
// debug). Every program that loads or attaches BPF calls it first.
void route_bpf_libraries();

void write(Level level, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace fulcrum::log

#define LOG_ERROR(...) ::fulcrum::log::write(::fulcrum::log::Level::error, __VA_ARGS__)
#define LOG_WARN(...) ::fulcrum::log::write(::fulcrum::log::Level::warning, __VA_ARGS__)
#define LOG_INFO(...) ::fulcrum::log::write(::fulcrum::log::Level::info, __VA_ARGS__)
#define LOG_DEBUG(...) ::fulcrum::log::write(::fulcrum::log::Level::debug, __VA_ARGS__)
