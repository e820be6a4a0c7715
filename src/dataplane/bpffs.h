// Making sure a pin path lives on a BPF filesystem: inside `ip netns exec` /sys is remounted and
// /sys/fs/bpf is not bpffs, so the daemon mounts one where it needs it.
#pragma once

#include <string>

#include "util/status.h"

namespace fulcrum::dataplane {

bool is_bpffs(const std::string& path);
// Creates `path` on a bpffs: if the path (or, when it cannot be created, its deepest existing
// ancestor) is not on bpffs, mounts bpffs there first.
Status ensure_bpffs_dir(const std::string& path);

}  // namespace fulcrum::dataplane
