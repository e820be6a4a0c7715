// Pinning the balancer's maps under bpf.pin_path so that forwarding state (tables, backends,
// flows, counters) outlives the daemon, and adopting those pins when the daemon starts again.
#pragma once

#include <string>

#include "util/status.h"

struct bpf_object;
struct bpf_program;

namespace fulcrum::dataplane {

// Before load: points every map of obj at DIR/<map name>. A pinned map that is compatible is
// reused by libbpf at load (adoption); one that is not is unlinked so a fresh one is created:
// the flow table and counters may be replaced alone (capacity changed: flows start empty), but
// if any state map (services, backends, tables, ...) is incompatible all state maps and the flow
// table start fresh together, so no flow can point at a backend id that means something else.
// Before any of that, the ABI version pinned in map `abi` must equal this build's
// (FULCRUM_ABI_VERSION): pinned state of another version, or of none, is replaced whole, with a
// log line naming both versions. Returns how many pins will be adopted, in *adopted.
Status prepare_map_pins(bpf_object* obj, const std::string& dir, int* adopted);

// The id of the program pinned at DIR/<name> (an earlier fulcrumd's), 0 if none.
unsigned pinned_program_id(const std::string& dir, const std::string& name);

// Pins the program at DIR/<name>, replacing an older pin.
Status pin_program(bpf_program* program, const std::string& dir, const std::string& name);

// Removes DIR/* pins of this object's maps and the program pin (on_exit: detach).
void unpin_all(bpf_object* obj, const std::string& dir, const std::string& program_name);

}  // namespace fulcrum::dataplane
