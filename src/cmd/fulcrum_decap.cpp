// fulcrum-decap: attaches Fulcrum's decap XDP program (xdp/decap.bpf.c) to a backend's interface,
// so packets the balancers (--from) tunnelled to a local address of this host lose their outer
// header, and refreshes, shows or removes it. The program and its maps are pinned under
// PIN_PATH/IFACE/ so that a later `sync`, `status` or `detach` (another process) finds them; the
// XDP attachment itself outlives this process.
//
// Local addresses (the outer and inner destinations decap accepts) are read from the host when
// `attach` runs and again on every `sync`, not followed live: a oneshot command keeps the unit
// simple and auditable, and `systemctl reload fulcrum-decap@IFACE` runs `sync`. A VIP added to lo
// after attach is refused (inner_not_local) until the next sync.
#include <getopt.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
#include "util/json.h"
#include "util/log.h"

namespace fulcrum::decap {
namespace {

constexpr const char* kDefaultPinPath = "/sys/fs/bpf/fulcrum-decap";
constexpr int kExitOk = 0, kExitFailure = 1, kExitUsage = 2;

const char kSynopsis[] =
    "usage: fulcrum-decap attach IFACE --from PREFIX... [--gue-port PORT] [--mode native|generic]\n"
    "                            [--pin-path DIR]\n"
    "       fulcrum-decap sync IFACE [--from PREFIX...] [--pin-path DIR]\n"
    "       fulcrum-decap detach IFACE [--pin-path DIR]\n"
    "       fulcrum-decap status [--pin-path DIR] [--json]\n";
const char kUsage[] =
    "\n"
    "Strips Fulcrum's tunnel header (IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6, and those carried in GUE:\n"
    "UDP to --gue-port with the inner packet right after the UDP header), in XDP on IFACE, from\n"
    "packets whose outer source is within a --from prefix and whose outer and inner destinations are\n"
    "local addresses of this host (interface addresses and VIPs on lo, without loopback and IPv6\n"
    "link-local), and hands the inner packet to the stack. Other tunnel packets to this host are\n"
    "dropped and counted (source_not_allowed, inner_not_local); other traffic passes untouched.\n"
    "\n"
    "  attach   load the decap program, fill its prefixes and the host's local addresses, attach it\n"
    "           to IFACE and pin it under DIR/IFACE/; replaces a decap program already on IFACE\n"
    "  sync     re-read the host's local addresses into the pinned program (run it after adding or\n"
    "           removing a VIP; systemctl reload does); with --from, replace the prefixes too\n"
    "  detach   detach the decap program from IFACE and remove its pins (exit 1 if none)\n"
    "  status   for each pinned interface: attached program, GUE port, prefixes, local addresses,\n"
    "           counters\n"
    "\n"
    "  --from PREFIX          the balancers' tunnel sources (fulcrumd's tunnel.source_v4/source_v6,\n"
    "                         as /32 and /128, or the prefix their varied bits span), IPv4 or IPv6,\n"
    "                         repeatable, or several in one value separated by commas or spaces;\n"
    "                         required by attach\n"
    "  --gue-port PORT        UDP port of GUE tunnels (fulcrumd's tunnel.gue_port), default 6080;\n"
    "                         0 strips no GUE (all UDP passes untouched); other UDP ports always pass\n"
    "  --mode native|generic  XDP mode (default native)\n"
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
    std::uint16_t gue_port = FULCRUM_GUE_DEFAULT_PORT;
    bool gue_port_given = false;
    std::vector<fulcrum_decap_source_key> sources;
    bool from_given = false;
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

// One --from value (one prefix, or several separated by commas or spaces) into options->sources;
// returns -1 to go on, else the exit status of a usage error.
int parse_from(const char* value, Options* options)
{
    std::vector<std::string> items = split_list(value);
    if (items.empty())
        return usage_error("--from: empty value; give the balancers' tunnel source prefixes (with "
                           "fulcrum-decap@.service: FULCRUM_DECAP_FROM in /etc/fulcrum/decap.env)");
    for (const std::string& item : items) {
        Result<fulcrum_decap_source_key> key = parse_prefix(item);
        if (!key.ok())
            return usage_error("--from: '" + item + "': " + key.message());
        bool duplicate = false;
        for (const auto& k : options->sources)
            duplicate = duplicate || same_prefix(k, *key);
        if (!duplicate)
            options->sources.push_back(*key);
    }
    options->from_given = true;
    return -1;
}

// Parses argv into *options; returns -1 to go on, else the exit status (help or usage error).
int parse(int argc, char** argv, Options* options)
{
    enum { kMode = 1000, kFrom, kAddress, kPinPath, kJson, kGuePort };
    static const option long_options[] = {
        {"mode", required_argument, nullptr, kMode},
        {"gue-port", required_argument, nullptr, kGuePort},
        {"from", required_argument, nullptr, kFrom},
        {"address", required_argument, nullptr, kAddress},
        {"pin-path", required_argument, nullptr, kPinPath},
        {"json", no_argument, nullptr, kJson},
        {"verbose", no_argument, nullptr, 'v'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    std::vector<std::string> positional;
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
        case kGuePort: {
            char* end = nullptr;
            errno = 0;
            unsigned long port = std::strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end != '\0' || errno != 0 || port > 65535)
                return usage_error(std::string("--gue-port: expected a port 0..65535, got '") + optarg + "'");
            options->gue_port = static_cast<std::uint16_t>(port);
            options->gue_port_given = true;
            break;
        }
        case kFrom:
            if (int code = parse_from(optarg, options); code >= 0)
                return code;
            break;
        case kAddress:
            return usage_error("--address is gone: decap now accepts every local address of this host as "
                               "the tunnel destination (refreshed by `fulcrum-decap sync`) and needs the "
                               "balancers' tunnel sources with --from PREFIX");
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
    if (cmd != "attach" && cmd != "sync" && cmd != "detach" && cmd != "status")
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
    if (cmd != "attach" && options->mode_given)
        return usage_error(cmd + ": --mode is for attach only");
    if (cmd != "attach" && options->gue_port_given)
        return usage_error(cmd + ": --gue-port is for attach only (it is part of the loaded program)");
    if (cmd != "attach" && cmd != "sync" && options->from_given)
        return usage_error(cmd + ": --from is for attach and sync only");
    if (cmd != "status" && options->json)
        return usage_error(cmd + ": --json is for status only");
    if (cmd == "attach" && !options->from_given)
        return usage_error("attach: --from PREFIX is required: the balancers' tunnel sources "
                           "(fulcrumd's tunnel.source_v4/source_v6 as /32 and /128, or the prefix covering "
                           "their varied bits); decap takes tunnel packets from nobody else");
    if (options->sources.size() > FULCRUM_DECAP_MAX_SOURCES)
        return usage_error("--from: at most " + std::to_string(FULCRUM_DECAP_MAX_SOURCES) + " prefixes, got " +
                           std::to_string(options->sources.size()));
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

// The host's local addresses, within what decap_local holds.
Result<std::vector<fulcrum_decap_key>> local_addresses()
{
    Result<std::vector<fulcrum_decap_key>> addresses = host_local_addresses();
    if (!addresses.ok())
        return addresses;
    if (addresses->empty())
        return Status::failure("addresses: this host has no IPv4/IPv6 address other than loopback and "
                               "link-local, so decap would accept no packet; add the VIPs to lo first");
    if (addresses->size() > FULCRUM_DECAP_MAX_LOCAL)
        return Status::failure("addresses: this host has " + std::to_string(addresses->size()) +
                               " addresses, decap_local holds " + std::to_string(FULCRUM_DECAP_MAX_LOCAL));
    return addresses;
}

// fulcrum-decap's program: the pinned one, or (its pins lost) one named "decap".
dataplane::XdpOwner decap_owner(unsigned pinned_id) { return {kProgramName, pinned_id, true}; }

int attach(const Options& o)
{
    const std::string& iface = o.interface;
    int ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    if (ifindex == 0)
        return failure("xdp: cannot attach decap to " + iface + ": " + std::strerror(errno));

    Result<std::vector<fulcrum_decap_key>> addresses = local_addresses();
    if (!addresses.ok())
        return failure(addresses.message());

    // What is there already: our program (replace it) or someone else's (refuse, unless libxdp's
    // dispatcher can run both).
    const std::string dir = pin_dir(o.pin_path, iface);
    Pins old_pins = open_pins(dir);
    const dataplane::XdpOwner owner = decap_owner(dataplane::program_id_of(old_pins.program.get()));
    const Result<dataplane::XdpInterface> read = dataplane::read_xdp(iface);
    if (!read.ok())
        return failure(read.message());
    const dataplane::XdpInterface& before = *read;
    const dataplane::XdpProgramRef* old = dataplane::find_ours(before, owner);
    if (dataplane::occupied_by_other(before, owner))
        return failure("xdp: cannot attach decap to " + iface + ": it already has XDP program id " +
                       std::to_string(before.main_id) + " (" + before.programs.front().name + ", " +
                       before.mode_name() + " mode), which is not fulcrum-decap's; detach that first");

    // The pin directory, before touching the interface: a pin path we cannot use fails early.
    std::string on = existing_ancestor(dir);
    if (!dataplane::is_bpffs(on) && dataplane::under_bpffs_root(dir))
        LOG_WARN("bpffs: %s is not on a BPF filesystem; mounting one on %s. Inside `ip netns exec` that "
                 "mount, and the pins in it, vanish when this command exits (status will not see them); "
                 "use `nsenter --net=...` or a --pin-path on a shared bpffs",
                 o.pin_path.c_str(), dataplane::kBpffsRoot);
    if (Status s = dataplane::ensure_bpffs_dir(dir); !s.ok())
        return failure(s.message());
    // Failing from here on leaves no empty pin directory behind (rmdir keeps a non-empty one).
    auto fail = [&](const std::string& message) {
        (void)rmdir(dir.c_str());
        return failure(message);
    };

    Result<std::unique_ptr<dataplane::DecapProgram>> loaded = dataplane::DecapProgram::load(o.gue_port);
    if (!loaded.ok())
        return fail(loaded.message() + " (-v shows libbpf's messages)");
    std::unique_ptr<dataplane::DecapProgram> program = std::move(loaded).value();
    for (const auto& key : o.sources) {
        if (Status s = program->add_source(key); !s.ok())
            return fail(s.message() + " (" + format_prefix(key) + ")");
        std::printf("tunnel source %s\n", format_prefix(key).c_str());
    }
    for (const auto& key : *addresses) {
        if (Status s = program->add_local_address(key); !s.ok())
            return fail(s.message() + " (" + format_address(key) + ")");
        std::printf("local address %s\n", format_address(key).c_str());
    }

    if (old) {
        unsigned old_id = old->id;
        if (Status s = dataplane::detach_program(before, old_id); !s.ok())
            return fail(s.message() + " (replacing program id " + std::to_string(old_id) + ")");
        std::printf("replacing decap program id %u on %s: detached it\n", old_id, iface.c_str());
    }
    Result<dataplane::XdpAttachment> attached = dataplane::XdpAttachment::attach(program->program_fd(), iface, o.mode);
    if (!attached.ok()) {
        if (old_pins.any())
            (void)remove_pins(dir);  // they describe the program we just detached
        return fail(attached.message() + (old ? " (the previous decap program was detached)" : ""));
    }
    dataplane::XdpAttachment attachment = std::move(attached).value();

    // Pins for the new program, in place of any old ones.
    old_pins = Pins{};
    Status pinned = remove_pins(dir);
    if (pinned.ok())
        pinned = dataplane::ensure_bpffs_dir(dir);
    if (pinned.ok())
        pinned = pin_all(dir, program->program_fd(), program->local_map_fd(), program->sources_map_fd(),
                         program->stats_map_fd());
    if (!pinned.ok()) {
        Status undone = attachment.detach();  // without pins nothing could find it again
        return failure(pinned.message() + (undone.ok() ? "; detached decap from " + iface + " again"
                                                       : "; and " + undone.message()));
    }

    attachment.keep();  // the attachment outlives this command; the pins find it again
    const Result<dataplane::XdpInterface> after = dataplane::read_xdp(iface);
    std::printf("attached decap program id %u to %s in %s mode%s\n", dataplane::program_id_of(program->program_fd()),
                iface.c_str(), attachment.mode_name(),
                !after.ok()         ? (" (" + after.message() + ")").c_str()
                : after->dispatcher ? " through libxdp's dispatcher"
                                    : " alone (without libxdp's dispatcher, which this kernel cannot run)");
    if (o.gue_port)
        std::printf("GUE on UDP port %u\n", static_cast<unsigned>(o.gue_port));
    else
        std::printf("GUE off (--gue-port 0)\n");
    std::printf("pinned under %s\n", dir.c_str());
    return kExitOk;
}

// Brings the pinned maps up to date: local addresses from the host, and the prefixes when --from
// is given. Adds before it removes, so what stays is never missing for a moment.
int sync_maps(const Options& o)
{
    const std::string& iface = o.interface;
    const std::string dir = pin_dir(o.pin_path, iface);
    Pins pins = open_pins(dir);
    if (!pins.local.valid() || !pins.sources.valid())
        return failure("sync: no decap maps pinned for " + iface + " under " + dir + ": " +
                       std::strerror(ENOENT) + " (attach first; pins of a version before --from need a new attach)");

    Result<std::vector<fulcrum_decap_key>> wanted = local_addresses();
    if (!wanted.ok())
        return failure(wanted.message());
    Result<std::vector<fulcrum_decap_key>> current = read_addresses(pins.local.get());
    if (!current.ok())
        return failure(current.message());
    KeyDiff<fulcrum_decap_key> addresses = diff_addresses(*current, *wanted);
    if (Status s = apply_addresses(pins.local.get(), addresses); !s.ok())
        return failure(s.message());
    for (const auto& key : addresses.add)
        std::printf("local address %s added\n", format_address(key).c_str());
    for (const auto& key : addresses.remove)
        std::printf("local address %s removed\n", format_address(key).c_str());

    std::size_t prefix_changes = 0;
    if (o.from_given) {
        Result<std::vector<fulcrum_decap_source_key>> pinned = read_prefixes(pins.sources.get());
        if (!pinned.ok())
            return failure(pinned.message());
        KeyDiff<fulcrum_decap_source_key> sources = diff_prefixes(*pinned, o.sources);
        if (Status s = apply_prefixes(pins.sources.get(), sources); !s.ok())
            return failure(s.message());
        for (const auto& key : sources.add)
            std::printf("tunnel source %s added\n", format_prefix(key).c_str());
        for (const auto& key : sources.remove)
            std::printf("tunnel source %s removed\n", format_prefix(key).c_str());
        prefix_changes = sources.add.size() + sources.remove.size();
    }
    std::printf("synced decap on %s: %zu local addresses (%zu added, %zu removed)%s\n", iface.c_str(),
                wanted->size(), addresses.add.size(), addresses.remove.size(),
                o.from_given ? (", " + std::to_string(prefix_changes) + " tunnel source changes").c_str() : "");
    return kExitOk;
}

int detach(const Options& o)
{
    const std::string& iface = o.interface;
    const std::string dir = pin_dir(o.pin_path, iface);
    Pins pins = open_pins(dir);
    bool had_pins = pins.any();
    unsigned pinned_id = dataplane::program_id_of(pins.program.get());
    pins = Pins{};  // close our fds: the pins, not this process, should hold the objects

    auto drop_stale_pins = [&]() -> std::string {
        if (!had_pins)
            return "";
        Status s = remove_pins(dir);
        return s.ok() ? "; removed the stale pins under " + dir : "; " + s.message();
    };

    if (if_nametoindex(iface.c_str()) == 0) {
        int err = errno;
        return failure("xdp: cannot detach decap from " + iface + ": " + std::strerror(err) + drop_stale_pins());
    }
    const Result<dataplane::XdpInterface> read = dataplane::read_xdp(iface);
    if (!read.ok())
        return failure(read.message());
    const dataplane::XdpInterface& a = *read;
    const dataplane::XdpProgramRef* ours = dataplane::find_ours(a, decap_owner(pinned_id));
    if (!ours) {
        std::string what = a.any ? " (it has XDP program id " + std::to_string(a.main_id) + ", not fulcrum-decap's: left alone)"
                                 : "";
        return failure("xdp: nothing to detach: no decap program is attached to " + iface + what + drop_stale_pins());
    }
    unsigned id = ours->id;
    if (Status s = dataplane::detach_program(a, id); !s.ok())
        return failure(s.message());
    if (Status s = remove_pins(dir); !s.ok())
        return failure(s.message() + " (decap program id " + std::to_string(id) + " was detached from " + iface + ")");
    std::printf("detached decap program id %u from %s%s\n", id, iface.c_str(),
                had_pins ? ("; removed its pins under " + dir).c_str() : " (it had no pins)");
    return kExitOk;
}

struct InterfaceStatus {
    std::string interface;
    std::string pin_dir;
    int ifindex = 0;
    dataplane::XdpInterface attachment;
    unsigned pinned_id = 0;
    unsigned attached_id = 0;  // our program's id on the interface, or the foreign main program's
    bool matches = false;      // the pinned program is the one attached
    bool gue_known = false;    // gue_port was read from the pinned program
    std::uint16_t gue_port = 0;  // the UDP port of GUE tunnels it strips; 0: GUE off
    std::vector<fulcrum_decap_source_key> sources;
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
    st.pinned_id = dataplane::program_id_of(pins.program.get());
    if (!pins.program.valid()) {
        st.problems.push_back("no pinned program at " + st.pin_dir + "/" + kPinProgram);
    } else if (Result<std::uint16_t> port = dataplane::read_decap_gue_port(pins.program.get()); port.ok()) {
        st.gue_known = true;
        st.gue_port = *port;
    } else {
        st.problems.push_back(port.message());
    }
    st.ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    if (st.ifindex == 0)
        st.problems.push_back("no interface " + iface + " here: " + std::strerror(errno));
    else {
        Result<dataplane::XdpInterface> read = dataplane::read_xdp(iface);
        if (read.ok())
            st.attachment = std::move(read).value();
        else
            st.problems.push_back(read.message());
    }
    const dataplane::XdpProgramRef* ours =
        st.pinned_id ? dataplane::find_ours(st.attachment, decap_owner(st.pinned_id)) : nullptr;
    st.matches = ours && ours->id == st.pinned_id;
    st.attached_id = ours ? ours->id : st.attachment.main_id;
    if (st.ifindex != 0 && !st.attachment.any)
        st.problems.push_back("nothing attached to " + iface + " (stale pins; `fulcrum-decap detach " + iface +
                              "` removes them)");
    else if (st.ifindex != 0 && !st.matches)
        st.problems.push_back("the program attached to " + iface + " is not the pinned one");
    if (pins.sources.valid()) {
        Result<std::vector<fulcrum_decap_source_key>> sources = read_prefixes(pins.sources.get());
        if (!sources.ok()) {
            st.problems.push_back(sources.message());
        } else {
            st.sources = std::move(sources).value();
            if (st.sources.empty())
                st.problems.push_back("no tunnel source prefix: every tunnel packet is dropped (sync --from)");
        }
    } else {
        st.problems.push_back("no pinned map at " + st.pin_dir + "/" + kPinSources);
    }
    if (pins.local.valid()) {
        Result<std::vector<fulcrum_decap_key>> addresses = read_addresses(pins.local.get());
        if (addresses.ok())
            st.addresses = std::move(addresses).value();
        else
            st.problems.push_back(addresses.message());
    } else {
        st.problems.push_back("no pinned map at " + st.pin_dir + "/" + kPinLocal);
    }
    if (pins.stats.valid()) {
        for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; ++r) {
            Result<dataplane::PacketCounters> counters =
                dataplane::read_decap_counters(pins.stats.get(), static_cast<fulcrum_decap_reason>(r));
            if (!counters.ok()) {
                st.problems.push_back(counters.message());
                break;
            }
            st.counters[r] = *counters;
        }
    } else {
        st.problems.push_back("no pinned map at " + st.pin_dir + "/" + kPinStats);
    }
    return st;
}

void print_text(const std::vector<InterfaceStatus>& all)
{
    for (const auto& st : all) {
        const dataplane::XdpInterface& a = st.attachment;
        if (st.matches)
            std::printf("%s: decap program id %u attached in %s mode%s (matches the pinned program)\n",
                        st.interface.c_str(), st.attached_id, a.mode_name(),
                        a.dispatcher ? " through libxdp's dispatcher" : "");
        else if (a.any)
            std::printf("%s: XDP program id %u attached in %s mode, NOT the pinned decap program (id %u)\n",
                        st.interface.c_str(), st.attached_id, a.mode_name(), st.pinned_id);
        else
            std::printf("%s: decap NOT attached (pinned program id %u)\n", st.interface.c_str(), st.pinned_id);
        std::printf("  pins: %s\n", st.pin_dir.c_str());
        if (!st.gue_known)
            std::printf("  GUE: unknown\n");
        else if (st.gue_port)
            std::printf("  GUE: UDP port %u (attach --gue-port)\n", static_cast<unsigned>(st.gue_port));
        else
            std::printf("  GUE: off (attach --gue-port 0: UDP passes untouched)\n");
        for (const auto& p : st.problems)
            std::printf("  problem: %s\n", p.c_str());
        std::printf("  tunnel sources, --from (%zu):\n", st.sources.size());
        for (const auto& k : st.sources)
            std::printf("    %s\n", format_prefix(k).c_str());
        std::printf("  local addresses (%zu; `fulcrum-decap sync %s` refreshes them):\n", st.addresses.size(),
                    st.interface.c_str());
        for (const auto& k : st.addresses)
            std::printf("    %s\n", format_address(k).c_str());
        std::printf("  counters:\n");
        for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; ++r) {
            auto name = dataplane::decap_reason_name(static_cast<fulcrum_decap_reason>(r));
            std::printf("    %-18.*s %12llu packets %14llu bytes\n", static_cast<int>(name.size()), name.data(),
                        static_cast<unsigned long long>(st.counters[r].packets),
                        static_cast<unsigned long long>(st.counters[r].bytes));
        }
    }
}

void print_json(const std::string& pin_path, const std::vector<InterfaceStatus>& all)
{
    JsonWriter w;
    w.begin_object().field("pin_path", pin_path).key("interfaces").begin_array();
    for (const InterfaceStatus& st : all) {
        const dataplane::XdpInterface& a = st.attachment;
        w.begin_object()
            .field("interface", st.interface)
            .field("pin_dir", st.pin_dir)
            .field("attached", a.any)
            .field("attached_program_id", st.attached_id)
            .field("pinned_program_id", st.pinned_id)
            .field("matches_pinned", st.matches)
            .key("mode");
        if (a.any)
            w.value(a.mode_name());
        else
            w.null();
        w.field("dispatcher", a.dispatcher).key("gue_port");
        if (st.gue_known)
            w.value(st.gue_port);
        else
            w.null();
        w.key("sources").begin_array();
        for (const auto& prefix : st.sources)
            w.value(format_prefix(prefix));
        w.end_array().key("local_addresses").begin_array();
        for (const auto& address : st.addresses)
            w.value(format_address(address));
        w.end_array().key("counters").begin_object();
        for (int r = 0; r < FULCRUM_DECAP_REASON_COUNT; ++r) {
            w.key(dataplane::decap_reason_name(static_cast<fulcrum_decap_reason>(r)))
                .begin_object()
                .field("packets", st.counters[r].packets)
                .field("bytes", st.counters[r].bytes)
                .end_object();
        }
        w.end_object().key("problems").begin_array();
        for (const std::string& problem : st.problems)
            w.value(problem);
        w.end_array().end_object();
    }
    w.end_array().end_object();
    std::printf("%s\n", w.str().c_str());
}

int status(const Options& o)
{
    Result<std::vector<std::string>> interfaces = pinned_interfaces(o.pin_path);
    if (!interfaces.ok())
        return failure(interfaces.message());
    std::vector<InterfaceStatus> all;
    for (const auto& iface : *interfaces)
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
    fulcrum::log::route_bpf_libraries();
    int code = options.command == "attach"   ? attach(options)
               : options.command == "sync"   ? sync_maps(options)
               : options.command == "detach" ? detach(options)
                                             : status(options);
    std::fflush(stdout);
    return code;
}
