// The XDP attach module; see xdp_attach.h.
#include "dataplane/xdp_attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace fulcrum::dataplane {
namespace {

std::string errno_text(long err) { return std::strerror(static_cast<int>(err < 0 ? -err : err)); }

const char* name_of(int mode)
{
    switch (static_cast<xdp_attach_mode>(mode)) {
    case XDP_MODE_NATIVE: return "native";
    case XDP_MODE_SKB: return "generic";
    case XDP_MODE_HW: return "offload";
    case XDP_MODE_UNSPEC: break;
    }
    return "unknown";
}

// The XDP_FLAGS_* of a libxdp mode, for netlink attaches of a program alone.
std::uint32_t mode_flag(int mode)
{
    switch (static_cast<xdp_attach_mode>(mode)) {
    case XDP_MODE_NATIVE: return XDP_FLAGS_DRV_MODE;
    case XDP_MODE_SKB: return XDP_FLAGS_SKB_MODE;
    case XDP_MODE_HW: return XDP_FLAGS_HW_MODE;
    case XDP_MODE_UNSPEC: break;
    }
    return 0;
}

Result<int> ifindex_of(const std::string& interface)
{
    const int ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
    if (ifindex == 0)
        return Status::failure("xdp: no interface " + interface + ": " + std::strerror(errno));
    return ifindex;
}

// The id of the program the kernel runs on the interface in `mode` (0: none). A netlink query:
// needs no capability, so it works after fulcrumd gave CAP_SYS_ADMIN up.
Result<unsigned> running_id(const std::string& interface, int ifindex, int mode)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, query);
    if (int err = bpf_xdp_query(ifindex, 0, &query); err != 0)
        return Status::failure("xdp: cannot query the XDP programs of " + interface + ": " + errno_text(err));
    return mode == XDP_MODE_SKB ? query.skb_prog_id : mode == XDP_MODE_HW ? query.hw_prog_id : query.drv_prog_id;
}

// Whether libxdp put its dispatcher in front of the program, or attached it alone.
void log_how_attached(const std::string& interface, const char* mode)
{
    Result<XdpInterface> read = read_xdp(interface);
    if (!read.ok()) {
        LOG_INFO("xdp: attached to %s in %s mode (whether through libxdp's dispatcher is unknown: %s)",
                 interface.c_str(), mode, read.message().c_str());
        return;
    }
    const XdpInterface& on = *read;
    if (!on.any)
        LOG_INFO("xdp: attached to %s in %s mode", interface.c_str(), mode);
    else if (!on.dispatcher)
        LOG_WARN("xdp: attached to %s in %s mode WITHOUT libxdp's dispatcher (this kernel cannot run it: "
                 "no BPF trampolines); other XDP programs cannot share %s",
                 interface.c_str(), mode, interface.c_str());
    else
        LOG_INFO("xdp: attached to %s in %s mode through libxdp's dispatcher (%zu programs)", interface.c_str(),
                 mode, on.programs.size());
}

// libxdp's detach of one program: from the dispatcher (it builds one without it and swaps it in),
// or alone (it checks the id and detaches with XDP_FLAGS_REPLACE).
Status libxdp_detach(int program_fd, unsigned id, const std::string& interface, int ifindex, int mode)
{
    xdp_program* program = program_fd >= 0 ? xdp_program__from_fd(program_fd) : xdp_program__from_id(id);
    if (long err = libxdp_get_error(program); !program || err)
        return Status::failure("xdp: cannot open program id " + std::to_string(id) + " on " + interface + ": " +
                               errno_text(program ? err : errno));
    const int err = xdp_program__detach(program, ifindex, static_cast<xdp_attach_mode>(mode), 0);
    xdp_program__close(program);
    if (err == -ENOENT)
        return Status::failure("xdp: program id " + std::to_string(id) + " is not attached to " + interface +
                               " in " + name_of(mode) + " mode any more; what is there was left alone");
    if (err != 0)
        return Status::failure("xdp: cannot detach program id " + std::to_string(id) + " from " + interface + ": " +
                               errno_text(err));
    return {};
}

}  // namespace

const char* XdpInterface::mode_name() const { return name_of(mode); }

unsigned program_id_of(int program_fd)
{
    bpf_prog_info info{};
    std::uint32_t len = sizeof info;
    if (program_fd < 0 || bpf_obj_get_info_by_fd(program_fd, &info, &len) != 0)
        return 0;
    return info.id;
}

Result<XdpInterface> read_xdp(const std::string& interface)
{
    XdpInterface on;
    on.interface = interface;
    Result<int> ifindex = ifindex_of(interface);
    if (!ifindex.ok())
        return ifindex.status();
    on.ifindex = *ifindex;
    xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(on.ifindex);
    if (long err = libxdp_get_error(mp); !mp || err) {
        if (err != 0 && err != -ENOENT)
            return Status::failure("xdp: cannot read the XDP programs of " + interface + ": " + errno_text(err));
        return on;  // ENOENT: nothing attached
    }
    if (xdp_program* main = xdp_multiprog__main_prog(mp)) {
        on.any = true;
        on.mode = xdp_multiprog__attach_mode(mp);
        on.main_id = xdp_program__id(main);
        on.dispatcher = !xdp_multiprog__is_legacy(mp);
        if (on.dispatcher) {
            for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
                on.programs.push_back({xdp_program__id(p), xdp_program__name(p)});
        } else {
            on.programs.push_back({on.main_id, xdp_program__name(main)});
        }
    }
    xdp_multiprog__close(mp);
    return on;
}

const XdpProgramRef* find_ours(const XdpInterface& on, const XdpOwner& owner)
{
    if (owner.pinned_id != 0)
        for (const XdpProgramRef& p : on.programs)
            if (p.id == owner.pinned_id)
                return &p;
    if (owner.adopt_by_name)
        for (const XdpProgramRef& p : on.programs)
            if (p.name == owner.name)
                return &p;
    return nullptr;
}

const XdpProgramRef* find_namesake(const XdpInterface& on, const XdpOwner& owner)
{
    const XdpProgramRef* ours = find_ours(on, owner);
    for (const XdpProgramRef& p : on.programs)
        if (&p != ours && p.name == owner.name)
            return &p;
    return nullptr;
}

bool occupied_by_other(const XdpInterface& on, const XdpOwner& owner)
{
    return on.any && !on.dispatcher && find_ours(on, owner) == nullptr;
}

Result<XdpAttachment> XdpAttachment::attach(int program_fd, const std::string& interface, XdpMode mode)
{
    XdpAttachment a;
    a.interface_ = interface;
    Result<int> ifindex = ifindex_of(interface);
    if (!ifindex.ok())
        return ifindex.status();
    a.ifindex_ = *ifindex;
    xdp_program* program = xdp_program__from_fd(program_fd);
    if (long err = libxdp_get_error(program); !program || err)
        return Status::failure("xdp: cannot wrap the program for libxdp: " + errno_text(program ? err : errno));
    auto failed = [&](const std::string& message) {
        xdp_program__close(program);
        return Status::failure(message);
    };
    if (mode != XdpMode::generic) {
        const int err = xdp_program__attach(program, a.ifindex_, XDP_MODE_NATIVE, 0);
        if (err == 0) {
            a.attach_mode_ = XDP_MODE_NATIVE;
        } else if (mode == XdpMode::native) {
            return failed("xdp: cannot attach to " + interface + " in native mode: " + errno_text(err));
        } else {
            // auto: native or nothing: generic mode runs after the kernel has built an skb for every
            // packet, several times slower, so it is never taken silently (mode: generic asks).
            std::string why = errno_text(err);
            if (err == -EOPNOTSUPP || err == -EINVAL)
                why += ": the driver of " + interface + " lacks native XDP";
            return failed("xdp: cannot attach to " + interface + " in native mode (mode auto): " + why +
                          "; set `mode: generic` on this interface to accept the slow generic (skb) path");
        }
    }
    if (a.attach_mode_ == 0) {
        if (int err = xdp_program__attach(program, a.ifindex_, XDP_MODE_SKB, 0); err != 0)
            return failed("xdp: cannot attach to " + interface + " in generic mode: " + errno_text(err));
        a.attach_mode_ = XDP_MODE_SKB;
    }
    xdp_program__close(program);  // libxdp's own copy of the descriptor
    a.mode_name_ = name_of(a.attach_mode_);
    a.fd_ = fcntl(program_fd, F_DUPFD_CLOEXEC, 3);
    a.id_ = program_id_of(program_fd);
    log_how_attached(interface, a.mode_name_);
    if (a.fd_ < 0) {
        // Cannot happen short of running out of descriptors; then the handle cannot detach later.
        Status failure = Status::failure("xdp: attached to " + interface +
                                         " but cannot keep a descriptor of the program: " + std::strerror(errno));
        if (Status undone = libxdp_detach(program_fd, a.id_, interface, a.ifindex_, a.attach_mode_); !undone.ok())
            return Status::failure(failure.message() + "; and " + undone.message());
        return failure;
    }
    return a;
}

Result<XdpAttachment> XdpAttachment::replace(const XdpInterface& on, const XdpProgramRef& old, int program_fd)
{
    XdpAttachment a;
    a.interface_ = on.interface;
    a.ifindex_ = on.ifindex;
    a.attach_mode_ = on.mode;
    a.mode_name_ = name_of(on.mode);
    a.keep_ = true;
    if (on.dispatcher) {
        // libxdp has no in-place swap of a component: add the new one beside the old (one atomic
        // dispatcher swap), then remove the old (another). Both ours, sharing the pinned maps.
        xdp_program* program = xdp_program__from_fd(program_fd);
        if (long err = libxdp_get_error(program); !program || err)
            return Status::failure("xdp: cannot wrap the program for libxdp: " + errno_text(program ? err : errno));
        const int err = xdp_program__attach(program, on.ifindex, static_cast<xdp_attach_mode>(on.mode), 0);
        xdp_program__close(program);
        if (err != 0)
            return Status::failure("xdp: cannot add the new program to the dispatcher of " + on.interface + ": " +
                                   errno_text(err));
        if (Status s = libxdp_detach(-1, old.id, on.interface, on.ifindex, on.mode); !s.ok())
            LOG_WARN("%s (the new program runs beside the old one, which returns first)", s.message().c_str());
    } else {
        const int old_fd = bpf_prog_get_fd_by_id(old.id);
        if (old_fd < 0)
            return Status::failure("xdp: cannot open program id " + std::to_string(old.id) + " on " + on.interface +
                                   ": " + std::strerror(errno));
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old_fd);
        const int err = bpf_xdp_attach(on.ifindex, program_fd, mode_flag(on.mode) | XDP_FLAGS_REPLACE, &opts);
        close(old_fd);
        if (err != 0)
            return Status::failure("xdp: cannot replace the program on " + on.interface + ": " + errno_text(err) +
                                   (err == -EEXIST ? " (program id " + std::to_string(old.id) +
                                                         " is not there any more; not replacing what is)"
                                                   : ""));
    }
    LOG_INFO("xdp: replaced program %u on %s in place (%s mode%s)", old.id, on.interface.c_str(), a.mode_name_,
             on.dispatcher ? ", through libxdp's dispatcher" : "");
    a.fd_ = fcntl(program_fd, F_DUPFD_CLOEXEC, 3);
    a.id_ = program_id_of(program_fd);
    if (a.fd_ < 0)
        return Status::failure("xdp: replaced the program on " + on.interface +
                               " but cannot keep a descriptor of it: " + std::strerror(errno));
    return a;
}

XdpAttachment::XdpAttachment(XdpAttachment&& o) noexcept
    : fd_(o.fd_), id_(o.id_), interface_(std::move(o.interface_)), ifindex_(o.ifindex_),
      attach_mode_(o.attach_mode_), mode_name_(o.mode_name_), keep_(o.keep_)
{
    o.fd_ = -1;
}

XdpAttachment& XdpAttachment::operator=(XdpAttachment&& o) noexcept
{
    if (this != &o) {
        reset();
        fd_ = o.fd_;
        id_ = o.id_;
        interface_ = std::move(o.interface_);
        ifindex_ = o.ifindex_;
        attach_mode_ = o.attach_mode_;
        mode_name_ = o.mode_name_;
        keep_ = o.keep_;
        o.fd_ = -1;
    }
    return *this;
}

XdpAttachment::~XdpAttachment() { reset(); }

void XdpAttachment::reset()
{
    if (fd_ < 0)
        return;
    if (!keep_)
        if (Status s = detach(); !s.ok())
            LOG_ERROR("%s", s.message().c_str());
    if (fd_ >= 0)
        close(fd_);
    fd_ = -1;
}

Status XdpAttachment::detach()
{
    if (fd_ < 0)
        return {};
    Status result;
    Result<unsigned> query = running_id(interface_, ifindex_, attach_mode_);
    const unsigned running = query.ok() ? *query : 0;
    if (!query.ok()) {
        result = query.status();
    } else if (running == id_) {
        // Alone: the kernel removes it only if it is still this program (XDP_FLAGS_REPLACE with our
        // own descriptor), so nothing needs opening by id.
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = fd_);
        if (int err = bpf_xdp_attach(ifindex_, -1, mode_flag(attach_mode_) | XDP_FLAGS_REPLACE, &opts); err != 0)
            result = Status::failure("xdp: cannot detach program id " + std::to_string(id_) + " from " + interface_ +
                                     ": " + errno_text(err));
    } else if (running == 0) {
        result = Status::failure("xdp: program id " + std::to_string(id_) + " is not attached to " + interface_ +
                                 " any more (nothing runs there in " + mode_name_ + " mode); nothing detached");
    } else {
        // Something else runs in our mode: libxdp's dispatcher with ours among its components (it
        // rebuilds the dispatcher without ours), or someone else's program, which stays.
        result = libxdp_detach(fd_, id_, interface_, ifindex_, attach_mode_);
        if (!result.ok())
            result = Status::failure(result.message() + " (program id " + std::to_string(running) + " runs there; "
                                     "if that is libxdp's dispatcher, removing ours from it needs CAP_SYS_ADMIN)");
    }
    if (result.ok())
        LOG_INFO("xdp: detached program id %u from %s", id_, interface_.c_str());
    close(fd_);
    fd_ = -1;
    return result;
}

Status detach_program(const XdpInterface& on, unsigned id)
{
    return libxdp_detach(-1, id, on.interface, on.ifindex, on.mode);
}

}  // namespace fulcrum::dataplane
