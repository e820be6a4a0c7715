// Addresses, XDP attachments and pins for fulcrum-decap; see decap_state.h.
#include "cmd/decap_state.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fulcrum::decap {
namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

bool is_loopback_or_link_local(const fulcrum_decap_key& key)
{
    if (key.family == FULCRUM_AF_INET)
        return (ntohl(key.addr.w[0]) >> 24) == 127;
    const auto* b = reinterpret_cast<const std::uint8_t*>(key.addr.w);
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return true;  // fe80::/10
    static const std::uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::memcmp(b, kLoopback, 16) == 0;
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept
{
    if (this != &o) {
        if (fd_ >= 0)
            close(fd_);
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

Fd::~Fd()
{
    if (fd_ >= 0)
        close(fd_);
}

bool parse_address(const std::string& text, fulcrum_decap_key* key)
{
    *key = {};
    if (inet_pton(AF_INET, text.c_str(), &key->addr.w[0]) == 1) {
        key->family = FULCRUM_AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text.c_str(), key->addr.w) == 1) {
        key->family = FULCRUM_AF_INET6;
        return true;
    }
    return false;
}

std::string format_address(const fulcrum_decap_key& key)
{
    char text[INET6_ADDRSTRLEN] = "?";
    if (key.family == FULCRUM_AF_INET)
        inet_ntop(AF_INET, &key.addr.w[0], text, sizeof text);
    else if (key.family == FULCRUM_AF_INET6)
        inet_ntop(AF_INET6, key.addr.w, text, sizeof text);
    return text;
}

bool same_address(const fulcrum_decap_key& a, const fulcrum_decap_key& b)
{
    return a.family == b.family && std::memcmp(&a.addr, &b.addr, sizeof a.addr) == 0;
}

Result<fulcrum_decap_source_key> parse_prefix(const std::string& text)
{
    std::size_t slash = text.find('/');
    fulcrum_decap_key address{};
    if (!parse_address(text.substr(0, slash), &address))
        return Status::failure("not an IPv4 or IPv6 address or prefix");
    unsigned max = address.family == FULCRUM_AF_INET ? 32 : 128;
    unsigned length = max;
    if (slash != std::string::npos) {
        std::string digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos ||
            std::stoul(digits) > max)
            return Status::failure("prefix length must be 0.." + std::to_string(max));
        length = static_cast<unsigned>(std::stoul(digits));
    }
    // Host bits set beyond the prefix: refuse rather than guess.
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(address.addr.w);
    for (unsigned bit = length; bit < max; ++bit) {
        if (bytes[bit / 8] & (0x80u >> (bit % 8)))
            return Status::failure("address has bits set beyond /" + std::to_string(length) +
                                   " (write the network address, or /" + std::to_string(max) + " for one host)");
    }
    fulcrum_decap_source_key key{};
    key.prefixlen = FULCRUM_DECAP_FAMILY_BITS + length;
    key.family = address.family;
    key.addr = address.addr;
    return key;
}

std::string format_prefix(const fulcrum_decap_source_key& key)
{
    fulcrum_decap_key address{};
    address.family = key.family;
    address.addr = key.addr;
    return format_address(address) + "/" + std::to_string(key.prefixlen - FULCRUM_DECAP_FAMILY_BITS);
}

bool same_prefix(const fulcrum_decap_source_key& a, const fulcrum_decap_source_key& b)
{
    return a.prefixlen == b.prefixlen && a.family == b.family && std::memcmp(&a.addr, &b.addr, sizeof a.addr) == 0;
}

std::vector<std::string> split_list(const std::string& text)
{
    std::vector<std::string> items;
    std::string item;
    for (char c : text + ",") {
        if (c == ',' || c == ' ' || c == '\t' || c == '\n') {
            if (!item.empty())
                items.push_back(item);
            item.clear();
        } else {
            item += c;
        }
    }
    return items;
}

namespace {

template <typename Key, typename Same>
KeyDiff<Key> diff_keys(const std::vector<Key>& current, const std::vector<Key>& wanted, Same same)
{
    KeyDiff<Key> diff;
    auto in = [&](const std::vector<Key>& list, const Key& key) {
        return std::any_of(list.begin(), list.end(), [&](const Key& k) { return same(k, key); });
    };
    for (const Key& key : wanted)
        if (!in(current, key) && !in(diff.add, key))
            diff.add.push_back(key);
    for (const Key& key : current)
        if (!in(wanted, key))
            diff.remove.push_back(key);
    return diff;
}

bool address_less(const fulcrum_decap_key& a, const fulcrum_decap_key& b)
{
    if (a.family != b.family)
        return a.family < b.family;
    return std::memcmp(&a.addr, &b.addr, sizeof a.addr) < 0;
}

}  // namespace

KeyDiff<fulcrum_decap_key> diff_addresses(const std::vector<fulcrum_decap_key>& current,
                                          const std::vector<fulcrum_decap_key>& wanted)
{
    return diff_keys(current, wanted, same_address);
}

KeyDiff<fulcrum_decap_source_key> diff_prefixes(const std::vector<fulcrum_decap_source_key>& current,
                                                const std::vector<fulcrum_decap_source_key>& wanted)
{
    return diff_keys(current, wanted, same_prefix);
}

Result<std::vector<fulcrum_decap_key>> host_local_addresses()
{
    std::vector<fulcrum_decap_key> keys;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0)
        return Status::failure(std::string("addresses: cannot list this host's addresses (getifaddrs): ") +
                               std::strerror(errno));
    for (ifaddrs* ifa = list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr)
            continue;
        fulcrum_decap_key key{};
        if (ifa->ifa_addr->sa_family == AF_INET) {
            key.family = FULCRUM_AF_INET;
            key.addr.w[0] = reinterpret_cast<const sockaddr_in*>(ifa->ifa_addr)->sin_addr.s_addr;
        } else if (ifa->ifa_addr->sa_family == AF_INET6) {
            key.family = FULCRUM_AF_INET6;
            std::memcpy(key.addr.w, &reinterpret_cast<const sockaddr_in6*>(ifa->ifa_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        if (is_loopback_or_link_local(key))
            continue;
        if (std::none_of(keys.begin(), keys.end(), [&](const auto& k) { return same_address(k, key); }))
            keys.push_back(key);
    }
    freeifaddrs(list);
    std::sort(keys.begin(), keys.end(), address_less);
    return keys;
}

std::string pin_dir(const std::string& pin_path, const std::string& interface)
{
    return (std::filesystem::path(pin_path) / interface).string();
}

Pins open_pins(const std::string& dir)
{
    Pins pins;
    pins.dir = dir;
    pins.program = Fd(bpf_obj_get((dir + "/" + kPinProgram).c_str()));
    pins.local = Fd(bpf_obj_get((dir + "/" + kPinLocal).c_str()));
    pins.sources = Fd(bpf_obj_get((dir + "/" + kPinSources).c_str()));
    pins.stats = Fd(bpf_obj_get((dir + "/" + kPinStats).c_str()));
    return pins;
}

Status pin_all(const std::string& dir, int program_fd, int local_fd, int sources_fd, int stats_fd)
{
    const std::pair<int, const char*> objects[] = {
        {program_fd, kPinProgram}, {local_fd, kPinLocal}, {sources_fd, kPinSources}, {stats_fd, kPinStats}};
    for (const auto& [fd, name] : objects) {
        std::string path = dir + "/" + name;
        if (bpf_obj_pin(fd, path.c_str()) != 0) {
            int err = errno;
            (void)remove_pins(dir);
            return Status::failure("bpffs: cannot pin " + std::string(name) + " at " + path + ": " + errno_text(err));
        }
    }
    return {};
}

Status remove_pins(const std::string& dir)
{
    // "decap_addrs": the address map of versions before --from, so their pins go too.
    for (const char* name : {kPinProgram, kPinLocal, kPinSources, kPinStats, "decap_addrs"}) {
        std::string path = dir + "/" + name;
        if (unlink(path.c_str()) != 0 && errno != ENOENT)
            return Status::failure("bpffs: cannot remove pin " + path + ": " + std::strerror(errno));
    }
    if (rmdir(dir.c_str()) != 0 && errno != ENOENT)
        return Status::failure("bpffs: cannot remove " + dir + ": " + std::strerror(errno));
    return {};
}

Result<std::vector<std::string>> pinned_interfaces(const std::string& pin_path)
{
    std::vector<std::string> names;
    std::error_code ec;
    std::filesystem::directory_iterator it(pin_path, ec);
    if (ec == std::errc::no_such_file_or_directory)
        return names;
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        std::error_code type;
        if (it->is_directory(type))
            names.push_back(it->path().filename().string());
    }
    if (ec)
        return Status::failure("bpffs: cannot list " + pin_path + ": " + ec.message());
    std::sort(names.begin(), names.end());
    return names;
}

namespace {

// Every key of a map (bounded by twice its size, in case entries change while we walk it).
template <typename Key>
Result<std::vector<Key>> read_keys(int map_fd, const char* map_name, std::size_t bound)
{
    std::vector<Key> keys;
    Key key{}, next{};
    const void* previous = nullptr;  // first call: no previous key
    for (std::size_t i = 0; i < bound * 2; ++i) {
        if (bpf_map_get_next_key(map_fd, previous, &next) != 0) {
            if (errno != ENOENT)
                return Status::failure(std::string("bpf: cannot read ") + map_name + ": " + std::strerror(errno));
            break;
        }
        keys.push_back(next);
        key = next;
        previous = &key;
    }
    return keys;
}

}  // namespace

Result<std::vector<fulcrum_decap_key>> read_addresses(int map_fd)
{
    auto keys = read_keys<fulcrum_decap_key>(map_fd, kPinLocal, FULCRUM_DECAP_MAX_LOCAL);
    if (keys.ok())
        std::sort(keys->begin(), keys->end(), address_less);
    return keys;
}

Result<std::vector<fulcrum_decap_source_key>> read_prefixes(int map_fd)
{
    auto keys = read_keys<fulcrum_decap_source_key>(map_fd, kPinSources, FULCRUM_DECAP_MAX_SOURCES);
    auto less = [](const fulcrum_decap_source_key& a, const fulcrum_decap_source_key& b) {
        if (a.family != b.family)
            return a.family < b.family;
        if (int c = std::memcmp(&a.addr, &b.addr, sizeof a.addr); c != 0)
            return c < 0;
        return a.prefixlen < b.prefixlen;
    };
    if (keys.ok())
        std::sort(keys->begin(), keys->end(), less);
    return keys;
}

Status apply_addresses(int map_fd, const KeyDiff<fulcrum_decap_key>& diff)
{
    std::uint32_t one = 1;
    for (const auto& key : diff.add)
        if (bpf_map_update_elem(map_fd, &key, &one, BPF_ANY) != 0)
            return Status::failure("bpf: cannot add local address " + format_address(key) + " to " + kPinLocal +
                                   ": " + std::strerror(errno) +
                                   (errno == E2BIG ? " (it holds " + std::to_string(FULCRUM_DECAP_MAX_LOCAL) + ")"
                                                   : std::string()));
    for (const auto& key : diff.remove)
        if (bpf_map_delete_elem(map_fd, &key) != 0 && errno != ENOENT)
            return Status::failure("bpf: cannot remove local address " + format_address(key) + " from " +
                                   kPinLocal + ": " + std::strerror(errno));
    return {};
}

Status apply_prefixes(int map_fd, const KeyDiff<fulcrum_decap_source_key>& diff)
{
    std::uint32_t one = 1;
    for (const auto& key : diff.add)
        if (bpf_map_update_elem(map_fd, &key, &one, BPF_ANY) != 0)
            return Status::failure("bpf: cannot add tunnel source " + format_prefix(key) + " to " + kPinSources +
                                   ": " + std::strerror(errno));
    for (const auto& key : diff.remove)
        if (bpf_map_delete_elem(map_fd, &key) != 0 && errno != ENOENT)
            return Status::failure("bpf: cannot remove tunnel source " + format_prefix(key) + " from " +
                                   kPinSources + ": " + std::strerror(errno));
    return {};
}

}  // namespace fulcrum::decap
