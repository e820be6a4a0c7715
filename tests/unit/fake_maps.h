// An in-memory MapWriter for unit tests: keeps the maps as plain containers, logs every write
// (so tests can assert what was written and in which order), and can be told to fail a write or
// the undo of a transaction.
#pragma once

#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <algorithm>
#include <vector>

#include "dataplane/map_writer.h"

namespace fulcrum::test {

template <typename T>
std::vector<std::uint8_t> key_bytes(const T& v)
{
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    return std::vector<std::uint8_t>(p, p + sizeof(T));
}

class FakeMaps final : public dataplane::MapWriter {
public:
    fulcrum_settings settings{};
    std::map<std::vector<std::uint8_t>, fulcrum_vip_value> vips;
    std::map<std::vector<std::uint8_t>, fulcrum_service_value> services;
    std::map<std::uint32_t, fulcrum_backend> backends;
    std::map<std::uint32_t, std::vector<std::uint32_t>> tables;
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> quic_ids;  // (service, server id) -> backend
    std::vector<std::string> log;  // "put_table 3", "put_backend 7 state=1", ...
    int fail_after = -1;           // >= 0: that many more writes succeed, then one fails
    bool fail_rollback = false;    // rollback() fails (and restores nothing)

    struct State {
        fulcrum_settings settings;
        std::map<std::vector<std::uint8_t>, fulcrum_vip_value> vips;
        std::map<std::vector<std::uint8_t>, fulcrum_service_value> services;
        std::map<std::uint32_t, fulcrum_backend> backends;
        std::map<std::uint32_t, std::vector<std::uint32_t>> tables;
        std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> quic_ids;
        bool operator==(const State& o) const
        {
            return std::memcmp(&settings, &o.settings, sizeof settings) == 0 && vips.size() == o.vips.size() &&
                   std::equal(vips.begin(), vips.end(), o.vips.begin(),
                              [](const auto& a, const auto& b) { return a.first == b.first && a.second.flags == b.second.flags; }) &&
                   services.size() == o.services.size() &&
                   std::equal(services.begin(), services.end(), o.services.begin(),
                              [](const auto& a, const auto& b) {
                                  return a.first == b.first && a.second.id == b.second.id &&
                                         a.second.table_size == b.second.table_size;
                              }) &&
                   backends.size() == o.backends.size() &&
                   std::equal(backends.begin(), backends.end(), o.backends.begin(),
                              [](const auto& a, const auto& b) {
                                  return a.first == b.first && std::memcmp(&a.second, &b.second, sizeof a.second) == 0;
                              }) &&
                   tables == o.tables && quic_ids == o.quic_ids;
        }
    };
    State state() const { return {settings, vips, services, backends, tables, quic_ids}; }

    // Transactions and tables prepared aside are not live writes: only "rollback" is logged.
    void begin() override { saved_ = state(); }
    void commit() override
    {
        saved_.reset();
        staged_.clear();
    }
    Status rollback() override
    {
        log.push_back("rollback");
        if (fail_rollback)
            return Status::failure("fake: injected undo failure");
        if (saved_) {
            settings = saved_->settings;
            vips = saved_->vips;
            services = saved_->services;
            backends = saved_->backends;
            tables = saved_->tables;
            quic_ids = saved_->quic_ids;
        }
        saved_.reset();
        staged_.clear();
        return {};
    }
    Status prepare_table(std::uint32_t service_id, std::span<const std::uint32_t> t) override
    {
        if (fail_after == 0)
            return Status::failure("fake: injected failure at prepare_table " + std::to_string(service_id));
        if (fail_after > 0)
            fail_after--;
        staged_[service_id].assign(t.begin(), t.end());
        return {};
    }

    Status set_settings(const fulcrum_settings& s) override
    {
        return write("set_settings", [&] { settings = s; });
    }
    Status put_vip(const fulcrum_vip_key& k, const fulcrum_vip_value& v) override
    {
        return write("put_vip", [&] { vips[key_bytes(k)] = v; });
    }
    Status delete_vip(const fulcrum_vip_key& k) override
    {
        return write("delete_vip", [&] { vips.erase(key_bytes(k)); });
    }
    Status put_service(const fulcrum_service_key& k, const fulcrum_service_value& v) override
    {
        return write("put_service " + std::to_string(v.id) + " size=" + std::to_string(v.table_size) +
                         (v.hash_omit ? " hash_omit=" + std::to_string(v.hash_omit) : "") +
                         (v.quic_id_offset ? " quic=" + std::to_string(v.quic_id_offset) + "/" +
                                                 std::to_string(v.quic_id_bits)
                                           : "") +
                         (v.encap ? " encap=" + std::to_string(v.encap) : ""),
                     [&] { services[key_bytes(k)] = v; });
    }
    Status delete_service(const fulcrum_service_key& k) override
    {
        return write("delete_service", [&] { services.erase(key_bytes(k)); });
    }
    Status put_backend(std::uint32_t id, const fulcrum_backend& b) override
    {
        return write("put_backend " + std::to_string(id) + " state=" + std::to_string(b.state),
                     [&] { backends[id] = b; });
    }
    Status put_quic_id(const fulcrum_quic_key& k, std::uint32_t backend_id) override
    {
        return write("put_quic_id " + std::to_string(k.service_id) + "/" + std::to_string(k.server_id) + " -> " +
                         std::to_string(backend_id),
                     [&] { quic_ids[{k.service_id, k.server_id}] = backend_id; });
    }
    Status delete_quic_id(const fulcrum_quic_key& k) override
    {
        return write("delete_quic_id " + std::to_string(k.service_id) + "/" + std::to_string(k.server_id),
                     [&] { quic_ids.erase({k.service_id, k.server_id}); });
    }
    Status put_table(std::uint32_t service_id, std::span<const std::uint32_t> t) override
    {
        return write("put_table " + std::to_string(service_id),
                     [&] { tables[service_id].assign(t.begin(), t.end()); });
    }
    // Each swap is a write of its own here (logged "put_table N"), so an injected failure can
    // stop a batch part way, as the kernel's batch can.
    Status put_tables(std::span<const std::uint32_t> service_ids) override
    {
        for (std::uint32_t id : service_ids) {
            auto staged = staged_.find(id);
            if (staged == staged_.end())
                return Status::failure("fake: no prepared table for service " + std::to_string(id));
            if (Status s = write("put_table " + std::to_string(id), [&] { tables[id] = std::move(staged->second); });
                !s.ok())
                return s;
            staged_.erase(staged);
        }
        return {};
    }
    Status delete_table(std::uint32_t service_id) override
    {
        return write("delete_table " + std::to_string(service_id), [&] { tables.erase(service_id); });
    }

    // What a restarted daemon would read back from the pinned maps.
    dataplane::MapSnapshot snapshot() const
    {
        dataplane::MapSnapshot snap;
        for (const auto& [k, v] : vips) {
            fulcrum_vip_key key;
            std::memcpy(&key, k.data(), sizeof key);
            snap.vips.emplace_back(key, v);
        }
        for (const auto& [k, v] : services) {
            fulcrum_service_key key;
            std::memcpy(&key, k.data(), sizeof key);
            snap.services.emplace_back(key, v);
        }
        for (const auto& [id, b] : backends)
            if (b.state != FULCRUM_BACKEND_UNUSED)
                snap.backends.emplace_back(id, b);
        for (const auto& [k, backend_id] : quic_ids)
            snap.quic_ids.emplace_back(fulcrum_quic_key{k.first, k.second}, backend_id);
        return snap;
    }

private:
    std::optional<State> saved_;
    std::map<std::uint32_t, std::vector<std::uint32_t>> staged_;  // prepared, not swapped in yet
    template <typename F>
    Status write(const std::string& what, F apply)
    {
        if (fail_after == 0)
            return Status::failure("fake: injected failure at " + what);
        if (fail_after > 0)
            fail_after--;
        apply();
        log.push_back(what);
        return {};
    }
};

}  // namespace fulcrum::test
