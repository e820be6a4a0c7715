// Logging to stderr with levels (journald reads stderr; the "<N>" prefix is its priority).
// Format-checked like printf. libbpf's and libxdp's own messages are routed here one level lower.
#pragma once

#include <atomic>
#include <cstdint>

namespace fulcrum::log {

enum class Level { error = 3, warning = 4, info = 6, debug = 7 };

void set_level(Level level);
Level level();
// Sends libbpf's and libxdp's messages through this logger (warnings become info, info becomes
// debug). Every program that loads or attaches BPF calls it first.
void route_bpf_libraries();

void write(Level level, const char* format, ...) __attribute__((format(printf, 2, 3)));

// For a failure that can repeat on every scrape or event: `if (limit.due()) LOG_WARN(...)` logs it
// at most once a minute per EveryMinute (a static one per call site), so it is never silent and
// never a flood. Thread-safe (scrapes run on the HTTP server's thread).
class EveryMinute {
public:
    bool due();

private:
    std::atomic<std::int64_t> last_{0};  // steady-clock seconds of the last `true`; 0: never
};

}  // namespace fulcrum::log

#define LOG_ERROR(...) ::fulcrum::log::write(::fulcrum::log::Level::error, __VA_ARGS__)
#define LOG_WARN(...) ::fulcrum::log::write(::fulcrum::log::Level::warning, __VA_ARGS__)
#define LOG_INFO(...) ::fulcrum::log::write(::fulcrum::log::Level::info, __VA_ARGS__)
#define LOG_DEBUG(...) ::fulcrum::log::write(::fulcrum::log::Level::debug, __VA_ARGS__)
