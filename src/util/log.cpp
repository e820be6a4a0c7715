// Logger: one line per message on stderr, "<priority>level: message".
#include "util/log.h"

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

namespace fulcrum::log {
namespace {

Level g_level = Level::info;

const char* name(Level l)
{
    switch (l) {
    case Level::error: return "error";
    case Level::warning: return "warning";
    case Level::info: return "info";
    case Level::debug: return "debug";
    }
    return "?";
}

void vwrite(Level l, const char* format, va_list args)
{
    if (static_cast<int>(l) > static_cast<int>(g_level))
        return;
    char message[2048];
    std::vsnprintf(message, sizeof message, format, args);
    std::size_t n = std::strlen(message);
    while (n > 0 && message[n - 1] == '\n')
        message[--n] = '\0';
    std::fprintf(stderr, "<%d>%s: %s\n", static_cast<int>(l), name(l), message);
}

int libbpf_printer(enum libbpf_print_level level, const char* format, va_list args)
{
    Level l = level == LIBBPF_WARN ? Level::info : Level::debug;
    vwrite(l, format, args);  // libbpf's messages start with "libbpf: " already
    return 0;
}

int libxdp_printer(enum libxdp_print_level level, const char* format, va_list args)
{
    Level l = level == LIBXDP_WARN ? Level::info : Level::debug;
    vwrite(l, format, args);  // libxdp's messages start with "libxdp: " already, as libbpf's do
    return 0;
}

}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
void route_bpf_libraries()
{
    libbpf_set_print(libbpf_printer);
    libxdp_set_print(libxdp_printer);
}

bool EveryMinute::due()
{
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now().time_since_epoch()).count();
    std::int64_t last = last_.load();
    return (last == 0 || now - last >= 60) && last_.compare_exchange_strong(last, now);
}

void write(Level l, const char* format, ...)
{
    va_list args;
    va_start(args, format);
    vwrite(l, format, args);
    va_end(args);
}

}  // namespace fulcrum::log
