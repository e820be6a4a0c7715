// A MapWriter decorator that fails one write on purpose: it forwards everything to the writer
// below (real maps or the fake) and makes write number `fail_at` (1-based, counted from when it
// is armed) fail. Two ways to fail, because a real write can fail before it changed anything or
// after it changed part of what it covers (put_vip sets a filter bit, then inserts the VIP):
//   before: the write is not forwarded; the caller gets the failure.
//   after:  the write is forwarded (and done), then the caller gets a failure anyway.
// Transaction calls (begin, commit, rollback) are always forwarded and never fail here.
#pragma once

#include <string>

#include "dataplane/map_writer.h"

namespace fulcrum::test {

class FaultyWriter final : public dataplane::MapWriter {
public:
    enum class Mode { before, after };
    explicit FaultyWriter(dataplane::MapWriter& inner) : inner_(inner) {}

    void arm(int fail_at, Mode mode = Mode::before)
    {
        fail_at_ = fail_at;
        mode_ = mode;
        count_ = 0;
    }
    void disarm()
    {
        fail_at_ = -1;
        count_ = 0;
    }
    int writes() const { return count_; }  // writes seen since arm() or disarm()
    bool fired() const { return fired_; }

    void begin() override { inner_.begin(); }
    void commit() override { inner_.commit(); }
    Status rollback() override { return inner_.rollback(); }
    Status prepare_table(std::uint32_t id, std::span<const std::uint32_t> t) override
    {
        return write("prepare_table", [&] { return inner_.prepare_table(id, t); });
    }
    Status set_settings(const fulcrum_settings& s) override
    {
        return write("set_settings", [&] { return inner_.set_settings(s); });
    }
    Status put_vip(const fulcrum_vip_key& k, const fulcrum_vip_value& v) override
    {
        return write("put_vip", [&] { return inner_.put_vip(k, v); });
    }
    Status delete_vip(const fulcrum_vip_key& k) override
    {
        return write("delete_vip", [&] { return inner_.delete_vip(k); });
    }
    Status put_service(const fulcrum_service_key& k, const fulcrum_service_value& v) override
    {
        return write("put_service", [&] { return inner_.put_service(k, v); });
    }
    Status delete_service(const fulcrum_service_key& k) override
    {
        return write("delete_service", [&] { return inner_.delete_service(k); });
    }
    Status put_backend(std::uint32_t id, const fulcrum_backend& b) override
    {
        return write("put_backend", [&] { return inner_.put_backend(id, b); });
    }
    Status put_quic_id(const fulcrum_quic_key& k, std::uint32_t backend_id) override
    {
        return write("put_quic_id", [&] { return inner_.put_quic_id(k, backend_id); });
    }
    Status delete_quic_id(const fulcrum_quic_key& k) override
    {
        return write("delete_quic_id", [&] { return inner_.delete_quic_id(k); });
    }
    Status put_table(std::uint32_t id, std::span<const std::uint32_t> t) override
    {
        return write("put_table", [&] { return inner_.put_table(id, t); });
    }
    Status put_tables(std::span<const std::uint32_t> ids) override
    {
        return write("put_tables", [&] { return inner_.put_tables(ids); });
    }
    Status delete_table(std::uint32_t id) override
    {
        return write("delete_table", [&] { return inner_.delete_table(id); });
    }
    Status backends_written() override
    {
        return write("backends_written", [&] { return inner_.backends_written(); });
    }

private:
    template <typename F>
    Status write(const char* what, F forward)
    {
        if (++count_ != fail_at_)
            return forward();
        fired_ = true;
        if (mode_ == Mode::after)
            if (Status s = forward(); !s.ok())
                return s;
        return Status::failure(std::string("injected failure of ") + what + " (write " + std::to_string(count_) + ")");
    }
    dataplane::MapWriter& inner_;
    int fail_at_ = -1, count_ = 0;
    Mode mode_ = Mode::before;
    bool fired_ = false;
};

}  // namespace fulcrum::test
