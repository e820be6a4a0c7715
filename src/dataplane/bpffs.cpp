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

Status mount_bpffs(const std::string& where)
{
    if (mount("bpf", where.c_str(), "bpf", 0, "mode=0700") != 0)
        return Status::failure("bpffs: cannot mount bpffs on " + where + ": " + std::strerror(errno));
    LOG_INFO("bpffs: mounted a BPF filesystem on %s", where.c_str());
    return {};
}

}  // namespace

bool is_bpffs(const std::string& path)
{
    struct statfs fs {};
    return statfs(path.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == BPF_FS_MAGIC;
}

Status ensure_bpffs_dir(const std::string& path)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists(path, ec)) {
        if (is_bpffs(path))
            return {};
        return mount_bpffs(path);
    }
    if (fs::create_directories(path, ec) && is_bpffs(path))
        return {};
    // Could not create it, or created it on something else: mount bpffs on the deepest existing
    // ancestor that is not bpffs (e.g. /sys/fs/bpf inside `ip netns exec`), then create the rest.
    fs::path ancestor = fs::path(path);
    while (!fs::exists(ancestor, ec) && ancestor.has_parent_path() && ancestor != ancestor.parent_path())
        ancestor = ancestor.parent_path();
    if (fs::exists(path, ec))
        ancestor = path;
    if (!is_bpffs(ancestor.string()))
        if (Status s = mount_bpffs(ancestor.string()); !s.ok())
            return s;
    fs::create_directories(path, ec);
    if (ec)
        return Status::failure("bpffs: cannot create " + path + ": " + ec.message());
    return {};
}

}  // namespace fulcrum::dataplane
