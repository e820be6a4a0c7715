// The Maglev table of each desired service, built by the planner (not by the reconciler) so a
// Desired is the complete data-plane state as a value: what the maps should hold, tables
// included, before any id is allocated or any map is touched.
//
// A table here names its members (the service's active backends, by address), not backend ids:
// ids belong to the reconciler, which allocates them and writes `member id` into each slot. The
// Maglev result depends only on the members' addresses, weights, the size and the seed, never on
// the ids, so relabelling is exact.
//
// Building a table costs milliseconds, so a TableCache keeps the last table of each service and
// hands it back while its input (members, weights, size, seed) is unchanged: a reload that
// touches one service of a thousand builds one table.
//
// The slots themselves (4 bytes each: 262 MB for 1000 services of 65537) are held only until the
// apply that writes them: then the kernel has them, and what the daemon keeps is the table's
// recipe (members, weights, size, seed). A service the cache has no table for (every service at
// start) gets its recipe only, checked: the apply builds each such table where it writes it, a
// few at a time, so a cold start never holds all of them. Where the slots are needed again (a changed service's
// old table, to tell which flows move; `fulcrumctl lookup`; a rewrite after a failed apply)
// slots_of() rebuilds them, exactly: Maglev is deterministic.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plan/desired.h"
#include "util/status.h"

namespace fulcrum::plan {

struct SlotTable {
    std::string input;                 // table_input() of the service it was built for
    std::vector<std::string> members;  // active backends' addresses, in the service's file order
    std::vector<std::uint32_t> weights;  // of each member
    std::uint32_t size = 0;            // slots (the service's prime table_size)
    std::uint32_t seed = 0;
    // Index into members + 1 per slot, 0 = no backend; empty once dropped (see above).
    std::vector<std::uint32_t> slots;
};

// The slots of `table`: the ones it holds, or, once dropped, the same ones rebuilt.
std::vector<std::uint32_t> slots_of(const SlotTable& table);

// `table` without its slots (null stays null): what is kept once the kernel holds them.
std::shared_ptr<const SlotTable> without_slots(const std::shared_ptr<const SlotTable>& table);

// What a service's table is built from, as text: "size/seed address=weight ...". Two services
// with the same input have the same table.
std::string table_input(const ServicePlan& service, std::uint32_t seed);

class TableCache {
public:
    // Fills ServicePlan::table of every service of `desired`, reusing the cached table of a
    // service whose input is unchanged and building the changed ones in parallel, one thread per
    // CPU the process may run on (a service new to the cache: its recipe only, see above); the
    // cache then holds exactly the tables of `desired`.
    // Fails (naming the service) only where Maglev refuses its input, which a validated config
    // never gives; `desired` may then hold some tables and the cache is unchanged.
    Status build(Desired& desired);

    // Once `desired` is applied: its tables, here and in `desired`, keep their recipe only.
    void drop_slots(Desired& desired);

private:
    std::map<std::string, std::shared_ptr<const SlotTable>> by_service_;
};

}  // namespace fulcrum::plan
