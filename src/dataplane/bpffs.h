// Making sure a pin path lives on a BPF filesystem. fulcrumd mounts bpffs at /sys/fs/bpf and
// nowhere else: inside `ip netns exec` /sys is remounted and /sys/fs/bpf is not bpffs, so a pin
// path under it needs that mount; a pin path elsewhere must already be on a bpffs the operator
// mounted (a bpffs mounted over /var/lib or / would hide everything under it).
#pragma once

#include <string>

#include "util/status.h"

namespace fulcrum::dataplane {

inline constexpr const char* kBpffsRoot = "/sys/fs/bpf";

bool is_bpffs(const std::string& path);
// Whether the absolute `path` is /sys/fs/bpf or below it (lexically: "." and ".." resolved).
bool under_bpffs_root(const std::string& path);
// Creates `path` (absolute) on a bpffs. Under /sys/fs/bpf: mounts bpffs at /sys/fs/bpf first if
// it is not one. Elsewhere: the path, or its nearest existing ancestor, must be on bpffs already;
// otherwise fails with a message that says to mount one. Never mounts anywhere but /sys/fs/bpf.
Status ensure_bpffs_dir(const std::string& path);

}  // namespace fulcrum::dataplane
