// Where the next-hop cache's entries live: the balancer's nexthops map (nexthop_cache.h
// NexthopStore), and the reconciler's MapWriter that gives a backend its entry before any table
// names it.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/map_writer.h"
#include "dataplane/nexthop_cache.h"

namespace fulcrum::dataplane {

class BalancerProgram;
class NexthopUpkeep;

// The balancer's nexthops map: read and written through BalancerProgram (which owns the
// skeleton); readers waited for with membarrier.
std::unique_ptr<NexthopStore> make_program_store(BalancerProgram& program);

// The reconciler's MapWriter for the real maps: forwards every write to the program, and when
// backends that become usable have been written (MapWriter::backends_written, before any table
// names them) gives them their next-hop entries, so no packet of a new backend meets the fib path
// (which drops with forwarding off).
class NexthopWriter final : public MapWriter {
public:
    explicit NexthopWriter(BalancerProgram& program) : program_(program) {}
    void set_upkeep(NexthopUpkeep* upkeep) { upkeep_ = upkeep; }

    // The transaction is the program's: next-hop entries made for new backends during an apply
    // are journaled with the rest and put back by rollback().
    void begin() override;
    void commit() override;
    Status rollback() override;
    Status prepare_table(std::uint32_t service_id, std::span<const std::uint32_t> table) override;
    Status set_settings(const fulcrum_settings& settings) override;
    Status put_vip(const fulcrum_vip_key& key, const fulcrum_vip_value& value) override;
    Status delete_vip(const fulcrum_vip_key& key) override;
    Status put_service(const fulcrum_service_key& key, const fulcrum_service_value& value) override;
    Status delete_service(const fulcrum_service_key& key) override;
    Status put_backend(std::uint32_t id, const fulcrum_backend& backend) override;
    Status put_quic_id(const fulcrum_quic_key& key, std::uint32_t backend_id) override;
    Status delete_quic_id(const fulcrum_quic_key& key) override;
    Status put_table(std::uint32_t service_id, std::span<const std::uint32_t> table) override;
    Status put_tables(std::span<const std::uint32_t> service_ids) override;
    Status delete_table(std::uint32_t service_id) override;
    Status backends_written() override;

private:
    BalancerProgram& program_;
    NexthopUpkeep* upkeep_ = nullptr;
    std::vector<NexthopTarget> written_;  // since the last backends_written
    bool touched_ = false;
};

}  // namespace fulcrum::dataplane
