// The one XDP attach module of fulcrumd and fulcrum-decap: what is attached to an interface, which
// of it is ours, and RAII handles that attach, replace and detach only our program.
//
// Two shapes of interface (both read by read_xdp):
//   - libxdp's dispatcher: the kernel runs the dispatcher, and our program is one of its
//     component programs beside other people's. We add, replace and remove only our component
//     through libxdp, which builds a new dispatcher and swaps it in atomically.
//   - one program alone ("legacy" in libxdp's words): where the kernel cannot run the dispatcher
//     (no BPF trampolines; LAB.md), libxdp attaches the program alone, and the interface holds one
//     program per mode. We swap or remove it only with XDP_FLAGS_REPLACE naming our program, so
//     the kernel refuses if someone else's program is there by then.
// Which one happened is logged, never silent. Note (libxdp 1.3's xdp_multiprog__link_prog): libxdp
// joins a dispatcher only with a program it loads itself as an freplace extension; handed a
// program already loaded as XDP (our skeletons'), it falls back to attaching it alone, and that
// is refused where a dispatcher already runs other programs. The kernel runs native and generic XDP on one
// interface only one at a time; a program in the other mode is someone's too and is never removed.
#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace fulcrum::dataplane {

// native, generic or auto. `auto` is native or fail (with a message that names `mode: generic`):
// generic mode is several times slower and is only used when the config asks for it.
enum class XdpMode { native, generic, automatic };

struct XdpProgramRef {
    unsigned id = 0;
    std::string name;
};

// What XDP has on an interface: nothing, one program alone, or libxdp's dispatcher with its
// component programs.
struct XdpInterface {
    std::string interface;
    int ifindex = 0;
    bool any = false;
    bool dispatcher = false;
    int mode = 0;                          // enum xdp_attach_mode (XDP_MODE_NATIVE, XDP_MODE_SKB, ...)
    unsigned main_id = 0;                  // the program the kernel runs (the dispatcher, or the program alone)
    std::vector<XdpProgramRef> programs;   // the programs that do the work (components, or the one alone)
    const char* mode_name() const;         // "native", "generic", "offload", "unknown"
};

// Reads the interface (opening the attached programs by id: needs CAP_SYS_ADMIN). An interface
// with nothing attached is not an error.
Result<XdpInterface> read_xdp(const std::string& interface);

// The kernel's id of a loaded program (0 for an invalid descriptor).
unsigned program_id_of(int program_fd);

// Who owns a program: the one place that decides "is this program ours".
struct XdpOwner {
    std::string name;        // our program's name as the kernel reports it: "balancer", "decap"
    unsigned pinned_id = 0;  // the program our pins hold (left by an earlier run); 0: none
    // fulcrum-decap: a program with our name is ours even if its id is not the pinned one (its
    // pins were lost). fulcrumd: no; a balancer of another pin path belongs to another fulcrumd.
    bool adopt_by_name = false;
};
// Our program on the interface, or nullptr.
const XdpProgramRef* find_ours(const XdpInterface& on, const XdpOwner& owner);
// A program with our name that is not ours (another instance's), or nullptr.
const XdpProgramRef* find_namesake(const XdpInterface& on, const XdpOwner& owner);
// Whether attaching our program would have to remove someone else's: a program alone that is not
// ours. (libxdp's dispatcher runs ours beside the others.)
bool occupied_by_other(const XdpInterface& on, const XdpOwner& owner);

// Our program attached to one interface. Destroying the handle detaches it unless keep() was
// called (a failed start leaves nothing behind; what stays attached is said explicitly).
// The handle holds its own descriptor of the program, so detach() needs only CAP_NET_ADMIN where
// the program runs alone; under the dispatcher libxdp rebuilds it, which needs CAP_SYS_ADMIN.
class XdpAttachment {
public:
    // Attaches program_fd through libxdp (its dispatcher where the kernel can run it, otherwise
    // alone). libxdp and the kernel refuse to replace a program alone that is already there.
    static Result<XdpAttachment> attach(int program_fd, const std::string& interface, XdpMode mode);
    // Puts program_fd in the place of `old` (ours, found by find_ours on `on`), in the same mode:
    // alone, one atomic XDP_FLAGS_REPLACE; under the dispatcher, the new one is added and then the
    // old one removed, so no packet meets the interface without our program. The returned handle
    // is kept (the interface ran our program before; a failed start leaves the new one there).
    static Result<XdpAttachment> replace(const XdpInterface& on, const XdpProgramRef& old, int program_fd);

    XdpAttachment() = default;
    XdpAttachment(XdpAttachment&& other) noexcept;
    XdpAttachment& operator=(XdpAttachment&& other) noexcept;
    XdpAttachment(const XdpAttachment&) = delete;
    XdpAttachment& operator=(const XdpAttachment&) = delete;
    ~XdpAttachment();  // detaches unless kept

    bool attached() const { return fd_ >= 0; }
    const std::string& interface() const { return interface_; }
    const char* mode_name() const { return mode_name_; }
    unsigned program_id() const { return id_; }
    // Leave the program attached when this handle goes.
    void keep() { keep_ = true; }
    // Removes our program only; another program found in its place is left alone (an error).
    Status detach();

private:
    void reset();
    int fd_ = -1;  // our own descriptor of the program
    unsigned id_ = 0;
    std::string interface_;
    int ifindex_ = 0;
    int attach_mode_ = 0;  // enum xdp_attach_mode actually used
    const char* mode_name_ = "";
    bool keep_ = false;
};

// Detaches one program (by id) from the interface as read by read_xdp: from the dispatcher
// (the others stay), or alone with XDP_FLAGS_REPLACE (refused if it is no longer there).
Status detach_program(const XdpInterface& on, unsigned id);

}  // namespace fulcrum::dataplane
