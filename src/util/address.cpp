// See address.h.
#include "util/address.h"

#include <arpa/inet.h>

namespace fulcrum {

std::string address_text(const fulcrum_addr& addr, std::uint8_t family)
{
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(family == FULCRUM_AF_INET ? AF_INET : AF_INET6, addr.w, text, sizeof text);
    return text;
}

}  // namespace fulcrum
