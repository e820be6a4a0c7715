// The next-hop cache's view of the kernel (nexthop_cache.h NexthopResolver): for each backend,
// the route, neighbour entry and egress MTU that bpf_fib_lookup would find, from rtnetlink
// questions (dataplane/rtnl.h) about the given interfaces, or why the cache must not be used.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/nexthop_cache.h"
#include "util/status.h"

namespace fulcrum::dataplane {

// The kernel side: rtnetlink questions (src/dataplane/rtnl.h) for the given interfaces.
Result<std::unique_ptr<NexthopResolver>> make_kernel_resolver(std::vector<std::string> interfaces,
                                                              std::optional<fulcrum_addr> source_v6);

}  // namespace fulcrum::dataplane
