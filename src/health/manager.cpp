// Health-check scheduling and state; see manager.h.
#include "health/manager.h"

#include <arpa/inet.h>

#include <algorithm>

#include "util/log.h"

namespace fulcrum::health {
namespace {

std::string canonical(const config::Address& a)
{
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(a.family, a.bytes, text, sizeof text);
    return text;
}

// Equal for the manager: the value and the text as written (a Target carries the text).
bool same_address(const config::Address& a, const config::Address& b) { return a == b && a.text == b.text; }

bool same_address(const std::optional<config::Address>& a, const std::optional<config::Address>& b)
{
    return a.has_value() == b.has_value() && (!a || same_address(*a, *b));
}

bool same_check(const config::HealthCheck& a, const config::HealthCheck& b)
{
    return a == b && same_address(a.address, b.address) && same_address(a.source, b.source);
}

// Everything sync reads of a service, equal: then its entries need no change. The VIP and the
// encap are the target and the mark of a check through the tunnel.
bool same_service(const config::Service& a, const config::Service& b)
{
    if (a.name != b.name || a.port != b.port || !same_address(a.vip, b.vip) || a.encap != b.encap ||
        a.backends.size() != b.backends.size() || !same_check(a.healthcheck, b.healthcheck))
        return false;
    for (std::size_t i = 0; i < a.backends.size(); i++) {
        const config::Backend& x = a.backends[i];
        const config::Backend& y = b.backends[i];
        if (!same_address(x.address, y.address) || bool(x.healthcheck) != bool(y.healthcheck) ||
            (x.healthcheck && x.healthcheck != y.healthcheck && !same_check(*x.healthcheck, *y.healthcheck)))
            return false;
    }
    return true;
}

}  // namespace

struct Manager::Entry {
    Entry(std::shared_ptr<const config::HealthCheck> c, Target t, bool start_up)
        : check(std::move(c)), target(std::move(t)), state(check->rise, check->fall, start_up)
    {
    }
    const BackendKey* key = nullptr;  // its key in entries_ (a map's keys stay where they are)
    BackendReport report;              // written under Manager::mutex_
    // Shared by every backend checked the same way (the service's check, or the backend's own
    // from the config): ~550 bytes each, 100,000 backends.
    std::shared_ptr<const config::HealthCheck> check;
    Target target;
    HealthState state;
    std::uint64_t serial = 0;  // bumped when the entry changes: results of older runs are ignored
    // How long before its due time the running check started (run_due's slack): added to the next
    // delay, so that each backend keeps its own phase and those once run together do not stay so.
    std::chrono::steady_clock::duration early{};
    unsigned results = 0;
    // Not up, and fewer results than `rise`: its first verdict is still to come (Manager::settled).
    bool pending() const { return !state.up() && results < check->rise; }
};

Manager::Manager(boost::asio::io_context& io, Runner runner, OnChange on_change,
                 std::chrono::milliseconds batch_window)
    : io_(io), runner_(std::move(runner)), on_change_(std::move(on_change)), batch_window_(batch_window),
      batch_timer_(io), random_(std::random_device{}()), due_timer_(io)
{
}

Manager::~Manager() = default;

void Manager::sync(const config::Config& cfg, const std::set<BackendKey>& initially_up)
{
    synced_.reset();
    synced_services_.clear();
    sync_with(cfg, initially_up, nullptr);
}

void Manager::sync(std::shared_ptr<const config::Config> cfg, const std::set<BackendKey>& initially_up)
{
    sync_with(*cfg, initially_up, synced_.get());
    synced_ = std::move(cfg);
    synced_services_.clear();
    for (const config::Service& svc : synced_->services)
        synced_services_[svc.name] = &svc;
}

bool Manager::unchanged(const config::Service& svc) const
{
    auto it = synced_services_.find(svc.name);
    return it != synced_services_.end() && same_service(*it->second, svc);
}

void Manager::sync_with(const config::Config& cfg, const std::set<BackendKey>& initially_up,
                        const config::Config* previous)
{
    std::set<BackendKey> wanted;
    std::set<std::string> kept;  // services as they were: their entries stay, untouched
    for (const config::Service& svc : cfg.services) {
        if (previous && unchanged(svc)) {
            kept.insert(svc.name);
            continue;
        }
        std::shared_ptr<const config::HealthCheck> service_check;  // made once a backend uses it
        for (const config::Backend& b : svc.backends) {
            BackendKey key{svc.name, canonical(b.address)};
            wanted.insert(key);
            if (!b.healthcheck && !service_check)
                service_check = std::make_shared<const config::HealthCheck>(svc.healthcheck);
            // A backend's own check (rare) is the parsed config's object; the others share the service's.
            std::shared_ptr<const config::HealthCheck> shared = b.healthcheck ? b.healthcheck : service_check;
            const config::HealthCheck& check = *shared;
            const std::uint16_t port = check.port ? *check.port : svc.port;
            // Through the tunnel: to the VIP, marked for the backend's tunnel (tunnel_paths.h).
            Target target = check.via == config::CheckVia::tunnel
                                ? Target{svc.name, svc.vip, port, tunnel_paths_ ? tunnel_paths_->mark(svc, b) : 0}
                                : Target{svc.name, check.address ? *check.address : b.address, port};
            auto it = entries_.find(key);
            if (it != entries_.end()) {
                Entry& e = *it->second;
                pending_ -= e.pending();
                e.check = shared;
                e.target = target;
                e.state.set_thresholds(check.rise, check.fall);
                pending_ += e.pending();
                continue;
            }
            bool start_up = check.start_up || initially_up.contains(key);
            auto entry = std::make_shared<Entry>(shared, target, start_up);
            entry->report.up = start_up;
            entry->report.last_change = std::chrono::system_clock::now();
            {
                std::lock_guard lock(mutex_);
                entry->key = &entries_.emplace(std::move(key), entry).first->first;
            }
            pending_ += entry->pending();
            // Spread the first checks over one interval so many backends don't fire together.
            auto first = std::uniform_int_distribution<long>(0, check.interval.count())(random_);
            schedule(entry, std::chrono::milliseconds(first));
        }
    }
    std::string service;  // of the entries being walked (sorted by service), and whether it is kept
    bool service_kept = false;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->first.first != service) {
            service = it->first.first;
            service_kept = kept.contains(service);
        }
        if (service_kept || wanted.contains(it->first)) {
            ++it;
            continue;
        }
        pending_ -= it->second->pending();
        it->second->serial++;  // its due check is stale, also while a check result holds the entry
        std::lock_guard lock(mutex_);
        it = entries_.erase(it);
    }
    check_settled();  // nothing left to wait for (e.g. no backends) settles at once
}

void Manager::schedule(const std::shared_ptr<Entry>& entry, std::chrono::steady_clock::duration delay)
{
    due_.push_back({std::chrono::steady_clock::now() + delay, entry, ++entry->serial});
    std::push_heap(due_.begin(), due_.end(), std::greater<>());
    arm_due_timer();
}

void Manager::arm_due_timer()
{
    // A removed or rescheduled backend's check does not wake the loop.
    while (!due_.empty()) {
        auto e = due_.front().entry.lock();
        if (e && e->serial == due_.front().serial)
            break;
        std::pop_heap(due_.begin(), due_.end(), std::greater<>());
        due_.pop_back();
    }
    if (due_.empty())
        return;
    const auto at = due_.front().at;
    if (due_timer_armed_ && due_timer_at_ <= at)
        return;
    due_timer_armed_ = true;
    due_timer_at_ = at;
    due_timer_.expires_at(at);
    due_timer_.async_wait([this, at](const boost::system::error_code& ec) {
        if (ec || at != due_timer_at_)
            return;  // the manager is gone, or an earlier check re-armed the timer
        due_timer_armed_ = false;
        run_due();
    });
}

void Manager::run_due()
{
    // Checks due a little later run now too, so that a wake serves many checks: up to 10 ms early
    // (a tenth of the interval for intervals under 100 ms), well inside the interval's jitter.
    constexpr auto kMaxSlack = std::chrono::milliseconds(10);
    const auto now = std::chrono::steady_clock::now();
    while (!due_.empty()) {
        auto e = due_.front().entry.lock();
        const bool live = e && e->serial == due_.front().serial;
        if (live && due_.front().at > now + std::min<std::chrono::milliseconds>(kMaxSlack, e->check->interval / 10))
            break;
        std::pop_heap(due_.begin(), due_.end(), std::greater<>());
        const auto at = due_.back().at;
        due_.pop_back();  // before run: a result may schedule at once, which pushes onto due_
        if (!live)
            continue;
        e->early = std::max<std::chrono::steady_clock::duration>(at - now, {});
        run(e);
    }
    arm_due_timer();
}

void Manager::run(const std::shared_ptr<Entry>& entry)
{
    std::uint64_t serial = entry->serial;
    runner_(*entry->check, entry->target, [this, weak = std::weak_ptr<Entry>(entry), serial](Result result) {
        auto e = weak.lock();
        if (!e || e->serial != serial)
            return;  // the backend was removed or rescheduled meanwhile
        record(*e, result);
        double jitter = e->check->jitter;
        double factor = std::uniform_real_distribution<double>(1 - jitter, 1 + jitter)(random_);
        schedule(e, std::chrono::milliseconds(static_cast<long>(e->check->interval.count() * factor)) + e->early);
    });
}

void Manager::record(Entry& e, const Result& result)
{
    const BackendKey& key = *e.key;
    pending_ -= e.pending();
    bool changed = e.state.feed(result.ok());
    e.results++;
    pending_ += e.pending();
    {
        std::lock_guard lock(mutex_);
        BackendReport& r = e.report;
        r.checked = true;
        r.last = result;
        r.last_check = std::chrono::system_clock::now();
        if (!result.ok())
            r.failures[std::string(failure_name(result.failure))]++;
        double seconds = std::chrono::duration<double>(result.duration).count();
        std::size_t bucket = 0;
        while (bucket < kDurationBuckets.size() && seconds > kDurationBuckets[bucket])
            bucket++;
        r.duration_buckets[bucket]++;
        r.duration_sum += seconds;
        r.duration_count++;
        if (changed) {
            r.up = e.state.up();
            r.last_change = r.last_check;
        }
    }
    if (!changed) {
        check_settled();
        return;
    }
    LOG_INFO("health: %s backend %s is %s (%s%s%s)", key.first.c_str(), key.second.c_str(),
             e.state.up() ? "UP" : "DOWN", result.ok() ? "passed" : std::string(failure_name(result.failure)).c_str(),
             result.detail.empty() ? "" : ": ", result.detail.c_str());
    check_settled();
    trigger_batch();
}

void Manager::check_settled()
{
    if (settled_ || pending_ > 0)
        return;
    settled_ = true;
    LOG_INFO("health: every backend checked; health now drives the tables");
    trigger_batch();
}

void Manager::trigger_batch()
{
    if (batch_pending_)
        return;
    batch_pending_ = true;
    batch_timer_.expires_after(batch_window_);
    batch_timer_.async_wait([this](const boost::system::error_code& ec) {
        batch_pending_ = false;
        if (ec)
            return;
        batches_++;
        on_change_();
    });
}

std::set<BackendKey> Manager::down() const
{
    std::set<BackendKey> out;
    for (const auto& [key, e] : entries_)
        if (!e->state.up())
            out.insert(key);
    return out;
}

std::set<BackendKey> Manager::down_after(const config::Config& cfg) const
{
    // As sync(cfg): a kept backend keeps its state, a new one starts down unless start_up.
    std::set<BackendKey> out;
    for (const config::Service& svc : cfg.services) {
        if (synced_ && unchanged(svc)) {
            // Every backend of it has its entry (the last sync made them): its down ones.
            for (auto it = entries_.lower_bound({svc.name, ""}); it != entries_.end() && it->first.first == svc.name; ++it)
                if (!it->second->state.up())
                    out.insert(it->first);
            continue;
        }
        for (const config::Backend& b : svc.backends) {
            BackendKey key{svc.name, canonical(b.address)};
            const config::HealthCheck& check = b.healthcheck ? *b.healthcheck : svc.healthcheck;
            auto it = entries_.find(key);
            if (it != entries_.end() ? !it->second->state.up() : !check.start_up)
                out.insert(key);
        }
    }
    return out;
}

std::map<BackendKey, BackendReport> Manager::snapshot() const
{
    std::lock_guard lock(mutex_);
    std::map<BackendKey, BackendReport> out;
    for (const auto& [key, e] : entries_)
        out.emplace_hint(out.end(), key, e->report);
    return out;
}

}  // namespace fulcrum::health
