// Applies in order, one at a time; see apply_queue.h.
#include "daemon/apply_queue.h"

#include <memory>

#include "util/log.h"

namespace fulcrum::daemon {

void ApplyQueue::push(std::string what, Job job)
{
    jobs_.emplace_back(std::move(what), std::move(job));
    if (busy_)
        return;
    busy_ = true;
    boost::asio::post(io_, [this] { start_next(); });
}

// Posted rather than called from the previous job's Done, so a job never starts inside another's
// completion (whose caller may still be on the stack).
void ApplyQueue::start_next()
{
    if (jobs_.empty()) {
        busy_ = false;
        running_.clear();
        return;
    }
    auto [what, job] = std::move(jobs_.front());
    jobs_.pop_front();
    running_ = std::move(what);
    auto finished = std::make_shared<bool>(false);
    job([this, finished] {
        if (*finished) {
            LOG_ERROR("apply: a job reported its end twice (ignored)");
            return;
        }
        *finished = true;
        boost::asio::post(io_, [this] { start_next(); });
    });
}

}  // namespace fulcrum::daemon
