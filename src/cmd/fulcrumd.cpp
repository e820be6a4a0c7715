// fulcrumd: argument parsing only; the daemon is src/daemon/.
#include <cstdio>
#include <cstring>
#include <string>

#include "daemon/daemon.h"

namespace {

int usage(FILE* out, int code)
{
    std::fprintf(out,
                 "usage: fulcrumd [-c FILE] [--check [--diff] | --withdraw-routes] [--version]\n"
                 "  -c, --config FILE  configuration (default /etc/fulcrum/fulcrum.yaml)\n"
                 "  --check            validate FILE, print every error, exit 1 on any; touch nothing\n"
                 "  --diff             with --check: then print what a reload of FILE would change in the\n"
                 "                     fulcrumd running with FILE's control.socket (fulcrumctl diff)\n"
                 "  --withdraw-routes  withdraw the VIP routes of FILE's routes.table (protocol 201), touch\n"
                 "                     nothing else; systemd runs it when fulcrumd stops for good\n"
                 "  --version          print the version\n"
                 "Signals: SIGHUP reloads the file; SIGTERM/SIGINT stop the daemon.\n");
    return code;
}

}  // namespace

int main(int argc, char** argv)
{
    std::string path = "/etc/fulcrum/fulcrum.yaml";
    enum class Mode { run, check, withdraw_routes } mode = Mode::run;
    bool diff = false;
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        if ((arg == "-c" || arg == "--config") && i + 1 < argc)
            path = argv[++i];
        else if (arg == "--check")
            mode = Mode::check;
        else if (arg == "--diff")
            diff = true;
        else if (arg == "--withdraw-routes")
            mode = Mode::withdraw_routes;
        else if (arg == "--version") {
            std::printf("fulcrumd %s\n", fulcrum::daemon::kVersion);
            return 0;
        } else if (arg == "-h" || arg == "--help")
            return usage(stdout, 0);
        else {
            std::fprintf(stderr, "fulcrumd: unknown argument \"%s\"\n", arg.c_str());
            return usage(stderr, 2);
        }
    }
    if (diff && mode != Mode::check) {
        std::fprintf(stderr, "fulcrumd: --diff goes with --check\n");
        return usage(stderr, 2);
    }
    switch (mode) {
    case Mode::check:
        if (int rc = fulcrum::daemon::check_config(path); rc != 0 || !diff)
            return rc;
        return fulcrum::daemon::check_diff(path);
    case Mode::withdraw_routes: return fulcrum::daemon::withdraw_routes(path);
    case Mode::run: break;
    }
    return fulcrum::daemon::run(path);
}
