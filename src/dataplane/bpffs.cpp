// bpffs checks and mounting; see bpffs.h.
#include "dataplane/bpffs.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

namespace fs = std::filesystem;

// Whether `path` is /sys/fs/bpf or below it, by its components (after removing "." and "..").
bool under_root(const fs::path& path)
{
    const fs::path root(kBpffsRoot);
    auto p = path.begin();
    for (auto r = root.begin(); r != root.end(); ++r, ++p)
        if (p == path.end() || *p != *r)
            return false;
    return true;
}

Status mount_bpffs_root()
{
    if (mount("bpf", kBpffsRoot, "bpf", 0, "mode=0700") != 0)
        return Status::failure(std::string("bpffs: cannot mount bpffs on ") + kBpffsRoot + ": " + std::strerror(errno));
    LOG_INFO("bpffs: mounted a BPF filesystem on %s (it was not one: a private /sys, as in `ip netns exec`?)",
             kBpffsRoot);
    return {};
}

}  // namespace

bool under_bpffs_root(const std::string& path) { return under_root(fs::path(path).lexically_normal()); }

bool is_bpffs(const std::string& path)
{
    struct statfs fs {};
    return statfs(path.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == BPF_FS_MAGIC;
}

Status ensure_bpffs_dir(const std::string& path)
{
    const fs::path target = fs::path(path).lexically_normal();
    if (!target.is_absolute())
        return Status::failure("bpffs: pin path " + path + " is not absolute");
    std::error_code ec;
    if (fs::exists(target, ec) && is_bpffs(target.string()))
        return {};
    if (under_root(target)) {
        if (!is_bpffs(kBpffsRoot))
            if (Status s = mount_bpffs_root(); !s.ok())
                return s;
    } else {
        fs::path ancestor = target;
        while (!fs::exists(ancestor, ec) && ancestor.has_parent_path() && ancestor != ancestor.parent_path())
            ancestor = ancestor.parent_path();
        if (!is_bpffs(ancestor.string()))
            return Status::failure("bpffs: pin path " + path + " is not on a BPF filesystem (" + ancestor.string() +
                                   " is not bpffs) and is not under " + kBpffsRoot +
                                   ", the only place fulcrumd mounts one: mount a bpffs for it first (mount -t "
                                   "bpf bpf DIR) or set bpf.pin_path under " + kBpffsRoot);
    }
    fs::create_directories(target, ec);
    if (ec)
        return Status::failure("bpffs: cannot create " + path + ": " + ec.message());
    if (!is_bpffs(target.string()))
        return Status::failure("bpffs: pin path " + path + " is not on a BPF filesystem (something else is "
                               "mounted on it or between it and " + std::string(kBpffsRoot) + ")");
    return {};
}

}  // namespace fulcrum::dataplane
