// Map pinning and adoption; see pinning.h.
#include "dataplane/pinning.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "abi.h"
#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

// Maps whose loss costs only counters or flow stickiness, never correctness.
const std::set<std::string> kReplaceableAlone = {"flows", "service_stats", "backend_stats", "reason_stats"};
// Maps never adopted: the daemon refills them at every start. (The kernel adds
// BPF_F_RDONLY_PROG to a devmap's flags, so a pinned tx_ports never matches the object's
// definition; libbpf 1.1 would refuse to reuse it.)
const std::set<std::string> kAlwaysFresh = {"tx_ports"};
// Maps never pinned at all: a capture's ring and scratch (xdp/capture.h) mean something only to
// the fulcrumd that loaded the program, which reads them through its own skeleton.
const std::set<std::string> kNeverPinned = {"capture_ring", "capture_scratch"};

bool never_pinned(const bpf_map* map)
{
    const char* name = bpf_map__name(map);
    return std::strchr(name, '.') != nullptr ||  // .rodata, .bss, .data: belong to the program
           kNeverPinned.contains(name);
}

// Whether the map pinned at path has the type, sizes and flags this object expects; a failure
// says what differs.
Status compatible(const bpf_map* map, const std::string& path)
{
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0)
        return Status::failure(std::string("cannot open: ") + std::strerror(errno));
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    int err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err)
        return Status::failure("cannot read its info");
    auto differs = [](const char* what, unsigned pinned, unsigned wanted) {
        return Status::failure(std::string(what) + " " + std::to_string(pinned) + " -> " + std::to_string(wanted));
    };
    if (info.type != bpf_map__type(map))
        return differs("type", info.type, bpf_map__type(map));
    if (info.key_size != bpf_map__key_size(map))
        return differs("key size", info.key_size, bpf_map__key_size(map));
    if (info.value_size != bpf_map__value_size(map))
        return differs("value size", info.value_size, bpf_map__value_size(map));
    if (info.max_entries != bpf_map__max_entries(map))
        return differs("max_entries", info.max_entries, bpf_map__max_entries(map));
    if (info.map_flags != bpf_map__map_flags(map))
        return differs("flags", info.map_flags, bpf_map__map_flags(map));
    return {};
}

// Whether the state pinned under dir was made for this build's ABI (abi.h FULCRUM_ABI_VERSION,
// pinned in map `abi`); a failure says what differed.
Status abi_matches(const std::string& dir)
{
    const std::string path = dir + "/abi";
    if (access(path.c_str(), F_OK) != 0)
        return Status::failure("no ABI version pinned (maps of a fulcrumd from before ABI versions), version " +
                               std::to_string(FULCRUM_ABI_VERSION) + " built");
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0)
        return Status::failure("cannot open the pinned ABI version " + path + ": " + std::strerror(errno));
    // A pinned `abi` of another shape (some other version's) is not read into a __u32.
    bpf_map_info info{};
    std::uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 || info.type != BPF_MAP_TYPE_ARRAY ||
        info.key_size != sizeof(std::uint32_t) || info.value_size != sizeof(std::uint32_t)) {
        close(fd);
        return Status::failure("the pinned ABI version " + path +
                               " is not a __u32 array (another version's layout), version " +
                               std::to_string(FULCRUM_ABI_VERSION) + " built");
    }
    std::uint32_t key = 0, version = 0;
    int err = bpf_map_lookup_elem(fd, &key, &version);
    int saved = errno;
    close(fd);
    if (err != 0)
        return Status::failure("cannot read the pinned ABI version " + path + ": " + std::strerror(saved));
    if (version != FULCRUM_ABI_VERSION)
        return Status::failure("ABI version " + std::to_string(version) + " pinned, version " +
                               std::to_string(FULCRUM_ABI_VERSION) + " built");
    return {};
}

}  // namespace

Status prepare_map_pins(bpf_object* obj, const std::string& dir, int* adopted)
{
    std::vector<bpf_map*> maps;
    bpf_map* map;
    bpf_object__for_each_map(map, obj)
        if (!never_pinned(map))
            maps.push_back(map);

    // Another ABI version (or none): nothing pinned is adopted, whatever the sizes say; an enum,
    // a flag bit or the inner-map template may mean something else at equal sizes.
    bool any_pinned = false;
    for (bpf_map* m : maps)
        any_pinned |= access((dir + "/" + bpf_map__name(m)).c_str(), F_OK) == 0;
    const Status abi = any_pinned ? abi_matches(dir) : Status{};
    const bool all_fresh = !abi.ok();
    if (all_fresh)
        LOG_WARN("pin: %s: pinned state not adopted: %s; replacing every pinned map (state, flow table, "
                 "counters and operator drains start fresh)",
                 dir.c_str(), abi.message().c_str());

    bool state_fresh = false;
    std::set<std::string> unlink_names;
    for (bpf_map* m : maps) {
        if (all_fresh)
            break;
        std::string name = bpf_map__name(m), path = dir + "/" + name;
        if (kAlwaysFresh.contains(name)) {
            unlink_names.insert(name);
            continue;
        }
        if (access(path.c_str(), F_OK) != 0)
            continue;
        const Status usable = compatible(m, path);
        if (usable.ok())
            continue;
        const std::string why = usable.message();
        if (kReplaceableAlone.contains(name)) {
            LOG_WARN("pin: %s: pinned map %s not reusable (%s); starting a fresh one", dir.c_str(),
                     name.c_str(), why.c_str());
            unlink_names.insert(name);
        } else {
            LOG_WARN("pin: %s: pinned map %s not reusable (%s); starting with fresh state and flow table",
                     dir.c_str(), name.c_str(), why.c_str());
            state_fresh = true;
        }
    }
    *adopted = 0;
    for (bpf_map* m : maps) {
        std::string name = bpf_map__name(m), path = dir + "/" + name;
        bool fresh = all_fresh || unlink_names.contains(name) ||
                     (state_fresh && (name == "flows" || !kReplaceableAlone.contains(name)));
        if (fresh && unlink(path.c_str()) != 0 && errno != ENOENT)
            return Status::failure("pin: cannot remove " + path + ": " + std::strerror(errno));
        if (!fresh && access(path.c_str(), F_OK) == 0)
            ++*adopted;
        if (int err = bpf_map__set_pin_path(m, path.c_str()))
            return Status::failure("pin: cannot set the pin path of " + name + ": " + std::strerror(-err));
    }
    return {};
}

unsigned pinned_program_id(const std::string& dir, const std::string& name)
{
    const std::string path = dir + "/" + name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
        // None pinned is the usual first start; anything else means our own program on an
        // interface will not be recognised as ours, so say why.
        if (errno != ENOENT)
            LOG_WARN("pin: cannot open the pinned program %s: %s (taken as none pinned)", path.c_str(),
                     std::strerror(errno));
        return 0;
    }
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    const int err = bpf_obj_get_info_by_fd(fd, &info, &len);
    const int saved = errno;
    close(fd);
    if (err != 0) {
        LOG_WARN("pin: cannot read the pinned program %s: %s (taken as none pinned)", path.c_str(),
                 std::strerror(saved));
        return 0;
    }
    return info.id;
}

Status pin_program(bpf_program* program, const std::string& dir, const std::string& name)
{
    std::string path = dir + "/" + name;
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
        return Status::failure("pin: cannot replace " + path + ": " + std::strerror(errno));
    if (int err = bpf_program__pin(program, path.c_str()))
        return Status::failure("pin: cannot pin the program at " + path + ": " + std::strerror(-err));
    return {};
}

void unpin_all(bpf_object* obj, const std::string& dir, const std::string& program_name)
{
    std::vector<std::string> names;
    bpf_map* map;
    bpf_object__for_each_map(map, obj)
        if (!never_pinned(map))
            names.push_back(bpf_map__name(map));
    names.push_back(program_name);
    for (const std::string& name : names) {
        const std::string path = dir + "/" + name;
        if (unlink(path.c_str()) != 0 && errno != ENOENT)
            LOG_WARN("pin: cannot remove %s: %s", path.c_str(), std::strerror(errno));
    }
}

}  // namespace fulcrum::dataplane
