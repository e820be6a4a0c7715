// fulcrumd: argument parsing only; the daemon is src/daemon/.
#include <cstdio>
#include <cstring>
#include <string>

#include "daemon/daemon.h"

namespace {

int usage(FILE* out, int code)
{
    std::fprintf(out,
                 "usage: fulcrumd [-c FILE] [--check] [--version]\n"
                 "  -c, --config FILE  configuration (default /etc/fulcrum/fulcrum.yaml)\n"
                 "  --check            validate FILE, print every error, exit 1 on any; touch nothing\n"
                 "  --version          print the version\n"
                 "Signals: SIGHUP reloads the file; SIGTERM/SIGINT stop the daemon.\n");
    return code;
}

}  // namespace

int main(int argc, char** argv)
{
    std::string path = "/etc/fulcrum/fulcrum.yaml";
    bool check = false;
    for (int i = 1; i < argc; i++) {
        std::string arg = argv[i];
        if ((arg == "-c" || arg == "--config") && i + 1 < argc)
            path = argv[++i];
        else if (arg == "--check")
            check = true;
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
    return check ? fulcrum::daemon::check_config(path) : fulcrum::daemon::run(path);
}
