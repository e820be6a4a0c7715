// Reading a program's maps whole: see map_dump.h. Arrays and hashes are read in batches (the
// backends array alone has 131072 entries), others key by key.
#include "map_dump.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace fulcrum::test {
namespace {

using Entries = std::map<std::vector<std::uint8_t>, std::vector<std::uint8_t>>;

bool per_cpu(std::uint32_t type)
{
    return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
           type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

std::string hex(const std::vector<std::uint8_t>& bytes)
{
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (std::uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

void fail(const std::string& what, const std::string& map)
{
    throw std::runtime_error("map dump: cannot " + what + " " + map + ": " + std::strerror(errno));
}

// In batches; false if the map type has no batch lookup.
bool read_batched(int fd, const bpf_map_info& info, std::size_t value_size, Entries& out)
{
    const std::uint32_t chunk = 4096;
    std::vector<std::uint8_t> keys(static_cast<std::size_t>(chunk) * info.key_size), values(chunk * value_size);
    std::uint64_t token[8] = {};  // batch position: a key or a bucket index, both fit
    bool first = true;
    for (;;) {
        std::uint32_t count = chunk;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : token, token, keys.data(), values.data(), &count, nullptr);
        if (err != 0 && errno != ENOENT) {
            // 524: the kernel's ENOTSUPP, what a map type without batch operations answers
            if (first && (errno == EINVAL || errno == ENOTSUP || errno == EOPNOTSUPP || errno == 524))
                return false;
            fail("read in batches", info.name);
        }
        for (std::uint32_t i = 0; i < count; i++)
            out[std::vector<std::uint8_t>(keys.begin() + i * info.key_size, keys.begin() + (i + 1) * info.key_size)] =
                std::vector<std::uint8_t>(values.begin() + i * value_size, values.begin() + (i + 1) * value_size);
        if (err != 0)
            return true;  // ENOENT: that was the last batch
        first = false;
    }
}

void read_one_by_one(int fd, const bpf_map_info& info, std::size_t value_size, Entries& out)
{
    std::vector<std::uint8_t> key(info.key_size), next(info.key_size), value(value_size);
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
        if (bpf_map_lookup_elem(fd, next.data(), value.data()) == 0)
            out[next] = value;
        else if (errno != ENOENT)
            fail("read", info.name);
        key = next;
        prev = key.data();
    }
}

std::size_t value_size_of(const bpf_map_info& info)
{
    if (per_cpu(info.type))
        return ((info.value_size + 7) / 8 * 8) * static_cast<std::size_t>(libbpf_num_possible_cpus());
    return info.value_size;
}

Entries read_map(int fd, bpf_map_info& info)
{
    const std::size_t value_size = value_size_of(info);
    Entries out;
    if (!read_batched(fd, info, value_size, out))
        read_one_by_one(fd, info, value_size, out);
    return out;
}

// An array, every slot in index order, in batches.
std::vector<std::uint8_t> read_array(int fd, const bpf_map_info& info)
{
    const std::size_t value_size = value_size_of(info);
    std::vector<std::uint8_t> out(value_size * info.max_entries);
    const std::uint32_t chunk = 8192;
    std::vector<std::uint32_t> keys(chunk);
    std::uint32_t token = 0, done = 0;
    while (done < info.max_entries) {
        std::uint32_t count = chunk;
        int err = bpf_map_lookup_batch(fd, done ? &token : nullptr, &token, keys.data(), out.data() + done * value_size,
                                       &count, nullptr);
        if (err != 0 && errno != ENOENT)
            fail("read in batches", info.name);
        done += count;
        if (err != 0 || count == 0)
            break;
    }
    if (done != info.max_entries)
        fail("read every slot of", info.name);
    return out;
}

}  // namespace

std::map<std::string, MapDump> dump_program_maps(int program_fd)
{
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(program_fd, &info, &len) != 0)
        fail("read the program info of", "the program");
    std::vector<std::uint32_t> ids(info.nr_map_ids);
    info = bpf_prog_info{};
    info.nr_map_ids = static_cast<std::uint32_t>(ids.size());
    info.map_ids = reinterpret_cast<std::uint64_t>(ids.data());
    len = sizeof info;
    if (bpf_obj_get_info_by_fd(program_fd, &info, &len) != 0)
        fail("read the map ids of", "the program");
    std::map<std::string, MapDump> out;
    for (std::uint32_t id : ids) {
        int fd = bpf_map_get_fd_by_id(id);
        if (fd < 0)
            fail("open map id " + std::to_string(id) + " of", "the program");
        bpf_map_info m{};
        std::uint32_t mlen = sizeof m;
        if (bpf_obj_get_info_by_fd(fd, &m, &mlen) != 0)
            fail("read the info of", "map id " + std::to_string(id));
        if (m.type == BPF_MAP_TYPE_RINGBUF) {  // a capture's records in flight: no keys, no state
            close(fd);
            continue;
        }
        MapDump d;
        d.name = m.name;
        d.type = m.type;
        d.value_size = static_cast<std::uint32_t>(value_size_of(m));
        if (m.type == BPF_MAP_TYPE_ARRAY || m.type == BPF_MAP_TYPE_PERCPU_ARRAY)
            d.dense = read_array(fd, m);
        else
            d.entries = read_map(fd, m);
        if (m.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || m.type == BPF_MAP_TYPE_HASH_OF_MAPS)
            for (const auto& [key, value] : d.entries) {
                std::uint32_t inner_id = 0;
                std::memcpy(&inner_id, value.data(), sizeof inner_id);
                int inner = bpf_map_get_fd_by_id(inner_id);
                if (inner < 0)
                    fail("open an inner map of", d.name);
                bpf_map_info im{};
                std::uint32_t ilen = sizeof im;
                if (bpf_obj_get_info_by_fd(inner, &im, &ilen) != 0)
                    fail("read the info of an inner map of", d.name);
                d.inner[key] = read_map(inner, im);
                close(inner);
            }
        close(fd);
        out[d.name] = std::move(d);
    }
    return out;
}

std::string first_difference(const std::map<std::string, MapDump>& a, const std::map<std::string, MapDump>& b)
{
    for (const auto& [name, da] : a) {
        auto it = b.find(name);
        if (it == b.end())
            return "map " + name + " is gone";
        const MapDump& db = it->second;
        if (da.dense != db.dense) {
            if (da.dense.size() != db.dense.size() || da.value_size == 0)
                return name + ": a different size";
            for (std::size_t i = 0; i < da.dense.size(); i += da.value_size)
                if (!std::equal(da.dense.begin() + i, da.dense.begin() + i + da.value_size, db.dense.begin() + i))
                    return name + " index " + std::to_string(i / da.value_size) + ": was " +
                           hex({da.dense.begin() + i, da.dense.begin() + i + da.value_size}) + ", now " +
                           hex({db.dense.begin() + i, db.dense.begin() + i + db.value_size});
        }
        for (const auto& [key, value] : da.entries) {
            auto e = db.entries.find(key);
            if (e == db.entries.end())
                return name + " key " + hex(key) + ": was " + hex(value) + ", now absent";
            if (e->second != value)
                return name + " key " + hex(key) + ": was " + hex(value) + ", now " + hex(e->second);
        }
        for (const auto& [key, value] : db.entries)
            if (!da.entries.contains(key))
                return name + " key " + hex(key) + ": was absent, now " + hex(value);
        if (da.inner != db.inner)
            return name + ": the contents of an inner map differ";
    }
    if (a.size() != b.size())
        return "the program has other maps";
    return "";
}

int map_fd_by_name(int prog_fd, const std::string& name)
{
    std::uint32_t ids[64] = {};
    bpf_prog_info info{};
    info.nr_map_ids = 64;
    info.map_ids = reinterpret_cast<std::uint64_t>(ids);
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
        throw std::runtime_error("bpf_obj_get_info_by_fd(program) failed");
    for (std::uint32_t i = 0; i < info.nr_map_ids && i < 64; i++) {
        int fd = bpf_map_get_fd_by_id(ids[i]);
        if (fd < 0)
            continue;
        bpf_map_info mi{};
        std::uint32_t mlen = sizeof mi;
        if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) == 0 && name == mi.name)
            return fd;
        close(fd);
    }
    throw std::runtime_error("program has no map " + name);
}

}  // namespace fulcrum::test
