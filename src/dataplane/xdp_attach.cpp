// XDP attach/detach through libxdp; see xdp_attach.h.
#include "dataplane/xdp_attach.h"

#include <net/if.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

Status attach_error(const std::string& interface, const char* mode, int err)
{
    return Status::failure("xdp: cannot attach to " + interface + " in " + mode + " mode: " +
                           std::strerror(err < 0 ? -err : err));
}

// Whether libxdp put its dispatcher in front of the program, or attached it alone.
void log_how_attached(int ifindex, const std::string& interface, const char* mode)
{
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (!mp || libxdp_get_error(mp)) {
        LOG_INFO("xdp: attached to %s in %s mode", interface.c_str(), mode);
        return;
    }
    if (xdp_multiprog__is_legacy(mp))
        LOG_WARN("xdp: attached to %s in %s mode WITHOUT libxdp's dispatcher (this kernel cannot run it: "
                 "no BPF trampolines); other XDP programs cannot share %s",
                 interface.c_str(), mode, interface.c_str());
    else
        LOG_INFO("xdp: attached to %s in %s mode through libxdp's dispatcher (%d programs)",
                 interface.c_str(), mode, xdp_multiprog__program_count(mp));
    xdp_multiprog__close(mp);
}

}  // namespace

XdpAttachment XdpAttachment::attach(int program_fd, const std::string& interface, XdpMode mode, Status* error)
{
    XdpAttachment a;
    a.interface_ = interface;
    a.ifindex_ = static_cast<int>(if_nametoindex(interface.c_str()));
    if (a.ifindex_ == 0) {
        *error = Status::failure("xdp: no interface " + interface + ": " + std::strerror(errno));
        return {};
    }
    xdp_program* program = xdp_program__from_fd(program_fd);
    if (!program || libxdp_get_error(program)) {
        *error = Status::failure("xdp: cannot wrap the program for libxdp: " +
                                 std::string(std::strerror(errno)));
        return {};
    }
    int err = 0;
    if (mode != XdpMode::generic) {
        err = xdp_program__attach(program, a.ifindex_, XDP_MODE_NATIVE, 0);
        if (err == 0) {
            a.attach_mode_ = XDP_MODE_NATIVE;
            a.mode_name_ = "native";
        } else if (mode == XdpMode::native) {
            *error = attach_error(interface, "native", err);
            xdp_program__close(program);
            return {};
        } else {
            // auto: native or nothing: generic mode runs after the kernel has built an skb for every
            // packet, several times slower, so it is never taken silently (mode: generic asks).
            std::string why = std::strerror(err < 0 ? -err : err);
            if (err == -EOPNOTSUPP || err == -EINVAL)
                why += ": the driver of " + interface + " lacks native XDP";
            *error = Status::failure("xdp: cannot attach to " + interface + " in native mode (mode auto): " + why +
                                     "; set `mode: generic` on this interface to accept the slow generic "
                                     "(skb) path");
            xdp_program__close(program);
            return {};
        }
    }
    if (a.attach_mode_ == 0) {
        err = xdp_program__attach(program, a.ifindex_, XDP_MODE_SKB, 0);
        if (err != 0) {
            *error = attach_error(interface, "generic", err);
            xdp_program__close(program);
            return {};
        }
        a.attach_mode_ = XDP_MODE_SKB;
        a.mode_name_ = "generic";
    }
    a.program_ = program;
    log_how_attached(a.ifindex_, interface, a.mode_name_);
    return a;
}

XdpAttachment::XdpAttachment(XdpAttachment&& o) noexcept
    : program_(o.program_), interface_(std::move(o.interface_)), ifindex_(o.ifindex_),
      attach_mode_(o.attach_mode_), mode_name_(o.mode_name_)
{
    o.program_ = nullptr;
}

XdpAttachment& XdpAttachment::operator=(XdpAttachment&& o) noexcept
{
    if (this != &o) {
        if (program_)
            xdp_program__close(program_);
        program_ = o.program_;
        interface_ = std::move(o.interface_);
        ifindex_ = o.ifindex_;
        attach_mode_ = o.attach_mode_;
        mode_name_ = o.mode_name_;
        o.program_ = nullptr;
    }
    return *this;
}

XdpAttachment::~XdpAttachment()
{
    if (program_)
        xdp_program__close(program_);  // closes our handle only; the attachment stays
}

Status XdpAttachment::detach()
{
    if (!program_)
        return {};
    int err = xdp_program__detach(program_, ifindex_, static_cast<xdp_attach_mode>(attach_mode_), 0);
    if (err != 0)
        return Status::failure("xdp: cannot detach from " + interface_ + ": " + std::strerror(-err));
    xdp_program__close(program_);
    program_ = nullptr;
    LOG_INFO("xdp: detached from %s", interface_.c_str());
    return {};
}

Status detach_any(const std::string& interface)
{
    int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    if (ifindex == 0)
        return Status::failure("xdp: no interface " + interface + ": " + std::strerror(errno));
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (!mp || libxdp_get_error(mp))
        return {};  // nothing attached
    int err = xdp_multiprog__detach(mp);
    xdp_multiprog__close(mp);
    if (err != 0)
        return Status::failure("xdp: cannot detach from " + interface + ": " + std::strerror(-err));
    return {};
}

XdpDetacher XdpDetacher::open(const std::string& interface, Status* error)
{
    XdpDetacher d;
    d.interface_ = interface;
    const int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    if (ifindex == 0) {
        *error = Status::failure("xdp: no interface " + interface + ": " + std::strerror(errno));
        return {};
    }
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (!mp || libxdp_get_error(mp)) {
        const long err = mp ? libxdp_get_error(mp) : -ENOENT;
        *error = Status::failure("xdp: cannot open the program attached to " + interface + ": " +
                                 std::strerror(static_cast<int>(err < 0 ? -err : err)));
        return {};
    }
    d.mp_ = mp;
    return d;
}

XdpDetacher::XdpDetacher(XdpDetacher&& o) noexcept : mp_(o.mp_), interface_(std::move(o.interface_))
{
    o.mp_ = nullptr;
}

XdpDetacher& XdpDetacher::operator=(XdpDetacher&& o) noexcept
{
    if (this != &o) {
        if (mp_)
            xdp_multiprog__close(mp_);
        mp_ = o.mp_;
        interface_ = std::move(o.interface_);
        o.mp_ = nullptr;
    }
    return *this;
}

XdpDetacher::~XdpDetacher()
{
    if (mp_)
        xdp_multiprog__close(mp_);
}

Status XdpDetacher::detach()
{
    if (!mp_)
        return Status::failure("xdp: nothing to detach from " + interface_);
    int err = xdp_multiprog__detach(mp_);
    xdp_multiprog__close(mp_);
    mp_ = nullptr;
    if (err != 0)
        return Status::failure("xdp: cannot detach from " + interface_ + ": " + std::strerror(-err));
    return {};
}

unsigned attached_program_id(const std::string& interface)
{
    int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    if (ifindex == 0)
        return 0;
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (!mp || libxdp_get_error(mp))
        return 0;
    unsigned id = 0;
    xdp_program* main = xdp_multiprog__main_prog(mp);
    if (main)
        id = xdp_program__id(main);
    xdp_multiprog__close(mp);
    return id;
}

}  // namespace fulcrum::dataplane

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

namespace fulcrum::dataplane {

std::string attached_program_name(const std::string& interface)
{
    unsigned id = attached_program_id(interface);
    if (id == 0)
        return "";
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0)
        return "";
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    std::string name;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
        name = info.name;
    close(fd);
    return name;
}

Status replace_attached(const std::string& interface, int new_fd, unsigned expected_id)
{
    int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    if (ifindex == 0)
        return Status::failure("xdp: no interface " + interface + ": " + std::strerror(errno));
    LIBBPF_OPTS(bpf_xdp_query_opts, query);
    if (int err = bpf_xdp_query(ifindex, 0, &query))
        return Status::failure("xdp: cannot query " + interface + ": " + std::strerror(-err));
    std::uint32_t mode_flag = 0;
    std::uint32_t old_id = 0;
    if (query.attach_mode == XDP_ATTACHED_DRV) {
        mode_flag = XDP_FLAGS_DRV_MODE;
        old_id = query.drv_prog_id;
    } else if (query.attach_mode == XDP_ATTACHED_SKB) {
        mode_flag = XDP_FLAGS_SKB_MODE;
        old_id = query.skb_prog_id;
    } else {
        return Status::failure("xdp: " + interface + " has no single program to replace");
    }
    if (expected_id != 0 && old_id != expected_id)
        return Status::failure("xdp: " + interface + " runs program " + std::to_string(old_id) + ", not " +
                               std::to_string(expected_id) + " any more; not replacing it");
    int old_fd = bpf_prog_get_fd_by_id(old_id);
    if (old_fd < 0)
        return Status::failure("xdp: cannot open the program on " + interface + ": " + std::strerror(errno));
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old_fd);
    int err = bpf_xdp_attach(ifindex, new_fd, mode_flag | XDP_FLAGS_REPLACE, &opts);
    close(old_fd);
    if (err)
        return Status::failure("xdp: cannot replace the program on " + interface + ": " + std::strerror(-err));
    LOG_INFO("xdp: replaced program %u on %s in place (%s mode)", old_id, interface.c_str(),
             mode_flag == XDP_FLAGS_DRV_MODE ? "native" : "generic");
    return {};
}

}  // namespace fulcrum::dataplane
