// The undo log of one transaction on the balancer's maps (MapWriter::begin/commit/rollback):
// before each write of a key, its current bytes (or its absence) are kept; rollback() writes
// them back in reverse order, so the maps end byte for byte as they were and every state a
// packet sees on the way back is one it could have seen on the way forward.
//
// Kinds of maps, by what "put back" takes:
//   plain        the previous value bytes, or a delete for a key that was absent;
//   map_of_maps  the previous inner map itself: its fd is held from the moment its slot is
//                first written, so the very same table (same map id) goes back, and nothing can
//                fail for lack of memory on the way back. The caller passes the descriptor it
//                holds for that inner map (live_tables.h); opening it by id instead needs
//                CAP_SYS_ADMIN, which fulcrumd no longer has after start-up;
//   nexthop      an entry the program reads field by field while `valid` is 1: put back with the
//                next-hop cache's protocol (nexthop_cache.h): valid = 0, wait for readers, the
//                fields, then valid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/status.h"

namespace fulcrum::dataplane {

// Returns once every XDP program run that started before the call has ended (an RCU grace
// period: membarrier MEMBARRIER_CMD_GLOBAL).
void wait_for_xdp_readers();

class MapJournal {
public:
    enum class Kind { plain, map_of_maps, nexthop };

    MapJournal() = default;
    ~MapJournal();
    MapJournal(const MapJournal&) = delete;
    MapJournal& operator=(const MapJournal&) = delete;

    bool active() const { return active_; }
    void begin();
    // Call before writing `key` of the map while active: keeps what the key holds now. A key that
    // cannot be read fails the write before it is made. map_of_maps: `held_inner_fd` is the
    // caller's descriptor of the inner map the key references now (-1: none held).
    Status record(int map_fd, const char* map_name, const void* key, std::uint32_t key_size,
                  std::uint32_t value_size, Kind kind, int held_inner_fd = -1);
    // Puts everything back (the transaction ends). Lists every entry that could not be put back.
    Status rollback();
    // Keeps the writes (the transaction ends); releases the previous inner maps.
    void commit();

private:
    struct Entry {
        int map_fd = -1;
        std::string map;
        Kind kind = Kind::plain;
        std::vector<std::uint8_t> key;
        std::optional<std::vector<std::uint8_t>> old;  // absent: the key did not exist
        int inner_fd = -1;                               // map_of_maps: the previous inner map
    };
    Status restore(const Entry& e, bool& grace_needed);
    void release();

    std::vector<Entry> entries_;
    bool active_ = false;
};

}  // namespace fulcrum::dataplane
