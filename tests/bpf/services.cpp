// The standard services of the BPF tests: see services.h.
#include "services.h"

namespace fulcrum::test {

std::vector<std::uint32_t> fill(std::uint32_t backend, std::size_t size)
{
    return std::vector<std::uint32_t>(size, backend);
}

void standard_services(BalancerLab& lab)
{
    // A backend id serves one service (its flow-table hits are checked against it).
    lab.add_backend(1, "198.18.0.11", 1);
    lab.add_backend(4, "2001:db8:0:1::11", 2);
    lab.add_backend(5, "2001:db8:0:1::12", 3);
    lab.add_backend(2, "198.18.0.12", 4);
    lab.add_backend(6, "198.18.0.20", 6);   // on-link, no neighbour entry
    lab.add_backend(7, "198.19.200.1", 7);  // no route
    lab.add_backend(8, kOtherNetBackend, 8);  // behind the second interface
    lab.add_backend(11, "198.18.0.21", 9);
    lab.add_backend(12, "198.18.0.22", 9);
    lab.add_backend(13, "198.18.0.23", 9);
    lab.add_backend(9, "2001:db8:0:1::13", 10);
    lab.add_service(1, kVip4, 80, kTcp, fill(1));
    lab.add_service(2, kVip4, 53, kUdp, fill(4));  // IPv4 service, IPv6 backend
    lab.add_service(3, kVip6, 443, kTcp, fill(5));
    lab.add_service(4, kVip4Port0, 0, kTcp, fill(2));
    lab.add_service(5, kVip4Empty, 80, kTcp, fill(0));
    lab.add_service(6, kVip4NoNeigh, 80, kTcp, fill(6));
    lab.add_service(7, kVip4NoRoute, 80, kTcp, fill(7));
    lab.add_service(8, kVip4Other, 80, kTcp, fill(8));
    std::vector<std::uint32_t> round_robin;
    for (std::uint32_t i = 0; i < 13; i++)
        round_robin.push_back(11 + i % 3);
    lab.add_service(9, kVip4Multi, 80, kTcp, round_robin);
    lab.add_service(10, kVip6, 53, kUdp, fill(9));
}

}  // namespace fulcrum::test
