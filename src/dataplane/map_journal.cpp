// The undo log of a map transaction: see map_journal.h.
#include "dataplane/map_journal.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "abi.h"

namespace fulcrum::dataplane {
namespace {

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

Status failed(const std::string& what, const std::string& map, const std::vector<std::uint8_t>& key, int err)
{
    return Status::failure("cannot " + what + " " + map + " key " + hex(key) + ": " + std::strerror(err));
}

bool same_fields(fulcrum_nexthop a, fulcrum_nexthop b)
{
    a.valid = b.valid = 0;
    return std::memcmp(&a, &b, sizeof a) == 0;
}

// A descriptor of inner map `id` that this entry owns: a duplicate of the caller's when that is the
// map the slot references, else opened by id (CAP_SYS_ADMIN only; tests and a start-up still hold it).
int hold_inner_map(int held_fd, std::uint32_t id)
{
    if (held_fd >= 0) {
        bpf_map_info info{};
        std::uint32_t len = sizeof info;
        if (bpf_obj_get_info_by_fd(held_fd, &info, &len) == 0 && info.id == id)
            return fcntl(held_fd, F_DUPFD_CLOEXEC, 0);
    }
    return bpf_map_get_fd_by_id(id);
}

}  // namespace

void wait_for_xdp_readers()
{
    // XDP runs inside RCU read-side sections; MEMBARRIER_CMD_GLOBAL is synchronize_rcu(). Refused
    // on nohz_full kernels: then wait far longer than any program run (microseconds).
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

MapJournal::~MapJournal() { release(); }

void MapJournal::begin()
{
    release();
    active_ = true;
}

Status MapJournal::record(int map_fd, const char* map_name, const void* key, std::uint32_t key_size,
                          std::uint32_t value_size, Kind kind, int held_inner_fd)
{
    Entry e;
    e.map_fd = map_fd;
    e.map = map_name;
    e.kind = kind;
    const auto* k = static_cast<const std::uint8_t*>(key);
    e.key.assign(k, k + key_size);
    std::vector<std::uint8_t> value(value_size);
    if (bpf_map_lookup_elem(map_fd, key, value.data()) == 0) {
        if (kind == Kind::map_of_maps) {
            std::uint32_t id = 0;
            std::memcpy(&id, value.data(), sizeof id);
            e.inner_fd = hold_inner_map(held_inner_fd, id);
            if (e.inner_fd < 0)
                return failed("hold the previous inner map of", e.map, e.key, errno);
        }
        e.old = std::move(value);
    } else if (errno != ENOENT) {
        return failed("read (to be able to undo)", e.map, e.key, errno);
    }
    entries_.push_back(std::move(e));
    return {};
}

Status MapJournal::restore(const Entry& e, bool& grace_needed)
{
    const void* key = e.key.data();
    if (e.kind == Kind::nexthop && e.old) {
        fulcrum_nexthop cur{}, want{};
        std::memcpy(&want, e.old->data(), sizeof want);
        if (bpf_map_lookup_elem(e.map_fd, key, &cur) != 0)
            return failed("read", e.map, e.key, errno);
        if (std::memcmp(&cur, &want, sizeof cur) == 0)
            return {};
        if (!same_fields(cur, want)) {
            // The fields change: no reader may be using them (valid = 0, then a grace period).
            if (cur.valid) {
                cur.valid = 0;
                if (bpf_map_update_elem(e.map_fd, key, &cur, BPF_ANY) != 0)
                    return failed("invalidate", e.map, e.key, errno);
                grace_needed = true;
            }
            if (grace_needed) {
                wait_for_xdp_readers();
                grace_needed = false;
            }
            cur = want;
            cur.valid = 0;
            if (bpf_map_update_elem(e.map_fd, key, &cur, BPF_ANY) != 0)
                return failed("restore", e.map, e.key, errno);
        }
        // Only `valid` differs now.
        if (bpf_map_update_elem(e.map_fd, key, &want, BPF_ANY) != 0)
            return failed("restore", e.map, e.key, errno);
        if (cur.valid && !want.valid)
            grace_needed = true;
        return {};
    }
    if (e.old) {
        const void* value = e.kind == Kind::map_of_maps ? static_cast<const void*>(&e.inner_fd) : e.old->data();
        if (bpf_map_update_elem(e.map_fd, key, value, BPF_ANY) != 0)
            return failed("restore", e.map, e.key, errno);
        return {};
    }
    if (bpf_map_delete_elem(e.map_fd, key) != 0 && errno != ENOENT)
        return failed("delete (undo of an insert)", e.map, e.key, errno);
    return {};
}

Status MapJournal::rollback()
{
    active_ = false;  // the restores themselves are not recorded
    std::string errors;
    bool grace_needed = true;  // a reader may still hold an entry made invalid by the writes
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
        if (Status s = restore(*it, grace_needed); !s.ok())
            errors += (errors.empty() ? "" : "; ") + s.message();
    release();
    if (!errors.empty())
        return Status::failure("bpf: undo incomplete: " + errors);
    return {};
}

void MapJournal::commit()
{
    active_ = false;
    release();
}

void MapJournal::release()
{
    for (Entry& e : entries_)
        if (e.inner_fd >= 0)
            close(e.inner_fd);
    // Its memory too, not only the entries: an apply of every backend journals hundreds of
    // thousands of writes (a 56 MiB vector at 1000 services x 100 backends), and clear() would
    // keep that capacity for the daemon's lifetime.
    std::vector<Entry>().swap(entries_);
}

}  // namespace fulcrum::dataplane
