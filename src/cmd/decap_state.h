// fulcrum-decap's view of the kernel: this host's local addresses, the balancers' tunnel-source
// prefixes, and the program and maps pinned under PIN_PATH/IFACE/ by an earlier `attach`. What XDP
// has attached to an interface, and which of it is ours, is dataplane/xdp_attach.h's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "abi.h"
#include "util/status.h"

namespace fulcrum::decap {

// Names of the pinned objects inside PIN_PATH/IFACE/.
inline constexpr const char* kPinProgram = "prog";
inline constexpr const char* kPinLocal = "decap_local";
inline constexpr const char* kPinSources = "decap_sources";
inline constexpr const char* kPinStats = "decap_stats";
// The program's name as the kernel reports it (its function name in xdp/decap.bpf.c); used to
// recognise our program on an interface when its pins are gone.
inline constexpr const char* kProgramName = "decap";

// A move-only file descriptor.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

// "198.18.0.2" / "2001:db8::2" into a map key; false if it is neither.
bool parse_address(const std::string& text, fulcrum_decap_key* key);
std::string format_address(const fulcrum_decap_key& key);
bool same_address(const fulcrum_decap_key& a, const fulcrum_decap_key& b);

// "198.18.0.0/24", "2001:db8::1/128", or a bare address (a /32 or /128) into an LPM-trie key.
// Bits beyond the prefix length must be zero ("198.18.0.1/24" is refused: did the operator mean
// the host or the network?). A failure's message says why (without the text itself).
Result<fulcrum_decap_source_key> parse_prefix(const std::string& text);
std::string format_prefix(const fulcrum_decap_source_key& key);
bool same_prefix(const fulcrum_decap_source_key& a, const fulcrum_decap_source_key& b);
// Splits a --from value into prefixes: "A,B" and "A B" (a systemd ${VAR} holding several) both work.
std::vector<std::string> split_list(const std::string& text);

// Every IPv4/IPv6 address configured on this host (this network namespace, VIPs on lo included),
// without loopback (127/8, ::1) and IPv6 link-local (fe80::/10), without duplicates, sorted.
Result<std::vector<fulcrum_decap_key>> host_local_addresses();

// What must change to turn `current` into `wanted`: the keys to add and the keys to remove.
template <typename Key>
struct KeyDiff {
    std::vector<Key> add, remove;
};
KeyDiff<fulcrum_decap_key> diff_addresses(const std::vector<fulcrum_decap_key>& current,
                                          const std::vector<fulcrum_decap_key>& wanted);
KeyDiff<fulcrum_decap_source_key> diff_prefixes(const std::vector<fulcrum_decap_source_key>& current,
                                                const std::vector<fulcrum_decap_source_key>& wanted);

// The objects pinned by `attach` for one interface; fds are invalid where a pin is missing.
struct Pins {
    std::string dir;
    Fd program, local, sources, stats;
    bool any() const { return program.valid() || local.valid() || sources.valid() || stats.valid(); }
};

std::string pin_dir(const std::string& pin_path, const std::string& interface);
Pins open_pins(const std::string& dir);
// Pins the program and its maps; on failure removes what it pinned.
Status pin_all(const std::string& dir, int program_fd, int local_fd, int sources_fd, int stats_fd);
// Removes the pins and the directory; missing pins are fine.
Status remove_pins(const std::string& dir);
// The interface directories under the pin path (sorted); empty if the path does not exist.
Result<std::vector<std::string>> pinned_interfaces(const std::string& pin_path);

Result<std::vector<fulcrum_decap_key>> read_addresses(int map_fd);
Result<std::vector<fulcrum_decap_source_key>> read_prefixes(int map_fd);
// Applies a diff to the pinned maps: adds first, then removes, so an address or prefix that stays
// is never missing. Each names the map, the key and the errno on failure.
Status apply_addresses(int map_fd, const KeyDiff<fulcrum_decap_key>& diff);
Status apply_prefixes(int map_fd, const KeyDiff<fulcrum_decap_source_key>& diff);
// (The counters: dataplane::read_decap_counters, decap_program.h.)

}  // namespace fulcrum::decap
