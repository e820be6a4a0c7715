// Maglev tables as kernel arrays of chunks; see maglev_map.h.
#include "dataplane/maglev_map.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "abi.h"

namespace fulcrum::dataplane {
namespace {

Status failed(const std::string& what_failed, int err)
{
    return Status::failure("bpf: " + what_failed + ": " + std::strerror(err));
}

// A mapping of an inner array, unmapped when it goes out of scope.
class Mapping {
public:
    Mapping(int fd, std::size_t length, int prot)
        : length_(length), addr_(mmap(nullptr, length, prot, MAP_SHARED, fd, 0))
    {
    }
    ~Mapping()
    {
        if (ok())
            munmap(addr_, length_);
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    bool ok() const { return addr_ != MAP_FAILED; }
    void* data() const { return addr_; }

private:
    std::size_t length_;
    void* addr_;
};

}  // namespace

std::size_t maglev_table_value_bytes(std::uint32_t slots)
{
    return static_cast<std::size_t>(FULCRUM_MAGLEV_CHUNKS(slots)) * sizeof(fulcrum_maglev_chunk);
}

Result<int> create_maglev_table(const std::string& name, std::span<const std::uint32_t> slots,
                                const std::string& what)
{
    if (slots.empty() || slots.size() > FULCRUM_MAX_TABLE_SIZE)
        return Status::failure("bpf: " + what + " has a bad size " + std::to_string(slots.size()));
    const auto size = static_cast<std::uint32_t>(slots.size());
    // The flags and value size must be the template's (xdp/lib/maps.h maglev_inner), or the
    // kernel refuses the swap into maglev_tables.
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, name.substr(0, BPF_OBJ_NAME_LEN - 1).c_str(), sizeof(std::uint32_t),
                            sizeof(fulcrum_maglev_chunk), FULCRUM_MAGLEV_CHUNKS(size), &opts);
    if (fd < 0)
        return failed("cannot create " + what, errno);
    {
        // Chunks are contiguous (64 bytes, a multiple of the kernel's 8-byte element stride), so
        // slot i is the i-th __u32 of the mapping; the padding after the last slot stays 0.
        Mapping map(fd, maglev_table_value_bytes(size), PROT_READ | PROT_WRITE);
        if (!map.ok()) {
            Status s = failed("cannot map " + what + " to fill it", errno);
            close(fd);
            return s;
        }
        std::memcpy(map.data(), slots.data(), slots.size_bytes());
    }
    return fd;
}

Result<std::vector<std::uint32_t>> read_maglev_table(int fd, std::uint32_t table_size, const std::string& what)
{
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        return failed("cannot read the info of " + what, errno);
    if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != sizeof(fulcrum_maglev_chunk) ||
        info.max_entries != FULCRUM_MAGLEV_CHUNKS(table_size) || !(info.map_flags & BPF_F_MMAPABLE))
        return Status::failure("bpf: " + what + " is not a table of " + std::to_string(table_size) +
                               " slots in chunks of " + std::to_string(FULCRUM_MAGLEV_CHUNK_SLOTS) + " (value size " +
                               std::to_string(info.value_size) + ", " + std::to_string(info.max_entries) +
                               " entries, flags " + std::to_string(info.map_flags) + ")");
    const std::size_t padded = static_cast<std::size_t>(info.max_entries) * FULCRUM_MAGLEV_CHUNK_SLOTS;
    Mapping map(fd, padded * sizeof(std::uint32_t), PROT_READ);
    if (!map.ok())
        return failed("cannot map " + what + " to read it", errno);
    const auto* all = static_cast<const std::uint32_t*>(map.data());
    for (std::size_t i = table_size; i < padded; ++i)
        if (all[i] != 0)
            return Status::failure("bpf: " + what + ": padding slot " + std::to_string(i) + " past its " +
                                   std::to_string(table_size) + " slots holds " + std::to_string(all[i]) + ", not 0");
    return std::vector<std::uint32_t>(all, all + table_size);
}

}  // namespace fulcrum::dataplane
