// Runs packet tables: see table.h.
#include "table.h"

#include <catch2/catch.hpp>

#include "dataplane/reasons.h"

namespace fulcrum::test {

void run_table(BalancerLab& lab, const std::vector<Row>& rows)
{
    std::map<int, std::uint64_t> reasons;
    std::map<std::uint32_t, dataplane::ServiceCounters> services;
    std::map<std::uint32_t, dataplane::PacketCounters> backends;

    for (const Row& row : rows) {
        INFO("row: " << row.name);
        Verdict v = lab.run(row.in);
        CHECK(std::string(action_name(v.action)) == action_name(row.action));
        if (row.action == XDP_PASS && row.out.empty())
            CHECK(hex(v.out) == hex(row.in));
        else if (!row.out.empty())
            CHECK(hex(v.out) == hex(row.out));
        if (row.reason)
            reasons[*row.reason]++;
        if (row.service) {
            services[row.service].packets++;
            services[row.service].bytes += row.in.size();
            services[row.service].new_flows += row.new_flow;
            backends[row.backend].packets++;
            backends[row.backend].bytes += row.in.size();
        }
    }
    for (int r = 0; r < FULCRUM_REASON_COUNT; r++) {
        INFO("reason counter " << dataplane::reason_name(static_cast<fulcrum_reason>(r)));
        CHECK(lab.program().reason_counters(static_cast<fulcrum_reason>(r)).packets == reasons[r]);
    }
    for (const auto& [id, want] : services) {
        INFO("service " << id);
        auto got = lab.program().service_counters(id);
        CHECK(got.packets == want.packets);
        CHECK(got.bytes == want.bytes);
        CHECK(got.new_flows == want.new_flows);
    }
    for (const auto& [id, want] : backends) {
        INFO("backend " << id);
        auto got = lab.program().backend_counters(id);
        CHECK(got.packets == want.packets);
        CHECK(got.bytes == want.bytes);
    }
}

}  // namespace fulcrum::test
