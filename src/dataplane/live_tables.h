// The inner maps that maglev_tables references, one per service id, each held open by fulcrumd.
//
// Why hold them: an apply's transaction must be able to put the previous table of a service back
// (map_journal.h), and the only other way to reach an inner map is by its id
// (BPF_MAP_GET_FD_BY_ID), which the kernel allows only with CAP_SYS_ADMIN. fulcrumd gives that up
// after start-up, so it keeps a descriptor of every table it swaps in (and of the tables adopted
// from pins, opened by id at start while it still may).
//
// Inside a transaction nothing is closed: a table replaced or removed stays open until commit()
// (rollback() may put it back), and a table installed is closed again by rollback().
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace fulcrum::dataplane {

class LiveTables {
public:
    LiveTables() = default;
    ~LiveTables();
    LiveTables(const LiveTables&) = delete;
    LiveTables& operator=(const LiveTables&) = delete;

    // The descriptor of the service's table as maglev_tables holds it now; -1 if none is held.
    int fd(std::uint32_t service_id) const;
    std::size_t size() const { return live_.size(); }

    // The service's slot now references `fd` (owned from here on); the previous table is released.
    void installed(std::uint32_t service_id, int fd);
    // The service's slot was deleted.
    void removed(std::uint32_t service_id);

    void begin();
    void commit();
    void rollback();

private:
    // Closes every descriptor seen in this transaction that `kept` does not hold.
    void end(const std::map<std::uint32_t, int>& kept);
    void release(int fd);

    std::map<std::uint32_t, int> live_;
    bool active_ = false;
    std::map<std::uint32_t, int> before_;  // live_ at begin()
    std::vector<int> installed_;           // every descriptor installed since begin()
};

}  // namespace fulcrum::dataplane
