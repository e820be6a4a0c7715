// Result<T> (src/util/status.h): a value, or the Status saying why there is none.
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "util/log.h"
#include "util/status.h"

using fulcrum::Result;
using fulcrum::Status;

namespace {

Result<int> half(int n)
{
    if (n % 2)
        return Status::failure(std::to_string(n) + " is odd");
    return n / 2;
}

// Passes a failure up unchanged, adds to a value.
Result<int> quarter(int n)
{
    Result<int> h = half(n);
    if (!h.ok())
        return h.status();
    return half(*h);
}

}  // namespace

TEST_CASE("result: a value, or the failure that says why there is none", "[status]")
{
    Result<int> ok = quarter(8);
    REQUIRE(ok.ok());
    CHECK(*ok == 2);
    CHECK(ok.message().empty());

    Result<int> odd = quarter(6);  // 6 / 2 = 3: odd
    CHECK_FALSE(odd.ok());
    CHECK(odd.message() == "3 is odd");

    // Move-only values come out by moving the Result.
    Result<std::unique_ptr<int>> owned = std::make_unique<int>(7);
    REQUIRE(owned.ok());
    std::unique_ptr<int> taken = std::move(owned).value();
    CHECK(*taken == 7);

    // An ok Status is no reason: the Result still fails, and says it was a caller's bug.
    Result<int> bug = Status{};
    CHECK_FALSE(bug.ok());
    CHECK(bug.message().find("internal error") != std::string::npos);
}

TEST_CASE("log::EveryMinute lets a repeated failure through once, then holds it back", "[status][log]")
{
    // The first failure is logged; the same failure again at once (every scrape, every event) is
    // not: that is what keeps "never silent" from becoming a flood.
    fulcrum::log::EveryMinute limit;
    CHECK(limit.due());
    CHECK_FALSE(limit.due());
    CHECK_FALSE(limit.due());
    fulcrum::log::EveryMinute other;  // another place keeps its own minute
    CHECK(other.due());
}
