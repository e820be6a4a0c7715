// Attaching an XDP program to an interface through libxdp, in native, generic or auto mode, as
// an RAII handle. `auto` is native or fail (with a message that names `mode: generic`): generic
// mode is several times slower and is only used when the config asks for it. libxdp's multi-program dispatcher is preferred (coexistence with other XDP
// programs); where the kernel cannot run it, libxdp attaches the program alone: which one
// happened is logged, never silent.
#pragma once

#include <string>

#include "util/status.h"

struct xdp_program;
struct xdp_multiprog;

namespace fulcrum::dataplane {

enum class XdpMode { native, generic, automatic };

class XdpAttachment {
public:
    // Attaches program_fd to interface. On failure returns an empty attachment and the error.
    static XdpAttachment attach(int program_fd, const std::string& interface, XdpMode mode, Status* error);
    XdpAttachment() = default;
    XdpAttachment(XdpAttachment&& other) noexcept;
    XdpAttachment& operator=(XdpAttachment&& other) noexcept;
    ~XdpAttachment();  // does NOT detach: leaving the program attached is the default (on_exit)

    bool attached() const { return program_ != nullptr; }
    const std::string& interface() const { return interface_; }
    const char* mode_name() const { return mode_name_; }
    Status detach();

private:
    xdp_program* program_ = nullptr;
    std::string interface_;
    int ifindex_ = 0;
    int attach_mode_ = 0;  // enum xdp_attach_mode actually used
    const char* mode_name_ = "";
};

// Removes whatever XDP program is attached to the interface (any mode). Used by detach tools.
Status detach_any(const std::string& interface);
// The id of the program attached to the interface in any mode, 0 if none.
unsigned attached_program_id(const std::string& interface);

// What is attached to an interface (the program alone, or libxdp's dispatcher), opened while the
// process may still open programs by id (bpf(BPF_PROG_GET_FD_BY_ID) needs CAP_SYS_ADMIN), so that
// detach() can remove it later with CAP_NET_ADMIN alone: fulcrumd gives CAP_SYS_ADMIN up after
// start-up and detaches at exit (on_exit: detach). If something else replaced it meanwhile, the
// kernel refuses the detach (XDP_FLAGS_REPLACE on the handle's program) rather than remove that.
class XdpDetacher {
public:
    static XdpDetacher open(const std::string& interface, Status* error);
    XdpDetacher() = default;
    XdpDetacher(XdpDetacher&& other) noexcept;
    XdpDetacher& operator=(XdpDetacher&& other) noexcept;
    ~XdpDetacher();  // closes the handle; the program stays attached
    const std::string& interface() const { return interface_; }
    Status detach();

private:
    xdp_multiprog* mp_ = nullptr;
    std::string interface_;
};

}  // namespace fulcrum::dataplane

namespace fulcrum::dataplane {

// Name of the program attached to the interface ("" if none): tells our own balancer, left
// attached by an earlier fulcrumd, from someone else's program.
std::string attached_program_name(const std::string& interface);
// Atomically swaps the XDP program attached to the interface (same mode) for new_fd: the
// kernel's XDP_FLAGS_REPLACE, so no packet meets the interface without a program. Used when a
// restarted or upgraded fulcrumd takes over from the program an earlier one left attached.
// expected_id: the program the caller checked (0: any); another one found there is not replaced.
Status replace_attached(const std::string& interface, int new_fd, unsigned expected_id = 0);

}  // namespace fulcrum::dataplane
