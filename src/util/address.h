// Text of an address as stored in the data plane's keys (xdp/abi.h fulcrum_addr): inet_ntop's
// canonical form, the one logs, metrics labels and fulcrumctl show.
#pragma once

#include <cstdint>
#include <string>

#include "abi.h"

namespace fulcrum {

// family: FULCRUM_AF_INET (the address in w[0]) or FULCRUM_AF_INET6.
std::string address_text(const fulcrum_addr& addr, std::uint8_t family);

}  // namespace fulcrum
