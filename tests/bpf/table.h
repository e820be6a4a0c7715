// A packet table: rows of (description, input frame, expected verdict, expected output frame,
// expected counter), run through BPF_PROG_TEST_RUN; afterwards the program's counters must equal
// the sums the rows imply.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lab.h"

namespace fulcrum::test {

struct Row {
    std::string name;
    Bytes in;
    int action;                            // XDP_TX, XDP_PASS, XDP_DROP, XDP_REDIRECT
    Bytes out;                             // exact expected frame; empty + XDP_PASS = unchanged
    std::optional<fulcrum_reason> reason;  // counter the packet must land in (besides forwarding)
    std::uint32_t service = 0;             // forwarded: counted for this service ...
    std::uint32_t backend = 0;             // ... and this backend
    bool new_flow = false;                 // forwarded as a new flow
};

inline const char* action_name(int action)
{
    switch (action) {
    case XDP_ABORTED: return "XDP_ABORTED";
    case XDP_DROP: return "XDP_DROP";
    case XDP_PASS: return "XDP_PASS";
    case XDP_TX: return "XDP_TX";
    case XDP_REDIRECT: return "XDP_REDIRECT";
    }
    return "?";
}

// Runs every row (CHECKs per row, so one failure does not hide the others), then compares the
// counters against what the rows imply. Counters must start at zero (a fresh BalancerLab).
void run_table(BalancerLab& lab, const std::vector<Row>& rows);

}  // namespace fulcrum::test
