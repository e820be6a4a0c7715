// fulcrum-decap: attaches Fulcrum's decap XDP program (xdp/decap.bpf.c) to a backend's interface,
// so packets the balancer tunnelled to this host lose their outer header, and shows or removes it.
// The program and its maps are pinned under PIN_PATH/IFACE/ so that a later `status` or `detach`
// (another process) finds them; the XDP attachment itself outlives this process.
#include <getopt.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "abi.h"
#include "cmd/decap_state.h"
#include "dataplane/bpffs.h"
#include "dataplane/decap_program.h"
#include "dataplane/reasons.h"
#include "dataplane/xdp_attach.h"
#include "util/log.h"

namespace fulcrum::decap {
namespace {

constexpr const char* kDefaultPinPath = "/sys/fs/bpf/fulcrum-decap";
constexpr int kExitOk = 0, kExitFailure = 1, kExitUsage = 2;

const char kSynopsis[] =
    "usage: fulcrum-decap attach IFACE [--mode native|generic] [--address ADDR]... [--pin-path DIR]\n"
    "       fulcrum-decap detach IFACE [--pin-path DIR]\n"
    "       fulcrum-decap status [--pin-path DIR] [--json]\n";
const char kUsage[] =
    "\n"
    "Strips Fulcrum's tunnel header (IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6) from packets sent to\n"
    "this host's tunnel addresses, in XDP on IFACE, and hands the inner packet to the stack.\n"
    "\n"
    "  attach   load the decap program, fill its tunnel addresses, attach it to IFACE and pin it\n"
    "           under DIR/IFACE/; replaces a decap program already on IFACE\n"
    "  detach   detach the decap program from IFACE and remove its pins (exit 1 if none)\n"
    "  status   for each pinned interface: attached program, tunnel addresses, counters\n"
    "\n"
    "  --mode native|generic  XDP mode (default native)\n"
    "  --address ADDR         a tunnel address (IPv4 or IPv6), repeatable; default: every address\n"
    "                         on this host except loopback and IPv6 link-local\n"
    "  --pin-path DIR         where the pins live, on a BPF filesystem (mounted there if it is not\n"
    "                         one); default /sys/fs/bpf/fulcrum-decap\n"
    "  --json                 status as JSON\n"
    "  -v, --verbose          debug logging (libbpf and libxdp messages)\n"
    "  -h, --help             this text\n"
    "Exit status: 0 done, 1 failed, 2 usage error.\n";

struct Options {
    std::string command;
    std::string interface;
    dataplane::XdpMode mode = dataplane::XdpMode::native;
    bool mode_given = false;
    std::vector<fulcrum_decap_key> addresses;
    std::string pin_path = kDefaultPinPath;
    bool json = false;
};

int usage_error(const std::string& message)
{
    std::fprintf(stderr, "fulcrum-decap: %s\n%s(fulcrum-decap --help for more)\n", message.c_str(), kSynopsis);
    return kExitUsage;
}

int failure(const std::string& message)
{
    std::fprintf(stderr, "fulcrum-decap: %s\n", message.c_str());
    return kExitFailure;
}

// libxdp's own messages, through our logger one level lower (like libbpf's, see util/log.h).
int libxdp_printer(enum libxdp_print_level level, const char* format, va_list args)
{
    char message[1024];
    std::vsnprintf(message, sizeof message, format, args);
    if (level == LIBXDP_WARN)
        LOG_INFO("libxdp: %s", message);
    else
        LOG_DEBUG("libxdp: %s", message);
    return 0;
}

// Parses argv into *options; returns -1 to go on, else the exit status (help or usage error).
int parse(int argc, char** argv, Options* options)
{
    enum { kMode = 1000, kAddress, kPinPath, kJson };
    static const option long_options[] = {
        {"mode", required_argument, nullptr, kMode},
        {"address", required_argument, nullptr, kAddress},
        {"pin-path", required_argument, nullptr, kPinPath},
        {"json", no_argument, nullptr, kJson},
        {"verbose", no_argument, nullptr, 'v'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    std::vector<std::string> positional;
    bool saw_address = false;
    opterr = 0;
    // "-" first: positional arguments come back as option 1, so options may follow IFACE.
    for (;;) {
        int c = getopt_long(argc, argv, "-:vh", long_options, nullptr);
        if (c == -1)
            break;
        switch (c) {
        case 1:
            positional.emplace_back(optarg);
            break;
        case kMode:
            if (std::strcmp(optarg, "native") == 0)
                options->mode = dataplane::XdpMode::native;
            else if (std::strcmp(optarg, "generic") == 0)
                options->mode = dataplane::XdpMode::generic;
            else
                return usage_error(std::string("--mode: expected native or generic, got '") + optarg + "'");
            options->mode_given = true;
            break;
        case kAddress: {
            fulcrum_decap_key key{};
            if (!parse_address(optarg, &key))
                return usage_error(std::string("--address: not an IPv4 or IPv6 address: '") + optarg + "'");
            saw_address = true;
            bool duplicate = false;
            for (const auto& k : options->addresses)
                duplicate = duplicate || same_address(k, key);
            if (!duplicate)
                options->addresses.push_back(key);
            break;
        }
        case kPinPath:
            if (*optarg == '\0')
                return usage_error("--pin-path: empty path");
            options->pin_path = optarg;
            break;
        case kJson:
            options->json = true;
            break;
        case 'v':
            log::set_level(log::Level::debug);
            break;
        case 'h':
            std::fputs(kSynopsis, stdout);
            std::fputs(kUsage, stdout);
            return kExitOk;
        case ':':
            return usage_error(std::string("option ") + argv[optind - 1] + " needs a value");
        default:
            return usage_error(std::string("unknown option ") + argv[optind - 1]);
        }
    }
    if (positional.empty())
        return usage_error("no command given");
    options->command = positional[0];
    const std::string& cmd = options->command;
    if (cmd != "attach" && cmd != "detach" && cmd != "status")
        return usage_error("unknown command '" + cmd + "'");
    std::size_t want = cmd == "status" ? 1 : 2;
    if (positional.size() < want)
        return usage_error(cmd + ": which interface?");
    if (positional.size() > want)
        return usage_error(cmd + ": unexpected argument '" + positional[want] + "'");
    if (want == 2) {
        options->interface = positional[1];
        if (options->interface.empty() || options->interface.size() >= IF_NAMESIZE ||
            options->interface.find('/') != std::string::npos || options->interface == "." ||
            options->interface == "..")
            return usage_error(cmd + ": not an interface name: '" + options->interface + "'");
    }
    if (cmd != "attach" && (options->mode_given || saw_address))
        return usage_error(cmd + ": --mode and --address are for attach only");
    if (cmd != "status" && options->json)
        return usage_error(cmd + ": --json is for status only");
    if (saw_address && options->addresses.size() > FULCRUM_DECAP_MAX_ADDRS)
        return usage_error("attach: at most " + std::to_string(FULCRUM_DECAP_MAX_ADDRS) + " tunnel addresses");
    return -1;
}

// The deepest existing directory on the way to path (path itself if it exists).
std::string existing_ancestor(const std::string& path)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path p = fs::absolute(path, ec);
    while (!fs::exists(p, ec) && p.has_parent_path() && p != p.parent_path())
        p = p.parent_path();
    return p.string();
}

int attach(const Options& o)
{
    const std::string& iface = o.interface;
    int ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    if (ifindex == 0)
        return failure("xdp: cannot attach decap to " + iface + ": " + std::strerror(errno));

    // Tunnel addresses: given, or every address of this host.
    std::vector<fulcrum_decap_key> addresses = o.addresses;
    if (addresses.empty()) {
        Status error;
        addresses = host_tunnel_addresses(&error);
        if (!error.ok())
            return failure(error.message());
        if (addresses.empty())
            return failure("addresses: this host has no IPv4/IPv6 address other than loopback and link-local; "
                           "give the tunnel addresses with --address");
        if (addresses.size() > FULCRUM_DECAP_MAX_ADDRS)
            return failure("addresses: this host has " + std::to_string(addresses.size()) +
                           " addresses, decap_addrs holds " + std::to_string(FULCRUM_DECAP_MAX_ADDRS) +
                           "; give the tunnel addresses with --address");
    }

    // What is there already: our program (replace it) or someone else's (refuse, unless libxdp's
    // dispatcher can run both).
    const std::string dir = pin_dir(o.pin_path, iface);
    Pins old_pins = open_pins(dir);
    unsigned old_pinned_id = program_id(old_pins.program.get());
    Attachment before = read_attachment(ifindex);
    const AttachedProgram* old = before.find_decap(old_pinned_id);
    if (before.any && !old && !before.dispatcher)
        return failure("xdp: cannot attach decap to " + iface + ": it already has XDP program id " +
                       std::to_string(before.main_id) + " (" + before.programs.front().name +
                       "), which is not fulcrum-decap's; detach that first");

    // The pin directory, before touching the interface: a pin path we cannot use fails early.
    std::string on = existing_ancestor(dir);
    if (!dataplane::is_bpffs(on))
        LOG_WARN("bpffs: %s is not on a BPF filesystem; mounting one on %s. Inside `ip netns exec` that "
                 "mount, and the pins in it, vanish when this command exits (status will not see them); "
                 "use `nsenter --net=...` or a --pin-path on a shared bpffs",
                 o.pin_path.c_str(), on.c_str());
    if (Status s = dataplane::ensure_bpffs_dir(dir); !s.ok())
        return failure(s.message());
    // Failing from here on leaves no empty pin directory behind (rmdir keeps a non-empty one).
    auto fail = [&](const std::string& message) {
        (void)rmdir(dir.c_str());
        return failure(message);
    };

    Status error;
    std::unique_ptr<dataplane::DecapProgram> program = dataplane::DecapProgram::load(&error);
    if (!program)
        return fail(error.message() + " (-v shows libbpf's messages)");
    for (const auto& key : addresses) {
        if (Status s = program->add_address(key); !s.ok())
            return fail(s.message() + " (" + format_address(key) + ")");
        std::printf("tunnel address %s\n", format_address(key).c_str());
    }

    if (old) {
        unsigned old_id = old->id;
        if (Status s = detach_program(iface, ifindex, old_id, before.mode); !s.ok())
            return fail(s.message() + " (replacing program id " + std::to_string(old_id) + ")");
        std::printf("replacing decap program id %u on %s: detached it\n", old_id, iface.c_str());
    }
    dataplane::XdpAttachment attachment = dataplane::XdpAttachment::attach(program->program_fd(), iface, o.mode, &error);
    if (!attachment.attached()) {
        if (old_pins.any())
            (void)remove_pins(dir);  // they describe the program we just detached
        return fail(error.message() + (old ? " (the previous decap program was detached)" : ""));
    }

    // Pins for the new program, in place of any old ones.
    old_pins = Pins{};
    Status pinned = remove_pins(dir);
    if (pinned.ok())
        pinned = dataplane::ensure_bpffs_dir(dir);
    if (pinned.ok())
        pinned = pin_all(dir, program->program_fd(), program->addresses_map_fd(), program->stats_map_fd());
    if (!pinned.ok()) {
        Status undone = attachment.detach();  // without pins nothing could find it again
        return failure(pinned.message() + (undone.ok() ? "; detached decap from " + iface + " again"
                                                       : "; and " + undone.message()));
    }

    Attachment after = read_attachment(ifindex);
    std::printf("attached decap program id %u to %s in %s mode%s\n", program_id(program->program_fd()),
                iface.c_str(), attachment.mode_name(),
                after.dispatcher ? " through libxdp's dispatcher"
                                 : " alone (without libxdp's dispatcher, which this kernel cannot run)");
    std::printf("pinned under %s\n", dir.c_str());
    return kExitOk;
}

int detach(const Options& o)
{
    const std::string& iface = o.interface;
    const std::string dir = pin_dir(o.pin_path, iface);
    Pins pins = open_pins(dir);
    bool had_pins = pins.any();
    unsigned pinned_id = program_id(pins.program.get());
    pins = Pins{};  // close our fds: the pins, not this process, should hold the objects

    auto drop_stale_pins = [&]() -> std::string {
        if (!had_pins)
            return "";
        Status s = remove_pins(dir);
        return s.ok() ? "; removed the stale pins under " + dir : "; " + s.message();
    };

    int ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    if (ifindex == 0) {
        int err = errno;
        return failure("xdp: cannot detach decap from " + iface + ": " + std::strerror(err) + drop_stale_pins());
    }
    Attachment a = read_attachment(ifindex);
    const AttachedProgram* ours = a.find_decap(pinned_id);
    if (!ours) {
        std::string what = a.any ? " (it has XDP program id " + std::to_string(a.main_id) + ", not fulcrum-decap's: left alone)"
                                 : "";
        return failure("xdp: nothing to detach: no decap program is attached to " + iface + what + drop_stale_pins());
    }
    unsigned id = ours->id;
    if (Status s = detach_program(iface, ifindex, id, a.mode); !s.ok())
        return failure(s.message());
    if (Status s = remove_pins(dir); !s.ok())
        return failure(s.message() + " (decap program id " + std::to_string(id) + " was detached from " + iface + ")");
    std::printf("detached decap program id %u from %s%s\n", id, iface.c_str(),
                had_pins ? ("; removed its pins under " + dir).c_str() : " (it had no pins)");
    return kExitOk;
}

std::string json_string(const std::string& s)
{
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

struct InterfaceStatus {
    std::string interface;
    std::string pin_dir;
    int ifindex = 0;
    Attachment attachment;
    unsigned pinned_id = 0;
    unsigned attached_id = 0;  // our program's id on the interface, or the foreign main program's
    bool matches = false;      // the pinned program is the one attached
    std::vector<fulcrum_decap_key> addresses;
    dataplane::PacketCounters counters[FULCRUM_DECAP_REASON_COUNT];
    std::vector<std::string> problems;
};

InterfaceStatus inspect(const std::string& pin_path, const std::string& iface)
{
    InterfaceStatus st;
    st.interface = iface;
    st.pin_dir = pin_dir(pin_path, iface);
    Pins pins = open_pins(st.pin_dir);
    st.pinned_id = program_id(pins.program.get());
    if (!pins.program.valid())
        st.problems.push_back("no pinned program at " + st.pin_dir + "/" + kPinProgram);
    st.ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    if (st.ifindex == 0)
        st.problems.push_back("no interface " + iface + " here: " + std::strerror(errno));
    else
        st.attachment = read_attachment(st.ifindex);
    const AttachedProgram* ours = st.pinned_id ? st.attachment.find_decap(st.pinned_id) : nullptr;
    st.matches = ours && ours->id == st.pinned_id;
    st.attached_id = ours ? ours->id : st.attachment.main_id;
    if (st.ifindex != 0 && !st.attachment.any)
        st.problems.push_back("nothing attached to " + iface + " (stale pins; `fulcrum-decap detach " + iface +
                              "` removes them)");
    else if (st.ifindex != 0 && !st.matches)
        st.problems.push_back("the program attached to " + iface + " is not the pinned one");
    if (pins.addresses.valid()) {
        Status error;
        st.addresses = read_addresses(pins.addresses.get(), &error);
        if (!error.ok())
            st.problems.push_back(error.message());
    } else {
        st.problems.push_back("no pinned map at " + st.pin_dir + "/" + kPinAddresses);
    }
    if (pins.stats.valid()) {
        for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; ++r) {
            Status error;
            st.counters[r] = read_counters(pins.stats.get(), static_cast<fulcrum_decap_reason>(r), &error);
            if (!error.ok()) {
                st.problems.push_back(error.message());
                break;
            }
        }
    } else {
        st.problems.push_back("no pinned map at " + st.pin_dir + "/" + kPinStats);
    }
    return st;
}

void print_text(const std::vector<InterfaceStatus>& all)
{
    for (const auto& st : all) {
        const Attachment& a = st.attachment;
        if (st.matches)
            std::printf("%s: decap program id %u attached in %s mode%s (matches the pinned program)\n",
                        st.interface.c_str(), st.attached_id, mode_name(a.mode),
                        a.dispatcher ? " through libxdp's dispatcher" : "");
        else if (a.any)
            std::printf("%s: XDP program id %u attached in %s mode, NOT the pinned decap program (id %u)\n",
                        st.interface.c_str(), st.attached_id, mode_name(a.mode), st.pinned_id);
        else
            std::printf("%s: decap NOT attached (pinned program id %u)\n", st.interface.c_str(), st.pinned_id);
        std::printf("  pins: %s\n", st.pin_dir.c_str());
        for (const auto& p : st.problems)
            std::printf("  problem: %s\n", p.c_str());
        std::printf("  tunnel addresses (%zu):\n", st.addresses.size());
        for (const auto& k : st.addresses)
            std::printf("    %s\n", format_address(k).c_str());
        std::printf("  counters:\n");
        for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; ++r) {
            auto name = dataplane::decap_reason_name(static_cast<fulcrum_decap_reason>(r));
            std::printf("    %-16.*s %12llu packets %14llu bytes\n", static_cast<int>(name.size()), name.data(),
                        static_cast<unsigned long long>(st.counters[r].packets),
                        static_cast<unsigned long long>(st.counters[r].bytes));
        }
    }
}

void print_json(const std::string& pin_path, const std::vector<InterfaceStatus>& all)
{
    std::string out = "{\"pin_path\":" + json_string(pin_path) + ",\"interfaces\":[";
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& st = all[i];
        const Attachment& a = st.attachment;
        out += i ? "," : "";
        out += "{\"interface\":" + json_string(st.interface);
        out += ",\"pin_dir\":" + json_string(st.pin_dir);
        out += ",\"attached\":" + std::string(a.any ? "true" : "false");
        out += ",\"attached_program_id\":" + std::to_string(st.attached_id);
        out += ",\"pinned_program_id\":" + std::to_string(st.pinned_id);
        out += ",\"matches_pinned\":" + std::string(st.matches ? "true" : "false");
        out += ",\"mode\":" + (a.any ? json_string(mode_name(a.mode)) : std::string("null"));
        out += ",\"dispatcher\":" + std::string(a.dispatcher ? "true" : "false");
        out += ",\"addresses\":[";
        for (std::size_t j = 0; j < st.addresses.size(); ++j)
            out += (j ? "," : "") + json_string(format_address(st.addresses[j]));
        out += "],\"counters\":{";
        for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; ++r) {
            auto name = dataplane::decap_reason_name(static_cast<fulcrum_decap_reason>(r));
            out += (r ? "," : "") + json_string(std::string(name)) +
                   ":{\"packets\":" + std::to_string(st.counters[r].packets) +
                   ",\"bytes\":" + std::to_string(st.counters[r].bytes) + "}";
        }
        out += "},\"problems\":[";
        for (std::size_t j = 0; j < st.problems.size(); ++j)
            out += (j ? "," : "") + json_string(st.problems[j]);
        out += "]}";
    }
    out += "]}\n";
    std::fputs(out.c_str(), stdout);
}

int status(const Options& o)
{
    std::vector<InterfaceStatus> all;
    for (const auto& iface : pinned_interfaces(o.pin_path))
        all.push_back(inspect(o.pin_path, iface));
    if (o.json)
        print_json(o.pin_path, all);
    else if (all.empty())
        std::printf("nothing attached: no decap program pinned under %s%s\n", o.pin_path.c_str(),
                    dataplane::is_bpffs(existing_ancestor(o.pin_path))
                        ? ""
                        : " (not a BPF filesystem here: inside `ip netns exec`, pins made by another "
                          "invocation are not visible; use `nsenter --net=...`)");
    else
        print_text(all);
    return kExitOk;
}

}  // namespace
}  // namespace fulcrum::decap

int main(int argc, char** argv)
{
    using namespace fulcrum::decap;
    // Warnings and errors only: libbpf's and libxdp's chatter (e.g. the dispatcher that this
    // kernel cannot load) appears with -v.
    fulcrum::log::set_level(fulcrum::log::Level::warning);
    Options options;
    if (int code = parse(argc, argv, &options); code >= 0)
        return code;
    fulcrum::log::route_libbpf();
    libxdp_set_print(libxdp_printer);
    int code = options.command == "attach"   ? attach(options)
               : options.command == "detach" ? detach(options)
                                             : status(options);
    std::fflush(stdout);
    return code;
}
