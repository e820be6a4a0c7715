// fulcrum-vip-routes-tool: drives routes::VipRoutes from the command line, for the BGP system test
// (tests/system/test_bgp_routes.py) until fulcrumd's health checks call it themselves.
//
//   fulcrum-vip-routes-tool TABLE NEED [COMMAND...]
//     COMMAND: sync [VIP=HEALTHY]...   one entry per service (a VIP may repeat: several services)
//              withdraw                withdraw_all()
//   With a COMMAND: runs it once and exits. Without: reads one COMMAND per line on stdin, answers
//   "ok" or "error: MESSAGE" on stdout per line (the process keeps its VipRoutes, like fulcrumd).
//   Exit status: 0, or 1 if a command failed (one-shot) / 2 on bad usage.
#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "routes/vip_routes.h"
#include "util/log.h"

using namespace fulcrum;

namespace {

Status run(routes::VipRoutes& r, const std::vector<std::string>& words)
{
    if (words.empty())
        return Status::failure("empty command");
    if (words[0] == "withdraw" && words.size() == 1)
        return r.withdraw_all();
    if (words[0] != "sync")
        return Status::failure("unknown command \"" + words[0] + "\" (sync VIP=N... | withdraw)");
    std::vector<routes::ServiceRoute> services;
    for (std::size_t i = 1; i < words.size(); ++i) {
        auto eq = words[i].find('=');
        if (eq == std::string::npos)
            return Status::failure("expected VIP=HEALTHY, got \"" + words[i] + "\"");
        routes::ServiceRoute s;
        s.vip.text = words[i].substr(0, eq);
        s.vip.family = s.vip.text.find(':') == std::string::npos ? AF_INET : AF_INET6;
        if (inet_pton(s.vip.family, s.vip.text.c_str(), s.vip.bytes) != 1)
            return Status::failure("not an address: \"" + s.vip.text + "\"");
        s.healthy = static_cast<std::uint32_t>(std::strtoul(words[i].c_str() + eq + 1, nullptr, 10));
        services.push_back(s);
    }
    return r.sync(services);
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s TABLE NEED [sync VIP=HEALTHY... | withdraw]\n", argv[0]);
        return 2;
    }
    routes::VipRoutes r(static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 10)),
                        static_cast<std::uint32_t>(std::strtoul(argv[2], nullptr, 10)));
    if (argc > 3) {
        Status s = run(r, std::vector<std::string>(argv + 3, argv + argc));
        if (!s.ok())
            std::fprintf(stderr, "%s\n", s.message().c_str());
        return s.ok() ? 0 : 1;
    }
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::vector<std::string> words;
        for (std::string w; in >> w;)
            words.push_back(w);
        if (words.empty())
            continue;
        if (words[0] == "quit")
            break;
        Status s = run(r, words);
        std::printf("%s\n", s.ok() ? "ok" : ("error: " + s.message()).c_str());
        std::fflush(stdout);
    }
    return 0;
}
